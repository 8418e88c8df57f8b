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


class MiniBatches:
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

    Parameters
    ----------
    X : ndarray
        2-D data, any dtype but object, any strides (only read).
    Y : ndarray, optional
        Labels: 1-D with one entry per example, or 2-D with examples along ``axis``.
    batch_size : int, default 64
        >= 1.
    seed : None, int or numpy.random.Generator, optional
        Source of the permutations: ``np.random.default_rng(seed)``, or the given Generator
        itself (which it then advances).
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

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> X = np.arange(10.0).reshape(2, 5); Y = np.array([0, 1, 0, 1, 1])
    >>> batches = fastopt.MiniBatches(X, Y, batch_size=2, seed=0)
    >>> len(batches)
    3
    >>> [y.tolist() for _, y in batches]       # one epoch
    [[0, 1], [1, 0], [1]]
    """

    _ops = _fast_ops

    def __init__(self, X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False,
                 copy=False, rank=0, world=1):
        self.axis = _v.check_axis(axis)
        self.m = _v.minibatch_data(X, Y, self.axis)
        self.batch_size = _v.check_count(batch_size, "batch_size")
        self.drop_last = _v.check_bool(drop_last, "drop_last")
        self.copy = _v.check_bool(copy, "copy")
        self.rng = _v.check_rng(seed)
        self.X, self.Y = X, Y
        self._epoch = 0
        self._buffers = {}
        self._rank, self._world = _v.check_rank_world(rank, world)

    def __len__(self):
        """Batches per epoch."""
        return len(batch_starts(self.m, self.batch_size, self.drop_last))

    def __iter__(self):
        self._epoch += 1
        if self._world > 1:
            return self._rank_batches(self._epoch, self.rng.permutation(self.m))
        return self._epoch_batches(self._epoch, self.rng.permutation(self.m))

    @property
    def rank(self):
        """This process's part of each global batch (docs/contract.md §9)."""
        return self._rank

    @property
    def world(self):
        """How many parts each global batch is split into."""
        return self._world

    def _rank_batches(self, epoch, perm):
        """Part ``rank`` of each global batch. The parts of full batches all have the same
        size ``b``, and the last part is no larger, so this rank's examples, gathered as one
        permutation into batches of ``b`` (the same kernels as one process), are exactly its
        parts in order; a part with no example is yielded empty."""
        local, sizes = rank_part(perm, self.batch_size, self.drop_last, self._rank,
                                 self._world)
        b = sizes[0] if sizes else 0
        if b and self.axis == 1:
            x_blocks = self._rank_columns("rank X", self.X, local, b)
            y_blocks = (None if self.Y is None else self._rank_columns(
                "rank Y", self.Y[np.newaxis, :] if self.Y.ndim == 1 else self.Y, local, b))
        for k, size in enumerate(sizes):
            if self._epoch != epoch:
                raise RuntimeError("a newer epoch of this MiniBatches started and reused its "
                                   "buffers; finish one epoch before starting the next, or use "
                                   "copy=True")
            if size == 0:
                batch = self._empty_batch()
            elif self.axis == 1:
                batch = (x_blocks[k],) if y_blocks is None else (x_blocks[k], y_blocks[k])
            else:
                batch = self._rank_rows(local[k * b:k * b + size])
            if self.copy:
                batch = tuple(a.copy() for a in batch)
            yield batch if self.Y is not None else batch[0]

    def _rank_columns(self, key, data, local, b):
        """Gather ``local`` into the reused buffer ``key`` as blocks of ``b`` columns."""
        cached = self._buffers.get(key)
        if cached is None:
            blocks = new_blocks(data, local.shape[0], b)
            shown = ([blk.reshape(-1) for blk in blocks] if key == "rank Y" and self.Y.ndim == 1
                     else blocks)
            cached = self._buffers[key] = (blocks, shown)
        self._ops.columns_into(data, local, b, cached[0])
        return cached[1]

    def _rank_rows(self, rows):
        X, Y, ops, b = self.X, self.Y, self._ops, rows.shape[0]
        x_buf = self._buffer("rank X", (b, X.shape[1]), X.dtype)[:b]
        ops.take_rows(X, rows, x_buf)
        if Y is None:
            return (x_buf,)
        y2 = Y[:, np.newaxis] if Y.ndim == 1 else Y
        y_buf = self._buffer("rank Y", (b, y2.shape[1]), Y.dtype)[:b]
        ops.take_rows(y2, rows, y_buf)
        return x_buf, (y_buf[:, 0] if Y.ndim == 1 else y_buf)

    def _empty_batch(self):
        X, Y, axis = self.X, self.Y, self.axis
        x = np.empty((X.shape[0], 0) if axis == 1 else (0, X.shape[1]), X.dtype)
        if Y is None:
            return (x,)
        if Y.ndim == 1:
            return x, np.empty(0, Y.dtype)
        return x, np.empty((Y.shape[0], 0) if axis == 1 else (0, Y.shape[1]), Y.dtype)

    def _buffer(self, key, shape, dtype):
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf

    def _column_blocks(self, key, data, perm):
        """Gather into the reused buffer ``key``; its block views are made once and kept."""
        cached = self._buffers.get(key)
        if cached is None:
            blocks = new_blocks(data, perm.shape[0], self.batch_size)
            shown = [b.reshape(-1) for b in blocks] if key == "Y" and self.Y.ndim == 1 else blocks
            cached = self._buffers[key] = (blocks, shown)
        self._ops.columns_into(data, perm, self.batch_size, cached[0])
        return cached[1]

    def _epoch_batches(self, epoch, perm):
        starts = batch_starts(self.m, self.batch_size, self.drop_last)
        if self.axis == 1:
            batches = self._column_epoch(perm[:starts.stop])  # drop_last: only what is used
        else:
            batches = self._row_batches(perm, starts)
        for batch in batches:
            if self._epoch != epoch:
                raise RuntimeError("a newer epoch of this MiniBatches started and reused its "
                                   "buffers; finish one epoch before starting the next, or use "
                                   "copy=True")
            if self.copy:
                batch = tuple(b.copy() for b in batch)
            yield batch if self.Y is not None else batch[0]

    def _column_epoch(self, perm):
        # The whole epoch is gathered at once, before the first batch (see the module docstring).
        x_blocks = self._column_blocks("X", self.X, perm)
        if self.Y is None:
            return ((xb,) for xb in x_blocks)
        y2 = self.Y[np.newaxis, :] if self.Y.ndim == 1 else self.Y
        return zip(x_blocks, self._column_blocks("Y", y2, perm))

    def _row_batches(self, perm, starts):
        X, Y, ops, b = self.X, self.Y, self._ops, self.batch_size
        x_buf = self._buffer("X", (b, X.shape[1]), X.dtype)
        if Y is not None:
            y2 = Y[:, np.newaxis] if Y.ndim == 1 else Y
            y_buf = self._buffer("Y", (b, y2.shape[1]), Y.dtype)
        for k0 in starts:
            rows = perm[k0:k0 + b]
            bk = rows.shape[0]
            ops.take_rows(X, rows, x_buf[:bk])
            if Y is None:
                yield (x_buf[:bk],)
                continue
            ops.take_rows(y2, rows, y_buf[:bk])
            yield x_buf[:bk], (y_buf[:bk, 0] if Y.ndim == 1 else y_buf[:bk])


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
    index = (np.arange(full)[:, np.newaxis] * batch_size + start + np.arange(b)).reshape(-1)
    parts, sizes = [perm[index]], [b] * full
    if m % batch_size and not drop_last:
        parts.append(np.array_split(perm[full * batch_size:], world)[rank])
        sizes.append(parts[-1].shape[0])
    return np.concatenate(parts), sizes


def minibatches(X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False, copy=False):
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
    return iter(MiniBatches(X, Y, batch_size, seed, axis, drop_last, copy))
