"""What the per-step agreement of ``fastopt.distributed`` costs (one ``Allgather`` of each
rank's status and fingerprint before any exchange): each round times one step with it and one
without (``_agree`` replaced by the gradient checks alone), on the same arrays, so that the
drift of a shared machine hits both alike; medians over the rounds, per rank.

    mpiexec -n 2 python benchmarks/tools/ab_agreement.py                 # Adam, float32, 1e3 and 1e4
    mpiexec -n 2 python benchmarks/tools/ab_agreement.py --sizes 1e3 --rounds 5000
"""
import argparse
import time

import numpy as np
from mpi4py import MPI

import fastopt
from fastopt.distributed import DistributedOptimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e3,1e4")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    fastopt.set_num_threads(1)
    for size in (int(float(s)) for s in args.sizes.split(",")):
        params = fastopt.pack({"w": np.zeros(size, np.float32)})
        grads = fastopt.pack_like(params)
        grads.buffer[:] = 1e-3
        opt = DistributedOptimizer(fastopt.Adam, params, lr=1e-3)
        agree = opt._agree
        for _ in range(200):  # warm-up
            opt.step(grads)
        times = {"with": [], "without": []}
        for _ in range(args.rounds):
            for mode in ("with", "without"):
                opt._agree = agree if mode == "with" else opt._check_grads
                comm.Barrier()
                t0 = time.perf_counter()
                opt.step(grads)
                times[mode].append(time.perf_counter() - t0)
        medians = comm.gather({k: float(np.median(v)) * 1e6 for k, v in times.items()})
        if comm.rank == 0:
            for r, m in enumerate(medians):
                print(f"{size:>8} items, world {comm.size}, rank {r}: step {m['without']:.1f} us "
                      f"without the agreement, {m['with']:.1f} us with it "
                      f"(+{m['with'] - m['without']:.1f} us)")


if __name__ == "__main__":
    main()
