"""Division of float32 values by one float32 constant through a double reciprocal
(docs/contract.md §10), checked bitwise against the plain division.

The operation sequence under test is ``RN_f32(RN_f64(double(x) * RN_f64(1 / double(d))))``:
NumPy's ``x.astype(np.float64) * r`` then ``.astype(np.float32)`` is exactly that sequence (an
exact widening, one double multiplication, one rounding to float32), the same instructions a C
loop ``(float)((double)x * r)`` compiles to. The reference is NumPy's float32 division
``x / np.float32(d)``, correctly rounded (IEEE 754).

Claims (proved in §10):

* for ``0 < |d| < 2`` (every bias correction ``1 - beta**t`` is in (0, 1]): equal for **every**
  float32 ``x``, subnormal, zero, infinite and NaN inputs and results included;
* for any other finite nonzero ``d``: equal wherever the result is not subnormal or zero, so a
  kernel falls back to the division there; and that fallback is needed (a counterexample is
  checked).

Coverage. By the scaling argument of §10, one full binade of ``x`` per constant covers every
binade whose results stay normal; the binades at the ends of the range are swept separately.
CI samples (a few seconds); ``FASTOPT_FULL_SWEEP=1`` runs every significand of every listed
binade against every constant (long: see the report at the end of the run).
"""
import os

import numpy as np
import pytest

FULL = os.environ.get("FASTOPT_FULL_SWEEP", "") not in ("", "0")
F32 = np.float32
FLT_MIN = float(np.finfo(F32).tiny)
COUNT = {"pairs": 0, "constants": 0}


def bias_constants(beta, steps=20000):
    """The distinct float32(1 - beta**t), t = 1..steps, that are not 1 (1 divides nothing)."""
    values = np.array([1 - beta ** t for t in range(1, steps + 1)]).astype(F32)
    return np.unique(values[values != 1])


def structured_constants():
    """Powers of two, values just below 1 and just below 2, just above 1, and odd ones."""
    below_one = [np.nextafter(F32(1), F32(0))]
    for _ in range(63):
        below_one.append(np.nextafter(below_one[-1], F32(0)))
    above_one = (1 + np.arange(1, 65) * 2.0 ** -23).astype(F32)
    below_two = (2 - np.arange(1, 65) * 2.0 ** -23).astype(F32)
    powers = (2.0 ** -np.arange(0, 40)).astype(F32)
    odd = np.array([0.75, 0.6, 1 / 3, 0.1, 0.09999999, 1.5, 1.9999999, 2 ** -126,
                    3 * 2 ** -149, 2 ** -149, 1e-30, 0.5000001], dtype=F32)
    return np.unique(np.concatenate([below_one, above_one, below_two, powers, odd]))


ALL_BIAS = np.unique(np.concatenate([bias_constants(b) for b in (0.9, 0.99, 0.999)]))
STRUCTURED = structured_constants()
# CI: every bias constant of beta = 0.9, the 300 largest of beta = 0.999 and an even sample of
# the rest. The full sweep: every structured constant on every significand of every binade, and
# every bias constant (19,000) on 2**20 significands of the binades around 1.
BIAS_SAMPLE = np.unique(np.concatenate([bias_constants(0.9), bias_constants(0.999)[-300:],
                                        ALL_BIAS[::97]]))
CONSTANTS = np.unique(np.concatenate([STRUCTURED, BIAS_SAMPLE]))

# Biased exponent fields of x swept: subnormals (0), near FLT_MIN (1, 2), small (60), around 1
# (126, 127, 128), large (200), near FLT_MAX (253, 254).
BINADES = [0, 1, 2, 60, 126, 127, 128, 200, 253, 254]
CI_SIGNIFICANDS = 1 << 13


def significands(rng, count=CI_SIGNIFICANDS, full=FULL):
    if full:
        return np.arange(1 << 23, dtype=np.uint32)
    edges = np.array([0, 1, 2, 3, (1 << 22) - 1, 1 << 22, (1 << 22) + 1, (1 << 23) - 2,
                      (1 << 23) - 1], dtype=np.uint32)
    return np.concatenate([edges, rng.integers(0, 1 << 23, count, dtype=np.uint32)])


def binade(exponent_field, sig):
    return ((np.uint32(exponent_field) << np.uint32(23)) | sig).view(F32)


SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, FLT_MIN, -FLT_MIN, 2.0 ** -149,
                     -(2.0 ** -149), float(np.finfo(F32).max), -float(np.finfo(F32).max)],
                    dtype=F32)


def via_reciprocal(x, d):
    with np.errstate(all="ignore"):
        r = np.float64(1.0) / np.float64(d)  # RN_f64(1 / double(d)); 1/0 is inf as in C
        return (x.astype(np.float64) * r).astype(F32)


def divided(x, d):
    with np.errstate(all="ignore"):
        return x / F32(d)


def mismatches(x, d):
    """Positions where the two disagree (NaN against NaN agrees: payloads are not compared,
    docs/contract.md §1)."""
    a, b = via_reciprocal(x, d), divided(x, d)
    same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
    return np.flatnonzero(~same), a, b


def check_constant(d, xs):
    bad, fast, exact = mismatches(xs, d)
    COUNT["pairs"] += xs.size
    if 0 < abs(float(d)) < 2:
        assert bad.size == 0, (f"d={float(d)!r}: x={xs[bad[:5]]!r} gives {fast[bad[:5]]!r}, "
                               f"division {exact[bad[:5]]!r}")
    else:
        # Only subnormal or zero results may differ, and the fallback test catches them all.
        assert np.all(np.abs(fast[bad]) < FLT_MIN), f"d={float(d)!r}: x={xs[bad[:5]]!r}"


@pytest.mark.parametrize("exponent_field", BINADES)
def test_every_constant_on_a_binade(exponent_field):
    rng = np.random.default_rng(exponent_field)
    sig = significands(rng)
    for negative in ((False,) if FULL else (False, True)):  # full: the sign is symmetric
        xs = binade(exponent_field, sig)
        if negative:
            xs = -xs
        for d in (STRUCTURED if FULL else CONSTANTS):
            check_constant(d, xs)


@pytest.mark.skipif(not FULL, reason="full sweep only (FASTOPT_FULL_SWEEP=1)")
@pytest.mark.parametrize("exponent_field", [126, 127])
def test_every_bias_constant(exponent_field):
    rng = np.random.default_rng(100 + exponent_field)
    xs = binade(exponent_field, significands(rng, 1 << 20, full=False))
    for d in ALL_BIAS:
        check_constant(d, xs)


def test_special_inputs_and_constants():
    """Zero, inf, NaN, FLT_MIN, FLT_MAX and the smallest subnormal as x, against every constant,
    and zero/inf/NaN/negative constants against ordinary x."""
    xs = np.concatenate([SPECIALS, np.array([1.0, -3.5, 1e-40, 1e38], dtype=F32)])
    for d in CONSTANTS:
        check_constant(d, xs)
    for d in [F32(0.0), F32(-0.0), F32(np.inf), F32(-np.inf), F32(-0.6), F32(-3.0), F32(6.0),
              F32(np.finfo(F32).max), F32(2.0 ** 100)]:
        check_constant(d, xs)
    bad, fast, exact = mismatches(xs, F32(np.nan))
    assert np.all(np.isnan(fast)) and np.all(np.isnan(exact))


def test_fallback_is_needed_for_large_constants():
    """d = 98 = 49*2: x = odd*49*2**-149 makes x/d = odd*2**-150, an exact tie between two
    subnormals (NumPy rounds it to the even one). RN(1/98) is off by enough that for some of
    them the double product rounds off the tie, and the float32 rounding goes the other way.
    Exact subnormal ties need |d| >= 2 (§10), which is why a kernel dividing by such a constant
    must divide when the result is below FLT_MIN."""
    x = (np.arange(1, 1 << 17, 2) * 49 * 2.0 ** -149).astype(F32)
    bad, fast, exact = mismatches(x, F32(98))
    assert bad.size > 0
    assert np.all(np.abs(fast[bad]) < FLT_MIN) and np.all(np.abs(exact[bad]) < FLT_MIN)
    assert np.all(via_reciprocal(x, F32(0.98)) == divided(x, F32(0.98)))  # below 2: exact


def test_scaling_argument():
    """The reduction of §10: scaling x by 2**k scales both results exactly while they stay
    normal, so a binade's pattern of (in)equalities repeats in every other binade."""
    rng = np.random.default_rng(1)
    xs = binade(127, rng.integers(0, 1 << 23, 4096, dtype=np.uint32))
    for d in CONSTANTS[:: max(1, CONSTANTS.size // 50)]:
        base = via_reciprocal(xs, d)
        for k in (-40, -3, 5, 60):
            scaled = (xs * F32(2.0 ** k))
            if not (np.all(np.abs(base * F32(2.0 ** k)) >= FLT_MIN)
                    and np.all(np.isfinite(base * F32(2.0 ** k)))):
                continue
            assert np.array_equal(via_reciprocal(scaled, d), base * F32(2.0 ** k))


def teardown_module(module):
    print(f"\ndiv-by-constant: {COUNT['pairs']:,} (x, d) pairs compared bitwise; constants: "
          f"{STRUCTURED.size} structured, {ALL_BIAS.size} bias corrections "
          f"({BIAS_SAMPLE.size} sampled in CI); full sweep: {FULL}")
