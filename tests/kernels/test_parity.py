"""Bit-identical parity: implementation x dtype x size x hyperparameters x 20+ steps.

"Implementation" is the reference and fastopt on every SIMD variant this machine runs, serial and
split over two threads (see conftest.py).

Every array either implementation writes is compared with ``np.testing.assert_array_equal`` (same
values and NaN positions) and with ``fastopt.testing.assert_ulp_equal`` (same bits, signed zeros
included), against an expectation computed independently from docs/contract.md §2
(``oracle``) before the in-place call, and fastopt against fastopt.reference.
"""
import numpy as np
import pytest

import fastopt
import fastopt.reference
import oracle
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits; asan: runs under ASan (.ci/run selects by them).
pytestmark = [pytest.mark.bits, pytest.mark.asan]

SHAPES = [(0,), (1,), (3,), (7,), (8,), (15,), (16,), (17,), (31,), (33,), (1000,), (100003,),
          (37, 29)]
STEPS = 21
SCALAR_ORACLE_MAX = 40  # also check against the element-by-element oracle up to this size

# name -> (rule, hyperparameter sets); every set is used for 21 steps.
HYPER = {
    "sgd": [dict(lr=0.01), dict(lr=0.7), dict(lr=0.0), dict(lr=1e-7)],
    "momentum": [dict(lr=0.01, beta=0.9), dict(lr=0.3, beta=0.0), dict(lr=1e-3, beta=0.999)],
    "rmsprop": [dict(lr=0.01, beta=0.9, eps=1e-8), dict(lr=0.1, beta=0.5, eps=1e-3),
                dict(lr=1e-4, beta=0.999, eps=1e-7)],
    "adam": [dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
             dict(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-4),
             dict(lr=1e-3, beta1=0.0, beta2=0.9999, eps=1e-7)],
}
STATE_NAMES = {"sgd": (), "momentum": ("velocity",), "rmsprop": ("sq_avg",), "adam": ("m", "v")}
CASES = [(rule, i) for rule, sets in HYPER.items() for i in range(len(sets))]


def gradient(rng, shape, dtype, step):
    """A gradient for one step: normal values, then zeros, huge, tiny and subnormal magnitudes,
    and from step 15 on also NaN and +-inf at a few positions (which then stay in the state)."""
    g = rng.standard_normal(shape).astype(dtype)
    flat = g.reshape(-1)
    n = flat.size
    if n == 0 or step < 5:
        return g
    info = np.finfo(dtype)
    specials = [0.0, -0.0, info.max / 4, -info.max / 2, info.tiny, info.smallest_subnormal * 3,
                -info.smallest_subnormal, 1e-20, 1e20]
    if step >= 15:
        specials += [np.nan, np.inf, -np.inf]
    k = max(1, n // 7)
    idx = rng.choice(n, size=min(k, n), replace=False)
    flat[idx] = rng.choice(np.array(specials, dtype=dtype), size=idx.size)
    return g


def run_steps(impl, rule, shape, dtype, hp, seed=0):
    """Yield (step, written arrays after the step, expected arrays) for STEPS steps."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(shape).astype(dtype)
    state = [np.zeros(shape, dtype) for _ in STATE_NAMES[rule]]
    update = getattr(impl, f"{rule}_update")
    for step in range(1, STEPS + 1):
        g = gradient(rng, shape, dtype, step)
        g.flags.writeable = False  # grad is only read: a read-only array must be accepted
        extra = (step,) if rule == "adam" else ()
        with np.errstate(all="ignore"):
            expected = getattr(oracle, rule)(param, g, *state, *extra, **hp)
            if param.size <= SCALAR_ORACLE_MAX:
                scalar = oracle.scalar(rule, param, g, *state, *extra, *hp.values())
                for e, s in zip(expected, scalar):
                    assert_ulp_equal(s, e, err_msg="scalar vs vector oracle")
            update(param, g, *state, *extra, **hp)
        yield step, (param, *state), expected


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rule,hp_index", CASES)
def test_matches_spec(impl, rule, hp_index, shape, dtype):
    names = ("param",) + STATE_NAMES[rule]
    for step, written, expected in run_steps(impl, rule, shape, dtype, HYPER[rule][hp_index]):
        for name, got, want in zip(names, written, expected):
            msg = f"{impl.__name__}.{rule}_update: {name} after step {step}"
            np.testing.assert_array_equal(got, want, err_msg=msg, strict=True)
            assert_ulp_equal(got, want, err_msg=msg)


@pytest.mark.parametrize("shape", [(1,), (17,), (1000,), (100003,), (37, 29)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rule,hp_index", CASES)
def test_fastopt_matches_reference(fast_config, rule, hp_index, shape, dtype):
    hp = HYPER[rule][hp_index]
    fast = run_steps(fastopt, rule, shape, dtype, hp, seed=7)
    ref = run_steps(fastopt.reference, rule, shape, dtype, hp, seed=7)
    for (step, got, _), (_, want, _) in zip(fast, ref):
        for got_a, want_a in zip(got, want):
            assert_ulp_equal(got_a, want_a, err_msg=f"{rule} step {step}")


def test_grad_is_not_written(impl, dtype):
    rng = np.random.default_rng(1)
    shape = (64,)
    g = rng.standard_normal(shape).astype(dtype)
    g_before = g.copy()
    p = np.ones(shape, dtype)
    impl.sgd_update(p, g, 0.1)
    impl.momentum_update(p, g, np.zeros(shape, dtype), 0.1)
    impl.rmsprop_update(p, g, np.zeros(shape, dtype), 0.1)
    impl.adam_update(p, g, np.zeros(shape, dtype), np.zeros(shape, dtype), 1, 0.1)
    assert_ulp_equal(g, g_before)


def test_hyperparameters_from_numpy_scalars_match_python_floats(impl, dtype):
    """np.float32(0.1) as lr means its exact value, in both implementations alike."""
    rng = np.random.default_rng(2)
    g = rng.standard_normal(100).astype(dtype)
    a, b = np.ones(100, dtype), np.ones(100, dtype)
    impl.adam_update(a, g, np.zeros_like(a), np.zeros_like(a), np.int64(3), np.float32(0.1),
                     beta1=np.float64(0.8))
    impl.adam_update(b, g, np.zeros_like(b), np.zeros_like(b), 3, float(np.float32(0.1)),
                     beta1=0.8)
    assert_ulp_equal(a, b)
