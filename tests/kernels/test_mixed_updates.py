"""Array-level updates of 16-bit parameters through a float32 master (issue 24, docs/contract.md
§14.2): ``fastopt.<rule>_update(param16, grad16, *state32, ..., master=master32)``.

Each function steps the master and its float32 state with the 16-bit gradient (widened exactly)
and writes ``param`` as the master rounded to nearest even. Checked against the float32 update
of the same function on a copy of the master (the oracle: widen, float32 step, narrow), in both
implementations and on every SIMD variant and thread count; refusals write nothing.
"""
import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import _half

ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = pytest.mark.bits

FORMATS = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "uint16": np.uint16}
SHAPE = (7, 300)  # 2100 items: more than one 1024-item block, a ragged tail


def to_format(x, fmt):
    x = np.asarray(x, np.float32)
    return _half.narrow(x, "bfloat16") if fmt == "uint16" else x.astype(FORMATS[fmt])


def kind(fmt):
    return "float16" if fmt == "float16" else "bfloat16"


# rule -> (state names, keyword arguments besides lr, takes t)
RULES = {
    "sgd": ((), dict(weight_decay=1e-2, maximize=True), False),
    "momentum": (("velocity",), dict(beta=0.8, nesterov=True), False),
    "rmsprop": (("sq_avg", "grad_avg", "momentum_buffer"), dict(momentum=0.5, eps=1e-6), False),
    "adam": (("m", "v", "v_max"), dict(weight_decay=1e-2, decoupled=True), True),
    "adagrad": (("sum_sq",), dict(lr_decay=0.01), True),
}


def call(module, rule, param, grad, states, t, master=None):
    names, kwargs, takes_t = RULES[rule]
    fn = getattr(module, f"{rule}_update")
    npos = 2 if rule == "adam" else min(len(names), 1)  # adam_update(param, grad, m, v, t, ...)
    positional = [states[n] for n in names[:npos]]
    optional = {n: states[n] for n in names[npos:]}
    args = [param, grad, *positional] + ([t] if takes_t else [])
    extra = {} if master is None else {"master": master}
    fn(*args, lr=0.01, **kwargs, **optional, **extra)


def fresh(fmt, rule, seed=0):
    rng = np.random.default_rng(seed)
    param = to_format(rng.standard_normal(SHAPE), fmt)
    master = _half.widen(_half.bits(param), kind(fmt)).reshape(SHAPE)
    states = {n: np.zeros(SHAPE, np.float32) for n in RULES[rule][0]}
    return param, master, states


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("rule", sorted(RULES))
def test_update_through_master_is_the_float32_update_rounded(module, rule, fmt):
    param, master, states = fresh(fmt, rule)
    oracle_master, _, oracle_states = master.copy(), None, {n: a.copy() for n, a in states.items()}
    for t in range(1, 4):
        grad = to_format(np.random.default_rng(10 + t).standard_normal(SHAPE), fmt)
        call(module, rule, param, grad, states, t, master=master)
        g32 = _half.widen(_half.bits(grad), kind(fmt)).reshape(SHAPE)
        call(fastopt.reference, rule, oracle_master, g32, oracle_states, t)
    np.testing.assert_array_equal(master.view(np.uint32), oracle_master.view(np.uint32))
    for n in states:
        np.testing.assert_array_equal(states[n].view(np.uint32), oracle_states[n].view(np.uint32))
    np.testing.assert_array_equal(_half.bits(param), _half.narrow(master, kind(fmt)))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_fast_equals_reference_on_every_simd_variant_and_thread_count(fast_config, rule):
    for fmt in ("float16", "bfloat16"):
        got, want = fresh(fmt, rule), fresh(fmt, rule)
        for t in range(1, 3):
            grad = to_format(np.random.default_rng(t).standard_normal(SHAPE) * 3, fmt)
            call(fastopt, rule, got[0], grad, got[2], t, master=got[1])
            call(fastopt.reference, rule, want[0], grad, want[2], t, master=want[1])
        np.testing.assert_array_equal(_half.bits(got[0]), _half.bits(want[0]))
        np.testing.assert_array_equal(got[1].view(np.uint32), want[1].view(np.uint32))
        for n in got[2]:
            np.testing.assert_array_equal(got[2][n], want[2][n])


def test_the_object_and_the_function_agree():
    param, master, states = fresh("bfloat16", "adam")
    obj_param = param.copy()
    opt = fastopt.Adam([obj_param], lr=0.01, weight_decay=1e-2, amsgrad=True,
                       master_dtype=np.float32)
    for t in range(1, 4):
        grad = to_format(np.random.default_rng(t).standard_normal(SHAPE), "bfloat16")
        fastopt.adam_update(param, grad, states["m"], states["v"], t, lr=0.01, weight_decay=1e-2,
                            v_max=states["v_max"], master=master)
        opt.step([grad])
    np.testing.assert_array_equal(_half.bits(param), _half.bits(obj_param))
    np.testing.assert_array_equal(master, opt.master[0])
    np.testing.assert_array_equal(states["v_max"], opt.state("v_max")[0])


def _snapshot(*arrays):
    return [np.ascontiguousarray(a).tobytes() for a in arrays]


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
def test_refusals_write_nothing(module):
    param, master, states = fresh("float16", "adam")
    m, v = states["m"], states["v"]
    grad = to_format(np.ones(SHAPE), "float16")
    before = _snapshot(param, master, m, v)
    cases = [
        # 16-bit param without master
        (dict(), TypeError, "^param has dtype float16, a 16-bit format: pass master="),
        # master of the wrong dtype, shape, layout
        (dict(master=master.astype(np.float64)), TypeError, "^master has dtype float64"),
        (dict(master=master.astype(np.float16)), TypeError, "^master has dtype float16"),
        (dict(master=master[:, :10].copy()), ValueError, "^master has shape"),
        (dict(master=np.asfortranarray(master)), ValueError, "^master is not C-contiguous"),
        (dict(master=[1.0]), TypeError, "^master must be a numpy.ndarray"),
        # gradient in another format
        (dict(master=master, grad=grad.astype(np.float32)), TypeError,
         "must be float16 too"),
        (dict(master=master, grad=_half.narrow(np.ones(SHAPE, np.float32), "bfloat16")),
         TypeError, "must be float16 too"),
        # state not float32
        (dict(master=master, m=m.astype(np.float16)), TypeError, "^m has dtype float16"),
        # overlap: a state array that is the master
        (dict(master=master, m=master), ValueError, "shares memory"),
    ]
    for changes, exc, message in cases:
        args = dict(param=param, grad=grad, m=m, v=v, t=1, lr=0.1) | changes
        with pytest.raises(exc, match=message):
            module.adam_update(**args)
        assert _snapshot(param, master, m, v) == before, changes
    # A float parameter takes no master.
    p32 = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="master is for 16-bit parameters"):
        module.sgd_update(p32, np.ones(3, np.float32), lr=0.1, master=np.ones(3, np.float32))
    assert (p32 == 1).all()
    # uint16 means bfloat16 bits: refused without a master like the other formats.
    with pytest.raises(TypeError, match="pass master="):
        module.sgd_update(np.ones(3, np.uint16), np.ones(3, np.uint16), lr=0.1)
