"""Adam's divisions by its bias corrections without the divider (docs/contract.md §10): the FMA
sequence the kernels use, run compiled (``div_const`` of every variant built with FMA) and
checked bitwise against NumPy's division, which is correctly rounded.

Claim (§10.2), for a divisor ``d`` in [2**-24, 1] (float32) or [2**-53, 1] (float64) and
``K = p - 1 - exponent(d)`` (p = 24 or 53): the sequence returns ``RN(x / d)`` for every finite
``x`` with ``|x| <= MAX * 2**-K``, the sign of zero included, and NaN for every other ``x``
(infinite, NaN, or beyond the bound), where the kernel's flag check takes over.

Coverage (float32): every divisor of a set built to be hard (see ``divisors32``) against every
float32 bit pattern in steps of ``STRIDE``, the ends of the range (every sixteenth subnormal and
lowest-binade pattern, both sides of each divisor's bound) and the special values; and every
float32 of five whole binades against 15 divisors. CI compares about 2.9 billion pairs (~20 s);
``FASTOPT_FULL_SWEEP=1`` adds all 2**32 bit patterns against the 68 hardest divisors
(``HARD32``). float64 cannot be swept: random ``x`` over the whole exponent range. The Adam
tests at the end run the kernels themselves over several chunks (and both threads' ranges), with
values that send some chunks down the flagged path and leave others clean.
"""
import math
import os

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import _dispatch
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

FULL = os.environ.get("FASTOPT_FULL_SWEEP", "") not in ("", "0")
STRIDE = 8191  # bit patterns: about 524,000 x per divisor in CI
FMA_MODULES = [m for m in _dispatch.MODULES.values() if getattr(m, "FMA", False)]
needs_fma = pytest.mark.skipif(not FMA_MODULES,
                               reason="no kernel variant with FMA on this machine")
COUNT = {"pairs": 0}


def bound(d, dtype):
    """MAX * 2**-K for divisor d: beyond it the sequence returns NaN."""
    p = np.finfo(dtype).nmant + 1
    exponent = math.frexp(float(d))[1] - 1
    return float(np.finfo(dtype).max) * 2.0 ** -(p - 1 - exponent)


def adversarial(p, count, rng):
    """Significands D (2**(p-1) <= D < 2**p) whose reciprocal RN(1/d) is farthest from 1/d
    relative to the proof's bound |E| <= D/2 (E = D*Y - 2**(2p-1)): the divisors where the
    correction has the most to do."""
    lo = 1 << (p - 1)
    cand = [int(c) for c in rng.integers(lo, 2 * lo, 200_000, dtype=np.uint64)]
    cand += [2 * lo - k for k in range(1, 64)]  # significand all ones and its neighbours
    scored = []
    for D in cand:
        Y = ((1 << (2 * p - 1)) + D // 2) // D  # round(2**(2p-1) / D), ties never occur here
        scored.append((abs(D * Y - (1 << (2 * p - 1))) / D, D))
    scored.sort(reverse=True)
    return [D for _, D in scored[:count]]


def hard32():
    """The divisors whose reciprocals are the worst (in five binades), and the extremes of the
    range: the full sweep's divisors."""
    rng = np.random.default_rng(24)
    f = np.float32
    out = [D * 2.0 ** (e - 23) for e in (-1, -4, -10, -17, -24) for D in adversarial(24, 12, rng)]
    out += [f(2.0 ** -24) + f(k * 2.0 ** -47) for k in range(1, 5)]
    out += [f(1) - f(k * 2.0 ** -24) for k in range(1, 5)]
    return list(np.array(out, dtype=f))


HARD32 = hard32()


def divisors32():
    rng = np.random.default_rng(32)
    f = np.float32
    out = [2.0 ** -k for k in range(0, 25)]                       # exact reciprocals, 1 included
    below_one = [np.nextafter(f(1), f(0))]
    for _ in range(63):
        below_one.append(np.nextafter(below_one[-1], f(0)))
    out += below_one
    low = [f(2.0 ** -24)]
    for _ in range(63):
        low.append(np.nextafter(low[-1], f(1)))
    out += low                                                    # the bottom of the range
    out += HARD32
    for beta in (0.9, 0.99, 0.999, 0.9999):                        # Adam's bias corrections
        values = np.unique(np.array([1 - beta ** t for t in range(1, 20001)]).astype(f))
        out += list(values[:40]) + list(values[:: max(1, values.size // 40)])
    out += list((2.0 ** rng.uniform(-24, 0, 100)).astype(f))
    return np.unique(np.array(out, dtype=f))


DIVISORS32 = divisors32()


def bit_patterns(stride):
    xs = np.arange(0, 1 << 32, stride, dtype=np.uint64).astype(np.uint32).view(np.float32)
    low = np.arange(0, 1 << 24, 1 << 4, dtype=np.uint32)  # subnormals and the lowest binade
    ends = np.concatenate([low, low | np.uint32(1 << 31)])
    return np.concatenate([xs, ends.view(np.float32)])


def binade(exponent_field):
    """Every float32 of one binade (exponent field 0: every subnormal)."""
    return ((np.uint32(exponent_field) << np.uint32(23))
            | np.arange(1 << 23, dtype=np.uint32)).view(np.float32)


# Every x of these binades, against a few divisors of each kind: the subnormals and the lowest
# normal binade (where the remainder needs the 2**K scaling), the binade of 1, and the binades
# just below the bound of d near 1 (exponent fields 229-230: 2**102..2**104).
WHOLE_BINADES = [0, 1, 127, 229, 230]


def check(module, x, d, dtype):
    out = np.empty_like(x)
    assert module.div_const(x, out, float(d)) is True
    with np.errstate(all="ignore"):
        expected = x / dtype(d)
    inside = np.isfinite(x) & (np.abs(x) <= bound(d, dtype))
    uint = np.uint32 if dtype == np.float32 else np.uint64
    wrong = inside & (out.view(uint) != expected.view(uint))
    assert not wrong.any(), (f"d={float(d)!r}: x={x[wrong][:4]!r} gives {out[wrong][:4]!r}, "
                             f"division {expected[wrong][:4]!r}")
    assert np.isnan(out[~inside]).all(), f"d={float(d)!r}: x={x[~inside & ~np.isnan(out)][:4]!r}"
    COUNT["pairs"] += int(x.size)


def around_bound(d, dtype):
    b = dtype(bound(d, dtype))
    near = [b, np.nextafter(b, dtype(np.inf)), np.nextafter(b, dtype(0)),
            dtype(float(b) / 2), dtype(float(b) * 2) if float(b) * 2 < np.finfo(dtype).max else b]
    near = np.array(near, dtype=dtype)
    return np.concatenate([near, -near])


@needs_fma
@pytest.mark.parametrize("part", range(4))
def test_float32_every_divisor_on_every_strided_bit_pattern(part):
    xs = bit_patterns(STRIDE)
    for module in FMA_MODULES:
        for d in DIVISORS32[part::4]:
            check(module, xs, d, np.float32)
            check(module, around_bound(d, np.float32), d, np.float32)


@needs_fma
@pytest.mark.parametrize("exponent_field", WHOLE_BINADES)
def test_float32_every_x_of_whole_binades(exponent_field):
    f = np.float32
    picks = [f(1), f(0.5), f(2.0 ** -24), np.nextafter(f(1), f(0)), f(1 - 0.9), f(1 - 0.9 ** 10),
             f(1 - 0.999), f(1 - 0.999 ** 100), f(1 - 0.999 ** 10000)]
    inexact = [d for d in DIVISORS32 if float(d) * 2 ** 23 % 1 != 0]
    picks += inexact[:: max(1, len(inexact) // 6)]
    xs = binade(exponent_field)
    for module in FMA_MODULES:
        for d in picks:
            check(module, xs, d, f)
            check(module, -xs, d, f)


@needs_fma
@pytest.mark.skipif(not FULL, reason="full sweep only (FASTOPT_FULL_SWEEP=1)")
@pytest.mark.parametrize("part", range(8))
def test_float32_full_sweep(part):
    """Every one of the 2**32 float32 bit patterns against the hardest divisors (the worst
    reciprocals of five binades, the ends of the range): about 20 minutes on 2 cores."""
    f = np.float32
    divisors = HARD32[part::8]
    for start in range(0, 1 << 32, 1 << 26):
        xs = np.arange(start, start + (1 << 26), dtype=np.uint64).astype(np.uint32).view(f)
        for module in FMA_MODULES[-1:]:
            for d in divisors:
                check(module, xs, d, f)


@needs_fma
def test_float32_special_values():
    f = np.float32
    info = np.finfo(f)
    xs = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, info.tiny, -info.tiny,
                   info.smallest_subnormal, -info.smallest_subnormal, info.max, -info.max,
                   1.0, -1.0], dtype=f)
    for module in FMA_MODULES:
        for d in DIVISORS32:
            check(module, xs, d, f)
        out = np.empty_like(xs)
        module.div_const(xs, out, 0.6)
        # the sign of zero survives (a sequence written with a negation loses it)
        assert np.signbit(out[1]) and not np.signbit(out[0])


@needs_fma
def test_float64_random_values_over_the_whole_range():
    rng = np.random.default_rng(64)
    f = np.float64
    n = 200_000
    x = rng.uniform(1, 2, n) * 2.0 ** rng.integers(-1074, 1024, n).astype(f)
    x[::2] *= -1
    info = np.finfo(f)
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny,
                            info.smallest_subnormal, 7 * info.smallest_subnormal, info.max],
                        rng.integers(1, 1 << 52, 5000) * info.smallest_subnormal])
    divisors = [2.0 ** -k for k in (0, 1, 7, 30, 53)]
    divisors += [1 - b ** t for b in (0.9, 0.999, 0.999999) for t in (1, 2, 3, 10, 100, 5000)]
    divisors += [D * 2.0 ** (e - 52) for e in (-1, -9, -30, -53)
                 for D in adversarial(53, 5, rng)]
    divisors += list(2.0 ** rng.uniform(-53, 0, 40))
    for module in FMA_MODULES:
        for d in divisors:
            check(module, np.concatenate([x, around_bound(d, f)]), d, f)


@needs_fma
def test_divisors_outside_the_proved_range_are_refused():
    x = np.ones(4, np.float32)
    out = np.full(4, 7, np.float32)
    for module in FMA_MODULES:
        for d in (2.0 ** -25, 1.5, 2.0, 0.0, -0.5, float("inf"), float("nan")):
            assert module.div_const(x, out, d) is False
        assert module.div_const(np.ones(3), np.empty(3), 2.0 ** -54) is False
        assert module.div_const(x, out, 0.1) is False  # not a float32 value
    assert (out == 7).all()


# --- the Adam kernel: fast path, flagged chunks, chunk boundaries ------------------------------


def chunk_items(dtype):
    """Items per chunk of the Adam loop (it copies param and reads the flags per chunk)."""
    return _dispatch.kernels.DIV_CHUNK_BYTES // np.dtype(dtype).itemsize


def hostile_state(dtype, seed):
    """Five chunks and a partial one of mostly ordinary values, with §10's edges planted in some
    chunks and not others: huge moments on both sides of every possible bound (chunk 1, and
    chunk 2, which holds the middle, where a second thread's range starts), infinities, NaN and
    signed zeros (chunk 3), subnormals (the partial last chunk). Chunks 0 and 4 stay clean."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    c = chunk_items(dtype)
    n = 5 * c + 37
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 1e-3).astype(dtype)
    m = (rng.standard_normal(n) * 1e-3).astype(dtype)
    v = (rng.random(n) * 1e-6).astype(dtype)
    emax = info.maxexp
    huge = [2.0 ** k for k in range(emax - 60, emax)] + [float(info.max)]
    tiny = [float(info.smallest_subnormal) * k for k in (1, 3, 1000)] + [float(info.tiny)]

    def plant(lo, hi, kind):
        idx = rng.choice(np.arange(lo, hi), 24, replace=False)
        idx[0], idx[1] = lo, hi - 1  # the first and the last item of the chunk too
        if kind == "huge":
            m[idx[:12]] = rng.choice(huge, 12) * rng.choice([-1, 1], 12)
            v[idx[12:]] = rng.choice(huge, 12)
        elif kind == "special":
            m[idx[:4]] = [np.inf, -np.inf, np.nan, -0.0]
            g[idx[4:8]] = [np.inf, -np.inf, np.nan, -0.0]
            v[idx[8:10]] = [np.inf, np.nan]
            p[idx[10:14]] = -0.0
            m[idx[10:14]] = -0.0
            g[idx[10:14]] = -0.0
            m[idx[14:16]] = 0.0
        else:
            m[idx[:12]] = rng.choice(tiny, 12) * rng.choice([-1, 1], 12)
            v[idx[12:]] = rng.choice(tiny, 12)
            g[idx[12:]] = 0.0

    plant(c, 2 * c, "huge")
    middle = (n // 2) // c * c  # the chunk holding n/2: the start of thread 1's range, roughly
    plant(middle, middle + c, "huge")
    plant(3 * c, 4 * c, "special")
    plant(5 * c, n, "tiny")
    return p, g, m, v


OPTIONS = [dict(), dict(amsgrad=True), dict(weight_decay=0.1),
           dict(weight_decay=0.1, decoupled=True), dict(maximize=True),
           dict(amsgrad=True, weight_decay=0.01, decoupled=True, maximize=True)]


@pytest.mark.asan
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("t", [1, 2, 10, 1000, 20000])
def test_adam_on_the_edges_matches_the_reference(fast_config, dtype, t, options):
    p, g, m, v = hostile_state(dtype, seed=t)
    amsgrad = options.get("amsgrad", False)
    kwargs = {k: val for k, val in options.items() if k != "amsgrad"}
    with np.errstate(over="ignore"):
        v_max = (v * 2).astype(dtype) if amsgrad else None
    ref = [a.copy() for a in (p, m, v)] + ([v_max.copy()] if amsgrad else [])
    fast = [a.copy() for a in (p, m, v)] + ([v_max.copy()] if amsgrad else [])
    with np.errstate(all="ignore"):
        fastopt.reference.adam_update(ref[0], g, ref[1], ref[2], t, 1e-3,
                                      v_max=ref[3] if amsgrad else None, **kwargs)
    fastopt.adam_update(fast[0], g, fast[1], fast[2], t, 1e-3,
                        v_max=fast[3] if amsgrad else None, **kwargs)
    for name, a, b in zip(("param", "m", "v", "v_max"), fast, ref):
        assert_ulp_equal(a, b, err_msg=name)


@pytest.mark.asan
@needs_fma
@pytest.mark.parametrize("threads", [1, 2])
def test_both_paths_of_the_adam_loop_run(dtype, threads):
    """The sequence runs, and flagged chunks are redone (a guard against either silently never
    happening: the bits are the same by design, so no parity test would notice)."""
    for module in FMA_MODULES:
        name = next(k for k, mod in _dispatch.MODULES.items() if mod is module)
        with _dispatch.using(name), fastopt.num_threads(threads):
            before = module.division_chunks()
            p, g, m, v = hostile_state(dtype, seed=3)
            fastopt.adam_update(p, g, m, v, 1, 1e-3)
            ran, redone = (b - a for a, b in zip(before, module.division_chunks()))
            assert ran >= 6 and 1 <= redone < ran


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_calls_beyond_the_cache_divide(dtype):
    """A call of more than FMA_DIVISIONS_UP_TO items takes the divider (it waits on memory,
    where the sequence costs more than it saves), one at the limit the sequence; both with
    the reference's bits (§10.4)."""
    for module in FMA_MODULES:
        name = next(k for k, mod in _dispatch.MODULES.items() if mod is module)
        for n, fast in ((module.FMA_DIVISIONS_UP_TO, True), (module.FMA_DIVISIONS_UP_TO + 1, False)):
            rng = np.random.default_rng(n)
            p = rng.standard_normal(n).astype(dtype)
            g = rng.standard_normal(n).astype(dtype)
            m = (rng.standard_normal(n) * 0.1).astype(dtype)
            v = rng.random(n).astype(dtype)
            want = [a.copy() for a in (p, m, v)]
            fastopt.reference.adam_update(*want[:1], g, *want[1:], 3, 1e-3)
            with _dispatch.using(name):
                before = module.division_chunks()[0]
                fastopt.adam_update(p, g, m, v, 3, 1e-3)
                assert (module.division_chunks()[0] > before) == fast, (name, n)
            for got, expected in zip((p, m, v), want):
                assert_ulp_equal(got, expected)


@pytest.mark.asan
@needs_fma
def test_the_adam_loop_takes_the_fma_path():
    """On a variant with FMA, in the default floating-point mode, the divisions are available
    to Adam, and can be switched off."""
    for module in FMA_MODULES:
        assert module.fast_divisions()
        previous = module.set_fast_divisions(False)
        try:
            assert previous is True and not module.fast_divisions()
        finally:
            module.set_fast_divisions(True)


def test_variants_without_fma_refuse():
    for module in _dispatch.MODULES.values():
        if not module.FMA:
            assert module.div_const(np.ones(2, np.float32), np.empty(2, np.float32), 0.5) is False
            assert not module.fast_divisions()


def teardown_module(module):
    print(f"\nFMA division: {COUNT['pairs']:,} (x, d) pairs compared bitwise "
          f"({DIVISORS32.size} float32 divisors; full sweep: {FULL})")
