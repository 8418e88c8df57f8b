"""``python -m fastopt train --distributed``: the training of :mod:`fastopt._apps.train`, data-parallel
over MPI ranks (run under ``mpiexec -n N``).

Every rank builds the same data and initial weights from the one ``--seed`` and draws the same
permutation every epoch; rank ``r`` takes part ``r`` of each global batch
(:func:`fastopt._apps.loops.train_batches` with ``rank=r, world=N``) and computes the mean
gradient over that part with the single-process code (:class:`fastopt._apps.mlp.Network`);
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


class DistributedLoop(_loops.FastoptLoop):
    """:class:`fastopt._apps.loops.FastoptLoop` on one rank: its part of every batch, a
    :class:`DistributedOptimizer` step, and the epoch's figures added up on rank 0.

    Parameters
    ----------
    params0, data, cls, lr, batch_size, seed
        As :class:`fastopt._apps.loops.FastoptLoop`; the same on every rank.
    comm : mpi4py.MPI.Intracomm
        The ranks that train together.
    shard_state : bool
        Passed to :class:`DistributedOptimizer`.
    """

    name = "fastopt"

    def __init__(self, params0, data, cls, lr, batch_size, seed, comm, shard_state):
        self.comm, self.rank, self.world = comm, comm.Get_rank(), comm.Get_size()
        self.shard_state = shard_state
        super().__init__(params0, data, cls, lr, batch_size, seed)
        n = self.n_batches
        self.batch_sizes = np.minimum(batch_size, self.m - batch_size * np.arange(n))
        # This rank's loss sum of each of its parts, then its count of correct examples; and,
        # on rank 0, the same added over the ranks.
        self._mine = np.zeros(n + 1)
        self._total = np.zeros(n + 1) if self.rank == 0 else None

    def make_optimizer(self, cls, params, lr):
        return DistributedOptimizer(cls, params, self.comm, shard_state=self.shard_state, lr=lr)

    def figures(self, sums, sizes, loss_total, correct, seconds, phases):
        """The epoch's figures over the whole global batches on rank 0: this rank's part loss
        sums and correct count added over the ranks (a collective call, at the end of every
        :meth:`epoch`). ``seconds`` and ``phases`` are rank 0's own (``optimizer step``
        includes the communication)."""
        n, mine = self.n_batches, self._mine
        mine[:n], mine[n] = sums, correct
        # For display only: MPI.SUM adds the ranks' figures in an order of its own. Nothing
        # trains on them, so the parameters stay bit-identical whatever that order is.
        self.comm.Reduce(mine, self._total, op=MPI.SUM, root=0)
        total = self._total if self.rank == 0 else mine
        return dict(loss=float(total[:n].sum()) / self.m, train_acc=float(total[n]) / self.m,
                    seconds=seconds, phases=phases, losses=total[:n] / self.batch_sizes)

    def run(self, n_epochs, out, progress):
        """Rank 0: as :meth:`fastopt._apps.loops._Loop.run` (a line per epoch, test accuracy, a
        :class:`fastopt._apps.loops.Run`). The other ranks train without printing and return
        None."""
        if self.rank == 0:
            return super().run(n_epochs, out, progress)
        for k in range(1, n_epochs + 1):
            self.epoch(None, k, n_epochs)
        return None


def rank_order_reference(opt, loaders, gradient, total, n_epochs):
    """Data-parallel training in one process, as docs/contract.md §9 defines it: the reference
    of ``--check`` for both commands that have one (``python -m fastopt train --distributed``,
    :func:`one_process`, and ``python -m fastopt.distributed train``).

    For every global batch, one batch of each loader in rank order: ``gradient(part)`` gives
    that part's gradient (a 1-D array, valid until the next call); they are added in rank
    order, ``((g_0 + g_1) + g_2) + ...``, into ``total.buffer`` in its dtype, the sum is
    multiplied by ``1/world`` (a Python float rounded once to that dtype, skipped at
    ``world == 1`` where it changes no bit), and ``opt.step(total)``.

    Parameters
    ----------
    opt : fastopt.Optimizer
        A plain single-process optimizer over the parameters ``gradient`` reads.
    loaders : list of fastopt.MiniBatches
        Rank ``r``'s batches at index ``r`` (``rank=r, world=len(loaders)``).
    gradient : callable
        ``gradient(part) -> ndarray``.
    total : fastopt.PackedArrays
        Gradients laid out as ``opt``'s parameters; overwritten.
    n_epochs : int
    """
    world = len(loaders)
    for _ in range(n_epochs):
        for parts in zip(*loaders):
            for r, part in enumerate(parts):
                g = gradient(part)
                if r == 0:
                    np.copyto(total.buffer, g)
                else:
                    np.add(total.buffer, g, out=total.buffer)
            if world > 1:
                np.multiply(total.buffer, 1.0 / world, out=total.buffer)
            opt.step(total)


def one_process(params0, data, cls, lr, batch_size, seed, world, n_epochs):
    """The reference of ``train --distributed --check``: ``world`` ranks' training in one
    process (:func:`rank_order_reference`), each part's gradient computed with the code and on
    the part that rank computes it with (:class:`fastopt._apps.mlp.Network`,
    :func:`fastopt._apps.loops.train_batches`), steps by a plain ``cls``.

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

    def gradient(part):
        net.forward_backward(*part)
        return net.grads.buffer

    loaders = [_loops.train_batches(X, y, batch_size, seed, r, world) for r in range(world)]
    rank_order_reference(cls(net.params, lr=lr), loaders, gradient,
                         fastopt.pack_like(net.params), n_epochs)
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
    print(f"--check: final parameters bit-identical to {what}: {n_values:,} "
          f"{run.params['W1'].dtype} values in "
          f"{len(run.params)} arrays ({check_seconds:.2f} s in one process).", file=out)
    return 0
