"""16-bit parameters: the two formats, and their conversions to and from float32, in integers.

A 16-bit parameter array is stepped through a float32 *master* copy (docs/contract.md §14): the
gradient is widened to float32 (exact), the rule runs in float32 on the master and the float32
state, and the 16-bit parameter is rewritten as the master rounded to nearest, ties to even.

Both conversions are written here with integer operations on the bits, so that the reference
depends on no CPU conversion instruction and on no NumPy cast loop (NumPy may convert float16
with the CPU's F16C instructions or in software, depending on the build; the two differ on
signalling NaNs). The results are, bit for bit:

* float16: IEEE round to nearest even (subnormals kept, overflow to infinity), as NumPy's
  ``astype(np.float16)``; a NaN keeps its sign and the top 10 bits of its payload, and becomes
  ``0x7c01`` (with its sign) when those are all zero, as NumPy's software conversion does. Every
  NaN a step writes into a master is quiet (arithmetic quiets), so its float16 copy is quiet too.
* bfloat16: IEEE round to nearest even, as ``ml_dtypes.bfloat16``'s cast; a NaN becomes the quiet
  NaN ``0x7fc0`` with its sign, as ml_dtypes does (torch writes ``0x7fc0`` or ``0xffff``).

Formats are named by strings, ``"bfloat16"`` and ``"float16"``, which are also the second half
of their keys in the kernel tables (``(rule, "bfloat16")``). A bfloat16 array is an
``ml_dtypes.bfloat16`` array or a ``uint16`` array of its bits; a float16 array is ``np.float16``.
"""
import numpy as np

BF16 = "bfloat16"
F16 = "float16"
KINDS = (BF16, F16)

_U16, _U32 = np.dtype(np.uint16), np.dtype(np.uint32)


def kind_of(dtype):
    """``"bfloat16"``, ``"float16"`` or None (not a 16-bit float format) for a NumPy dtype.

    ``uint16`` means bfloat16 bits; ``ml_dtypes.bfloat16`` is recognised by its name, so that
    ml_dtypes need not be imported.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return F16
    if dtype == _U16 or (dtype.itemsize == 2 and dtype.name == "bfloat16"):
        return BF16
    return None


def bits(array):
    """The ``uint16`` view of a 16-bit array (no copy)."""
    return array.view(_U16)


def widen(half_bits, kind):
    """float32 array of the values whose 16-bit patterns are ``half_bits`` (exact).

    NaN payloads are kept (shifted into the top of float32's significand), the quiet bit
    included, as NumPy's software conversion does; the CPU's F16C conversion would quiet a
    signalling NaN, which no arithmetic result can tell apart.
    """
    h = np.asarray(half_bits, dtype=_U16).astype(_U32)
    if kind == BF16:
        return (h << 16).view(np.float32)
    sign = (h & 0x8000) << 16
    exp = h & 0x7C00
    sig = h & 0x03FF
    normal = (((h & 0x7FFF) + 0x1C000) << 13) | sign
    special = (0x7F800000 | (sig << 13)) | sign          # inf and NaN
    # A subnormal (or zero) is sig * 2**-24: the product of two float32 numbers that is exact
    # (sig < 2**10), so no rounding mode or SIMD path can change it.
    tiny = (sig.astype(np.float32) * np.float32(2.0 ** -24)).view(_U32) | sign
    out = np.where(exp == 0, tiny, np.where(exp == 0x7C00, special, normal))
    return out.astype(_U32).view(np.float32)


def narrow(x, kind, out=None):
    """The 16-bit patterns (``uint16``) of float32 ``x`` rounded to nearest even; into ``out``
    (a ``uint16`` array of ``x``'s shape) when given."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(_U32)
    sign = (u >> 16) & 0x8000
    a = u & 0x7FFFFFFF
    nan = a > 0x7F800000
    if kind == BF16:
        # Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry out of the
        # significand increments the exponent (the largest finite values round to infinity).
        r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        r = np.where(nan, sign | 0x7FC0, r)
    else:
        e = a >> 23
        # Normal float16 (float32 exponents 113-142): rebias, then round at bit 13; a carry
        # ripples into the exponent, and past 0x7bff gives 0x7c00, infinity.
        normal = (a - (112 << 23) + 0xFFF + ((a >> 13) & 1)) >> 13
        # Subnormal float16 (exponents 102-112): the significand with its hidden bit, shifted
        # right by 126 - e and rounded to nearest even on the bits shifted out. Below 102 the
        # value is under half the smallest subnormal: zero.
        m = (a & 0x7FFFFF) | 0x800000
        s = np.clip(126 - e.astype(np.int64), 14, 24).astype(_U32)
        q = m >> s
        rem = m & ((np.uint32(1) << s) - 1)
        half = np.uint32(1) << (s - 1)
        q = q + ((rem > half) | ((rem == half) & ((q & 1) == 1))).astype(_U32)
        payload = 0x7C00 + ((a & 0x7FFFFF) >> 13)
        payload = np.where(payload == 0x7C00, 0x7C01, payload)
        r = np.where(e >= 143, 0x7C00,                    # >= 2**16: infinity (and inf itself)
            np.where(e >= 113, np.minimum(normal, 0x7C00),
            np.where(e >= 102, q, 0)))
        r = np.where(nan, payload, r) | sign
    r = r.astype(_U16)
    if out is None:
        return r
    out[...] = r
    return out


def finite(half_bits, kind):
    """True where the 16-bit value is finite (neither inf nor NaN)."""
    h = np.asarray(half_bits, dtype=_U16)
    mask = 0x7F80 if kind == BF16 else 0x7C00
    return (h & mask) != mask



class MasterOps:
    """An implementation's ``ops`` (``fastopt._ops`` or ``fastopt.reference._ops``) seen
    through the float32 ``master`` of a 16-bit parameter, for the array-level updates:
    ``MasterOps(ops, master).adam(param16, grad16, m, v, v_max, *scalars)`` takes the float32
    update's arguments and calls the kernel-table entry ``(rule, kind)`` with every array 1-D,
    the master in the parameter's place, the gradient and the parameter as their ``uint16``
    bits (the parameter last, receiving the master rounded). The caller validated everything
    (``fastopt._validation.check_master_update``)."""

    def __init__(self, ops, master):
        self._table, self._master = ops.kernel_table(), master

    def __getattr__(self, rule):
        table, master = self._table, self._master

        def update(param, grad, *rest):
            table[rule, kind_of(param.dtype)](
                master.reshape(-1), bits(grad).reshape(-1),
                *[a.reshape(-1) if isinstance(a, np.ndarray) else a for a in rest],
                bits(param).reshape(-1))
        return update
