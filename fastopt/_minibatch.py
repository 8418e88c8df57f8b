"""Shuffled mini-batches, written once over an implementation's gather ``ops``.

Layouts. With one example per **column** (``axis=1``, the assignment's ``(n_x, m)``), a batch's
examples are scattered over the whole of X, so gathering batch by batch costs a cache miss per
item. Instead one pass over X, row by row, fills every batch at once (``columns_into``): each
batch is a C-contiguous ``(n_x, bk)`` array. With one example per **row** (``axis=0``) a batch
is a set of whole rows, gathered batch by batch into a small reused buffer (``take_rows``).

Where the batches live. ``random_mini_batches`` returns new arrays on every call: one buffer the
size of X (an mmap NumPy advises for huge pages), each batch a C-contiguous block of it, so
keeping any batch keeps the buffer. One array per batch looked cheaper (34-45 ms against 52 ms on
(784, 60000) float32 with 2 threads) until glibc trimmed the heap: once a call's 938 freed
batches coalesce at the top of the heap, it returns them to the OS (984 brk calls in 6 calls,
traced) and the next call faults all 188 MB back in as 4 KB pages, 105 ms. The one buffer costs
the same every time. ``MiniBatches`` allocates its buffer once and reuses it every epoch.
"""
import numbers
import threading
import weakref

import numpy as np

from . import _ops as _fast_ops
from . import _validation as _v


def batch_starts(m, batch_size, drop_last):
    """Start index of each batch: full batches first, then the remainder unless dropped."""
    stop = m - m % batch_size if drop_last else m
    return range(0, stop, batch_size)


def new_blocks(data, m, batch_size):
    """A new buffer for ``m`` columns of 2-D ``data``, as its batch views: C-contiguous
    ``(rows, bk)`` blocks, one after the other."""
    n_rows = data.shape[0]
    out = np.empty(n_rows * m, data.dtype)
    return [out[k0 * n_rows:(k0 + min(batch_size, m - k0)) * n_rows]
            .reshape(n_rows, min(batch_size, m - k0)) for k0 in range(0, m, batch_size)]


def column_batches(ops, data, perm, batch_size):
    """Gather the columns ``perm`` of 2-D ``data`` into a new buffer; return its batch blocks:
    ``blocks[k]`` holds ``data[:, perm[k*batch_size : k*batch_size + bk]]``."""
    blocks = new_blocks(data, perm.shape[0], batch_size)
    ops.columns_into(data, perm, batch_size, blocks)
    return blocks


class _Epoch:
    """What one epoch runs with, fixed when it starts: the data, the configuration, and the
    buffer cache of that configuration (a later assignment gives later epochs a new cache, so an
    epoch already started never writes through a buffer sized for other values); and where it
    is, for ``state_dict``: the generator's state before it drew the epoch's permutation and
    the number of batches handed out."""

    __slots__ = ("X", "Y", "m", "batch_size", "axis", "drop_last", "copy", "buffers", "start",
                 "done")

    def __init__(self, mb, start, done=0, batch_size=None, drop_last=None):
        self.X, self.Y, self.m, self.axis = mb._X, mb._Y, mb._m, mb._axis
        self.batch_size, self.drop_last, self.copy = mb._batch_size, mb._drop_last, mb._copy
        self.buffers = mb._buffers
        if batch_size is not None and (batch_size, drop_last) != (self.batch_size,
                                                                 self.drop_last):
            # A resumed epoch of another configuration than the current one: buffers of its own.
            self.batch_size, self.drop_last, self.buffers = batch_size, drop_last, {}
        self.start, self.done = start, done

    def batches(self):
        return len(batch_starts(self.m, self.batch_size, self.drop_last))


# The bit generators a MiniBatches state may name (numpy's own; a state names its class).
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_STATE_VERSION = 1


def _plain(value):
    """A bit generator's state as JSON-able plain data (NumPy arrays and ints as lists and
    ints): what ``MiniBatches.state_dict`` returns and a checkpoint stores."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def _bit_generator(state, what):
    """A new bit generator in ``state`` (a ``bit_generator.state`` dict), validated."""
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"{what} must be a numpy bit generator state (a dict naming one of "
                         f"{list(_BIT_GENERATORS)}), got {state!r:.100}")
    bit_generator = getattr(np.random, state["bit_generator"])()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{what} is not a valid {state['bit_generator']} state: "
                         f"{type(exc).__name__}: {exc}") from None
    return bit_generator


_read_only = _v.read_only_setter


_NEW_LOADER = "make a new MiniBatches for other data or another axis"


class MiniBatches(_v.StrictAttributes):
    """Shuffled mini-batches of ``X`` (and ``Y``), one epoch per iteration.

    Each ``iter()`` draws a new permutation from the generator and yields ``(X_batch, Y_batch)``
    (or ``X_batch`` alone when ``Y`` is None): full batches of ``batch_size`` examples in
    permutation order, then the remaining examples unless ``drop_last``. Batches are C-contiguous
    and keep the dtype of the data (float, int, bool, ...).

    **Buffers are reused.** Output buffers are allocated on the first epoch and reused by every
    later batch and epoch, so a steady-state epoch allocates no arrays. A yielded batch is
    therefore valid only until the next batch is requested: keep it with ``batch.copy()``, or pass
    ``copy=True`` to get fresh arrays. Starting a new epoch while an older one is still being
    iterated makes the older iterator raise ``RuntimeError`` rather than yield overwritten data.

    **Attributes keep the buffers honest** (docs/contract.md §5). What fixes the data is
    read-only: ``X``, ``Y``, ``axis`` and ``m`` (assigning one raises ``AttributeError``; make a
    new ``MiniBatches``). The object holds views of ``X`` and ``Y``, so reshaping the caller's
    arrays in place (``X.shape = ...``) does not change them either; writing new values into
    them does, as before. ``batch_size``, ``drop_last``, ``copy`` and ``rng`` may be assigned
    between epochs: each is validated with the constructor's check and message (an invalid value
    raises and changes nothing), and ``batch_size``/``drop_last``, which size the buffers, make
    the next epoch allocate new ones. An epoch runs with the values it started with: ``iter()``
    fixes them, and an assignment during an epoch takes effect at the next one. Any other name
    raises ``AttributeError`` rather than being stored and ignored (``mb.seed = 1``: reseed by
    assigning ``rng``; ``mb.batchsize = 2``: did you mean ``batch_size``).

    **Checkpoints.** :meth:`state_dict` holds the generator's state and the position within
    the epoch being iterated; :meth:`load_state_dict` (or ``opt.load(path, batches=loader)``
    after ``opt.save(path, batches=loader)``) makes a new ``MiniBatches`` over the same data go
    on with exactly the batches this one would have yielded next, mid-epoch included.

    **One thread iterates it at a time.** While an epoch started by one thread is unfinished
    (its iterator neither exhausted, closed nor dropped), ``iter()`` from another thread raises
    ``RuntimeError`` naming the object, rather than overwrite the batches that thread holds, as
    does any gather while another thread is inside one. Give each thread its own
    ``MiniBatches`` over the same arrays (they are only read), or close the other thread's
    iterator first.

    **Copies are independent.** ``copy.deepcopy`` and ``pickle`` give a ``MiniBatches`` with its
    own copies of ``X`` and ``Y``, the same configuration and a copy of the generator in its
    current state: its epochs from then on are those the original would have drawn next. An
    epoch in progress is not copied (the copy starts at the next one) and neither are the
    buffers; a resume loaded with :meth:`load_state_dict` and not yet iterated is. ``copy.copy`` raises ``TypeError``: a shallow copy would share the buffers and the
    generator.

    Parameters
    ----------
    X : ndarray
        2-D data, any dtype but object, any strides (only read).
    Y : ndarray, optional
        Labels: 1-D with one entry per example, or 2-D with examples along ``axis``.
    batch_size : int, default 64
        >= 1.
    seed : None, int, sequence of int, SeedSequence, BitGenerator or Generator, optional
        Source of the permutations: ``np.random.default_rng(seed)`` (anything it takes), or
        the given Generator itself (which it then advances).
    axis : {1, 0}, default 1
        1: one example per column, X is ``(features, examples)`` (the assignment's layout);
        0: one example per row, X is ``(examples, features)``.
    drop_last : bool, default False
        Skip the last batch when it is smaller than ``batch_size``.
    copy : bool, default False
        Yield new arrays instead of views of the reused buffers.
    rank, world : int, default 0 and 1
        Data-parallel training over ``world`` processes (docs/contract.md §9): every rank
        draws the same permutation (give every rank the same ``seed``) and yields, for each
        global batch ``perm[k*batch_size:(k+1)*batch_size]``, only part ``rank`` of
        ``np.array_split(global_batch, world)``; the union over ranks is the global batch.
        Every rank yields ``len()`` batches (the global count), some possibly empty when a
        batch has fewer examples than ``world``. Read-only attributes.

    Attributes
    ----------
    X, Y : ndarray or None
        Read-only: views of the data given.
    axis : {0, 1}
        Read-only: the example axis (a negative ``axis`` given is normalised).
    m : int
        Read-only: the number of examples.
    batch_size : int
        Validated on assignment (an integer >= 1); the next epoch gets new buffers.
    drop_last : bool
        Validated on assignment (True or False); the next epoch gets new buffers.
    copy : bool
        Validated on assignment (True or False).
    rng : numpy.random.Generator
        The source of the permutations; assign another Generator to reseed (validated).

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> X = np.arange(10.0).reshape(2, 5); Y = np.array([0, 1, 0, 1, 1])
    >>> batches = fastopt.MiniBatches(X, Y, batch_size=2, seed=0)
    >>> len(batches)
    3
    >>> [y.tolist() for _, y in batches]       # one epoch
    [[0, 1], [1, 0], [1]]
    >>> batches.batch_size = 3                 # validated; the next epoch has new buffers
    >>> [y.tolist() for _, y in batches]
    [[1, 1, 0], [0, 1]]
    """

    _ops = _fast_ops
    _attribute_hints = {"seed": "to reseed, assign rng = np.random.default_rng(seed)",
                        "shuffle": "every epoch is shuffled; the order comes from rng"}

    def __init__(self, X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False,
                 copy=False, rank=0, world=1):
        axis = _v.check_axis(axis)
        m = _v.minibatch_data(X, Y, axis)
        batch_size = _v.check_count(batch_size, "batch_size")
        drop_last = _v.check_bool(drop_last, "drop_last")
        copy = _v.check_bool(copy, "copy")
        self._rng = _v.check_rng(seed)
        self._axis, self._m = axis, m
        # Views (a new array object over the same memory): an in-place X.shape = ... on the
        # caller's array must not change what m and the buffers were computed from.
        self._X, self._Y = X.view(), (None if Y is None else Y.view())
        self._batch_size, self._drop_last, self._copy = batch_size, drop_last, copy
        self._epoch = 0
        self._buffers = {}
        self._rank, self._world = _v.check_rank_world(rank, world)
        self._run = None      # the _Epoch last started
        self._resume = None   # (state, batches done, batch_size, drop_last) from a state dict
        # Threads (see the class docstring): _busy is held while an epoch starts and during
        # each gather (non-blocking: a second thread raises instead of waiting); _owner is the
        # thread that started the current epoch and a weak reference to its iterator, live
        # until the iterator is exhausted, closed or dropped.
        self._busy = threading.Lock()
        self._owner = None

    # -- configuration -------------------------------------------------------------------------

    X = property(lambda self: self._X, _read_only("X", _NEW_LOADER),
                 doc="The data, 2-D (read-only: a view of the X given).")
    Y = property(lambda self: self._Y, _read_only("Y", _NEW_LOADER),
                 doc="The labels or None (read-only: a view of the Y given).")
    axis = property(lambda self: self._axis, _read_only("axis", _NEW_LOADER),
                    doc="The example axis, 0 or 1 (read-only).")
    m = property(lambda self: self._m, _read_only("m", "it is the number of examples of X"),
                 doc="The number of examples (read-only).")

    @property
    def batch_size(self):
        """Examples per batch; assigning validates it and gives the next epoch new buffers."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value):
        self._batch_size = _v.check_count(value, "batch_size")
        self._buffers = {}

    @property
    def drop_last(self):
        """Whether a short last batch is skipped; assigning validates it and gives the next epoch
        new buffers (with one example per column they hold only the examples used)."""
        return self._drop_last

    @drop_last.setter
    def drop_last(self, value):
        self._drop_last = _v.check_bool(value, "drop_last")
        self._buffers = {}

    @property
    def copy(self):
        """Whether batches are new arrays; assigning validates it."""
        return self._copy

    @copy.setter
    def copy(self, value):
        self._copy = _v.check_bool(value, "copy")

    @property
    def rng(self):
        """The Generator that draws each epoch's permutation; assigning validates it."""
        return self._rng

    @rng.setter
    def rng(self, value):
        self._rng = _v.check_generator(value, "rng")

    # -- epochs ----------------------------------------------------------------------------------

    def __len__(self):
        """Batches per epoch."""
        return len(batch_starts(self._m, self._batch_size, self._drop_last))

    def __iter__(self):
        with self._inside():
            me = self._check_owner()
            self._epoch += 1
            resume, self._resume = self._resume, None
            if resume is None:
                # The state before the draw, for state_dict (~3 us, once an epoch).
                run = _Epoch(self, self._rng.bit_generator.state)
                perm = self._rng.permutation(run.m)
            else:  # the epoch a state dict was saved in, drawn again from its starting state
                start, done, batch_size, drop_last = resume
                run = _Epoch(self, start, done, batch_size, drop_last)
                perm = np.random.Generator(_bit_generator(start, "state")).permutation(run.m)
            self._run = run
            if self._world > 1:
                batches = self._rank_batches(self._epoch, run, perm)
            else:
                batches = self._epoch_batches(self._epoch, run, perm)
            self._owner = (me, weakref.ref(batches))
            return batches

    def _check_owner(self):
        """Raise if another thread started an epoch it has not finished; return this thread's
        id. Called with the lock held."""
        me = threading.get_ident()
        if self._owner is not None and self._owner[0] != me:
            other = self._owner[1]()
            if other is not None and other.gi_frame is not None:  # not finished
                raise RuntimeError(
                    f"another thread is iterating this MiniBatches (epoch {self._epoch}, "
                    f"not finished); one thread iterates a MiniBatches at a time: give "
                    f"each thread its own MiniBatches (over the same arrays), or finish or "
                    f"close the other thread's iterator first")
        return me

    def _inside(self):
        """Hold the lock for starting an epoch or a gather; raise if another thread holds it
        (the per-batch loops take it inline: ~0.4 us a batch against ~3 us through this, best of
        31 epochs of 1250 batches of 16 x 64 float32: 3.68 -> 4.12 ms with one example per row,
        3.00 -> 3.68 ms per column; a batch of 64 x 784 takes ~100 us)."""
        return _v.held(self._busy, self._busy_error)

    @staticmethod
    def _busy_error():
        return RuntimeError(
            "another thread is iterating this MiniBatches (inside a gather); one thread iterates "
            "a MiniBatches at a time: give each thread its own MiniBatches (over the same "
            "arrays)")

    def __copy__(self):
        raise TypeError(f"copy.copy of a {type(self).__name__} is refused: a shallow copy would "
                        f"share the reused buffers and the generator with the original. Use "
                        f"copy.deepcopy (or pickle) for an independent one")

    def __reduce_ex__(self, protocol):
        # Rebuilt through __init__ (the lock and the buffers are per object): the data, the
        # configuration and the generator, which deepcopy and pickle copy with its state.
        # A resume loaded by load_state_dict and not yet iterated is part of what the next
        # iter() does, so it is copied too (an epoch in progress is not: see the class).
        with self._inside():
            pending = self._state_dict() if self._resume is not None else None
            return _restore, (type(self), self._X, self._Y,
                              dict(batch_size=self._batch_size, seed=self._rng,
                                   axis=self._axis, drop_last=self._drop_last, copy=self._copy,
                                   rank=self._rank, world=self._world), pending)

    @property
    def rank(self):
        """This process's part of each global batch (docs/contract.md §9); read-only."""
        return self._rank

    @property
    def world(self):
        """How many parts each global batch is split into; read-only."""
        return self._world

    def _rank_batches(self, epoch, run, perm):
        """Part ``rank`` of each global batch. The parts of full batches all have the same
        size ``b``, and the last part is no larger, so this rank's examples, gathered as one
        permutation into batches of ``b`` (the same kernels as one process), are exactly its
        parts in order; a part with no example is yielded empty."""
        with self._inside():
            self._check_current(epoch)
            local, sizes = rank_part(perm, run.batch_size, run.drop_last, self._rank,
                                     self._world)
            b = sizes[0] if sizes else 0
            y_blocks = None
            if b and run.axis == 1:
                x_blocks = self._rank_columns(run, "rank X", run.X, local, b)
                if run.Y is not None:
                    y2 = run.Y[np.newaxis, :] if run.Y.ndim == 1 else run.Y
                    y_blocks = self._rank_columns(run, "rank Y", y2, local, b)
        busy = self._busy
        for k, size in enumerate(sizes):
            if k < run.done:  # resumed mid-epoch (load_state_dict): already handed out
                continue
            if not busy.acquire(False):
                raise self._busy_error()
            try:
                self._check_current(epoch)
                if size == 0:
                    batch = self._empty_batch(run)
                elif run.axis == 1:
                    batch = (x_blocks[k],) if y_blocks is None else (x_blocks[k], y_blocks[k])
                else:
                    batch = self._rank_rows(run, local[k * b:k * b + size])
                if run.copy:
                    batch = tuple(a.copy() for a in batch)
                run.done += 1  # counted when handed out: a state_dict taken now resumes after it
            finally:
                busy.release()
            yield batch if run.Y is not None else batch[0]

    def _rank_columns(self, run, key, data, local, b):
        """Gather ``local`` into the reused buffer ``key`` as blocks of ``b`` columns."""
        cached = run.buffers.get(key)
        if cached is None:
            blocks = new_blocks(data, local.shape[0], b)
            shown = ([blk.reshape(-1) for blk in blocks] if key == "rank Y" and run.Y.ndim == 1
                     else blocks)
            cached = run.buffers[key] = (blocks, shown)
        self._ops.columns_into(data, local, b, cached[0])
        return cached[1]

    def _rank_rows(self, run, rows):
        X, Y, ops, b = run.X, run.Y, self._ops, rows.shape[0]
        # A part never holds more than the global batch nor more than the data.
        rows_max = min(run.batch_size, run.m)
        x_buf = self._buffer(run, "rank X", (rows_max, X.shape[1]), X.dtype)[:b]
        ops.take_rows(X, rows, x_buf)
        if Y is None:
            return (x_buf,)
        y2 = Y[:, np.newaxis] if Y.ndim == 1 else Y
        y_buf = self._buffer(run, "rank Y", (rows_max, y2.shape[1]), Y.dtype)[:b]
        ops.take_rows(y2, rows, y_buf)
        return x_buf, (y_buf[:, 0] if Y.ndim == 1 else y_buf)

    @staticmethod
    def _empty_batch(run):
        X, Y, axis = run.X, run.Y, run.axis
        x = np.empty((X.shape[0], 0) if axis == 1 else (0, X.shape[1]), X.dtype)
        if Y is None:
            return (x,)
        if Y.ndim == 1:
            return x, np.empty(0, Y.dtype)
        return x, np.empty((Y.shape[0], 0) if axis == 1 else (0, Y.shape[1]), Y.dtype)

    @staticmethod
    def _buffer(run, key, shape, dtype):
        buf = run.buffers.get(key)
        if buf is None:
            buf = run.buffers[key] = np.empty(shape, dtype)
        return buf

    def _column_blocks(self, run, key, data, perm):
        """Gather into the reused buffer ``key``; its block views are made once and kept."""
        cached = run.buffers.get(key)
        if cached is None:
            blocks = new_blocks(data, perm.shape[0], run.batch_size)
            shown = [b.reshape(-1) for b in blocks] if key == "Y" and run.Y.ndim == 1 else blocks
            cached = run.buffers[key] = (blocks, shown)
        self._ops.columns_into(data, perm, run.batch_size, cached[0])
        return cached[1]

    def _check_current(self, epoch):
        if self._epoch != epoch:
            raise RuntimeError("a newer epoch of this MiniBatches started and reused its "
                               "buffers; finish one epoch before starting the next, or use "
                               "copy=True")

    def _epoch_batches(self, epoch, run, perm):
        # Checked before every gather, not after: a stale iterator must raise before it writes
        # into buffers whose batches the newer epoch has handed out. Each gather holds the lock.
        with self._inside():
            self._check_current(epoch)
            starts = batch_starts(run.m, run.batch_size, run.drop_last)
            if run.axis == 1:  # drop_last: only what is used
                batches = iter(self._column_epoch(run, perm[:starts.stop]))
                for _ in range(run.done):  # resumed mid-epoch: skip what was handed out
                    next(batches)
            else:
                batches = iter(self._row_batches(run, perm, starts[run.done:]))
        busy = self._busy
        while True:
            if not busy.acquire(False):
                raise self._busy_error()
            try:
                self._check_current(epoch)
                batch = next(batches, None)
                if batch is not None:
                    if run.copy:
                        batch = tuple(b.copy() for b in batch)
                    run.done += 1  # counted when handed out: a state_dict now resumes after it
            finally:
                busy.release()
            if batch is None:
                return
            yield batch if run.Y is not None else batch[0]

    def _column_epoch(self, run, perm):
        # The whole epoch is gathered at once, before the first batch (see the module docstring).
        x_blocks = self._column_blocks(run, "X", run.X, perm)
        if run.Y is None:
            return ((xb,) for xb in x_blocks)
        y2 = run.Y[np.newaxis, :] if run.Y.ndim == 1 else run.Y
        return zip(x_blocks, self._column_blocks(run, "Y", y2, perm))

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self):
        """Where the batches are: enough for a new ``MiniBatches`` over the same data to go on
        exactly as this one does, mid-epoch included.

        Returns
        -------
        dict
            Plain data (JSON-able, no arrays): ``"rng"``, the generator's state
            (``rng.bit_generator.state``); ``"epoch"``, None between epochs, or, while an
            epoch is being iterated, the generator's state before it drew that epoch's
            permutation, the number of batches handed out (the one being used counts) and the
            epoch's ``batch_size`` and ``drop_last``; the current ``batch_size`` and
            ``drop_last``; and ``m`` and ``axis``, checked on load. ``Optimizer.save(path,
            batches=loader)`` stores it in the optimizer's checkpoint.
        """
        with self._inside():  # not while another thread starts an epoch or gathers
            return self._state_dict()

    def _state_dict(self):
        run, epoch = self._run, None
        if self._resume is not None:  # loaded, not iterated since
            start, done, batch_size, drop_last = self._resume
            epoch = {"rng": start, "batches": done, "batch_size": batch_size,
                     "drop_last": drop_last}
        elif run is not None and run.done < run.batches():
            epoch = {"rng": _plain(run.start), "batches": run.done,
                     "batch_size": run.batch_size, "drop_last": run.drop_last}
        return {"loader": "MiniBatches", "version": _STATE_VERSION, "m": self._m,
                "axis": self._axis, "batch_size": self._batch_size,
                "drop_last": self._drop_last, "rng": _plain(self._rng.bit_generator.state),
                "epoch": epoch}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`: the next ``iter()`` goes on where the saved loader was
        (the rest of its epoch, from the batch after the last one handed out, or the next
        epoch), yielding the same batches.

        The loader gets a new Generator in the saved state (the one it had is left alone);
        ``batch_size`` and ``drop_last`` are restored; an iteration in progress becomes stale
        (it raises ``RuntimeError``). ``rank`` and ``world`` are not part of the state: every
        rank draws the same permutations, so a state resumes at any world size. Everything is
        validated first (``m`` and ``axis`` must be this loader's); on any error nothing
        changes.
        """
        self._apply_state(self._check_state(state))

    def _check_state(self, state):
        """Validate a :meth:`state_dict` for this loader; return what ``_apply_state`` sets."""
        _v.check_mapping(state, "state")
        missing = [k for k in ("loader", "version", "m", "axis", "batch_size", "drop_last",
                               "rng", "epoch") if k not in state]
        if missing or state["loader"] != "MiniBatches":
            raise ValueError(f"state is not a MiniBatches state_dict (missing {missing})"
                             if missing else f"state is for a {state['loader']!r}, not a "
                             f"MiniBatches")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state has version {state['version']!r}; this fastopt reads "
                             f"{_STATE_VERSION}")
        for key, mine in (("m", self._m), ("axis", self._axis)):
            if not (isinstance(state[key], numbers.Integral) and state[key] == mine):
                raise ValueError(f"state is for data with {key}={state[key]!r}; this "
                                 f"MiniBatches has {key}={mine!r}: resume over the same data")
        batch_size = _v.check_count(state["batch_size"], "state['batch_size']")
        drop_last = _v.check_bool(state["drop_last"], "state['drop_last']")
        rng = np.random.Generator(_bit_generator(state["rng"], "state['rng']"))
        resume = state["epoch"]
        if resume is not None:
            _v.check_mapping(resume, "state['epoch']")
            missing = [k for k in ("rng", "batches", "batch_size", "drop_last")
                       if k not in resume]
            if missing:
                raise ValueError(f"state['epoch'] is missing {missing}")
            e_size = _v.check_count(resume["batch_size"], "state['epoch']['batch_size']")
            e_drop = _v.check_bool(resume["drop_last"], "state['epoch']['drop_last']")
            _bit_generator(resume["rng"], "state['epoch']['rng']")
            done = _v.check_count(resume["batches"], "state['epoch']['batches']", 0)
            n = len(batch_starts(self._m, e_size, e_drop))
            if done >= n:
                raise ValueError(f"state['epoch']['batches'] is {done}; that epoch has {n} "
                                 f"batches, so at most {n - 1} can have been handed out")
            resume = (_plain(resume["rng"]), done, e_size, e_drop)
        return batch_size, drop_last, rng, resume

    def _apply_state(self, checked):
        """Apply what :meth:`_check_state` returned; refused (nothing changes) while another
        thread starts an epoch, gathers, or iterates an epoch it has not finished."""
        with self._inside():
            self._check_owner()
            self._apply_state_held(checked)

    def _apply_state_held(self, checked):
        batch_size, drop_last, rng, resume = checked
        if (batch_size, drop_last) != (self._batch_size, self._drop_last):
            self._buffers = {}
        self._batch_size, self._drop_last = batch_size, drop_last
        self._rng, self._resume, self._run = rng, resume, None
        self._epoch += 1  # an iteration in progress is stale now

    def _row_batches(self, run, perm, starts):
        X, Y, ops, b = run.X, run.Y, self._ops, run.batch_size
        # Sized by the largest batch there can be, not by batch_size: batch_size=10**9 over
        # 3 MB of data must not ask for terabytes (a batch holds at most m rows).
        rows_max = min(b, run.m)
        x_buf = self._buffer(run, "X", (rows_max, X.shape[1]), X.dtype)
        if Y is not None:
            y2 = Y[:, np.newaxis] if Y.ndim == 1 else Y
            y_buf = self._buffer(run, "Y", (rows_max, y2.shape[1]), Y.dtype)
        for k0 in starts:
            rows = perm[k0:k0 + b]
            bk = rows.shape[0]
            ops.take_rows(X, rows, x_buf[:bk])
            if Y is None:
                yield (x_buf[:bk],)
                continue
            ops.take_rows(y2, rows, y_buf[:bk])
            yield x_buf[:bk], (y_buf[:bk, 0] if Y.ndim == 1 else y_buf[:bk])


def _restore(cls, X, Y, config, pending=None):
    """A ``cls`` over ``X`` and ``Y`` (copies made by deepcopy or pickle) with the
    configuration and generator of the one copied (MiniBatches.__reduce_ex__), and its pending
    resume (a :meth:`MiniBatches.state_dict`), if it had one."""
    loader = cls(X, Y, **config)
    if pending is not None:
        loader.load_state_dict(pending)
    return loader


def rank_part(perm, batch_size, drop_last, rank, world):
    """Rank ``rank``'s examples of an epoch, in order, and the size of its part of each global
    batch: part ``rank`` of ``np.array_split(perm[k*batch_size:(k+1)*batch_size], world)``
    for every batch ``k`` (docs/contract.md §9).

    Examples
    --------
    >>> local, sizes = rank_part(np.arange(10), 4, False, 1, 3)
    >>> local.tolist(), sizes
    ([2, 6, 9], [1, 1, 1])
    """
    m = perm.shape[0]
    full = m // batch_size
    # Every full batch splits alike: the first batch_size % world parts get one more example.
    small, extra = divmod(batch_size, world)
    b, start = small + (rank < extra), rank * small + min(rank, extra)
    # No full batch, no index: np.arange(b) alone would be 8 bytes per example of a batch_size
    # that may be far beyond m (10**9 asked 2.7 GB of a 100,000-example epoch).
    index = (np.arange(full)[:, np.newaxis] * batch_size + start + np.arange(b)).reshape(-1) \
        if full else np.zeros(0, np.intp)
    parts, sizes = [perm[index]], [b] * full
    if m % batch_size and not drop_last:
        parts.append(np.array_split(perm[full * batch_size:], world)[rank])
        sizes.append(parts[-1].shape[0])
    return np.concatenate(parts), sizes


def minibatches(ops, X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False, copy=False):
    """One epoch of shuffled mini-batches: ``iter(MiniBatches(...))``.

    Yields ``(X_batch, Y_batch)``, or ``X_batch`` alone when ``Y`` is None. For several epochs
    without reallocating, make one :class:`MiniBatches` and iterate it once per epoch. A yielded
    batch is valid until the next one (its buffer is reused); pass ``copy=True`` to keep batches.
    See :class:`MiniBatches` for the parameters.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> X = np.arange(12.0).reshape(6, 2)          # one example per row
    >>> for xb in fastopt.minibatches(X, batch_size=4, seed=1, axis=0):
    ...     print(xb.shape)
    (4, 2)
    (2, 2)
    """
    batches = MiniBatches(X, Y, batch_size, seed, axis, drop_last, copy)
    # Its gathers run on the implementation's ops (fastopt.reference.minibatches: plain NumPy).
    # The object itself is never handed out, only its one epoch, so no subclass is needed.
    batches._ops = ops
    return iter(batches)
