"""fastopt.ewa, fastopt.reference.ewa and the streaming EWA: bit-identical to docs/contract.md
§3."""
import math

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import EWA
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits; asan: runs under ASan (.ci/run selects by them).
pytestmark = [pytest.mark.bits, pytest.mark.asan]

EWAS = {"fastopt": fastopt.ewa, "reference": fastopt.reference.ewa}
LENGTHS = [0, 1, 2, 17, 1000]
BETAS = [0.0, 0.5, 0.9, 0.98, 0.999, float(np.nextafter(1.0, 0.0))]


@pytest.fixture(params=sorted(EWAS))
def ewa(request):
    return EWAS[request.param]


def oracle(x, beta, bias_correction):
    """docs/contract.md §3, written out independently: NumPy scalars of x's dtype, math.pow."""
    dt = x.dtype.type
    b, c = dt(beta), dt(1.0 - beta)
    out = np.empty_like(x)
    v = dt(0.0)
    for k in range(1, x.size + 1):
        v = dt(b * v) + dt(c * x[k - 1])
        out[k - 1] = v / dt(1.0 - math.pow(beta, k)) if bias_correction else v
    return out


def series(n, dtype, seed=0, specials=False):
    x = (np.random.default_rng(seed).standard_normal(n) * 3 + 1).astype(dtype)
    if specials and n >= 17:
        x[[3, 9]] = [np.inf, np.nan]
        x[5] = np.finfo(dtype).max
        x[7] = np.finfo(dtype).smallest_subnormal
    return x


@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("n", LENGTHS)
def test_matches_spec(ewa, dtype, n, beta, bias_correction):
    for specials in (False, True):
        x = series(n, dtype, specials=specials)
        with np.errstate(all="ignore"):
            want = oracle(x, beta, bias_correction)
        got = ewa(x, beta, bias_correction)
        assert got.dtype == x.dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, want, strict=True)
        assert_ulp_equal(got, want)


@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("beta", [0.5, 0.9, 0.999])
def test_long_series_fast_equals_reference(fast_config, dtype, beta, bias_correction):
    # 20_000 values: long enough for the bias correction to round to exactly 1 in both dtypes
    # for beta 0.5 and 0.9 (where the kernel stops calling pow), and not yet for 0.999.
    x = series(20_000, dtype, seed=5)
    assert_ulp_equal(fastopt.ewa(x, beta, bias_correction),
                     fastopt.reference.ewa(x, beta, bias_correction))


@pytest.mark.parametrize("bias_correction", [False, True])
def test_streaming_matches_array(dtype, bias_correction):
    x = series(300, dtype, seed=1, specials=True)
    want = fastopt.ewa(x, 0.9, bias_correction)
    avg = EWA(0.9, bias_correction, dtype=dtype)
    got = np.array([avg.update(value) for value in x], dtype=dtype)
    assert_ulp_equal(got, want)
    assert avg.count == 300
    assert avg.value == float(want[-1]) or (math.isnan(avg.value) and np.isnan(want[-1]))
    avg.reset()
    assert avg.count == 0 and avg.value is None
    assert avg.update(x[0]) == float(want[0])


def test_streaming_accepts_python_floats_rounded_once():
    avg32 = EWA(0.9, dtype=np.float32)
    avg32.update(0.1)  # rounded to float32 once, like np.float32([0.1])
    assert avg32.value == float(fastopt.ewa(np.float32([0.1]), 0.9)[0])
    assert "EWA(beta=0.9, bias_correction=False, dtype=float32) after 1 values" == repr(avg32)


def test_out_and_in_place(ewa, dtype):
    x = series(50, dtype)
    want = ewa(x.copy(), 0.8, True)
    out = np.empty_like(x)
    assert ewa(x, 0.8, True, out=out) is out
    assert_ulp_equal(out, want)
    y = x.copy()
    assert ewa(y, 0.8, True, out=y) is y  # in place: element k is read before it is written
    assert_ulp_equal(y, want)


def test_strided_and_read_only_input(ewa, dtype):
    base = series(100, dtype)
    x = base[::3]
    x.flags.writeable = False
    assert_ulp_equal(ewa(x, 0.7), oracle(np.ascontiguousarray(x), 0.7, False))


def test_list_input_is_float64(ewa):
    got = ewa([1, 2.5, 3], 0.5)
    assert got.dtype == np.float64
    assert_ulp_equal(got, oracle(np.array([1.0, 2.5, 3.0]), 0.5, False))


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(x=np.zeros((3, 2))), ValueError, r"^x must be 1-D, got shape \(3, 2\)"),
    (dict(x=np.arange(3)), TypeError, r"^x has dtype int64; expected float32 or float64"),
    (dict(x="abc"), TypeError, r"^x must be a 1-D numpy.ndarray"),
    (dict(x=["a", 1]), TypeError, r"^x must be a 1-D float array or a sequence of numbers"),
    (dict(beta=1.0), ValueError, r"^beta must satisfy 0 <= beta < 1"),
    (dict(beta=-0.5), ValueError, r"^beta must satisfy"),
    (dict(bias_correction=1), TypeError, r"^bias_correction must be True or False"),
    (dict(out=np.zeros(4, np.float32)), TypeError, r"^out has dtype float32; expected float64"),
    (dict(out=np.zeros(5)), ValueError, r"^out has shape \(5,\); expected \(4,\)"),
    (dict(out=[0.0] * 4), TypeError, r"^out must be a numpy.ndarray or None"),
])
def test_errors(ewa, kwargs, exc, pattern):
    args = dict(x=np.arange(4.0), beta=0.9, bias_correction=False, out=None)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        ewa(**args)


def test_partial_overlap_and_read_only_out(ewa):
    buf = np.arange(10.0)
    before = buf.copy()
    with pytest.raises(ValueError, match="^out partly overlaps x"):
        ewa(buf[:8], out=buf[2:])
    ro = np.zeros(10)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^out is read-only"):
        ewa(buf, out=ro)
    assert_ulp_equal(buf, before)


def test_streaming_errors():
    with pytest.raises(ValueError, match="^beta must satisfy"):
        EWA(beta=1.5)
    with pytest.raises(TypeError, match="^dtype must be float32 or float64"):
        EWA(dtype=np.int32)
    with pytest.raises(TypeError, match="^value must be a real number, got str"):
        EWA().update("1.0")
