"""Packed parameters: many named arrays as views into one contiguous buffer.

With parameters and gradients packed, an optimizer step is one kernel call over the whole buffer
instead of one call (and one round of Python overhead) per array: the assignment's model has six
tiny arrays, where per-array overhead is nearly all of the cost.
"""
from collections.abc import Mapping

import numpy as np

from . import _half
from . import _validation as _v

__all__ = ["PackedArrays", "pack", "pack_like"]

_ENTRIES_ARE_VIEWS = "every entry is a view of it; write into the entries, or pack a new dict"


class PackedArrays(_v.StrictAttributes, dict):
    """A dict of arrays that are views into one contiguous 1-D buffer (made by :func:`pack`).

    Reading works like any dict. **Writing copies into the buffer**, so that every entry stays
    the view of ``buffer`` it was made as: ``grads["W1"] = dW1`` writes ``dW1``'s values into
    ``grads["W1"]`` (same shape required, converted to the buffer's dtype; strings, complex
    numbers and values beyond the dtype's range, such as float64 1e300 into float32, raise
    ``TypeError``/``ValueError`` rather than be parsed, truncated or made inf), and so do
    ``update``, ``|=`` and ``setdefault`` on an existing key (which, as for a dict, only reads).
    Entries cannot be added or removed: ``del``, ``pop``, ``popitem`` and ``clear`` raise
    ``TypeError``, and a new key raises ``KeyError``. A write that fails (a new key, a wrong
    shape, a value that does not convert) raises before anything is written, for ``update`` and
    ``|=`` too. ``copy()``, ``copy.copy``, ``copy.deepcopy``, pickling and ``packed | other``
    make a new ``PackedArrays`` with its own buffer; ``other | packed`` a plain dict (the left
    operand's type, as for any dict), holding our views. ``buffer`` and ``layout`` are read-only.
    Make one with :func:`pack` or :func:`pack_like`: the constructor and ``fromkeys`` raise.

    Why a ``dict`` subclass that overrides every mutating method, rather than a
    ``collections.abc.Mapping`` that is no dict: the optimizers and the dictionary-level
    functions accept packed parameters and gradients wherever a dict goes (``isinstance(params,
    dict)`` selects the dict-of-arrays path, ``type(grads) is PackedArrays`` the one-kernel
    step), and user code written for the assignment's dicts (``json``-style ``isinstance``
    tests, ``dict(...)``, ``{**grads}``) keeps working. Every method ``dict`` implements in C
    that could store a value is overridden here (``__setitem__``, ``update``, ``__ior__``,
    ``setdefault``), and the ones that remove entries refuse; the one way around them is calling
    ``dict``'s own methods on it explicitly (``dict.__setitem__(grads, k, v)``).

    Attributes
    ----------
    buffer : ndarray
        The 1-D, C-contiguous array that owns the memory of every entry (read-only attribute).
    layout : tuple of (key, shape, offset)
        Where each entry lives in ``buffer`` (offsets in items; read-only attribute).
    """

    __slots__ = ("_buffer", "_layout")

    def __init__(self, *args, **kwargs):
        # dict.__init__ would store the given arrays themselves, not views of a buffer.
        raise TypeError("make a PackedArrays with fastopt.pack(params) or "
                        "fastopt.pack_like(packed), not with its constructor")

    @classmethod
    def fromkeys(cls, iterable, value=None):
        raise TypeError("a PackedArrays has no fromkeys: make one with fastopt.pack(params) or "
                        "fastopt.pack_like(packed)")

    buffer = property(lambda self: self._buffer,
                      _v.read_only_setter("buffer", _ENTRIES_ARE_VIEWS),
                      doc="The 1-D buffer that owns every entry's memory (read-only).")
    layout = property(lambda self: self._layout,
                      _v.read_only_setter("layout", _ENTRIES_ARE_VIEWS),
                      doc="(key, shape, offset) of each entry in ``buffer`` (read-only).")

    # -- writes: every one copies into the buffer ------------------------------------------------

    def _converted(self, key, value):
        """``value`` as an array of the entry's dtype and shape, ready to copy; raises (having
        written nothing) for a new key, a value that does not convert, or another shape."""
        if key not in self:
            raise KeyError(f"{key!r} is not an entry of this packed dict (entries cannot be "
                           f"added; pack a new dict instead)")
        view = dict.__getitem__(self, key)
        # Converted before any copy, so that a value that does not convert leaves the entry as
        # it was (a failed view[...] = value may have written part of it); and never with a
        # silent loss: strings, complex numbers and overflows raise.
        value = _v.converted(value, view.dtype, f"value for {key!r}")
        if value.shape != view.shape:
            raise ValueError(f"value for {key!r} has shape {value.shape}; expected "
                             f"{view.shape} (a packed entry is copied into, not replaced)")
        return view, value

    @staticmethod
    def _copy_all(pairs):
        for view, value in pairs:
            view[...] = value

    def __setitem__(self, key, value):
        self._copy_all([self._converted(key, value)])

    def update(self, *args, **kwargs):
        """Copy each value into its entry, as ``packed[key] = value`` does; all are checked
        before the first is written. Takes what ``dict.update`` takes."""
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 positional argument, got {len(args)}")
        pairs = []
        if args:
            other = args[0]
            if hasattr(other, "keys"):
                pairs = [(key, other[key]) for key in other.keys()]
            else:
                for item in other:
                    item = tuple(item)
                    if len(item) != 2:
                        raise ValueError(f"update takes a mapping or (key, value) pairs; got an "
                                         f"element of length {len(item)}")
                    pairs.append(item)
        pairs += kwargs.items()
        self._copy_all([self._converted(key, value) for key, value in pairs])

    def __ior__(self, other):
        # dict.__ior__ stores the values themselves, bypassing __setitem__ (issue 10).
        self.update(other)
        return self

    def setdefault(self, key, default=None):
        """The entry ``key`` (a read, as for a dict); a new key raises ``KeyError``."""
        if key in self:
            return dict.__getitem__(self, key)
        self._converted(key, default)  # raises: entries cannot be added

    def _fixed(self, *args, **kwargs):
        raise TypeError("a packed dict has fixed entries; pack a new dict instead")

    __delitem__ = pop = popitem = clear = _fixed

    # -- new objects ------------------------------------------------------------------------------

    def copy(self):
        """A new packed dict (its own buffer) with the same values."""
        return pack(self)

    def __or__(self, other):
        """A new packed dict (its own buffer): a copy, updated with ``other``."""
        if not isinstance(other, (dict, Mapping)):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other):
        """``other | packed``: a plain dict, ``other``'s entries then ours (our views)."""
        if not isinstance(other, (dict, Mapping)):
            return NotImplemented
        merged = dict(other)
        merged.update(dict.items(self))
        return merged

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
    dtype : float32, float64 or a 16-bit format, optional
        The buffer's dtype; by default the common dtype of the arrays, which must all have the
        same one. Given, real numbers of any dtype are converted to it; strings, complex
        numbers and values beyond its range raise, as for an assignment. The 16-bit formats
        (docs/contract.md §14) are ``np.float16``, ``ml_dtypes.bfloat16`` and ``np.uint16``
        (bfloat16 bits): values of the same format are copied bit for bit (``uint16`` and
        ``ml_dtypes.bfloat16`` alike), others rounded to nearest even as ``fastopt._half``
        does. A packed 16-bit dict given to an optimizer built with
        ``master_dtype=np.float32`` gets one packed float32 master buffer and packed state:
        one kernel call a step.

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
        if isinstance(value, np.ndarray):  # before np.asarray, which would drop a mask
            _v.check_plain_array(value, f"params[{key!r}]")
        arr = np.asarray(value)
        if dtype is None and arr.dtype.kind != "f" and _half.kind_of(arr.dtype) is None:
            raise TypeError(f"params[{key!r}] has dtype {arr.dtype}; expected float32, "
                            f"float64 or a 16-bit format (or pass dtype=)")
        arrays[key] = arr
    if dtype is None:
        dtypes = {arr.dtype for arr in arrays.values()}
        if len(dtypes) != 1:
            raise TypeError(f"params mixes dtypes {sorted(str(d) for d in dtypes)}; pass "
                            f"dtype=np.float32 or np.float64 (or a 16-bit format) to convert "
                            f"them all")
        dtype = dtypes.pop()
    dtype = _v.check_pack_dtype(dtype)
    arrays = {key: _v.converted(arr, dtype, f"params[{key!r}]") for key, arr in arrays.items()}
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
    out = dict.__new__(PackedArrays)  # the constructor refuses, on purpose
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
    out._buffer = buffer
    out._layout = tuple(layout)
    return out
