"""``python -m fastopt train --distributed``: the training of :mod:`fastopt._apps.train`, data-parallel
over MPI ranks (run under ``mpiexec -n N``).

Every rank builds the same data and initial weights from the one ``--seed`` and draws the same
permutation every epoch; rank ``r`` takes part ``r`` of each global batch
(``MiniBatches(..., rank=r, world=N)``) and computes the mean gradient over that part with the
single-process code (:class:`fastopt._apps.mlp.Network`);
:class:`fastopt.distributed.DistributedOptimizer` adds the ranks' gradients in rank order,
multiplies the sum by ``1/N`` and steps, so that every rank holds the same parameters
(docs/contract.md §9). Rank 0 prints the epoch lines. Their loss and train accuracy are the
ranks' sums added on rank 0 by ``MPI.SUM``, in whatever order MPI picks: they are for display
only, and nothing trains on them.

This is not the step of the single-process ``train``: when the parts are uneven, the average
of N part means is not the mean over the batch. Even with equal parts, BLAS may add a batch's
matrix product in another order than the sum of the parts' products. So ``--check`` compares
with the reference that docs/contract.md §9 defines: one process that, for every global batch,
computes each part's gradient in rank order exactly as the ranks do (the same code on the same
part), adds them in rank order in float32, multiplies the sum by ``1/N`` and steps a plain
single-process optimizer.

Importing this module imports mpi4py (through :mod:`fastopt.distributed`); :mod:`fastopt._apps.train`
imports it only for ``--distributed``.
"""
import time

import numpy as np

import fastopt

from . import loops as _loops, mlp as _mlp
from .blas import blas_threads
from ..distributed import DistributedOptimizer  # first: its ImportError says what to install
from mpi4py import MPI  # after the import whose error explains a missing mpi4py


def is_root(comm=None):
    """True on rank 0 of ``comm`` (``MPI.COMM_WORLD`` by default), the rank that prints."""
    return (comm if comm is not None else MPI.COMM_WORLD).Get_rank() == 0


def part_batches(X, y, batch_size, seed, rank, world):
    """Rank ``rank``'s parts of the batches that one process trains on.

    Parameters
    ----------
    X, y : ndarray
        Training data, one example per column, as from :mod:`fastopt._apps.datasets`.
    batch_size : int
        The global batch size.
    seed : int
        ``--seed``. The permutations come from :func:`fastopt._apps.train.batch_rng`, the generator
        that the single-process loop uses, so the global batches are that loop's batches.
    rank, world : int
        This part's index, and how many parts each global batch is split into.

    Returns
    -------
    fastopt.MiniBatches
    """
    return fastopt.MiniBatches(X, y, batch_size=batch_size, seed=_loops.batch_rng(seed), axis=1,
                               rank=rank, world=world)


class DistributedLoop(_loops.FastoptLoop):
    """:class:`fastopt._apps.train.FastoptLoop` on one rank: its part of every batch, a
    :class:`DistributedOptimizer` step, and the epoch's figures added up on rank 0.

    Parameters
    ----------
    params0, data, cls, lr, batch_size, seed
        As :class:`fastopt._apps.train.FastoptLoop`; the same on every rank.
    comm : mpi4py.MPI.Intracomm
        The ranks that train together.
    shard_state : bool
        Passed to :class:`DistributedOptimizer`.
    """

    name = "fastopt"

    def __init__(self, params0, data, cls, lr, batch_size, seed, comm, shard_state):
        X, y, X_test, y_test = data
        self.m, self.test = X.shape[1], (X_test, y_test)
        self.comm, self.rank, self.world = comm, comm.Get_rank(), comm.Get_size()
        self.net = _mlp.Network(params0)
        self.opt = DistributedOptimizer(cls, self.net.params, comm, shard_state=shard_state,
                                        lr=lr)
        self.loader = part_batches(X, y, batch_size, seed, self.rank, self.world)
        n = len(self.loader)
        self.batch_sizes = np.minimum(batch_size, self.m - batch_size * np.arange(n))
        # This rank's loss sum of each of its parts, then its count of correct examples; and,
        # on rank 0, the same added over the ranks.
        self._mine = np.zeros(n + 1)
        self._total = np.zeros(n + 1) if self.rank == 0 else None

    def epoch(self, progress=None, epoch=1, n_epochs=1):
        """Train one epoch on this rank's parts; a collective call.

        Returns
        -------
        dict
            As :meth:`fastopt._apps.train._Loop.epoch`. On rank 0, ``loss``, ``train_acc`` and
            ``losses`` cover the whole global batches; ``seconds`` and ``phases`` are rank 0's
            own (``optimizer step`` includes the communication).
        """
        net, opt, n, clock = self.net, self.opt, len(self.loader), time.perf_counter
        phases = dict.fromkeys(_loops.PHASES, 0.0)
        mine, correct = self._mine, 0
        start = clock()
        batches = iter(self.loader)
        for k in range(n):
            t0 = clock()
            xb, yb = next(batches)
            t1 = clock()
            mine[k], right = net.forward_backward(xb, yb)
            t2 = clock()
            opt.step(net.grads)
            t3 = clock()
            _loops.add_phases(phases, t0, t1, t2, t3)
            correct += right
            if progress is not None:
                progress.batch(self.name, epoch, n_epochs, k + 1, n)
        mine[n] = correct
        seconds = clock() - start
        # For display only: MPI.SUM adds the ranks' figures in an order of its own. Nothing
        # trains on them, so the parameters stay bit-identical whatever that order is.
        self.comm.Reduce(mine, self._total, op=MPI.SUM, root=0)
        total = self._total if self.rank == 0 else mine
        return dict(loss=float(total[:n].sum()) / self.m, train_acc=float(total[n]) / self.m,
                    seconds=seconds, phases=phases, losses=total[:n] / self.batch_sizes)

    def run(self, n_epochs, out, progress):
        """Rank 0: as :meth:`fastopt._apps.train._Loop.run` (a line per epoch, test accuracy, a
        :class:`fastopt._apps.train.Run`). The other ranks train without printing and return
        None."""
        if self.rank == 0:
            return super().run(n_epochs, out, progress)
        for k in range(1, n_epochs + 1):
            self.epoch(None, k, n_epochs)
        return None


def one_process(params0, data, cls, lr, batch_size, seed, world, n_epochs):
    """The reference of ``--check``: ``world`` ranks' training, in one process
    (docs/contract.md §9).

    For every global batch it computes each part's gradient in rank order, with the code and on
    the part that rank computes it with (:class:`fastopt._apps.mlp.Network`,
    :func:`part_batches`). It adds them in rank order, ``((g_0 + g_1) + g_2) + ...``, in
    float32. It multiplies the sum by ``1/world`` (a Python float rounded once to float32,
    skipped at ``world == 1`` where it changes no bit) and steps a plain ``cls``.

    Parameters
    ----------
    params0, data, cls, lr, batch_size, seed
        As :class:`DistributedLoop`.
    world : int
        The number of ranks to reproduce.
    n_epochs : int

    Returns
    -------
    fastopt.PackedArrays
        The final parameters.
    """
    X, y = data[0], data[1]
    net = _mlp.Network(params0)
    opt = cls(net.params, lr=lr)
    loaders = [part_batches(X, y, batch_size, seed, r, world) for r in range(world)]
    total = fastopt.pack_like(net.params)
    for _ in range(n_epochs):
        for parts in zip(*loaders):
            for r, (xb, yb) in enumerate(parts):
                net.forward_backward(xb, yb)
                if r == 0:
                    np.copyto(total.buffer, net.grads.buffer)
                else:
                    np.add(total.buffer, net.grads.buffer, out=total.buffer)
            if world > 1:
                np.multiply(total.buffer, 1.0 / world, out=total.buffer)
            opt.step(total)
    return net.params


def main(args, cls, lr, layers, data, params0, out, err, plt):
    """Train data-parallel over ``MPI.COMM_WORLD``; the rest of ``python -m fastopt train``
    after the options are checked, the data made and the first line printed.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of ``train``.
    cls, lr, layers, data, params0
        The optimizer class and learning rate, the layer sizes, ``(X, y, X_test, y_test)`` and
        the initial parameters, the same on every rank.
    out, err : file
        Where rank 0 prints (the other ranks get a sink from :func:`fastopt._apps.train.main`).
    plt : module or None
        ``matplotlib.pyplot`` for ``--plot``.

    Returns
    -------
    int
        The exit status: 1 on rank 0 when ``--check`` finds the parameters differ, else 0.
    """
    comm = MPI.COMM_WORLD
    world, root = comm.Get_size(), is_root(comm)
    print(f"data-parallel over {world} rank{'s' * (world > 1)}: rank r computes the mean "
          f"gradient over part r of every batch of {args.batch_size}; DistributedOptimizer "
          f"adds the ranks' gradients in rank order, times 1/{world}, and steps (shard_state="
          f"{args.shard_state}). Loss and train accuracy: the ranks' sums added on rank 0, for "
          f"display only.", file=out, flush=True)
    progress = _loops.Progress(err, enabled=root and not args.quiet)
    reference, check_seconds = None, 0.0
    with fastopt.num_threads(args.threads), blas_threads(args.threads) as blas_set:
        if not blas_set:
            print(f"note: could not set the BLAS thread count (no threadpoolctl, no OpenBLAS "
                  f"found); set OPENBLAS_NUM_THREADS={args.threads} before starting Python",
                  file=err)
        loop = DistributedLoop(params0, data, cls, lr, args.batch_size, args.seed, comm,
                               args.shard_state)
        run = loop.run(args.epochs, out, progress)
        if root and args.check:
            # Under the same thread counts as the ranks: BLAS must round the parts' products
            # as they did.
            start = time.perf_counter()
            reference = one_process(params0, data, cls, lr, args.batch_size, args.seed, world,
                                    args.epochs)
            check_seconds = time.perf_counter() - start
    states = comm.gather(loop.opt.state_nbytes, root=0)
    if not root:
        return 0
    if plt is not None:
        title = (f"fastopt train --distributed: {'-'.join(map(str, layers))}, {cls.__name__} "
                 f"lr {lr:g}, batch {args.batch_size} over {world} ranks, {args.data} data")
        print(f"wrote {_loops.plot(run, args.plot, plt, title)}", file=out)
    timings = loop.opt.timings
    total = sum(e["seconds"] for e in run.epochs)
    share = sum(e["phases"]["optimizer step"] for e in run.epochs) / total
    print(f"done: {args.epochs} epoch{'s' * (args.epochs > 1)} in {total:.2f} s "
          f"({total / args.epochs:.2f} s per epoch, optimizer step {share:.0%} of it, "
          f"communication {timings['communication'] / max(timings['steps'], 1) * 1e3:.3f} ms "
          f"per step); final loss {run.epochs[-1]['loss']:.4f}, test accuracy "
          f"{run.epochs[-1]['test_acc']:.4f}; optimizer state per rank "
          f"{', '.join(f'{b / 1024:,.1f}' for b in states)} KiB", file=out)
    if reference is None:
        return 0
    what = ("one process that computes the same per-part gradients and sums them in rank "
            "order (docs/contract.md §9)")
    final = {k: reference[k] for k in run.params}
    bad = _loops.differing(run.params, final)
    if bad:
        print(f"--check: final parameters NOT bit-identical to {what}: {', '.join(bad)}. "
              f"Please report this.", file=out)
        return 1
    n_values = sum(a.size for a in run.params.values())
    print(f"--check: final parameters bit-identical to {what}: {n_values:,} float32 values in "
          f"{len(run.params)} arrays ({check_seconds:.2f} s in one process).", file=out)
    return 0
