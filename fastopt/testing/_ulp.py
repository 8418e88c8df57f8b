"""ULP distance and bitwise assertions (re-exported by :mod:`fastopt.testing`)."""
import numpy as np

from .. import _validation as _v


_U64_MAX = 2 ** 64 - 1

_INT_OF = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64,
           np.dtype(np.float16): np.int16}


def _ordered(x):
    """Map floats to integers whose order and differences count representable values."""
    int_type = _INT_OF[x.dtype]
    ints = x.view(int_type).astype(np.int64)
    magnitude = np.int64(np.iinfo(int_type).max)  # every bit but the sign
    # Negative floats are sign-magnitude: flip them so that -0.0 -> 0 and -tiny -> -1.
    return np.where(ints < 0, -(ints & magnitude), ints)


def _check_pair(actual, desired):
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.dtype != desired.dtype:
        raise TypeError(f"dtypes differ: actual is {actual.dtype}, desired is {desired.dtype}")
    if actual.dtype not in _INT_OF:
        raise TypeError(f"expected float16, float32 or float64 arrays, got {actual.dtype}")
    if actual.shape != desired.shape:
        raise ValueError(f"shapes differ: actual is {actual.shape}, desired is {desired.shape}")
    return actual, desired


def ulp_distance(actual, desired):
    """Number of representable floats between two arrays, element by element.

    Parameters
    ----------
    actual, desired : array_like
        Same shape and the same float dtype (float16, float32 or float64).

    Returns
    -------
    ndarray of uint64
        0 where the values are equal (``+0.0`` vs ``-0.0`` included) or both NaN; the largest
        uint64 where exactly one is NaN; otherwise the count of steps from one to the other
        (``inf`` is one step beyond the largest finite value).

    Raises
    ------
    TypeError
        If the dtypes differ or are not floating point.
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import ulp_distance
    >>> ulp_distance(np.float64([0.1 + 0.2]), np.float64([0.3]))
    array([1], dtype=uint64)
    """
    actual, desired = _check_pair(actual, desired)
    a, b = _ordered(actual), _ordered(desired)
    # Subtract in uint64: the wrapped difference is exact whenever the true one is >= 0,
    # where int64 would overflow (float64 values of opposite sign can be 2**64 - 2 steps apart).
    a_u, b_u = a.astype(np.uint64), b.astype(np.uint64)
    dist = np.where(a >= b, a_u - b_u, b_u - a_u)
    nan_a, nan_b = np.isnan(actual), np.isnan(desired)
    dist = np.where(nan_a & nan_b, np.uint64(0), dist)
    dist = np.where(nan_a ^ nan_b, np.iinfo(np.uint64).max, dist)
    return dist.astype(np.uint64)


def _hex_bits(x):
    return "0x" + x.tobytes()[::-1].hex()  # little-endian bytes, shown most significant first


def assert_ulp_equal(actual, desired, max_ulp=0, err_msg=""):
    """Assert that two float arrays are within ``max_ulp`` ULPs everywhere (0: bitwise equal).

    With ``max_ulp=0`` this is the bit-identity contract of fastopt: every element has the same
    bits, except that NaNs only need to be at the same positions. On failure the message gives the
    number of mismatches, the first mismatching index, both values with their bit patterns, their
    ULP distance, and the largest distance.

    Parameters
    ----------
    actual, desired : array_like
        Same shape and float dtype.
    max_ulp : int, default 0
        Largest distance allowed: an integer >= 0 (0 also compares the sign of zero; a float
        such as 0.5 raises ``TypeError`` rather than skip that check).
    err_msg : str, default ""
        Prepended to the failure message (e.g. which array and which step).

    Raises
    ------
    AssertionError
        If any element is further apart than ``max_ulp`` (or, for ``max_ulp=0``, a zero has the
        other sign).

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import assert_ulp_equal
    >>> assert_ulp_equal(np.float32([1, 2]), np.float32([1, 2]))
    >>> assert_ulp_equal(np.float32([1, 2]), np.float32([1, 2.0000002]))
    Traceback (most recent call last):
    ...
    AssertionError: 1 of 2 elements differ by more than 0 ULP; first at index (1,): actual 2.0 (0x40000000), desired 2.0000002 (0x40000001), 1 ULP apart; largest distance 1 ULP
    """
    max_ulp = _v.check_count(max_ulp, "max_ulp", 0, maximum=None)
    actual, desired = _check_pair(actual, desired)
    dist = ulp_distance(actual, desired)
    # Distances are uint64: any max_ulp beyond the largest allows every distance.
    bad = dist > np.uint64(min(max_ulp, _U64_MAX))
    if max_ulp == 0:
        both_nan = np.isnan(actual) & np.isnan(desired)
        bad |= (np.signbit(actual) != np.signbit(desired)) & ~both_nan
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    a, d = actual[index], desired[index]
    prefix = f"{err_msg}: " if err_msg else ""
    raise AssertionError(
        f"{prefix}{int(bad.sum())} of {bad.size} elements differ by more than {max_ulp} ULP; "
        f"first at index {index}: actual {a!s} ({_hex_bits(a)}), desired {d!s} "
        f"({_hex_bits(d)}), {int(dist[index])} ULP apart; "
        f"largest distance {int(dist[bad].max())} ULP")
