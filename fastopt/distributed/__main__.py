"""``python -m fastopt.distributed``: data-parallel training and step benchmarks under mpiexec.

    mpiexec -n 3 python -m fastopt.distributed train --epochs 1000 --check
    mpiexec -n 2 python -m fastopt.distributed bench --sizes 1e5 1e6 1e7

``train`` trains the assignment's network ([2, 5, 2, 1] on two moons, float64, packed) with
:class:`fastopt.distributed.DistributedOptimizer`: every rank takes its part of each global
batch (``MiniBatches(..., rank=, world=)``); rank 0 prints the epoch lines. ``--check``: rank
0 also trains in one process, forming the rank-ordered sum of every rank's gradient itself
(docs/contract.md §9; the reference of ``python -m fastopt train --distributed --check`` too,
:func:`fastopt._apps.train_distributed.rank_order_reference`), and reports whether the final
parameters are bit-identical.

``bench`` times one step over a float32 buffer, split into communication (inside MPI) and
compute, for the plain way (``Allreduce(IN_PLACE)``, times ``1/world``, a local step) and both
modes of :class:`DistributedOptimizer`, with the optimizer state each rank holds.
"""
import argparse
import sys
import time

import numpy as np
from mpi4py import MPI

import fastopt
from fastopt import _experiment
from fastopt._apps import cli as _cli, registry as _registry
from fastopt._apps.train_distributed import rank_order_reference
from fastopt.distributed import DistributedOptimizer

CLASSES = _registry.optimizers()  # command-line name -> fastopt optimizer class
LAYERS = [2, 5, 2, 1]
# The most one rank of ``bench`` holds at once, per float32 item: parameters, gradients, Adam's
# two state arrays, the reduced and received copies of the gradients, the gathered parameters,
# with room to spare (16 x 4 bytes).
BENCH_BYTES_PER_ITEM = 64


def _local_gradients(params, grads, xb, yb):
    """This rank's gradient (the mean over its part of the batch, as the assignment's
    backward pass computes it) into ``grads``; returns the part's summed cost."""
    if xb.shape[1] == 0:  # a part with no example (a batch smaller than the world)
        grads.buffer[:] = 0.0
        return 0.0
    a3, cache = _experiment.forward_propagation(xb, params)
    cost = _experiment.compute_cost(a3, yb)
    g = _experiment.backward_propagation(xb, yb, cache)
    for key in params:
        grads[key] = g["d" + key]
    return float(cost)


def _accuracy(params, X, Y):
    a3, _ = _experiment.forward_propagation(X, params)
    return float(np.mean((a3 > 0.5) == Y))


def train(args, comm, out=sys.stdout):
    rank, world = comm.Get_rank(), comm.Get_size()
    X, Y = _experiment.load_dataset()
    m = X.shape[1]
    initial = _experiment.initialize_parameters(LAYERS)
    cls = CLASSES[args.optimizer]
    hyper = dict(lr=args.lr, max_grad_norm=args.max_grad_norm)
    params = fastopt.pack(initial)
    grads = fastopt.pack_like(params)
    opt = DistributedOptimizer(cls, params, comm, shard_state=args.shard_state, **hyper)
    loader = fastopt.MiniBatches(X, Y, args.batch_size, seed=args.seed, rank=rank, world=world)
    if rank == 0:
        print(f"{cls.__name__} lr={args.lr} on {world} rank(s), shard_state="
              f"{args.shard_state}, global batch {args.batch_size}, {m} examples", file=out)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        cost = 0.0
        for xb, yb in loader:
            cost += _local_gradients(params, grads, xb, yb)
            opt.step(grads)
        costs = comm.gather(cost, root=0)
        if rank == 0 and (epoch % args.print_every == 0 or epoch == args.epochs - 1):
            total = 0.0
            for c in costs:  # in rank order
                total += c
            print(f"epoch {epoch:5d}  cost {total / m:.6f}", file=out)
    elapsed = time.perf_counter() - start
    if rank != 0:
        return 0
    print(f"train accuracy {_accuracy(params, X, Y):.4f}, {elapsed:.2f} s, "
          f"{opt.timings['communication'] / max(opt.timings['steps'], 1) * 1e6:.0f} us "
          f"communication per step", file=out)
    if not args.check:
        return 0
    single_params = fastopt.pack(initial)
    scratch = fastopt.pack_like(single_params)

    def gradient(part):
        _local_gradients(single_params, scratch, *part)
        return scratch.buffer

    loaders = [fastopt.MiniBatches(X, Y, args.batch_size, seed=args.seed, rank=r, world=world)
               for r in range(world)]
    rank_order_reference(cls(single_params, **hyper), loaders, gradient,
                         fastopt.pack_like(single_params), args.epochs)
    same = params.buffer.tobytes() == single_params.buffer.tobytes()
    print(f"bit-identical to one process: {'yes' if same else 'NO'}", file=out)
    return 0 if same else 1


def _median(values):
    return float(np.median(values)) if values else 0.0


def _bench_one(mode, cls, n, comm, steps):
    """Median (communication, compute, total) seconds per step on this rank, and the state
    bytes it holds."""
    world, rank = comm.Get_size(), comm.Get_rank()
    params = fastopt.pack({"w": np.random.default_rng(0).standard_normal(n, np.float32)})
    grads = fastopt.pack_like(params)
    grads.buffer[:] = np.random.default_rng(1 + rank).standard_normal(n, np.float32) * 1e-3
    if mode == "allreduce":
        opt = cls(params, lr=1e-4)
        work = fastopt.pack_like(params)
        state = sum(a.nbytes for s in opt.state_names for a in opt.state(s).values())

        def step():
            np.copyto(work.buffer, grads.buffer)  # untimed: keeps the values sane
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, [work.buffer, MPI.FLOAT], op=MPI.SUM)
            t1 = time.perf_counter()
            if world > 1:
                np.multiply(work.buffer, 1.0 / world, out=work.buffer)
            opt.step(work)
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1
    else:
        opt = DistributedOptimizer(cls, params, comm, shard_state=mode == "zero-1", lr=1e-4)
        state = opt.state_nbytes

        def step():
            before = opt.timings
            opt.step(grads)
            after = opt.timings
            return (after["communication"] - before["communication"],
                    after["compute"] - before["compute"])
    for _ in range(2):
        step()
    comm_times, compute_times = [], []
    for _ in range(steps):
        comm.Barrier()
        c, k = step()
        comm_times.append(c)
        compute_times.append(k)
    totals = [c + k for c, k in zip(comm_times, compute_times)]
    return _median(comm_times), _median(compute_times), _median(totals), state


def bench(args, comm, out=sys.stdout):
    world, rank = comm.Get_size(), comm.Get_rank()
    fastopt.set_num_threads(args.threads)
    cls = CLASSES[args.optimizer]
    if rank == 0:
        print(f"{cls.__name__} step, float32, world {world}, {args.threads} fastopt thread(s) "
              f"per rank, {MPI.Get_library_version().splitlines()[0].strip()}", file=out)
        print("| items | mode | communication | compute | step | state per rank |", file=out)
        print("|---|---|---|---|---|---|", file=out)
    for n in args.sizes:
        steps = int(min(200, max(5, 3e7 // n)))
        for mode in ("allreduce", "fixed-order", "zero-1"):
            c, k, total, state = _bench_one(mode, cls, n, comm, steps)
            results = comm.gather((c, k, total, state), root=0)
            if rank == 0:
                slowest = max(results, key=lambda r: r[2])
                c, k, total, _ = slowest
                state_max = max(r[3] for r in results)
                print(f"| {n:.0e} | {mode} | {c * 1e3:.3f} ms | {k * 1e3:.3f} ms | "
                      f"{total * 1e3:.3f} ms | {state_max / 2**20:.2f} MiB |", file=out)
    _cost_model(comm, args.sizes[-1], out)
    return 0


def _cost_model(comm, n, out):
    """Latency and bandwidth for the README's cost model: alpha from an 8-byte Allgather,
    beta from the time of the reduce-scatter traffic (Alltoallv) plus the allgather
    (Allgatherv) of ``n`` float32 items."""
    world, rank = comm.Get_size(), comm.Get_rank()
    if world == 1:
        return
    one, many = np.zeros(1), np.zeros(world)
    lat = []
    for _ in range(200):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allgather(one, many)
        lat.append(time.perf_counter() - t0)
    params = fastopt.pack({"w": np.zeros(n, np.float32)})
    opt = DistributedOptimizer(fastopt.SGD, params, comm, lr=0.0)
    grads = fastopt.pack_like(params)
    bw = []
    for _ in range(10):
        comm.Barrier()
        before = opt.timings["communication"]
        opt.step(grads)
        bw.append(opt.timings["communication"] - before)
    alpha, seconds = _median(lat), _median(bw)
    moved = 2 * (world - 1) / world * n * 4
    if rank == 0:
        print(f"cost model: latency alpha = {alpha * 1e6:.1f} us (8-byte Allgather); "
              f"Alltoallv + Allgatherv of {n:.0e} float32 in {seconds * 1e3:.2f} ms = "
              f"2(N-1)/N x {n * 4 / 1e6:.0f} MB / {seconds * 1e3:.2f} ms, bandwidth beta = "
              f"{moved / seconds / 1e9:.2f} GB/s per rank", file=out)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt.distributed",
        description="Data-parallel training and benchmarks over MPI; run under "
                    "mpiexec -n N (docs/contract.md §9).")
    sub = parser.add_subparsers(dest="command", metavar="{train,bench}")
    t = sub.add_parser("train", help="train the assignment's network data-parallel",
                       description="Train [2, 5, 2, 1] on two moons (float64, packed), each "
                                   "rank on its part of every global batch; rank 0 prints the "
                                   "epoch lines.")
    t.add_argument("--optimizer", type=_cli.one_of(CLASSES), choices=list(CLASSES),
                   default="adam", help="in any letter case (default: adam)")
    t.add_argument("--lr", type=_cli.positive_real, default=0.0007)
    t.add_argument("--max-grad-norm", type=_cli.positive_real, default=None)
    t.add_argument("--epochs", type=_cli.positive_int, default=1000)
    t.add_argument("--batch-size", type=_cli.positive_int, default=64,
                   help="the global batch, split over the ranks (default: 64)")
    t.add_argument("--seed", type=_cli.seed, default=0,
                   help="the permutations' seed (default: 0)")
    t.add_argument("--shard-state", action="store_true",
                   help="ZeRO stage 1: each rank keeps the state of its slice only")
    t.add_argument("--print-every", type=_cli.positive_int, default=100, metavar="N")
    t.add_argument("--check", action="store_true",
                   help="rank 0 also trains in one process on the rank-ordered sums and "
                        "reports whether the parameters are bit-identical (exit status 1 if "
                        "not)")
    b = sub.add_parser("bench", help="time a step: communication and compute",
                       description="Time one step over a float32 buffer: Allreduce(IN_PLACE) "
                                   "+ a local step, and DistributedOptimizer without and with "
                                   "shard_state; the slowest rank's medians, and the state "
                                   "each rank holds. Then the cost model's latency and "
                                   "bandwidth.")
    b.add_argument("--sizes", nargs="+", default=[100_000, 1_000_000, 10_000_000], metavar="N",
                   type=_cli.array_items(BENCH_BYTES_PER_ITEM, "a rank's buffers"),
                   help="items (default: 1e5 1e6 1e7)")
    b.add_argument("--optimizer", type=_cli.one_of(CLASSES), choices=list(CLASSES),
                   default="adam", help="in any letter case (default: adam)")
    b.add_argument("--threads", type=_cli.threads, default=1,
                   help="fastopt threads per rank (default: 1; ranks share the cores)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    comm = MPI.COMM_WORLD
    if args.command == "bench":
        return bench(args, comm)
    if args.command is None:
        args = build_parser().parse_args(["train"] + list(argv or sys.argv[1:]))
    return train(args, comm)


if __name__ == "__main__":
    sys.exit(main())
