"""Data-parallel training over MPI with the same bits as one process (docs/contract.md §9).

Several processes (MPI ranks) hold the same packed parameters; each computes a gradient on its
part of every batch (``fastopt.MiniBatches(..., rank=, world=)``);
:class:`DistributedOptimizer` reduces the gradients **in rank order**, ``((g_0 + g_1) + g_2) +
...``, whatever MPI does underneath, and takes the step, so every rank ends with the same bits
as one process that formed that sum itself and stepped.

Optional: needs ``pip install "fastopt[mpi]"`` (mpi4py, and the mpich wheel, which brings
``mpiexec``). Nothing else in fastopt imports mpi4py. ``python -m fastopt.distributed`` trains
a small model data-parallel and benchmarks the step (``--help``).

How a step moves data (``N`` items, ``world`` ranks, each rank ``r`` owning the contiguous
slice ``[lo_r, hi_r)`` of the packed buffer):

1. ``Alltoallv``: rank ``r`` receives every rank's copy of slice ``r`` (a reduce-scatter's
   traffic, ``(world-1)/world * N`` items in and out per rank, but no arithmetic in MPI).
2. Rank ``r`` adds them in rank order with NumPy (``np.add`` on whole slices, which rounds each
   element's sum exactly as one process would), then multiplies by ``1/world`` (averaging).
3. ``shard_state=False``: ``Allgatherv`` of the reduced slices, then every rank steps the whole
   buffer with its full optimizer state. ``shard_state=True`` (ZeRO stage 1): rank ``r`` steps
   only its slice with state for only its slice, then ``Allgatherv`` of the new parameters.

Slices start and end on the 1024-item blocks of the clipping sum (``fastopt._ops.sumsq``), so
with ``max_grad_norm`` and sharded state each rank computes its blocks' sums, the ranks
exchange them (8 bytes per 1024 items) and every rank adds them in the single-process order:
the same norm, bit for bit.

Before step 1 above, every step starts with one small ``Allgather``: each rank's status (did
its own checks pass?) and fingerprint (``t``, ``skipped``, every hyperparameter).
All ranks then decide alike: a rank whose gradients were refused raises its error and every
other rank raises one naming it, or, when the fingerprints differ (``opt.lr = 0.5`` or
``opt.t = 100`` on one rank only), every rank raises naming the ranks and the field; in both
cases before anything is exchanged or written, so no rank waits forever in a collective and no
step is ever paired with another rank's next one.
"""
import hashlib
import math
import os
import threading
import time
import zlib

import numpy as np

try:
    from mpi4py import MPI
except ImportError as exc:  # the only module of fastopt that needs mpi4py
    raise ImportError(
        'fastopt.distributed needs mpi4py and an MPI library: pip install "fastopt[mpi]" '
        '(mpi4py and the mpich wheel, which brings mpiexec)') from exc

from .. import _checkpoint
from .. import _validation as _v
from .._optim import Optimizer
from .._packing import PackedArrays, pack_like
from ..reference._ops import SUMSQ_BLOCK

__all__ = ["DistributedOptimizer", "RankError", "shard_bounds"]


class RankError(ValueError):
    """Another rank could not step, or the ranks' optimizers differ: raised on every rank
    together, before anything is exchanged or written (the rank whose own check failed raises
    that error itself)."""

_MPI_TYPES = {np.dtype(np.float32): MPI.FLOAT, np.dtype(np.float64): MPI.DOUBLE}
# MPI counts and displacements are C ints: a buffer beyond this many items needs MPI-4's large
# count calls, which mpi4py exposes differently; refused at construction rather than truncated.
_MAX_ITEMS = 2 ** 31 - 1


def _entries(layout):
    """``(offset, size)`` of each entry of a packed layout, in order."""
    return [(offset, int(np.prod(shape, dtype=np.int64))) for _, shape, offset in layout]


def _block_starts(layout):
    """Start of every clipping block of every entry (``offset + k*1024``), in buffer order."""
    starts = [np.arange(offset, offset + size, SUMSQ_BLOCK, dtype=np.int64)
              for offset, size in _entries(layout)]
    return np.concatenate(starts) if starts else np.zeros(0, np.int64)


def shard_bounds(layout, world):
    """Where each rank's slice of a packed buffer starts and ends.

    Boundaries fall only on block starts of the clipping sum (an entry's start plus a multiple
    of 1024 items) or at the end of the buffer, each the one nearest to an even split, so the
    slices differ from ``N/world`` by at most 512 items (a slice may be empty when the buffer
    has fewer blocks than ranks).

    Parameters
    ----------
    layout : tuple of (key, shape, offset)
        ``PackedArrays.layout``.
    world : int
        Number of ranks, >= 1.

    Returns
    -------
    list of int
        ``world + 1`` offsets: rank ``r`` owns ``[bounds[r], bounds[r+1])``.

    Examples
    --------
    >>> shard_bounds((("w", (3000,), 0), ("b", (10,), 3000)), 2)
    [0, 1024, 3010]
    """
    world = _v.check_count(world, "world")
    total = sum(size for _, size in _entries(layout))
    cuts = np.append(_block_starts(layout), total)
    bounds = [0]
    for r in range(1, world):
        target = r * total / world
        i = int(np.searchsorted(cuts, target))
        best = int(cuts[min(i, len(cuts) - 1)])
        if i > 0 and target - cuts[i - 1] <= best - target:
            best = int(cuts[i - 1])
        bounds.append(max(best, bounds[-1]))
    bounds.append(total)
    return bounds


class DistributedOptimizer:
    """An optimizer over MPI ranks: gradients reduced in rank order, the same step everywhere.

    Every rank builds it with the same arguments (a collective call) and calls :meth:`step`,
    :meth:`save` and :meth:`load` together. After every step, each rank's parameters hold the
    same bits as one process that summed the ranks' gradients in rank order, multiplied the sum
    by ``1/world`` (with ``average``) and stepped ``optimizer_class`` (docs/contract.md §9).

    Parameters
    ----------
    optimizer_class : type
        A fastopt optimizer class: one of ``fastopt.SGD``, ``Momentum``, ``RMSProp``, ``Adam``,
        ``AdamW``, ``Adagrad`` (or a subclass, such as ``fastopt.reference.Adam``).
    params : PackedArrays
        The parameters (:func:`fastopt.pack`), updated in place, holding the same values on
        every rank: checked at construction (CRC-32 of the buffer, ~1 ms per 4 MB), along with
        the layout, the dtype and the hyperparameters; a ``ValueError`` names the ranks that
        differ from rank 0.
    comm : mpi4py.MPI.Intracomm, optional
        The ranks taking part; ``MPI.COMM_WORLD`` by default.
    shard_state : bool, default False
        False: every rank keeps the full optimizer state and steps the whole buffer. True (ZeRO
        stage 1): rank ``r`` keeps state only for its slice (:attr:`shard`) and steps only it;
        the new parameters are then shared. The optimizer state per rank falls to about
        ``1/world`` (:attr:`state_nbytes`).
    average : bool, default True
        Multiply the rank-ordered sum by ``1/world`` (a Python float rounded once to the dtype,
        as ``g * (1/world)`` does under NumPy 2). False steps on the plain sum.
    **hyperparameters
        Passed to ``optimizer_class`` (``lr``, schedules, ``nonfinite``, ``max_grad_norm``,
        ...). They are attributes of this object too: ``dopt.lr = 0.01`` sets them on this
        rank's optimizer, and must be done on every rank alike.

    Notes
    -----
    ``nonfinite`` applies to the reduced gradient, which holds inf or NaN exactly when some
    rank's gradient does (or the sum overflows): every rank skips (or raises) together.
    ``max_grad_norm`` clips by the reduced gradient's global norm, bit for bit the norm one
    process computes (``last_grad_norm``).

    Memory per rank, beside the parameters: a receive buffer of ~N items, plus the full reduced
    gradient (N) without sharding or its slice (N/world) with it; optimizer state N or N/world
    per state array. With one rank, none of the buffers: it steps on the gradient itself.

    It cannot be copied or pickled (``TypeError``): a copy would share the communicator. Use
    :meth:`save` and :meth:`load`.

    Examples
    --------
    Under ``mpiexec -n 2 python script.py``::

        params = fastopt.pack({"W": np.ones((64, 32), np.float32)})
        grads = fastopt.pack_like(params)
        opt = DistributedOptimizer(fastopt.Adam, params, lr=1e-3, shard_state=True)
        grads["W"] = local_gradient()       # this rank's part of the batch
        opt.step(grads)                     # every rank: the same new params
    """

    def __init__(self, optimizer_class, params, comm=None, *, shard_state=False, average=True,
                 **hyperparameters):
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)):
            raise TypeError(f"optimizer_class must be a fastopt optimizer class such as "
                            f"fastopt.Adam, got {optimizer_class!r}")
        if not isinstance(params, PackedArrays):
            raise TypeError(f"params must be a PackedArrays made by fastopt.pack, got "
                            f"{type(params).__name__}; pack the arrays first")
        if (hyperparameters.get("master_dtype") is not None
                or params.buffer.dtype not in _MPI_TYPES):
            raise _v.distributed_master_refused()  # 16-bit parameters (docs/contract.md §14)
        if comm is None:
            comm = MPI.COMM_WORLD
        elif not isinstance(comm, MPI.Intracomm):
            raise TypeError(f"comm must be an mpi4py intracommunicator (such as "
                            f"MPI.COMM_WORLD), got {type(comm).__name__}")
        shard_state = _v.check_bool(shard_state, "shard_state")
        average = _v.check_bool(average, "average")
        size = params.buffer.size
        if size > _MAX_ITEMS:
            raise ValueError(f"params has {size} items; fastopt.distributed handles up to "
                             f"2**31 - 1 (MPI's int counts): split the model into several "
                             f"packed buffers")
        self._comm, self._rank, self._world = comm, comm.Get_rank(), comm.Get_size()
        self._params, self._layout = params, params.layout
        self._shard_state, self._average = shard_state, average
        self._mpi_type = _MPI_TYPES[params.buffer.dtype]
        self._bounds = shard_bounds(self._layout, self._world)
        self._counts = [self._bounds[r + 1] - self._bounds[r] for r in range(self._world)]
        lo, hi = self._bounds[self._rank], self._bounds[self._rank + 1]
        # Build this rank's optimizer first; then one collective tells every rank whether all
        # built and whether they agree, so that a local error never leaves the others waiting.
        try:
            if shard_state:
                inner = optimizer_class([params.buffer[lo:hi]], **hyperparameters)
            else:
                inner = optimizer_class(params, **hyperparameters)
            local_error = None
        except (TypeError, ValueError) as exc:
            inner, local_error = None, exc
        mine = self._identity(optimizer_class, inner, local_error)
        everyone = comm.allgather(mine)
        if local_error is not None:
            raise local_error
        failed = [(r, x["error"]) for r, x in enumerate(everyone) if x["error"]]
        if failed:
            raise ValueError(f"the optimizer could not be built on rank(s) "
                             f"{[r for r, _ in failed]}: {failed[0][1]}")
        for what, name, advice in (
                ("layout", "params' layout and dtype",
                 "pack the same arrays (keys, shapes, order, dtype) on every rank"),
                ("optimizer", "optimizer class, shard_state and average",
                 "pass the same optimizer_class, shard_state and average on every rank"),
                ("hyperparameters", "hyperparameters",
                 "pass the same hyperparameters (lr, schedules, betas, ...) on every rank"),
                ("checksum", "params' values (CRC-32 of the buffer)",
                 "build the parameters from the same seed or broadcast them first")):
            differ = [r for r, x in enumerate(everyone) if x[what] != everyone[0][what]]
            if differ:
                raise ValueError(f"every rank must build the same DistributedOptimizer: the "
                                 f"{name} of rank(s) {differ} differ from rank 0's; {advice}")
        self._inner = inner
        self._ops = optimizer_class._ops
        # One thread at a time in step/save/load: each is a sequence of collectives, and two
        # threads' sequences on one rank would pair with the other ranks' in any order.
        self._busy = threading.Lock()
        self._written = [params.buffer] + [params[k] for k in params]
        self._written_names = ["params.buffer"] + [f"params[{k!r}]" for k in params]
        self._setup_buffers(lo, hi)
        self._timings = {"communication": 0.0, "compute": 0.0, "steps": 0}
        # The per-step agreement (_agree): one int64 row per rank, [status, t, skipped, a
        # 63-bit hash of each hyperparameter]; the hashes recomputed only when the optimizer's
        # hyperparameter dict is replaced (every assignment replaces it).
        self._fields = ("t", "skipped", *inner._hyper_attributes())
        self._record = np.zeros(1 + len(self._fields), np.int64)
        self._records = np.zeros((self._world, self._record.size), np.int64)
        self._hashed = None

    def _identity(self, optimizer_class, inner, error):
        """What the ranks compare at construction."""
        if error is not None:
            return {"error": f"{type(error).__name__}: {error}"}
        hyper = {k: _checkpoint.encode(v) for k, v in inner.hyperparameters.items()}
        return {"error": None,
                "layout": (str(self._params.buffer.dtype), repr(self._layout)),
                "optimizer": (optimizer_class.__name__, self._shard_state, self._average),
                "hyperparameters": repr(hyper),
                "checksum": zlib.crc32(self._params.buffer.data)}

    def _setup_buffers(self, lo, hi):
        world, count, dtype = self._world, hi - lo, self._params.buffer.dtype
        self._displs = self._bounds[:-1]
        self._recv_counts = [count] * world
        self._recv_displs = [r * count for r in range(world)]
        if world == 1:  # steps on the gradient itself: no buffers
            self._recv, self._reduced, self._mine = None, None, None
        elif self._shard_state:
            self._recv, self._reduced = np.empty(world * count, dtype), None
            self._mine = np.empty(count, dtype)
        else:
            self._recv, self._reduced = np.empty(world * count, dtype), pack_like(self._params)
            self._mine = self._reduced.buffer[lo:hi]
        # Clipping under sharding: this rank's blocks as (start in the slice, stop, index of
        # the first block in the local sums) per entry it touches; every entry's range of
        # blocks in the global block order; what each rank sends (its block sums, then a flag
        # saying its slice is finite).
        starts = _block_starts(self._layout)
        first = [int(np.searchsorted(starts, b)) for b in self._bounds]
        self._block_counts = [first[r + 1] - first[r] for r in range(world)]
        self._segments = []
        k = 0
        for offset, size in _entries(self._layout):
            a, b = max(offset, lo), min(offset + size, hi)
            if a < b:
                n_blocks = -(-(b - a) // SUMSQ_BLOCK)
                self._segments.append((a - lo, b - lo, k, k + n_blocks))
                k += n_blocks
        self._entry_blocks = []
        for offset, size in _entries(self._layout):
            b0 = int(np.searchsorted(starts, offset))
            self._entry_blocks.append((b0, b0 + -(-size // SUMSQ_BLOCK)))
        self._local = np.empty(self._block_counts[self._rank] + 1)
        self._gathered = np.empty(sum(self._block_counts) + world)
        self._gather_counts = [n + 1 for n in self._block_counts]
        self._gather_displs = [first[r] + r for r in range(world)]
        self._flag_at = [first[r + 1] + r for r in range(world)]
        self._sums_at = np.array([i for r in range(world)
                                  for i in range(first[r] + r, first[r + 1] + r)], np.intp)

    # -- the step --------------------------------------------------------------------------

    def step(self, grads):
        """Reduce the ranks' gradients in rank order and step; a collective call.

        Parameters
        ----------
        grads : PackedArrays
            This rank's gradients, made by ``fastopt.pack_like(params)`` (same layout and
            dtype); only read.

        Returns
        -------
        bool
            True if the parameters were updated, False if every rank skipped the step
            (``nonfinite="skip"`` and a non-finite reduced gradient).

        Raises
        ------
        TypeError, ValueError
            On the rank whose ``grads`` (or parameters, or learning rate at this step) fail
            the checks; every other rank raises :class:`RankError` naming that rank and its
            message. Nothing is exchanged or written on any rank, and the next ``step`` on
            every rank is again the same step.
        RankError
            On every rank, when the ranks' step counts or hyperparameters differ (say
            ``opt.lr`` assigned on one rank only): it names the ranks that differ from rank 0
            and the field. Nothing is exchanged or written.
        RuntimeError
            Another thread of this process is inside ``step``, ``save`` or ``load`` of this
            object: refused before any collective, so the other thread's collectives pair
            with the other ranks' as they would alone.
        """
        with _v.held(self._busy, self._busy_error):
            return self._step(grads)

    def _step(self, grads):
        # The inner optimizer's step lock, taken before the ranks agree: another thread of this
        # process inside it (copying it, state_dict, save) is this rank's vote against the
        # step, heard by every rank before any exchange, instead of a RuntimeError after one
        # (which left the other ranks waiting in a collective, or stepped without this one).
        busy = self._inner._busy
        held = busy.acquire(False)
        try:
            return self._step_agreed(grads, None if held else self._inner._busy_error())
        finally:
            if held:
                busy.release()

    def _step_agreed(self, grads, busy_error):
        comm, typ = self._comm, self._mpi_type
        t0 = time.perf_counter()
        self._agree(grads, busy_error)
        if self._world == 1:
            # One rank: the reduced gradient is g_0 itself (times 1/1 changes no bit).
            t1 = t0
            if self._shard_state:
                updated, t3 = self._step_shard(grads.buffer)
            else:
                updated = self._inner._step_held(grads)
                t3 = time.perf_counter()
            t4 = time.perf_counter()
            comm_time = self._small_comm if self._shard_state else 0.0
        elif self._shard_state:
            comm.Alltoallv([grads.buffer, (self._counts, self._displs), typ],
                           [self._recv, (self._recv_counts, self._recv_displs), typ])
            t1 = time.perf_counter()
            self._reduce_slice()
            updated, t3 = self._step_shard(self._mine)
            if updated:
                comm.Allgatherv(MPI.IN_PLACE,
                                [self._params.buffer, (self._counts, self._displs), typ])
            t4 = time.perf_counter()
            comm_time = (t1 - t0) + (t4 - t3) + self._small_comm
        else:
            comm.Alltoallv([grads.buffer, (self._counts, self._displs), typ],
                           [self._recv, (self._recv_counts, self._recv_displs), typ])
            t1 = time.perf_counter()
            self._reduce_slice()
            t2 = time.perf_counter()
            comm.Allgatherv(MPI.IN_PLACE,
                            [self._reduced.buffer, (self._counts, self._displs), typ])
            t3 = time.perf_counter()
            # The full reduced gradient is the same on every rank, so the optimizer's own
            # non-finite check and clipping norm decide the same everywhere.
            updated = self._inner._step_held(self._reduced)
            t4 = time.perf_counter()
            comm_time = (t1 - t0) + (t3 - t2)
        timings = self._timings
        timings["communication"] += comm_time
        timings["compute"] += (t4 - t0) - comm_time
        timings["steps"] += 1
        return updated

    def _agree(self, grads, busy_error=None):
        """Every rank's checks, then one collective that tells every rank whether all passed
        and whether the ranks' optimizers agree: the same decision everywhere, before any
        exchange (see the module docstring).

        Cost: an ``Allgather`` of ``8 * (3 + hyperparameters)`` bytes per rank (96 for Adam)
        and the local checks. Measured with ``benchmarks/tools/ab_agreement.py`` (medians of 2000
        alternating steps, mpich, world 2, one thread per rank, this 2-core machine shared at
        load 3-4): +6 to +10 us a step at 1e3 float32 Adam items (20 -> 26 us) and +7 to +12
        us at 1e4 (54 -> 63 us); one disturbed run of three showed +56 us on one rank. The
        hyperparameters' hashes are recomputed only when the optimizer's hyperparameter dict
        is replaced (each assignment replaces it).
        """
        inner, error = self._inner, busy_error
        try:
            if error is not None:  # the inner optimizer is busy in another thread
                raise error
            self._check_grads(grads)
            # The parameters (the buffer and each key's view: with shard_state the inner
            # optimizer holds only a slice of the buffer and never sees the views) and the
            # inner optimizer's own arrays, made read-only after construction: checked here,
            # before the exchange, so that every rank hears of it.
            if not _v.all_writeable(self._written):
                _v.check_still_writeable(self._written, self._written_names)
            # Its arrays still writeable, a schedule's value in range, room for a step: refused
            # here, before the exchange, not mid-step.
            inner._check_can_step()
        except (TypeError, ValueError, RuntimeError) as exc:
            error = exc
        if self._world == 1:
            if error is not None:
                raise error
            return
        record, records = self._record, self._records
        record[:3] = (error is not None, inner.t, inner.skipped)
        hyper = inner._hyper_now()
        if self._hashed is not hyper:
            for i, name in enumerate(self._fields[2:], start=3):
                text = repr(_checkpoint.encode(hyper[name])).encode()
                record[i] = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(),
                                           "little") >> 1
            self._hashed = hyper
        # Counted in timings' communication: step's clock starts before this.
        self._comm.Allgather(record, records)
        rows = records.tolist()  # ~1 us; NumPy's any() and != would be several
        if rows.count(rows[0]) == len(rows) and not rows[0][0]:
            return
        if any(row[0] for row in rows):
            # Only on failure: a second collective tells everyone the messages.
            messages = self._comm.allgather(
                None if error is None else f"{type(error).__name__}: {error}")
            if error is not None:
                raise error
            failed = [r for r, m in enumerate(messages) if m is not None]
            raise RankError(f"rank(s) {failed} could not take step {inner.t + 1}, so no rank "
                            f"took it (nothing was exchanged or written); rank {failed[0]} "
                            f"said: {messages[failed[0]]}")
        differ = records[:, 1:] != records[0, 1:]
        if differ.any():
            columns = np.flatnonzero(differ.any(axis=0))
            fields = [self._fields[j] for j in columns]
            values = self._comm.allgather(
                {f: (getattr(inner, f) if f in ("t", "skipped") else inner._hyper_now()[f])
                 for f in fields})
            parts = []
            for j, f in zip(columns, fields):
                ranks = [int(r) for r in np.flatnonzero(differ[:, j])]
                parts.append(f"{f} is {values[0][f]!r} on rank 0 but "
                             + ", ".join(f"{values[r][f]!r} on rank {r}" for r in ranks))
            raise RankError(f"the ranks' optimizers differ: {'; '.join(parts)}. Every rank "
                            f"must assign the same hyperparameters, t and skipped at the same "
                            f"point (a collective decision); nothing was exchanged or written "
                            f"on any rank")

    def _check_grads(self, grads):
        params = self._params
        if type(grads) is not PackedArrays:
            raise TypeError(f"grads must be a PackedArrays made by fastopt.pack_like(params), "
                            f"got {type(grads).__name__}")
        if grads.layout != self._layout:
            raise ValueError("grads has another layout than params (keys, shapes or order); "
                             "make it with fastopt.pack_like(params)")
        if grads.buffer.dtype != params.buffer.dtype:
            raise TypeError(f"grads has dtype {grads.buffer.dtype}; params has "
                            f"{params.buffer.dtype}")
        if np.may_share_memory(grads.buffer, params.buffer):
            raise ValueError("grads shares memory with params; pass a separate gradient "
                             "buffer (fastopt.pack_like(params))")

    def _reduce_slice(self):
        """This rank's slice of the reduced gradient: the contributions added in rank order,
        ``((g_0 + g_1) + g_2) + ...``, each ``np.add`` rounding once per element in the
        gradient's dtype, as one process's ``g_0 + g_1 + g_2`` does."""
        rows = self._recv.reshape(self._world, -1)
        mine = self._mine
        np.add(rows[0], rows[1], out=mine)
        for row in rows[2:]:
            np.add(mine, row, out=mine)
        if self._average:
            np.multiply(mine, 1.0 / self._world, out=mine)  # NEP 50: rounded once to dtype

    def _step_shard(self, mine):
        """Step this rank's slice with ``mine``, its slice of the reduced gradient: the
        clipping norm and the non-finite decision are made together (one small Allgatherv of
        block sums and flags). Returns (updated, the time the local update ended)."""
        inner, ops = self._inner, self._ops
        self._small_comm = 0.0
        hyper = inner._hyper_now()
        clip = hyper["max_grad_norm"] is not None
        check = hyper["nonfinite"] != "propagate"
        scale, norm = 1.0, None
        if clip or check:
            local = self._local
            for a, b, k0, k1 in self._segments:
                if clip:
                    ops.sumsq_blocks(mine[a:b], local[k0:k1])
            sums_finite = clip and bool(np.isfinite(local[:-1]).all())
            # A finite sum of squares means finite values (as in Optimizer.step); otherwise
            # one read of the slice (a float64 sum can also overflow from finite values).
            local[-1] = 1.0 if (not check or sums_finite or ops.all_finite(mine)) else 0.0
            t0 = time.perf_counter()
            self._comm.Allgatherv(local, [self._gathered,
                                          (self._gather_counts, self._gather_displs),
                                          MPI.DOUBLE])
            self._small_comm = time.perf_counter() - t0
            finite = bool((self._gathered[self._flag_at] == 1.0).all())
            if clip:
                norm = self._global_norm(self._gathered[self._sums_at])
            # The optimizer's own decision (clipping coefficient, skip or raise), on the
            # norm and finiteness of the whole reduced gradient: the same on every rank.
            decided = inner._decide(norm, finite, subject="the reduced gradient",
                                    scope=" on any rank")
            if decided is None:
                return False, time.perf_counter()
            scale, norm = decided
        inner._apply([mine], scale, norm)  # the caller holds the inner step lock
        return True, time.perf_counter()

    def _global_norm(self, sums):
        """``fastopt._clip.global_norm`` from the block sums of every rank: per entry, its
        blocks added in order (``np.cumsum`` is sequential, as ``ops.sumsq`` adds them), then
        the entries in order, then the square root (docs/contract.md §8)."""
        total = 0.0
        for b0, b1 in self._entry_blocks:
            if b1 > b0:
                total += float(np.cumsum(sums[b0:b1])[-1])
        return math.sqrt(total)

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path, batches=None):
        """Write one checkpoint file from rank 0; a collective call.

        The state is gathered on rank 0, which writes the file of a single-process
        ``optimizer_class`` over the same packed layout (``fastopt._checkpoint``'s format:
        atomic, plain arrays, no pickle): ``fastopt.Adam(params, ...).load(path)`` reads it, and
        so does :meth:`load` at any world size. With ``shard_state`` rank 0 holds the full
        state while it writes (twice the state's size, once).

        ``batches``: this rank's ``MiniBatches(..., rank=, world=)``; rank 0's position is
        stored (every rank's is the same: the same permutations, the same batches handed out),
        and ``load(path, batches=)`` restores it on every rank, at any world size.
        """
        with _v.held(self._busy, self._busy_error):
            return self._save(path, batches)

    def _save(self, path, batches=None):
        path = os.fspath(path)
        inner, root = self._inner, self._rank == 0
        full = {}
        if self._shard_state:
            for s in inner.state_names:
                full[s] = np.empty_like(self._params.buffer) if root else None
                self._comm.Gatherv(inner.state(s)[0],
                                   [full[s], (self._counts, self._displs), self._mpi_type]
                                   if root else None, root=0)
        error = None
        if root:
            try:
                if self._shard_state:
                    self._single(full).save(path, batches)
                else:
                    inner.save(path, batches)
            except Exception as exc:  # told to every rank, then raised
                error = exc
        message = self._comm.bcast(None if error is None else f"{type(error).__name__}: "
                                   f"{error}", root=0)
        if error is not None:
            raise error
        if message is not None:
            raise OSError(f"rank 0 could not write the checkpoint {path!r}: {message}")

    def _single(self, full_state):
        """A single-process optimizer over a copy of the parameters, holding ``full_state``
        (name -> whole buffer) and this one's step counts and hyperparameters."""
        inner = self._inner
        single = type(inner)(self._params.copy(), **inner.hyperparameters)
        entries = _entries(self._layout)
        shapes = [shape for _, shape, _ in self._layout]
        single.load_state_dict({
            "optimizer": type(inner).__name__, "version": _checkpoint.FORMAT_VERSION,
            "keys": [key for key, _, _ in self._layout], "t": inner.t,
            "skipped": inner.skipped, "last_grad_norm": inner.last_grad_norm,
            "hyperparameters": inner.hyperparameters,
            "params": single._param_arrays(),
            "state": {s: [buf[o:o + n].reshape(shape)
                          for (o, n), shape in zip(entries, shapes)]
                      for s, buf in full_state.items()}})
        return single

    def load(self, path, batches=None):
        """Restore a checkpoint written by :meth:`save` (at any world size, either mode) or by
        a single-process optimizer of the same class over the same packed layout; a
        collective call. ``batches``: this rank's ``MiniBatches``, restored to the position
        saved with ``save(path, batches=)`` (validated on every rank first).

        Rank 0 reads and validates the file (``allow_pickle=False``, everything checked
        before anything changes, as ``Optimizer.load``); on failure every rank raises and
        nothing changes. Then the parameters are broadcast and the state is sent whole
        (``shard_state=False``) or as each rank's slice (``shard_state=True``): resharding is
        just slicing at this world's boundaries.
        """
        with _v.held(self._busy, self._busy_error):
            return self._load(path, batches)

    def _load(self, path, batches=None):
        path = os.fspath(path)
        inner, root, comm = self._inner, self._rank == 0, self._comm
        header, single, single_params, error = None, None, None, None
        if root:
            try:
                if batches is not None:
                    _checkpoint._check_batches(batches)
                single_params = pack_like(self._params)  # the buffer broadcast once loaded
                single = type(inner)(single_params, **inner.hyperparameters)
                state, batches_state = _checkpoint.read(single, path, batches is not None)
                single.load_state_dict(state)
                header = {"t": single.t, "skipped": single.skipped,
                          "last_grad_norm": single.last_grad_norm, "batches": batches_state,
                          "hyperparameters": {k: _checkpoint.encode(v)
                                              for k, v in single.hyperparameters.items()}}
            except Exception as exc:
                error = exc
        header = comm.bcast(header if error is None
                            else {"error": f"{type(error).__name__}: {error}"}, root=0)
        if error is not None:
            raise error
        if "error" in header:
            raise ValueError(f"rank 0 could not load the checkpoint {path!r}: "
                             f"{header['error']}")
        # Every rank checks what could fail on it alone (its loader, its arrays still
        # writeable, its inner optimizer free of other threads), then all decide together
        # before the first collective that writes: a rank refusing after it would leave the
        # others waiting in a Bcast or loaded without it.
        checked, loader_held = None, False
        busy = inner._busy
        held = busy.acquire(False)
        try:
            try:
                if not held:
                    raise inner._busy_error()
                if batches is not None:  # its guard too, held until it is restored
                    loader_held = batches._busy.acquire(False)
                    if not loader_held:
                        raise batches._busy_error()
                    batches._check_owner()
                if not _v.all_writeable(self._written):
                    _v.check_still_writeable(self._written, self._written_names)
                inner._check_writeable()
                if batches is not None:
                    _checkpoint._check_batches(batches)
                    checked = (batches, batches._check_state(header["batches"]))
            except (TypeError, ValueError, RuntimeError) as exc:
                error = exc
            failed = comm.allgather(None if error is None
                                    else f"{type(error).__name__}: {error}")
            if error is not None:
                raise error
            bad = [r for r, m in enumerate(failed) if m is not None]
            if bad:
                raise RankError(f"rank(s) {bad} could not load {path!r}, so no rank loaded "
                                f"it (nothing changed); rank {bad[0]} said: {failed[bad[0]]}")
            self._load_agreed(header, single, single_params, checked)
        finally:
            if loader_held:
                batches._busy.release()
            if held:
                busy.release()

    def _load_agreed(self, header, single, single_params, checked):
        """The rest of :meth:`load`, once every rank agreed, with the inner step lock held."""
        inner, root, comm = self._inner, self._rank == 0, self._comm
        hyper = {k: _checkpoint.decode(v, f"hyperparameter {k!r}")
                 for k, v in header["hyperparameters"].items()}
        typ, buffer = self._mpi_type, self._params.buffer
        if root:
            np.copyto(buffer, single_params.buffer)
        comm.Bcast([buffer, typ], root=0)
        lo, hi = self._bounds[self._rank], self._bounds[self._rank + 1]
        states = {}
        for s in inner.state_names:
            whole = single.state(s) if root else None
            src = np.concatenate([a.reshape(-1) for a in whole.values()]) if root else None
            if self._shard_state:
                states[s] = np.empty(hi - lo, buffer.dtype)
                comm.Scatterv([src, (self._counts, self._displs), typ] if root else None,
                              [states[s], typ], root=0)
            else:
                states[s] = src if root else np.empty_like(buffer)
                comm.Bcast([states[s], typ], root=0)
        state = {"optimizer": type(inner).__name__, "version": _checkpoint.FORMAT_VERSION,
                 "t": header["t"], "skipped": header["skipped"],
                 "last_grad_norm": header["last_grad_norm"], "hyperparameters": hyper}
        if self._shard_state:
            state.update(keys=[0], params=[buffer[lo:hi]],
                         state={s: [a] for s, a in states.items()})
        else:
            entries = _entries(self._layout)
            shapes = [shape for _, shape, _ in self._layout]
            state.update(keys=[key for key, _, _ in self._layout],
                         params=[self._params[key] for key, _, _ in self._layout],
                         state={s: [a[o:o + n].reshape(shape)
                                    for (o, n), shape in zip(entries, shapes)]
                                for s, a in states.items()})
        _checkpoint.load_state_dict(inner, state)  # the caller holds inner's step lock
        if checked is not None:
            checked[0]._apply_state_held(checked[1])  # its guard is held by the caller

    # -- access ----------------------------------------------------------------------------

    @property
    def optimizer(self):
        """This rank's optimizer: over ``params`` (``shard_state=False``) or over a list
        holding the view of its slice (``shard_state=True``)."""
        return self._inner

    @property
    def params(self):
        """The packed parameters (updated in place; the same bits on every rank)."""
        return self._params

    @property
    def comm(self):
        return self._comm

    @property
    def rank(self):
        return self._rank

    @property
    def world(self):
        return self._world

    @property
    def shard_state(self):
        return self._shard_state

    @property
    def average(self):
        return self._average

    @property
    def shard(self):
        """``(lo, hi)``: the slice of the packed buffer this rank reduces (and, with
        ``shard_state``, owns and steps)."""
        return self._bounds[self._rank], self._bounds[self._rank + 1]

    @property
    def state_nbytes(self):
        """Bytes of optimizer state this rank holds."""
        return sum(a.nbytes for s in self._inner.state_names
                   for a in self._inner._state_arrays(s))

    @property
    def timings(self):
        """Cumulative wall-clock seconds of this rank's steps: ``communication`` (inside MPI
        calls, waiting for the slowest rank included), ``compute`` (the rest: the rank-ordered
        sum, the norm, the update) and the number of ``steps``."""
        return dict(self._timings)

    _FORWARDED = ("t", "skipped", "last_grad_norm", "hyperparameters", "state_names")

    def __getattr__(self, name):
        inner = self.__dict__.get("_inner")
        if inner is not None and (name in self._FORWARDED
                                  or name in inner._hyper_attributes()):
            return getattr(inner, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        inner = self.__dict__.get("_inner")
        if inner is not None and (name in ("t", "skipped")
                                  or name in inner._hyper_attributes()):
            setattr(inner, name, value)
        elif name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(f"{name!r} is not a settable attribute of "
                                 f"{type(self).__name__}")

    def _busy_error(self):
        return RuntimeError(f"another thread is inside step, save or load of this "
                            f"{type(self).__name__}; one thread drives it at a time (its calls "
                            f"are collectives). Nothing was done")

    def __repr__(self):
        return (f"DistributedOptimizer({type(self._inner).__name__}, rank {self._rank} of "
                f"{self._world}, shard_state={self._shard_state}, average={self._average}, "
                f"step {self._inner.t})")

    # A copy would share the communicator with the original while each rank copies on its own:
    # the collectives of two objects on one communicator would pair up silently. Refused.
    def __reduce_ex__(self, protocol=None):
        raise TypeError(f"a {type(self).__name__} cannot be copied or pickled: it is one "
                        f"collective object across the ranks of its communicator. To resume, "
                        f"save() and build a new {type(self).__name__} on every rank, then "
                        f"load(); for a local copy, copy.deepcopy an optimizer built with "
                        f"optimizer_class instead")

    __copy__ = __reduce_ex__
