"""fastopt._half: the integer conversions between float32 and the 16-bit formats (contract §14).

The reference rounds with integer operations so that no CPU conversion instruction or NumPy
cast loop decides its bits; these tests hold it to NumPy's float16 cast and ml_dtypes' bfloat16
cast on every class of input: ties, the largest finite values, overflow, subnormals, zeros,
infinities and NaN payloads.
"""
import numpy as np
import pytest

from fastopt import _half

ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = pytest.mark.bits


def _edges():
    """float32 bit patterns around every boundary of both formats."""
    base = [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x33000000, 0x33000001, 0x337FFFFF,
            0x33800000, 0x387FC000, 0x387FE000, 0x387FF000, 0x38800000, 0x477FE000, 0x477FEFFF,
            0x477FF000, 0x477FF001, 0x47800000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0x7F800000,
            0x7F800001, 0x7FA00000, 0x7FC00000, 0x7FC00001, 0x7FFFE000, 0x7FFFFFFF, 0x3F808000,
            0x3F818000, 0x3F800FFF, 0x3F801000, 0x3F803000, 0x3F801001, 0x3F807FFF]
    ties = [(e << 23) | (k << 12) | low for e in range(95, 150, 3) for k in range(0, 2048, 97)
            for low in (0x000, 0x800, 0x801, 0x7FF, 0xFFF)]
    ties += [(e << 23) | (k << 16) | low for e in range(1, 255, 5) for k in range(0, 128, 9)
             for low in (0x0000, 0x8000, 0x8001, 0x7FFF, 0xFFFF)]
    u = np.array(base + ties, dtype=np.uint32)
    return np.concatenate([u, u | np.uint32(0x80000000)])


def _sample():
    rng = np.random.default_rng(20261206)
    return np.concatenate([_edges(), rng.integers(0, 2**32, 1 << 20, dtype=np.uint32)])


def test_float16_rounding_is_numpys_cast():
    u = _sample()
    x = u.view(np.float32)
    with np.errstate(all="ignore"):
        expected = x.astype(np.float16).view(np.uint16)
    got = _half.narrow(x, _half.F16)
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(got[finite], expected[finite])


def test_float16_nan_keeps_sign_and_top_payload():
    u = _sample()
    u = u[np.isnan(u.view(np.float32))]
    got = _half.narrow(u.view(np.float32), _half.F16)
    payload = 0x7C00 + ((u & 0x7FFFFF) >> 13)
    payload = np.where(payload == 0x7C00, 0x7C01, payload) | ((u >> 16) & 0x8000)
    np.testing.assert_array_equal(got, payload.astype(np.uint16))
    quiet = (u & 0x400000) != 0
    assert ((got[quiet] & 0x0200) != 0).all()  # a quiet NaN stays quiet


def test_bfloat16_rounding_is_ml_dtypes_cast():
    u = _sample()
    x = u.view(np.float32)
    with np.errstate(all="ignore"):
        expected = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(_half.narrow(x, _half.BF16), expected)


@pytest.mark.parametrize("kind, dtype", [(_half.F16, np.float16),
                                         (_half.BF16, "bfloat16")])
def test_widening_every_pattern_is_exact(kind, dtype):
    dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = _half.widen(h, kind)
    expected = h.view(dtype).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    # and back: every non-NaN pattern round-trips
    back = _half.narrow(got, kind)
    keep = ~np.isnan(got)
    np.testing.assert_array_equal(back[keep], h[keep])


def test_kind_of():
    assert _half.kind_of(np.float16) == _half.F16
    assert _half.kind_of(np.uint16) == _half.BF16
    assert _half.kind_of(ml_dtypes.bfloat16) == _half.BF16
    assert _half.kind_of(np.float32) is None
    assert _half.kind_of(np.int16) is None
