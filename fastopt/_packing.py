"""Packed parameters: many named arrays as views into one contiguous buffer.

With parameters and gradients packed, an optimizer step is one kernel call over the whole buffer
instead of one call (and one round of Python overhead) per array: the assignment's model has six
tiny arrays, where per-array overhead is nearly all of the cost.
"""
import numpy as np

from . import _validation as _v

__all__ = ["PackedArrays", "pack", "pack_like"]


class PackedArrays(dict):
    """A dict of arrays that are views into one contiguous 1-D buffer (made by :func:`pack`).

    Reading works like any dict. **Assigning copies into the buffer** so that every entry stays a
    view of it: ``grads["W1"] = dW1`` writes ``dW1``'s values into ``grads["W1"]`` (same shape
    required), and ``grads.update(other)`` does the same for each key. Entries cannot be added
    or removed.

    Attributes
    ----------
    buffer : ndarray
        The 1-D, C-contiguous array that owns the memory of every entry.
    layout : tuple of (key, shape, offset)
        Where each entry lives in ``buffer`` (offsets in items).
    """

    __slots__ = ("buffer", "layout")

    def __setitem__(self, key, value):
        if key not in self:
            raise KeyError(f"{key!r} is not an entry of this packed dict (entries cannot be "
                           f"added; pack a new dict instead)")
        view = dict.__getitem__(self, key)
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"value for {key!r} has shape {value.shape}; expected "
                             f"{view.shape} (a packed entry is copied into, not replaced)")
        view[...] = value

    def update(self, other=(), **kwargs):
        items = other.items() if hasattr(other, "items") else other
        for key, value in list(items) + list(kwargs.items()):
            self[key] = value

    def _fixed(self, *args, **kwargs):
        raise TypeError("a packed dict has fixed entries; pack a new dict instead")

    __delitem__ = pop = popitem = clear = setdefault = _fixed

    def copy(self):
        """A new packed dict (its own buffer) with the same values."""
        return pack(self)

    def __reduce__(self):
        return pack, (dict(self),)

    def __repr__(self):
        return f"PackedArrays({dict.__repr__(self)})"


def pack(params, dtype=None):
    """Copy named arrays into one contiguous buffer; return a dict of views into it.

    Parameters
    ----------
    params : dict of str to array_like
        The arrays, in the order they will be laid out.
    dtype : float32 or float64, optional
        The buffer's dtype; by default the common dtype of the arrays, which must all be
        float32 or all be float64.

    Returns
    -------
    PackedArrays
        Same keys and values (copies), each a C-contiguous view into ``.buffer``.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> params = fastopt.pack({"W1": np.ones((2, 3)), "b1": np.zeros((2, 1))})
    >>> params.buffer.shape, np.shares_memory(params["W1"], params.buffer)
    ((8,), True)
    >>> grads = fastopt.pack_like(params)
    >>> grads["W1"] = np.full((2, 3), 0.5)       # copies into the packed buffer
    >>> grads.buffer
    array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0. , 0. ])
    """
    _v.check_mapping(params, "params")
    if not len(params):
        raise ValueError("params is empty: nothing to pack")
    arrays = {}
    for key, value in params.items():
        arr = np.asarray(value)
        if arr.dtype.kind != "f" and dtype is None:
            raise TypeError(f"params[{key!r}] has dtype {arr.dtype}; expected float32 or "
                            f"float64 (or pass dtype=)")
        arrays[key] = arr
    if dtype is None:
        dtypes = {arr.dtype for arr in arrays.values()}
        if len(dtypes) != 1:
            raise TypeError(f"params mixes dtypes {sorted(str(d) for d in dtypes)}; pass "
                            f"dtype=np.float32 or np.float64 to convert them all")
        dtype = dtypes.pop()
    dtype = _v.check_float_dtype(dtype)
    total = sum(arr.size for arr in arrays.values())
    return _views(np.empty(total, dtype), [(k, a.shape) for k, a in arrays.items()], arrays)


def pack_like(packed):
    """A zeroed :class:`PackedArrays` with the layout and dtype of ``packed`` (for gradients).

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> grads = fastopt.pack_like(fastopt.pack({"w": np.ones(3, np.float32)}))
    >>> grads["w"], grads.buffer.dtype
    (array([0., 0., 0.], dtype=float32), dtype('float32'))
    """
    if not isinstance(packed, PackedArrays):
        raise TypeError(f"packed must be a PackedArrays made by fastopt.pack, got "
                        f"{type(packed).__name__}")
    return _views(np.zeros_like(packed.buffer), [(k, s) for k, s, _ in packed.layout], None)


def _views(buffer, shapes, values):
    out = PackedArrays()
    layout = []
    offset = 0
    for key, shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        view = buffer[offset:offset + size].reshape(shape)
        if values is not None:
            view[...] = values[key]
        dict.__setitem__(out, key, view)
        layout.append((key, tuple(shape), offset))
        offset += size
    out.buffer = buffer
    out.layout = tuple(layout)
    return out
