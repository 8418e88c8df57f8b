"""Argument checks shared by the Cython path (``fastopt``) and the reference (``fastopt.reference``).

Both implementations call the same functions here *before* writing anything, so they accept the
same inputs and raise the same errors with the same messages. Kernels assume what these functions
establish: float32/float64 arrays of one dtype and one shape, C-contiguous, the written ones
writeable and sharing no memory with any other argument, and hyperparameters in range.

Errors are ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (right kind, wrong
value); every message names the argument and says what to do.

The module is ordered by layer: scalars, then arrays, then the argument set of each rule (built
from the two), then mini-batch data.
"""
import contextlib
import difflib
import math
import numbers
import operator

import numpy as np

from . import _half

try:
    # The compiled "common case?" test of one update's arrays (fastopt/_kernels.pyx, ~0.1 us for
    # Adam's five arrays against ~2.5 us for _fast_valid plus six np.may_share_memory calls).
    # It only ever says "valid" or "look closer"; every error below is still raised from here.
    from ._kernels import update_arrays_ok as _c_update_arrays_ok
    from ._kernels import all_writeable as _c_all_writeable
except ImportError:  # an unbuilt source tree: the Python checks alone
    _c_update_arrays_ok = _c_all_writeable = None

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
FLOAT_DTYPES = (_F32, _F64)


class MissingKeyError(KeyError, ValueError):
    """A required dictionary entry is missing.

    A ``KeyError`` for code written against the assignment, and a ``ValueError`` like every other
    input error of fastopt. Its message is shown as written (``KeyError`` would quote it).
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _describe(obj):
    return type(obj).__name__


# --- scalars: hyperparameters and counts, returned as Python floats and ints ------------------

def _real_or_nonfinite(value, name):
    """A real number as a Python float; NaN and inf allowed (data, not a hyperparameter)."""
    if type(value) is float:  # the common case, without the ABC machinery below
        return value
    # bool is an Integral; lr=True is a bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    try:
        return float(value)
    except OverflowError:  # an int (or Fraction) beyond the largest double, ~1.8e308
        raise ValueError(f"{name} must be a real number within the range of a float "
                         f"(|x| < 1.8e308), got {_describe(value)} {_abbreviated(value)}") from None


def _abbreviated(value):
    """An integer too long to print whole (10**400 has 401 digits) as its size."""
    if isinstance(value, numbers.Integral) and abs(value) >= 10 ** 30:
        return f"of {operator.index(value).bit_length()} bits"
    return repr(value)


def _real(value, name):
    """A real number as a Python float; not NaN."""
    value = _real_or_nonfinite(value, name)
    if value != value:
        raise ValueError(f"{name} must not be NaN")
    return value


def check_nonnegative(value, name):
    """Return ``value`` as a Python float; it must be finite and >= 0."""
    value = _real(value, name)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def check_positive(value, name):
    """Return ``value`` as a Python float; it must be finite and > 0."""
    value = _real(value, name)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def check_lr(lr, name="lr"):
    """Return ``lr`` as a Python float; it must be finite and >= 0."""
    return check_nonnegative(lr, name)


def check_beta(beta, name="beta"):
    """Return ``beta`` as a Python float; it must satisfy 0 <= beta < 1."""
    beta = _real(beta, name)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"{name} must satisfy 0 <= {name} < 1, got {beta!r}")
    return beta


def check_eps(eps, name="eps"):
    """Return ``eps`` as a Python float; it must be finite and > 0."""
    return check_positive(eps, name)


def check_bool(value, name):
    """Return ``value`` as a bool; it must be a bool (or numpy.bool_)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


MAX_COUNT = 2 ** 63 - 1
"""The largest count, size or step accepted: an int64, what a checkpoint stores (``t``) and what
C takes for a size (``Py_ssize_t``); a larger int would raise ``OverflowError`` there, or in
``float(t)`` (``beta ** t``, ``step / decay_steps``) past 1.8e308."""


def check_count(value, name, minimum=1, maximum=MAX_COUNT):
    """Return ``value`` as a Python int; it must be an integer >= ``minimum`` and, unless
    ``maximum`` is None (a seed: any size), <= ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(value)}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}"
                         f"{' (2**63 - 1, a 64-bit count)' if maximum == MAX_COUNT else ''}, "
                         f"got {_abbreviated(value)}")
    return value


# A checkpoint stores an optimizer's step counts as int64 (docs/contract.md: plain arrays only):
# a count that cannot be written (beyond MAX_COUNT) is refused when it is assigned or loaded,
# not at save time.


def check_step_count(value, name):
    """Return the step count ``value`` (``t``, ``skipped``) as a Python int in
    ``[0, 2**63 - 1]``."""
    value = check_count(value, name, 0, maximum=None)
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be an integer in [0, 2**63 - 1] (a checkpoint stores it "
                         f"as int64), got {value}")
    return value


def check_room_for_a_step(t, skipped):
    """Refuse a step that would take ``t`` or ``skipped`` past 2**63 - 1 (checked before
    anything changes: a checkpoint or a data-parallel fingerprint holds them as int64)."""
    if t >= MAX_COUNT or skipped >= MAX_COUNT:
        name, value = ("t", t) if t >= MAX_COUNT else ("skipped", skipped)
        raise ValueError(f"{name} is {value}, the largest step count fastopt keeps (2**63 - 1): "
                         f"one more step would pass it; assign a smaller {name} first")


def check_grad_norm(value, name):
    """Return a gradient norm as read back from a checkpoint: None (no step clipped yet) or a
    float >= 0, inf or NaN (the norm of a non-finite gradient)."""
    if value is None:
        return None
    value = _real_or_nonfinite(value, name)
    if value < 0:
        raise ValueError(f"{name} must be None or a norm (>= 0, inf or NaN), got {value!r}")
    return value


def check_num_threads(n, name, maximum, cores):
    """Return the thread count ``n`` as a Python int: an integer from 1 to ``maximum`` (what
    the runtime supports, fastopt._threads.max_threads); ``cores`` goes into the message."""
    n = check_count(n, name, 1, maximum=None)
    if n > maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum} (the most threads "
                         f"fastopt starts; this machine has {cores} cores), got {n}")
    return n


def check_num_threads_text(text, name, maximum, default):
    """The thread count of an environment variable ``name`` holding ``text``: a whole number
    from 1 to ``maximum``; ``default`` (what unsetting it gives) goes into the message."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= maximum:
        raise ValueError(f"{name} must be a whole number from 1 to {maximum}, got {text!r}; "
                         f"unset it to use every core ({default})")
    return n


def check_step(t, name="t"):
    """Return the Adam step ``t`` as a Python int; it must be an integer >= 1.

    A Python int matters: ``beta ** t`` must be ``float.__pow__`` (C ``pow``) in both
    implementations, and ``float ** numpy.int64`` would go through NumPy's power instead.
    """
    if type(t) is int and 1 <= t <= MAX_COUNT:
        return t
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an integer >= 1, got bool")
    try:
        t = operator.index(t)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer >= 1 (the number of Adam steps taken, counting this "
            f"one), got {_describe(t)} {t!r}") from None
    if t < 1:
        raise ValueError(
            f"{name} must be >= 1 (the number of Adam steps taken, counting this one), got {t}")
    if t > MAX_COUNT:
        raise ValueError(f"{name} must be <= 2**63 - 1 (a 64-bit step count), got "
                         f"{_abbreviated(t)}")
    return t


def check_pack_dtype(dtype, name="dtype"):
    """Return ``np.dtype(dtype)`` for a packed buffer: float32, float64, or a 16-bit format
    (np.float16, ml_dtypes.bfloat16, uint16 holding bfloat16 bits)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or (dt not in FLOAT_DTYPES and _half.kind_of(dt) is None):
        raise TypeError(f"{name} must be float32, float64 or a 16-bit format ({_HALF_FORMS}), "
                        f"got {dtype if dt is None else dt}")
    return dt


def check_float_dtype(dtype, name="dtype"):
    """Return ``np.dtype(dtype)``; it must be float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


# --- arrays: type, dtype, layout, writeability, overlap ---------------------------------------

def check_mapping(obj, name):
    """Check that ``obj`` is a dict-like mapping of names to arrays."""
    if not hasattr(obj, "keys") or not hasattr(obj, "__getitem__"):
        raise TypeError(f"{name} must be a dict of arrays, got {_describe(obj)}")


# ndarray subclasses are refused when they redefine indexing, shape or arithmetic: np.matrix
# is always 2-D (its reshape(-1) is (1, n), so a kernel got "Buffer has wrong number of
# dimensions" after the step count had moved), and a masked array's mask would be ignored by
# the kernels, which write every element. Decided by what a class overrides, not by its name,
# so that a subclass that only carries metadata is accepted, and np.memmap too (its own
# __getitem__ only turns copies back into plain ndarrays).
_PLAIN_SUBCLASSES = (np.memmap,)
_REDEFINED = ("__getitem__", "__setitem__", "reshape", "ravel", "flatten", "__array_ufunc__",
              "__array_function__")
_changes_indexing_cache = {}


def _changes_indexing(cls):
    answer = _changes_indexing_cache.get(cls)
    if answer is None:
        answer = False
        for klass in cls.__mro__:
            if klass is np.ndarray or klass in _PLAIN_SUBCLASSES:
                break
            if any(name in vars(klass) for name in _REDEFINED):
                answer = True
                break
        _changes_indexing_cache[cls] = answer
    return answer


def check_plain_array(arr, name):
    """Refuse an ndarray subclass with its own indexing or arithmetic (np.matrix, masked
    arrays); ``arr`` is already known to be an ndarray."""
    cls = type(arr)
    if cls is not np.ndarray and _changes_indexing(cls):
        raise TypeError(
            f"{name} is a {cls.__module__}.{cls.__qualname__}, an ndarray subclass with its own "
            f"indexing or arithmetic (a numpy.matrix is always 2-D, a masked array's mask would "
            f"be ignored); pass a plain ndarray over the same memory: np.asarray({name})")


_KINDS = {"U": "strings", "S": "bytes", "c": "complex numbers", "O": "Python objects",
          "M": "datetimes", "m": "timedeltas", "V": "raw records"}


def converted(value, dtype, name):
    """``value`` as an array of the float ``dtype``, for a copy into an existing array (a packed
    entry); raises, having converted nothing in place, rather than convert with a loss NumPy
    would make silently: strings (which it parses), complex numbers (it drops the imaginary
    part), Python objects, and finite values beyond ``dtype``'s range (float64 1e300 becomes
    float32 inf). Real numbers of any other dtype (bool, integers, floats) are rounded to
    ``dtype`` as NumPy rounds them.
    """
    if isinstance(value, np.ndarray):  # a masked array's mask would be dropped by the copy
        check_plain_array(value, name)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"{name} cannot be converted to {dtype}: {err}") from None
    if _half.kind_of(dtype) is not None:
        return _converted_half(arr, np.dtype(dtype), name)
    if arr.dtype.kind == "V" and _half.kind_of(arr.dtype) == _half.BF16:
        arr = _half.widen(_half.bits(arr), _half.BF16)  # ml_dtypes.bfloat16: exact in float32
    kind = arr.dtype.kind
    if kind not in "biuf":
        what = _KINDS.get(kind, f"values of dtype {arr.dtype}")
        raise TypeError(f"{name} cannot be converted to {dtype}: it holds {what} (dtype "
                        f"{arr.dtype}), and only real numbers are copied; convert them yourself "
                        f"first (e.g. np.real(x), or np.asarray(x, dtype=float) for text)")
    with np.errstate(over="ignore"):  # checked below, with the value named
        out = arr.astype(dtype, copy=False)
    if kind == "f" and arr.dtype.itemsize > out.dtype.itemsize:
        overflow = np.isinf(out) & np.isfinite(arr)
        if overflow.any():
            where = tuple(int(i) for i in np.argwhere(overflow)[0])
            largest = np.finfo(out.dtype).max
            raise ValueError(f"{name} holds {arr[where].item()!r} (at index {where}), beyond "
                             f"the range of {out.dtype} (largest {largest:.7g}): it would "
                             f"become inf; scale it, or pack float64")
    return out


def _converted_half(arr, dtype, name):
    """:func:`converted` into a 16-bit format: the same format is copied bit for bit (for
    bfloat16, ``uint16`` bits and ``ml_dtypes.bfloat16`` alike); real numbers are rounded to
    nearest even by ``fastopt._half.narrow`` (its NaN rules), float64 through float32 rounded
    to odd, so that the result is the correctly rounded float64 value, not a double rounding."""
    kind, source = _half.kind_of(dtype), _half.kind_of(arr.dtype)
    if source == kind:
        return np.ascontiguousarray(arr).view(dtype)
    if source is not None:
        x = _half.widen(_half.bits(np.ascontiguousarray(arr)), source)
    elif arr.dtype.kind in "biuf":
        x = arr
    else:
        what = _KINDS.get(arr.dtype.kind, f"values of dtype {arr.dtype}")
        raise TypeError(f"{name} cannot be converted to {dtype}: it holds {what} (dtype "
                        f"{arr.dtype}), and only real numbers are copied; convert them yourself "
                        f"first (e.g. np.real(x), or np.asarray(x, dtype=float) for text)")
    with np.errstate(all="ignore"):  # overflow checked below, with the value named
        if x.dtype == _F32 or x.dtype == np.float16:
            x32 = x.astype(_F32)  # exact
        else:
            wide = x.astype(_F64)
            x32 = wide.astype(_F32)
            u = x32.view(np.uint32)
            # Round to odd: an inexact float32 with an even significand moves one ULP towards
            # the float64 value. 24 bits rounded to odd, then to 8 or 11 bits to nearest even,
            # is the float64 value rounded once to nearest even.
            odd = (x32.astype(_F64) != wide) & ((u & 1) == 0) & ~np.isnan(wide)
            if odd.any():
                down = np.abs(x32.astype(_F64)) > np.abs(wide)
                u = np.where(odd, np.where(down, u - 1, u + 1), u).astype(np.uint32)
                x32 = u.view(_F32).reshape(x32.shape)
        out = _half.narrow(x32, kind).reshape(arr.shape)
        overflow = np.isfinite(x) & ~_half.finite(out, kind)
    if overflow.any():
        where = tuple(int(i) for i in np.argwhere(overflow)[0])
        raise ValueError(f"{name} holds {x[where].item()!r} (at index {where}), beyond the range "
                         f"of {kind} (largest {'65504' if kind == _half.F16 else '3.3895e38'}): it "
                         f"would become inf; scale it first")
    return out.view(dtype)


def check_float_array(arr, name, *, writeable):
    """Check that ``arr`` is a C-contiguous float32/float64 ndarray (writeable if asked), not
    a subclass with its own indexing (:func:`check_plain_array`).

    Returns nothing; raises TypeError/ValueError naming ``name``.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of float32 or float64, got {_describe(arr)}; "
            f"convert it once with np.asarray(..., dtype=np.float32) and keep that array")
    check_plain_array(arr, name)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; expected float32 or float64 "
            f"(convert it once with {name}.astype(np.float32) or np.float64)")
    _check_contiguous_writeable(arr, name, writeable)


def check_same_layout(arr, name, ref, ref_name):
    """Check that ``arr`` has the dtype and shape of ``ref`` (both already float arrays)."""
    if arr.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; expected {ref.dtype}, the dtype of {ref_name}")
    if arr.shape != ref.shape:
        raise ValueError(
            f"{name} has shape {arr.shape}; expected {ref.shape}, the shape of {ref_name}")


def _extent(arr):
    start = arr.__array_interface__["data"][0]
    return start, start + arr.nbytes


def check_no_overlap(written, read=()):
    """Check that no written array shares memory with any other array given.

    ``written`` and ``read`` are sequences of ``(name, array)``; all arrays are C-contiguous (the
    caller checked), so each occupies exactly the bytes ``[data, data + nbytes)`` and an interval
    test is exact. Two read-only arrays may overlap (the same gradient twice is harmless).
    """
    if len(written) + len(read) <= 4:
        # One array-level update: pairwise np.may_share_memory (~0.2 us a pair) is cheapest.
        for i, (name_i, a_i) in enumerate(written):
            for name_j, a_j in written[i + 1:]:
                if np.may_share_memory(a_i, a_j):
                    _raise_overlap(name_i, name_j, True)
            for name_j, a_j in read:
                if np.may_share_memory(a_i, a_j):
                    _raise_overlap(name_i, name_j, True)
        return
    # Many arrays (a dictionary of layers). Arrays that own their memory never overlap unless
    # they are the same object, so when every array owns its data an identity test is exact
    # (~2 us for 24 arrays, against ~40 us for the interval sweep below: __array_interface__
    # costs ~1.4 us an array).
    if all(arr.flags.owndata for _, arr in written) and all(
            arr.flags.owndata for _, arr in read):
        seen = {}
        for name, arr in written:
            other = seen.setdefault(id(arr), name)
            if other is not name:
                _raise_overlap(other, name, True)
        for name, arr in read:
            other = seen.get(id(arr))
            if other is not None:
                _raise_overlap(other, name, True)
        return
    items = [(name, arr, True) for name, arr in written]
    items += [(name, arr, False) for name, arr in read]
    intervals = []
    for name, arr, w in items:
        if arr.nbytes:
            start, stop = _extent(arr)
            intervals.append((start, stop, name, w))
    intervals.sort(key=lambda iv: iv[0])
    active = []  # intervals that may still overlap later ones
    for start, stop, name, w in intervals:
        active = [iv for iv in active if iv[1] > start]
        for a_start, a_stop, a_name, a_w in active:
            if w or a_w:
                _raise_overlap(a_name, name, a_w)
        active.append((start, stop, name, w))


def _raise_overlap(first, second, first_written):
    written, other = (first, second) if first_written else (second, first)
    raise ValueError(
        f"{written} shares memory with {other}; {written} is updated in place, so every array "
        f"must be a separate buffer (pass a copy, e.g. {other}.copy())")


def _all_writeable(arrays):
    return all(arr.flags.writeable for arr in arrays)


all_writeable = _c_all_writeable or _all_writeable
"""Whether every array of a list is writeable (compiled: ~0.1 us for Adam's 18 arrays)."""


def check_still_writeable(arrays, names):
    """Check that none of an optimizer's own arrays (``arrays``, a list, named by ``names``)
    was made read-only after it was built: ``param.flags.writeable = False`` must stop the
    kernels, which write through views taken when the optimizer was built. A step calls it
    only when :data:`all_writeable` says no, to word the error."""
    for name, arr in zip(names, arrays):
        if not arr.flags.writeable:
            raise ValueError(
                f"{name} was made read-only after the optimizer was built, and a step writes it "
                f"in place; nothing was updated (the step count included). Make it writeable "
                f"again ({name}.flags.writeable = True) or build the optimizer over writeable "
                f"arrays")


def _fast_valid(written, read):
    """True when every array is a C-contiguous ndarray with exactly ``written[0]``'s float dtype
    and shape, and the written ones are writeable: the common case, checked in ~1 us.

    Identity tests only (``dtype is``): an equal but distinct dtype object falls through to the
    detailed checks, which accept it. Any ``False`` means "look closer", never "invalid".
    """
    ref = written[0][1]
    if type(ref) is not np.ndarray:
        return False
    dtype, shape = ref.dtype, ref.shape
    if dtype is not _F32 and dtype is not _F64:
        return False
    for _, arr in written:
        if type(arr) is not np.ndarray or arr.dtype is not dtype or arr.shape != shape:
            return False
        flags = arr.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    for _, arr in read:
        if (type(arr) is not np.ndarray or arr.dtype is not dtype or arr.shape != shape
                or not arr.flags.c_contiguous):
            return False
    return True


def check_update_layout(written, read):
    """Check dtype, shape, contiguity and writeability (not overlap) of one update's arrays."""
    if not _fast_valid(written, read):
        ref_name, ref = written[0]
        check_float_array(ref, ref_name, writeable=True)
        for name, arr in written[1:]:
            check_float_array(arr, name, writeable=True)
            check_same_layout(arr, name, ref, ref_name)
        for name, arr in read:
            check_float_array(arr, name, writeable=False)
            check_same_layout(arr, name, ref, ref_name)


def check_update_arrays(written, read):
    """Validate the arrays of one update: :func:`check_update_layout`, then no overlap.

    Parameters
    ----------
    written : sequence of (str, ndarray)
        Arrays updated in place, the parameter first: it fixes the expected dtype and shape.
    read : sequence of (str, ndarray)
        Arrays only read (the gradient); they may be read-only.
    """
    if _c_update_arrays_ok is not None and _c_update_arrays_ok(written, read):
        return
    check_update_layout(written, read)
    check_no_overlap(written, read)


# --- 16-bit parameters (docs/contract.md §14): master copies, loss scaling ---------------------

_HALF_FORMS = "np.float16, ml_dtypes.bfloat16, or uint16 holding bfloat16 bits"


def check_master_dtype(value, name="master_dtype"):
    """Return None or ``np.dtype(np.float32)``: the dtype of the master copies an optimizer
    keeps for 16-bit parameters (the kernels step float32 masters only)."""
    if value is None:
        return None
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt != _F32:
        raise TypeError(f"{name} must be None or np.float32 (the dtype of the master copies of "
                        f"16-bit parameters; fastopt keeps float32 masters only), got {value!r}")
    return _F32


def half_params_need_master(name, dtype):
    """The ``TypeError`` of a 16-bit parameter given to an optimizer without a master copy."""
    return TypeError(
        f"{name} has dtype {dtype}, a 16-bit format, and this optimizer was built without "
        f"master_dtype: 16-bit state could not hold small updates (in bfloat16, 256 + 1 == 256: "
        f"a step below half a unit in the last place is lost at every step). Pass "
        f"master_dtype=np.float32: the optimizer then keeps a float32 master copy and float32 "
        f"state, and rewrites {name} as the master rounded after each step")


def check_param_array(arr, name, master_dtype):
    """Check one parameter of an optimizer: a float32/float64 array (:func:`check_float_array`)
    when ``master_dtype`` is None, a 16-bit one (``_half.kind_of``) when it is float32. Returns
    the 16-bit kind, or None."""
    kind = _half.kind_of(arr.dtype) if isinstance(arr, np.ndarray) else None
    if master_dtype is None:
        if kind is not None:
            raise half_params_need_master(name, arr.dtype)
        check_float_array(arr, name, writeable=True)
        return None
    if kind is None:
        if isinstance(arr, np.ndarray) and arr.dtype in FLOAT_DTYPES:
            raise TypeError(
                f"{name} has dtype {arr.dtype}; master_dtype=np.float32 is for 16-bit "
                f"parameters ({_HALF_FORMS}), which the optimizer steps through float32 "
                f"copies. A {arr.dtype} parameter is its own master: build the optimizer "
                f"without master_dtype (and a separate one, with master_dtype=np.float32, for "
                f"the 16-bit arrays)")
        raise TypeError(
            f"{name} must be a numpy.ndarray of a 16-bit float format ({_HALF_FORMS}) when "
            f"master_dtype=np.float32, got "
            f"{f'dtype {arr.dtype}' if isinstance(arr, np.ndarray) else _describe(arr)}")
    check_plain_array(arr, name)
    _check_contiguous_writeable(arr, name, True)
    return kind


def _check_contiguous_writeable(arr, name, writeable):
    flags = arr.flags
    if not flags.c_contiguous:
        raise ValueError(
            f"{name} is not C-contiguous; fastopt updates arrays in place and never copies "
            f"silently: make a contiguous array once with np.ascontiguousarray({name}) and keep it")
    if writeable and not flags.writeable:
        raise ValueError(
            f"{name} is read-only but is updated in place; pass a writeable array "
            f"(e.g. {name}.copy())")


def check_half_grad(grad, name, param, param_name):
    """Check the gradient of a 16-bit parameter: an ndarray of the same 16-bit format (for
    bfloat16, ``ml_dtypes.bfloat16`` or its ``uint16`` bits), the same shape, C-contiguous."""
    kind = _half.kind_of(param.dtype)
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of {kind} (the format of {param_name}), "
                        f"got {_describe(grad)}")
    check_plain_array(grad, name)
    if _half.kind_of(grad.dtype) != kind:
        forms = ("ml_dtypes.bfloat16 or its uint16 bits" if kind == _half.BF16
                 else "np.float16")
        raise TypeError(
            f"{name} has dtype {grad.dtype}; {param_name} is {kind}, stepped through a float32 "
            f"master, and its gradient must be {kind} too ({forms}): pass the gradient in the "
            f"parameter's format, as autodiff of a {kind} model gives it (fastopt does not "
            f"round a wider gradient for you: that rounding would be a silent choice)")
    if grad.shape != param.shape:
        raise ValueError(
            f"{name} has shape {grad.shape}; expected {param.shape}, the shape of {param_name}")
    _check_contiguous_writeable(grad, name, False)


def check_loss_scale(value, name="grad_scale"):
    """Return the loss scale ``value`` as a Python float; it must be finite and > 0."""
    return check_positive(value, name)


def check_found_inf(value, name="found_inf"):
    """Return ``value`` as a bool: True when non-zero. It must be a bool, a real number, or a
    0-d or one-element ndarray of bools or numbers (what a loss scaler hands over); NaN counts
    as found."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a bool, a number, or a 0-d/one-element array of "
                            f"numbers, got an array of dtype {value.dtype} and shape "
                            f"{value.shape}")
        value = value.reshape(()).item()
    elif isinstance(value, numbers.Real):
        value = float(value) if not isinstance(value, numbers.Integral) else int(value)
    else:
        raise TypeError(f"{name} must be a bool, a number, or a 0-d/one-element array of "
                        f"numbers (non-zero: skip the step), got {_describe(value)}")
    return value != 0


def mixed_checkpoint_mismatch(what, cls_name, theirs, ours):
    """The ``ValueError`` of a checkpoint whose master dtype is not the optimizer's."""
    def describe(dt):
        return ("no master copy (master_dtype=None)" if dt is None
                else f"float32 master weights (master_dtype={dt})")
    return ValueError(
        f"{what} holds {describe(theirs)}, and this {cls_name} has {describe(ours)}; a "
        f"checkpoint loads into an optimizer built like the one that wrote it: build this one "
        f"with master_dtype={'None' if theirs is None else 'np.float32'}")


def distributed_master_refused():
    """The error of a DistributedOptimizer asked for 16-bit parameters."""
    return TypeError(
        "fastopt.distributed.DistributedOptimizer does not take 16-bit parameters nor "
        "master_dtype (float32 masters): its reductions and fingerprints are of float32/float64 "
        "packed buffers. Train a 16-bit model with a local optimizer (fastopt.Adam(..., "
        "master_dtype=np.float32)), or pack the distributed parameters as float32")


# --- per-rule argument sets: both implementations call these first ----------------------------

def _written_state(written, name, array):
    """Add an optional state array to the written ones (None: the option is off)."""
    if array is not None:
        written.append((name, array))


def sgd_args(param, grad, lr, weight_decay, maximize):
    """Validate ``sgd_update``'s arguments; return ``(lr, weight_decay, maximize)``."""
    check_update_arrays((("param", param),), (("grad", grad),))
    return (check_lr(lr), check_nonnegative(weight_decay, "weight_decay"),
            check_bool(maximize, "maximize"))


def momentum_args(param, grad, velocity, lr, beta, nesterov, weight_decay, maximize):
    """Validate ``momentum_update``'s arguments; return the scalars in signature order."""
    check_update_arrays((("param", param), ("velocity", velocity)), (("grad", grad),))
    return (check_lr(lr), check_beta(beta), check_bool(nesterov, "nesterov"),
            check_nonnegative(weight_decay, "weight_decay"), check_bool(maximize, "maximize"))


def rmsprop_args(param, grad, sq_avg, lr, beta, eps, grad_avg, momentum_buffer, momentum,
                 weight_decay, maximize):
    """Validate ``rmsprop_update``'s arguments; return ``(lr, beta, eps, momentum,
    weight_decay, maximize)``. ``grad_avg`` (centered) and ``momentum_buffer`` are checked like
    ``sq_avg`` when given; ``momentum > 0`` needs a ``momentum_buffer``."""
    written = [("param", param), ("sq_avg", sq_avg)]
    _written_state(written, "grad_avg", grad_avg)
    _written_state(written, "momentum_buffer", momentum_buffer)
    check_update_arrays(written, (("grad", grad),))
    momentum = check_nonnegative(momentum, "momentum")
    if momentum > 0 and momentum_buffer is None:
        raise ValueError(f"momentum={momentum!r} needs a momentum_buffer: pass "
                         f"momentum_buffer=np.zeros_like(param) and keep it between steps")
    return (check_lr(lr), check_beta(beta), check_eps(eps), momentum,
            check_nonnegative(weight_decay, "weight_decay"), check_bool(maximize, "maximize"))


def adam_args(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, v_max,
              maximize):
    """Validate ``adam_update``'s arguments; return ``(t, lr, beta1, beta2, eps, weight_decay,
    decoupled, maximize)``: ``t`` a Python int, the rest Python floats and bools. ``v_max``
    (AMSGrad) is checked like ``m`` and ``v`` when given."""
    written = [("param", param), ("m", m), ("v", v)]
    _written_state(written, "v_max", v_max)
    check_update_arrays(written, (("grad", grad),))
    return (check_step(t), check_lr(lr), check_beta(beta1, "beta1"), check_beta(beta2, "beta2"),
            check_eps(eps), check_nonnegative(weight_decay, "weight_decay"),
            check_bool(decoupled, "decoupled"), check_bool(maximize, "maximize"))


def adagrad_args(param, grad, sum_sq, t, lr, lr_decay, eps, weight_decay, maximize):
    """Validate ``adagrad_update``'s arguments; return ``(t, lr, lr_decay, eps, weight_decay,
    maximize)``."""
    check_update_arrays((("param", param), ("sum_sq", sum_sq)), (("grad", grad),))
    return (check_step(t), check_lr(lr), check_nonnegative(lr_decay, "lr_decay"),
            check_eps(eps), check_nonnegative(weight_decay, "weight_decay"),
            check_bool(maximize, "maximize"))


def check_sgd_momentum(momentum, dampening, nesterov):
    """torch's rule for SGD: Nesterov momentum needs ``momentum > 0`` and ``dampening == 0``."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, got "
                         f"momentum={momentum!r}, dampening={dampening!r}")


def clip_args(grads, max_norm, error_if_nonfinite):
    """Validate ``clip_grad_norm``'s arguments; return ``(names_and_arrays, max_norm,
    error_if_nonfinite)``. Each gradient is scaled in place, so each must be a writeable
    C-contiguous float array sharing no memory with another (it would be scaled twice)."""
    if hasattr(grads, "keys") and hasattr(grads, "__getitem__"):
        items = [(f"grads[{k!r}]", grads[k]) for k in grads.keys()]
    elif isinstance(grads, (list, tuple)):
        items = [(f"grads[{i}]", g) for i, g in enumerate(grads)]
    elif isinstance(grads, np.ndarray):
        items = [("grads", grads)]
    else:
        raise TypeError(f"grads must be an array, a dict or a list of arrays, got "
                        f"{_describe(grads)}")
    for name, g in items:
        check_float_array(g, name, writeable=True)
    check_no_overlap(items)
    return (items, check_nonnegative(max_norm, "max_norm"),
            check_bool(error_if_nonfinite, "error_if_nonfinite"))


def ewa_args(x, beta, bias_correction, out):
    """Validate ``ewa``'s arguments; return ``(x, beta, bias_correction, out)``.

    ``x`` may be any 1-D float32/float64 ndarray (strided too: it is only read) or a list/tuple
    of numbers, converted to float64. ``out`` is allocated when None; otherwise it must be a
    writeable 1-D array of ``x``'s dtype and length, and may be ``x`` itself (in-place
    smoothing is safe: element k is read before it is written) but must not partly overlap it.
    """
    if isinstance(x, (list, tuple)):
        # Real numbers only: np.asarray(["1.5"], dtype=np.float64) would parse the strings.
        try:
            given = np.asarray(x)
        except (TypeError, ValueError):
            raise TypeError("x must be a 1-D float array or a sequence of numbers") from None
        if given.dtype.kind not in "biuf" and not (
                given.dtype.kind == "O" and all(isinstance(v, numbers.Real) for v in x)):
            raise TypeError("x must be a 1-D float array or a sequence of numbers")
        try:
            x = given.astype(np.float64)
        except OverflowError:  # an int beyond the largest double
            raise ValueError("x holds an integer too large for a float (|x| < 1.8e308); pass "
                             "finite real numbers") from None
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a 1-D numpy.ndarray of float32 or float64 (or a list of "
                        f"numbers), got {_describe(x)}")
    check_plain_array(x, "x")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; expected float32 or float64 "
                        f"(convert it with x.astype(np.float64))")
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}; smooth one series at a time "
                         f"(e.g. x.ravel() or a row x[i])")
    beta = check_beta(beta, "beta")
    bias_correction = check_bool(bias_correction, "bias_correction")
    if out is None:
        out = np.empty(x.shape, x.dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray or None, got {_describe(out)}")
        check_plain_array(out, "out")
        check_same_layout(out, "out", x, "x")
        if not out.flags.writeable:
            raise ValueError("out is read-only; pass a writeable array or out=None")
        same_view = (out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
                     and out.strides == x.strides)
        if not same_view and np.shares_memory(out, x):
            raise ValueError("out partly overlaps x; pass out=x itself (in-place smoothing) "
                             "or a separate array")
    return x, beta, bias_correction, out


# --- mini-batches -----------------------------------------------------------------------------

def check_axis(axis):
    """Return the example axis of 2-D data: 0 (one example per row) or 1 (per column)."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be 0 or 1, got {_describe(axis)}")
    axis = operator.index(axis)
    if axis not in (0, 1, -1, -2):
        raise ValueError(f"axis must be 0 (one example per row) or 1 (one example per column), "
                         f"got {axis}")
    return axis % 2


def _check_data_array(arr, name):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {_describe(arr)}; convert it once "
                        f"with np.asarray({name})")
    check_plain_array(arr, name)
    if arr.dtype.hasobject:
        raise TypeError(f"{name} has dtype {arr.dtype}; mini-batches copy raw values, so object "
                        f"arrays are not supported (convert to a numeric or bool dtype)")


def minibatch_data(X, Y, axis):
    """Validate data for mini-batching; return the number of examples ``m``.

    ``X`` is 2-D with its examples along ``axis``. ``Y`` is None, 1-D with ``m`` entries, or 2-D
    with ``m`` examples along the same axis. Any dtype but object; any strides (only read).
    """
    _check_data_array(X, "X")
    if X.ndim != 2:
        layout = "(features, examples)" if axis == 1 else "(examples, features)"
        raise ValueError(f"X must be 2-D {layout}, got shape {X.shape}")
    m = X.shape[axis]
    if m == 0:
        raise ValueError(f"X has no examples (shape {X.shape}, examples along axis {axis}); "
                         f"there is nothing to batch")
    if Y is not None:
        _check_data_array(Y, "Y")
        if Y.ndim not in (1, 2):
            raise ValueError(f"Y must be 1-D or 2-D, got shape {Y.shape}")
        m_y = Y.shape[0] if Y.ndim == 1 else Y.shape[axis]
        if m_y != m:
            raise ValueError(f"Y has {m_y} examples (shape {Y.shape}); expected {m}, the number "
                             f"of examples in X (shape {X.shape}, axis {axis})")
    return m


def check_legacy_seed(seed):
    """``seed`` for ``np.random.seed``: None or an integer in [0, 2**32)."""
    if seed is None:
        return None
    seed = check_count(seed, "seed", 0, maximum=None)
    if seed >= 2 ** 32:
        raise ValueError(f"seed must be < 2**32 (NumPy's legacy generator), got {seed}")
    return seed


def check_rng(seed, name="seed"):
    """Return a ``np.random.Generator`` for ``seed``: whatever ``np.random.default_rng`` takes
    (None, an int >= 0, a sequence of them, a ``SeedSequence``, a ``BitGenerator``), or a
    Generator itself (used as it is, and advanced)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    if isinstance(seed, (numbers.Integral, bool)):
        return np.random.default_rng(check_count(seed, name, 0, maximum=None))  # entropy: any size
    what = (f"{name} must be an integer >= 0, a sequence of them, a numpy.random.SeedSequence, "
            f"BitGenerator or Generator, or None (what np.random.default_rng takes)")
    if isinstance(seed, (str, bytes, float, complex)) or (
            isinstance(seed, np.ndarray) and seed.dtype.kind not in "iu"):
        raise TypeError(f"{what}; got {_describe(seed)}")
    try:
        return np.random.default_rng(seed)
    except TypeError:
        raise TypeError(f"{what}; got {_describe(seed)} {seed!r:.80}") from None
    except ValueError as exc:  # a negative entry, an empty sequence
        raise ValueError(f"{what}; got {seed!r:.80} ({exc})") from None


def check_rank_world(rank, world):
    """``(rank, world)`` of a data-parallel split: ``world`` an integer >= 1, ``rank`` an
    integer in ``[0, world)`` (docs/contract.md §9)."""
    world = check_count(world, "world")
    rank = check_count(rank, "rank", 0)
    if rank >= world:
        raise ValueError(f"rank must be < world ({world}): ranks are numbered 0..{world - 1}, "
                         f"got rank={rank}")
    return rank, world


def check_generator(rng, name="rng"):
    """Return ``rng``; it must be a ``numpy.random.Generator`` (assigned, not a seed)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, got {_describe(rng)}; to "
                        f"reseed, assign np.random.default_rng(seed)")
    return rng


def read_only(owner, name, hint):
    """Raise the ``AttributeError`` of assigning the read-only attribute ``name`` of ``owner``."""
    raise AttributeError(f"{name} is read-only on {type(owner).__name__}: {hint}")


def read_only_setter(name, hint):
    """A property setter that raises :func:`read_only`'s error (marked, so that the
    ``AttributeError`` of a misspelled name does not list ``name`` as assignable)."""
    def fset(owner, value):
        read_only(owner, name, hint)
    fset.read_only = True
    return fset


# --- attributes: a misspelled name raises instead of being stored and ignored -----------------

def _public_names(cls):
    """Every public name defined on ``cls`` or its bases (methods, properties, constants)."""
    return {name for klass in cls.__mro__ if klass is not object for name in vars(klass)
            if not name.startswith("_")}


def assignable_names(cls):
    """The public names an instance of ``cls`` may be assigned: its data descriptors that have a
    setter (validated hyperparameters, properties), and the names of every ``_settable`` set
    along the MRO. Computed once per class."""
    names = cls.__dict__.get("_assignable_names")
    if names is None:
        found, seen = set(), set()
        for klass in cls.__mro__:  # the most derived definition of a name decides
            found.update(klass.__dict__.get("_settable", ()))
            for name, value in vars(klass).items():
                if name.startswith("_") or name in seen:
                    continue
                seen.add(name)
                if isinstance(value, property):
                    if value.fset is not None:
                        found.add(name)
                elif hasattr(type(value), "__set__"):
                    found.add(name)
        names = frozenset(found)
        type.__setattr__(cls, "_assignable_names", names)
    return names


def refuse_attribute(owner, name, hints=None, where=None):
    """Raise the ``AttributeError`` of assigning ``name``, which ``owner``'s class does not
    let be assigned: a read-only property, a method, or a name it does not have (with the
    closest one, by ``difflib``, and the list of those that may be assigned, or ``where``)."""
    cls = type(owner)
    kind = cls.__name__
    if where is None:
        # Not listed: those fixed once built (an optimizer's amsgrad), whose setter explains.
        settable = sorted(n for n in assignable_names(cls)
                          if not _fixed(getattr(cls, n, None)))
        where = (f"the attributes that can be assigned are {', '.join(settable)}" if settable
                 else f"a {kind} has no attribute that can be assigned")
    where = f"; {where}"
    for klass in cls.__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            what = ("a read-only property" if isinstance(value, property)
                    else "a method" if callable(value) else "a class attribute")
            raise AttributeError(f"{name} is {what} of {kind} and cannot be assigned{where}")
    hint = (hints or {}).get(name)
    if hint is None:
        known = _public_names(cls) | assignable_names(cls) | {
            n for n in getattr(owner, "__dict__", ()) if not n.startswith("_")}
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
    else:
        hint = f"{hint}; "
    raise AttributeError(f"{kind} has no attribute {name!r}: {hint}assigning it would change "
                         f"nothing{where}")


def _fixed(descriptor):
    """Whether an assignable-looking descriptor only ever refuses: a read-only property of
    :func:`read_only_setter`, or a hyperparameter fixed once built."""
    if isinstance(descriptor, property):
        return getattr(descriptor.fset, "read_only", False)
    return getattr(descriptor, "fixed", False)


class StrictAttributes:
    """Mixin for the public objects: assigning a public name the class does not define raises
    ``AttributeError`` (``opt.learning_rate = 0.5`` would otherwise be stored and ignored), and
    public attributes cannot be deleted.

    Allowed: private names (a leading underscore: the implementation's own state), and the
    names of :func:`assignable_names`, whose descriptors validate the value themselves. To allow
    a plain public attribute, a class lists it in ``_settable``; ``_attribute_hints`` maps a
    wrong name to what to use instead (``"seed"``: assign ``rng``), merged along the MRO. Costs
    one Python call per assignment (~0.1 us), private names first.
    """

    __slots__ = ()
    _settable = frozenset()
    _attribute_hints = {}

    def __setattr__(self, name, value):
        if name[:1] != "_" and name not in assignable_names(type(self)):
            refuse_attribute(self, name, _hints(type(self)))
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name[:1] != "_":
            raise AttributeError(f"{name} cannot be deleted from a {type(self).__name__}: its "
                                 f"attributes are fixed (assign a new value where allowed)")
        object.__delattr__(self, name)


def _hints(cls):
    hints = {}
    for klass in reversed(cls.__mro__):
        hints.update(klass.__dict__.get("_attribute_hints", {}))
    return hints


# The gathers' own checks (docs/contract.md §5): the second line behind the checks above. The
# Cython kernels test the same conditions in C, in O(1) plus one pass over the indices, and call
# these only to word the error; the reference calls them first. Every failure is a ValueError:
# the callers in fastopt never pass a wrong kind of object, so reaching one is a size mismatch.

_INTP = np.dtype(np.intp)


def _gather_src(src):
    if not isinstance(src, np.ndarray):
        raise ValueError(f"src must be a numpy.ndarray, got {_describe(src)}")
    if src.ndim != 2:
        raise ValueError(f"src must be 2-D, got shape {src.shape}")


def _gather_index(index, name):
    if not isinstance(index, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray of intp, got {_describe(index)}")
    if index.dtype != _INTP:
        raise ValueError(f"{name} has dtype {index.dtype}; expected intp (np.intp)")
    if index.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {index.shape}")
    if not index.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous; pass np.ascontiguousarray({name})")


def _gather_out(out, name, src, shape, why):
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {_describe(out)}")
    if out.dtype != src.dtype:
        raise ValueError(f"{name} has dtype {out.dtype}; expected {src.dtype}, the dtype of src")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous; the gathers write whole rows")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only; pass a writeable array")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}; expected {shape}, {why}")


def _gather_range(index, name, n, what):
    if index.shape[0]:
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= n:
            raise ValueError(f"{name} holds {high if high >= n else low}; every {what} index "
                             f"must satisfy 0 <= index < {n} (src has {n} {what}s)")


def check_take_rows(src, rows, out):
    """Check the arguments of ``take_rows(src, rows, out)``: ``out[j] = src[rows[j]]``.

    ``src`` is a 2-D ndarray (any strides); ``rows`` a 1-D C-contiguous intp array of indices in
    ``[0, src.shape[0])``; ``out`` a writeable C-contiguous array of ``src``'s dtype and shape
    ``(len(rows), src.shape[1])``. Raises ValueError naming the argument.
    """
    _gather_src(src)
    _gather_index(rows, "rows")
    _gather_out(out, "out", src, (rows.shape[0], src.shape[1]),
                "one row of src per entry of rows")
    _gather_range(rows, "rows", src.shape[0], "row")


def check_columns_into(src, perm, batch, blocks):
    """Check the arguments of ``columns_into(src, perm, batch, blocks)``.

    ``src`` is a 2-D ndarray (any strides); ``perm`` a 1-D C-contiguous intp array of column
    indices in ``[0, src.shape[1])``; ``batch`` an integer >= 1; ``blocks`` a list of
    ``ceil(len(perm) / batch)`` writeable C-contiguous arrays of ``src``'s dtype, block ``k`` of
    shape ``(src.shape[0], min(batch, len(perm) - k*batch))``. Raises ValueError naming the
    argument.
    """
    _gather_src(src)
    _gather_index(perm, "perm")
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)):
        raise ValueError(f"batch must be an integer >= 1, got {_describe(batch)}")
    batch = int(batch)
    if batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch}")
    if not isinstance(blocks, list):
        raise ValueError(f"blocks must be a list of arrays, got {_describe(blocks)}")
    m = perm.shape[0]
    expected = -(-m // batch)
    if len(blocks) != expected:
        raise ValueError(f"blocks has {len(blocks)} blocks; expected {expected} ({m} columns "
                         f"of perm in batches of {batch})")
    for k, block in enumerate(blocks):
        _gather_out(block, f"blocks[{k}]", src, (src.shape[0], min(batch, m - k * batch)),
                    f"the rows of src by the columns of batch {k}")
    _gather_range(perm, "perm", src.shape[1], "column")


# --- the course's dictionaries: the experiment's layer list, an optimizer's dict ---------------

def check_layers_dims(layers_dims, X):
    """Return ``layers_dims`` of :func:`fastopt.lab.model` as a list of ints.

    The assignment's network is fixed at three layers (``forward_propagation`` reads ``W1`` to
    ``W3`` and ends in one sigmoid unit), so the list is ``[n_x, n_1, n_2, 1]`` with ``n_x`` the
    rows of ``X``. Checked before anything is built: otherwise ``[2, 5, 4, 2, 1]`` fails deep
    inside the first update (``grads has no entry 'dW4'``).
    """
    example = "[2, 5, 2, 1] for the two-moons data"
    if isinstance(layers_dims, (str, bytes)) or not hasattr(layers_dims, "__len__"):
        raise TypeError(f"layers_dims must be a list of four layer sizes [n_x, n_1, n_2, 1], "
                        f"e.g. {example}; got {_describe(layers_dims)}")
    sizes = list(layers_dims)
    if len(sizes) != 4:
        raise ValueError(
            f"layers_dims must hold four sizes [n_x, n_1, n_2, 1], e.g. {example}: the "
            f"assignment's model is a three-layer network (forward_propagation uses W1, W2 and "
            f"W3), got {len(sizes)} sizes {sizes}")
    for i, n in enumerate(sizes):
        check_count(n, f"layers_dims[{i}]")
    sizes = [operator.index(n) for n in sizes]
    if sizes[-1] != 1:
        raise ValueError(f"layers_dims[3] must be 1 (one sigmoid output unit for labels 0/1), "
                         f"got {sizes[-1]}")
    rows = getattr(X, "shape", (None,))
    if len(rows) != 2:
        raise ValueError(f"X must be a 2-D array (n_x, m), one example per column, got "
                         f"{_describe(X)} of shape {getattr(X, 'shape', None)}")
    if sizes[0] != rows[0]:
        raise ValueError(f"layers_dims[0] must be the number of rows of X (its features), "
                         f"{rows[0]}, got {sizes[0]}")
    return sizes


def course_grads_hint(keys, grads):
    """A sentence for the error of an optimizer's ``step`` given the course's gradient dict
    (``dW1, db1, ...`` for parameters ``W1, b1, ...``, plus ``dz1``, ``da1``, ...), or "".

    Those dicts are what ``fastopt.lab``'s functions take; an optimizer object takes gradients
    keyed like its parameters.
    """
    missing = [k for k in keys if k not in grads]
    if not missing or not all(isinstance(k, str) and "d" + k in grads for k in missing):
        return ""
    return (f"; these are the course's names (d{missing[0]} for {missing[0]}): pass "
            f"{{k: grads['d' + k] for k in params}}, or use fastopt.lab (e.g. "
            f"lab.update_parameters_with_adam(parameters, grads, v, s, t)), whose functions take "
            f"the course's dictionaries as they are")


def rebound_entry(key, cls_name):
    """Raise the ``ValueError`` of a parameter dict whose entry ``key`` no longer holds the
    array the optimizer updates (``params["W1"] = params["W1"] - ...``)."""
    raise ValueError(
        f"params[{key!r}] is no longer the array this {cls_name} updates: the dict entry was "
        f"rebound (e.g. params[{key!r}] = params[{key!r}] - ...) or removed after the optimizer "
        f"was built, so its steps would go to an array you no longer see. The optimizer "
        f"updates its arrays in place: write into them (params[{key!r}][...] = new, or -=), or "
        f"build a new {cls_name} on the new arrays")


@contextlib.contextmanager
def held(lock, error):
    """Hold ``lock`` for the block, or raise ``error()`` at once if another thread holds it
    (one object used from one thread at a time: a second thread is told, not made to wait).
    Optimizers and ``MiniBatches`` guard their steps and gathers with it; their per-batch
    loops take the lock inline, which costs ~0.4 us a batch against ~3 us through this."""
    if not lock.acquire(False):
        raise error()
    try:
        yield
    finally:
        lock.release()


# --- conformance report (fastopt.testing.check_update and its adapters) -----------------------

def check_conform_rule(rule, rules):
    """The fastopt rule an update function is checked against, in its canonical spelling."""
    if rule is None:
        raise TypeError(f"rule is missing: say which of fastopt's rules the function computes "
                        f"({', '.join(rules)}), e.g. check_update(fn, 'Adam')")
    for r in rules:
        if isinstance(rule, str) and rule.lower() == r.lower():
            return r
    raise ValueError(f"rule must be one of {', '.join(rules)} (any letter case), got {rule!r}")


def check_conform_keywords(keywords, rule, defaults, what):
    """Refuse hyperparameter names that ``fastopt.reference.<rule>`` does not take (``defaults``:
    its keywords; ``what``: the argument that named them, for the message)."""
    unknown = sorted(set(keywords) - set(defaults))
    if unknown:
        raise ValueError(f"{what} has {unknown}, which fastopt.reference.{rule} does not take; "
                         f"its keywords are {sorted(defaults)}")


def check_conform_dtypes(dtypes, allowed):
    """``check_update``'s ``dtypes``: one dtype or a sequence of them, each in ``allowed``
    (numpy dtypes); returned as a list of numpy dtypes without repeats. A single string is one
    dtype (iterating ``"float32"`` would give its characters)."""
    names = " or ".join(d.name for d in allowed)
    if isinstance(dtypes, (str, type, np.dtype)):
        dtypes = [dtypes]
    try:
        items = list(dtypes)
    except TypeError:
        raise TypeError(f"dtypes must be a dtype or a sequence of dtypes ({names}), got "
                        f"{_describe(dtypes)}") from None
    out = []
    for d in items:
        try:
            dt = None if d is None else np.dtype(d)  # np.dtype(None) would be float64
        except TypeError:
            dt = None
        if dt is None or dt not in allowed:  # (dtype == None is True for float64)
            raise TypeError(f"dtypes must hold {names}, got {d!r}"
                            + (f" ({dt})" if dt is not None and str(dt) != str(d) else ""))
        if dt not in out:
            out.append(dt)
    return out


def check_conform_cases(cases, case_type):
    """``check_update``'s ``cases``: one ``Case`` or a sequence of them, as a list."""
    hint = "build them with fastopt.testing.trajectory(...) or fastopt.testing.cases(...)"
    if isinstance(cases, case_type):
        return [cases]
    if isinstance(cases, (str, bytes)):
        items = None
    else:
        try:
            items = list(cases)
        except TypeError:
            items = None
    if items is None:
        raise TypeError(f"cases must be a Case or a sequence of Cases ({hint}), got "
                        f"{_describe(cases)}")
    for i, c in enumerate(items):
        if not isinstance(c, case_type):
            raise TypeError(f"cases[{i}] is {_describe(c)}, not a Case: {hint}")
    return items


def check_torch_momentum_form(momentum, dampening):
    """torch's SGD computes the course's Momentum only with ``dampening == momentum``."""
    if momentum != dampening:
        raise ValueError(f"torch.optim.SGD(momentum={momentum!r}, dampening={dampening!r}) is "
                         f"the course's Momentum only with dampening equal to momentum; give "
                         f"momentum alone, or compare with rule='SGD'")


# --- fastopt.torch: torch.optim's words, fastopt's ranges --------------------------------------
# fastopt.torch's constructors refuse what torch.optim's refuse with torch's own words ("Invalid
# learning rate: -1"), so that code matching those messages keeps working; where fastopt is
# stricter than torch (a finite lr, eps > 0, RMSprop's alpha < 1: the checks of the optimizer
# objects above), the message adds why. ``where`` names the parameter group ("param_groups[1]")
# when the value comes from a group added, loaded or changed after construction. No torch import
# here: the callers in fastopt/torch/ turn tensors into numbers and names first.

def _torch_where(where):
    return f" (in {where})" if where else ""


def _torch_number(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}"
                        f"{_torch_where(where)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be within the range of a float (|x| < 1.8e308), got "
                         f"{_abbreviated(value)}{_torch_where(where)}") from None


def _torch_finite_nonnegative(value, name, invalid, where):
    """``value`` as a Python float, finite and >= 0. A negative or NaN value gets torch's own
    message, ``"<invalid>: <value>"`` (tests/pytorch/test_torch_errors.py compares it with
    torch's); inf gets the same words and fastopt's reason (the kernels would spread it
    silently, where torch accepts it)."""
    number = _torch_number(value, name, where)
    if not 0.0 <= number:
        raise ValueError(f"{invalid}: {value}{_torch_where(where)}")
    if number == math.inf:
        raise ValueError(f"{invalid}: {value}{_torch_where(where)}: fastopt needs a finite "
                         f"{name} >= 0")
    return number


def torch_lr(lr, where=""):
    """``lr`` as a Python float: torch's "Invalid learning rate" for a negative or NaN value,
    and fastopt's own refusal of inf (the kernels would spread it silently)."""
    return _torch_finite_nonnegative(lr, "lr", "Invalid learning rate", where)


def torch_nonnegative(value, name, where=""):
    """A finite value >= 0 (``weight_decay``, ``momentum``, ``dampening``, ``lr_decay``,
    ``initial_accumulator_value``): torch's "Invalid <name> value: ..."."""
    return _torch_finite_nonnegative(value, name, f"Invalid {name} value", where)


def torch_eps(eps, where=""):
    """``eps`` finite and > 0 (torch accepts 0; fastopt's objects do not)."""
    number = _torch_number(eps, "eps", where)
    if not 0.0 <= number:
        raise ValueError(f"Invalid epsilon value: {eps}{_torch_where(where)}")
    if not 0.0 < number < math.inf:
        raise ValueError(f"Invalid epsilon value: {eps}{_torch_where(where)}: fastopt needs a "
                         f"finite eps > 0 (torch accepts 0; fastopt's optimizers do not)")
    return number


def torch_betas(betas, where=""):
    """Adam's ``betas``, a pair of numbers in [0, 1): torch's "Invalid beta parameter at index
    i"."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {_describe(betas)} "
                        f"{betas!r}{_torch_where(where)}")
    out = []
    for index, beta in enumerate(betas):
        number = _torch_number(beta, f"betas[{index}]", where)
        if not 0.0 <= number < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}"
                             f"{_torch_where(where)}")
        out.append(number)
    return tuple(out)


def torch_alpha(alpha, where=""):
    """RMSprop's ``alpha`` (fastopt's ``beta``) in [0, 1): torch accepts alpha >= 1."""
    number = _torch_number(alpha, "alpha", where)
    if not 0.0 <= number:
        raise ValueError(f"Invalid alpha value: {alpha}{_torch_where(where)}")
    if not number < 1.0:
        raise ValueError(f"Invalid alpha value: {alpha}{_torch_where(where)}: fastopt needs "
                         f"0 <= alpha < 1 (the smoothing constant of the squared average)")
    return number


def torch_flag(value, name, where=""):
    """A bool option (``amsgrad``, ``maximize``, ``nesterov``, ``centered``, ...)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}"
                        f"{_torch_where(where)}")
    return bool(value)


def torch_nesterov(momentum, dampening, nesterov, where=""):
    """torch's SGD rule, in torch's words."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"Nesterov momentum requires a momentum and zero dampening"
                         f"{_torch_where(where)}")


TORCH_MODES = {
    # option: (accepted values, why the others are refused)
    "foreach": ((None, False, True), "fastopt steps each parameter group in one fused kernel "
                                     "call whatever foreach says"),
    "fused": ((None, False, True), "fastopt's step is always one fused kernel call"),
    "capturable": ((False,), "capturable=True is for CUDA graph capture; fastopt.torch steps CPU "
                             "tensors only"),
    "differentiable": ((False,), "fastopt's kernels write the parameters in place outside "
                                 "autograd, so the step cannot be differentiated"),
}


def torch_mode(name, value, where=""):
    """``foreach``/``fused``/``capturable``/``differentiable``: the values that mean "CPU, not
    differentiable" are accepted (and stored, so that state dicts go back to torch), the others
    refused with why."""
    accepted, why = TORCH_MODES[name]
    if not any(value is a for a in accepted):
        raise ValueError(f"{name}={value!r} is not supported by fastopt.torch: {why}; use "
                         f"{' or '.join(repr(a) for a in accepted)}{_torch_where(where)}")
    return value


def torch_fused_and_foreach(fused, foreach, where=""):
    if fused and foreach:
        raise RuntimeError(f"`fused` and `foreach` cannot be `True` together."
                           f"{_torch_where(where)}")


def torch_max_grad_norm(value):
    """fastopt.torch's ``max_grad_norm=``: None or a finite value > 0."""
    if value is None:
        return None
    return check_positive(value, "max_grad_norm")


def torch_bad_tensor(what, name, why, error=ValueError):
    """A parameter, gradient or state tensor that fastopt.torch cannot step: ``what`` is
    "parameter", "gradient of" ..., ``name`` says which (group and index, or its name)."""
    raise error(f"{what} {name} {why}")


def torch_amp_scalar(name, value):
    """``optimizer.grad_scale`` / ``optimizer.found_inf`` as torch.amp.GradScaler sets them (a
    1-element float tensor; a real number is taken too, and a bool for ``found_inf``): the
    number, or a refusal before anything is written. ``grad_scale`` must be finite and > 0 (the loss was multiplied by it;
    the step multiplies the gradients by its reciprocal)."""
    if value is None or (isinstance(value, bool) and name == "grad_scale"):
        bad = True
    elif isinstance(value, numbers.Real):
        bad = False
    else:
        numel = getattr(value, "numel", None)
        bad = numel is None or numel() != 1 or value.is_complex()
        if not bad:
            value = value.item()
    if bad:
        shape = getattr(value, "shape", None)
        got = type(value).__name__ + ("" if shape is None else f" of shape {tuple(shape)}")
        raise TypeError(f"optimizer.{name} must be a 1-element tensor or a number (as "
                        f"torch.amp.GradScaler sets it), got {got}: nothing was stepped")
    value = float(value)
    if name == "grad_scale" and not (0.0 < value < math.inf):
        raise ValueError(f"optimizer.grad_scale must be finite and > 0 (the loss scale; the "
                         f"gradients are multiplied by 1/grad_scale), got {value}: nothing was "
                         f"stepped")
    return value


def torch_retied(name, other):
    """A parameter whose ``p.data`` was replaced, after packing, by memory of another parameter
    (``b.weight.data = a.weight.data``): the step would untie them, as packing would."""
    whom = f"parameter {other}" if other is not None else "another parameter's slot"
    raise ValueError(f"parameter {name} and {whom} share storage since the optimizer packed "
                     f"them (p.data replaced by a view of another parameter, or tied weights): "
                     f"fastopt.torch keeps each parameter in its own slot, which would untie "
                     f"them. Tie weights before building the optimizer, as one Parameter")


def torch_shared_memory(name, packed):
    """A parameter in shared memory (``p.is_shared()``): packing would take it out."""
    if packed:
        raise ValueError(f"parameter {name} is in shared memory (share_memory() after this "
                         f"optimizer was built): add_param_group packs every parameter again, "
                         f"into new buffers, which would take it out of shared memory, and "
                         f"other processes would no longer see its updates. Build the "
                         f"optimizer with all its parameter groups before share_memory()")
    raise ValueError(f"parameter {name} is in shared memory (model.share_memory(), or a tensor "
                     f"received from another process): fastopt.torch packs each parameter "
                     f"into a buffer of its own, which would take it out of shared memory, and "
                     f"other processes would no longer see its updates (Hogwild-style "
                     f"training). Use torch.optim for parameters shared between processes, or "
                     f"build the fastopt.torch optimizer before share_memory() (its buffers "
                     f"then move into shared memory) and step it in the forked workers")


def torch_tensor_lr(numel, is_complex, where=""):
    """A tensor ``lr`` that is not one real number."""
    if numel != 1:
        raise ValueError(f"Tensor lr must be 1-element{_torch_where(where)}")
    if is_complex:
        raise TypeError(f"lr must be a real number, got a complex tensor{_torch_where(where)}")
