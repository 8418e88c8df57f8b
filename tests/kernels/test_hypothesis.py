"""Hostile input, generated: every public entry point, both implementations.

The property, for each generated case: either both implementations succeed and write the same
bits, or both raise the same ``TypeError``/``ValueError`` (same message, naming an argument) and
no array was written. Any other exception fails the test; a crash would end the run.

Profiles (conftest.py): ``ci`` (the default, deterministic, >= 10,000 cases in all) and
``thorough`` (HYPOTHESIS_PROFILE=thorough, ten times more, random).
"""
import functools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab
from fastopt import schedules
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

IMPLS = (fastopt.reference, fastopt)
FLOATS = (np.float32, np.float64)
COUNTER = {"cases": 0}


def counted(fn):
    """Count generated cases (reported at the end of the run by conftest.py)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        COUNTER["cases"] += 1
        return fn(*args, **kwargs)
    return wrapper


def values(dtype, shape):
    info = np.finfo(dtype)
    return hnp.arrays(dtype, shape, elements=st.one_of(
        st.floats(-1e3, 1e3, width=8 * np.dtype(dtype).itemsize),
        st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, float(info.max),
                         float(info.tiny), float(info.smallest_subnormal), 1e-20])))


# An argument is derived from a base array by one of these.
GOOD = ["ok"] * 10
BAD = ["dtype", "shape", "strided", "fortran", "readonly", "list", "scalar", "same-as", "overlap"]


def derive(kind, base):
    """The argument made from (a fresh copy of) ``base``; "same-as" and "overlap" are resolved
    in :func:`build`, against the previous argument."""
    if kind in ("ok", "same-as", "overlap"):
        return base
    if kind == "dtype":
        with np.errstate(all="ignore"):  # NaN -> int is fine here: only the dtype matters
            return base.astype(np.float16 if base.dtype == np.float32 else np.int32)
    if kind == "shape":
        return np.zeros(base.shape + (2,), base.dtype)
    if kind == "strided":
        return np.repeat(base.reshape(-1), 2)[::2].reshape(base.shape) if base.size > 1 \
            else np.zeros(base.shape + (2,), base.dtype)[..., 0]
    if kind == "fortran":
        return np.asfortranarray(base) if base.ndim >= 2 and base.size > 1 else base[..., None]
    if kind == "readonly":
        base.flags.writeable = False
        return base
    if kind == "list":
        return base.tolist()
    if kind == "scalar":
        return 1.5
    raise AssertionError(kind)


@st.composite
def array_args(draw, names, allow_bad=True, shapes=None):
    """A recipe: base values and, per argument, how it is derived."""
    dtype = draw(st.sampled_from(FLOATS))
    if shapes is None:
        shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
    shape = draw(shapes)
    bases = [draw(values(dtype, shape)) for _ in names]
    kinds = [draw(st.sampled_from(GOOD + (BAD if allow_bad else []))) for _ in names]
    return bases, kinds


def build(recipe):
    """Fresh arguments from a recipe (each implementation gets its own)."""
    bases, kinds = recipe
    args = []
    for base, kind in zip(bases, kinds):
        arg = derive(kind, base.copy())
        prev = args[-1] if args else None
        if kind == "same-as" and prev is not None:
            arg = prev  # the very same object twice
        elif (kind == "overlap" and isinstance(prev, np.ndarray) and prev.size > 1
              and prev.flags.c_contiguous and prev.dtype == base.dtype):
            # Two C-contiguous views of one buffer, one item apart.
            buf = np.concatenate([prev.reshape(-1), base.reshape(-1)[-1:]])
            args[-1] = buf[:prev.size].reshape(prev.shape)
            arg = buf[1:].reshape(prev.shape)
        args.append(arg)
    return args


def snapshot(objs):
    return [o.tobytes() if isinstance(o, np.ndarray) else repr(o) for o in objs]


HYPER_EDGE = [-1.0, math.nan, math.inf, 1.0, 2.0, -0.0, 0.0, 1e-300, "0.1", None, True,
              np.float32(0.5), np.int64(3), np.array([0.5])]


def hyper(valid):
    return st.one_of(valid, valid, valid, st.sampled_from(HYPER_EDGE))


LR = st.floats(0, 10)
BETA = st.floats(0, 1, exclude_max=True)
EPS = st.floats(1e-12, 1)
STEP = st.one_of(st.integers(1, 10 ** 6), st.integers(-2, 0),
                 st.sampled_from([1.5, True, np.int64(7), "3"]))

RULES = {
    "sgd": (["param", "grad"], dict(lr=LR)),
    "momentum": (["param", "grad", "velocity"], dict(lr=LR, beta=BETA)),
    "rmsprop": (["param", "grad", "sq_avg"], dict(lr=LR, beta=BETA, eps=EPS)),
    "adam": (["param", "grad", "m", "v"], dict(t=STEP, lr=LR, beta1=BETA, beta2=BETA, eps=EPS)),
}
ARG_NAMES = {"param", "grad", "velocity", "sq_avg", "m", "v", "t", "lr", "beta", "beta1",
             "beta2", "eps", "x", "out", "X", "Y", "parameters", "grads", "learning_rate",
             "epsilon", "mini_batch_size", "batch_size", "seed", "axis", "bias_correction",
             "params", "nonfinite", "drop_last", "copy", "s", "state"}


def names_an_argument(message):
    head = message.split(" ")[0].split("[")[0]
    return head in ARG_NAMES or any(f"{n} " in message or f"{n}[" in message
                                    for n in ARG_NAMES)


def outcome(call, objs):
    """Run ``call``; return ("ok", result) or ("error", type, message), checking that an error
    left every array as it was."""
    before = snapshot(objs)
    try:
        result = call()
    except (TypeError, ValueError) as exc:
        assert snapshot(objs) == before, f"an array was written before {exc!r}"
        assert names_an_argument(str(exc)), f"the message names no argument: {exc}"
        return ("error", type(exc), str(exc))
    return ("ok", result)


def same_outcome(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1:] == b[1:]


@pytest.mark.parametrize("rule", sorted(RULES))
@given(data=st.data())
@counted
def test_array_updates(rule, data):
    names, hp = RULES[rule]
    recipe = data.draw(array_args(names))
    hyper_values = {k: data.draw(hyper(v) if k != "t" else v, label=k) for k, v in hp.items()}
    results = []
    for impl in IMPLS:
        args = build(recipe)
        grad_before = args[1].copy() if isinstance(args[1], np.ndarray) else None
        fn = getattr(impl, f"{rule}_update")
        res = outcome(lambda: fn(*args, **hyper_values), args)
        if res[0] == "ok":
            assert_ulp_equal(args[1], grad_before, err_msg="grad was written")
        results.append((res, args))
    (r_ref, a_ref), (r_fast, a_fast) = results
    same_outcome(r_ref, r_fast)
    if r_ref[0] == "ok":
        for name, x, y in zip(names, a_ref, a_fast):
            assert_ulp_equal(x, y, err_msg=name)


@given(data=st.data())
@counted
def test_ewa(data):
    recipe = data.draw(array_args(["x", "out"], shapes=st.one_of(
        hnp.array_shapes(min_dims=1, max_dims=1, max_side=40), hnp.array_shapes(max_dims=2))))
    beta = data.draw(hyper(BETA))
    bias = data.draw(st.one_of(st.booleans(), st.sampled_from([0, 1, "yes", None])))
    use_out = data.draw(st.booleans())
    results = []
    for impl in IMPLS:
        x, out = build(recipe)
        kwargs = dict(out=out) if use_out else {}
        res = outcome(lambda: impl.ewa(x, beta, bias, **kwargs), [x, out])
        results.append(res)
    same_outcome(*results)
    if results[0][0] == "ok":
        assert_ulp_equal(results[0][1], results[1][1])


@given(data=st.data())
@counted
def test_minibatches(data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int16, np.bool_, np.uint8]))
    axis = data.draw(st.one_of(st.sampled_from([0, 1, 1, -1]), st.sampled_from([2, "x"])))
    rows, cols = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 40))
    X = data.draw(hnp.arrays(dtype, (rows, cols)))
    layout = data.draw(st.sampled_from(["c", "c", "f", "strided", "1d", "list"]))
    if layout == "f":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = X[:, ::2]
    elif layout == "1d":
        X = X.reshape(-1)
    elif layout == "list":
        X = X.tolist()
    m = cols if isinstance(axis, int) and axis % 2 == 1 else rows
    y_len = data.draw(st.sampled_from([m, m, m, m + 1]))
    Y = data.draw(st.sampled_from(["none", "1d", "2d"]))
    Y = None if Y == "none" else (np.arange(y_len) % 3 if Y == "1d" else
                                  (np.arange(2 * y_len).reshape(2, y_len)
                                   if isinstance(axis, int) and axis % 2 == 1 else
                                   np.arange(2 * y_len).reshape(y_len, 2)))
    batch = data.draw(st.one_of(st.integers(1, 50), st.sampled_from([0, -1, 2.0, True])))
    seed = data.draw(st.one_of(st.integers(0, 2 ** 32 - 1), st.sampled_from([-1, "s"])))
    drop_last = data.draw(st.sampled_from([False, True, 1]))
    results = []
    for impl in IMPLS:
        def epoch():
            loader = impl.MiniBatches(X, Y, batch, seed, axis, drop_last, copy=True)
            return list(loader)
        results.append(outcome(epoch, [X] + ([Y] if Y is not None else [])))
    same_outcome(*results)
    if results[0][0] == "ok":
        assert len(results[0][1]) == len(results[1][1])
        for a, b in zip(results[0][1], results[1][1]):
            for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()
    # the lab function, on the assignment's layout
    if isinstance(X, np.ndarray) and X.ndim == 2 and Y is not None and Y.ndim == 1:
        lab_results = [outcome(lambda: lab.random_mini_batches(X, Y, batch, seed), [X, Y])
                       for lab in (fastopt.reference.lab, fastopt.lab)]
        same_outcome(*lab_results)
        if lab_results[0][0] == "ok":
            for (ax, ay), (bx, by) in zip(lab_results[0][1], lab_results[1][1]):
                assert ax.tobytes() == bx.tobytes() and ay.tobytes() == by.tobytes()


@st.composite
def lab_case(draw):
    n_layers = draw(st.integers(1, 4))
    dims = [draw(st.integers(1, 4)) for _ in range(n_layers + 1)]
    dtype = draw(st.sampled_from(FLOATS))
    entries = {}
    for l in range(1, n_layers + 1):
        entries[f"W{l}"] = draw(values(dtype, (dims[l], dims[l - 1])))
        entries[f"b{l}"] = draw(values(dtype, (dims[l], 1)))
    grads = {"d" + k: draw(values(dtype, v.shape)) for k, v in entries.items()}
    spoil = draw(st.sampled_from([None] * 6 + ["drop-grad", "shape", "dtype", "alias-state",
                                               "alias-param", "strided", "extra-param"]))
    target = draw(st.sampled_from(sorted(entries)))
    return entries, grads, spoil, target


def build_lab(case, lab, rule):
    entries, grads, spoil, target = case
    params = {k: v.copy() for k, v in entries.items()}
    grads = {k: v.copy() for k, v in grads.items()}
    state = ()
    if rule == "momentum":
        state = (lab.initialize_velocity(params),)
    elif rule == "adam":
        state = lab.initialize_adam(params)
    elif rule == "rmsprop":
        state = (lab.initialize_rmsprop(params),)
    gkey = "d" + target
    if spoil == "drop-grad":
        del grads[gkey]
    elif spoil == "shape":
        grads[gkey] = np.zeros(grads[gkey].shape + (1,), grads[gkey].dtype)
    elif spoil == "dtype":
        grads[gkey] = np.zeros(grads[gkey].shape, np.float16)
    elif spoil == "alias-state" and state:
        other = next(k for k in state[0] if k != gkey) if len(state[0]) > 1 else gkey
        if state[0][other].shape == state[0][gkey].shape:
            state[0][gkey] = state[0][other]
    elif spoil == "alias-param":
        grads[gkey] = params[target]
    elif spoil == "strided":
        big = np.zeros(params[target].shape + (2,), params[target].dtype)
        big[..., 0] = params[target]
        params[target] = big[..., 0]
    elif spoil == "extra-param":
        params["gamma"] = np.ones(1, params[target].dtype)
    return params, grads, state


@pytest.mark.parametrize("rule", ["gd", "momentum", "rmsprop", "adam"])
@given(case=lab_case(), lr=hyper(LR), beta=hyper(BETA), t=STEP)
@counted
def test_lab_functions(rule, case, lr, beta, t):
    results = []
    for lab in (fastopt.reference.lab, fastopt.lab):
        params, grads, state = build_lab(case, lab, rule)
        if rule == "gd":
            call = lambda: lab.update_parameters_with_gd(params, grads, lr)  # noqa: E731
        elif rule == "momentum":
            call = lambda: lab.update_parameters_with_momentum(  # noqa: E731
                params, grads, state[0], beta, lr)
        elif rule == "rmsprop":
            call = lambda: lab.update_parameters_with_rmsprop(  # noqa: E731
                params, grads, state[0], beta, lr)
        else:
            call = lambda: lab.update_parameters_with_adam(  # noqa: E731
                params, grads, state[0], state[1], t, lr)
        objs = list(params.values()) + [a for d in state for a in d.values()]
        results.append((outcome(call, objs), params, state))
    (ra, pa, sa), (rb, pb, sb) = results
    same_outcome(ra, rb)
    if ra[0] == "ok":
        for k in pa:
            assert_ulp_equal(pa[k], pb[k], err_msg=k)
        for da, db in zip(sa, sb):
            for k in da:
                assert_ulp_equal(da[k], db[k], err_msg=k)


OPTIMIZERS = {"SGD": dict(lr=LR), "Momentum": dict(lr=LR, beta=BETA),
              "RMSProp": dict(lr=LR, beta=BETA, eps=EPS),
              "Adam": dict(lr=LR, beta1=BETA, beta2=BETA, eps=EPS)}


GRAD_PLANS = ["ok", "ok", "ok", "nan", "dtype", "shape", "param", "list"]


def spoil_grads(plan, arrays, step):
    grads = [np.full(p.shape, 0.1 * (step + 1), p.dtype) for p in arrays]
    if plan == "nan" and grads[0].size:
        grads[0].reshape(-1)[0] = np.nan
    elif plan == "dtype":
        grads[0] = grads[0].astype(np.int64)
    elif plan == "shape":
        grads[0] = grads[0].reshape(-1)[:0]
    elif plan == "param":
        grads[0] = arrays[0]
    elif plan == "list":
        grads[0] = grads[0].tolist()
    return grads


def optimizer_run(module, name, recipes, structure, hyper_values, nonfinite, plans):
    """Construct, then step with each plan; return a comparable log and the final arrays."""
    params = [build(r)[0] for r in recipes]
    if structure != "list":
        params = {f"p{i}": p for i, p in enumerate(params)}
    if structure == "packed":
        params = fastopt.pack(params)
    objs = list(params.values()) if isinstance(params, dict) else list(params)
    made = outcome(lambda: getattr(module, name)(params, nonfinite=nonfinite, **hyper_values),
                   objs)
    if made[0] == "error":
        return [made], []
    opt = made[1]
    arrays = list(opt._params)
    own = arrays + [a for s in opt._state_names for a in opt._state[s]]
    log = [("made",)]
    for step, plan in enumerate(plans):
        grads = spoil_grads(plan, arrays, step)
        if structure != "list":
            grads = dict(zip(opt.params, grads))
        t_before = opt.t
        try:
            result = outcome(lambda: opt.step(grads), own)
        except fastopt.NonFiniteGradientError as exc:
            assert opt.t == t_before
            result = ("nonfinite", str(exc))
        log.append(result)
    log.append(("counts", opt.t, opt.skipped))
    return log, [a.copy() for a in own]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@given(data=st.data())
@counted
def test_optimizers(name, data):
    recipes = [data.draw(array_args(["param"], allow_bad=data.draw(st.booleans())))
               for _ in range(data.draw(st.integers(1, 3)))]
    structure = data.draw(st.sampled_from(["list", "dict", "packed"]))
    if structure == "packed":  # pack copies; only well-formed float arrays of one dtype
        with np.errstate(all="ignore"):  # float64 -> float32 may overflow to inf: fine
            recipes = [([b.astype(recipes[0][0][0].dtype) for b in r[0]], ["ok"])
                       for r in recipes]
    hyper_values = {k: data.draw(hyper(v), label=k) for k, v in OPTIMIZERS[name].items()}
    nonfinite = data.draw(st.sampled_from(["propagate", "raise", "skip", "propagate", "bad"]))
    plans = [data.draw(st.sampled_from(GRAD_PLANS)) for _ in range(3)]
    (log_ref, arrays_ref), (log_fast, arrays_fast) = (
        optimizer_run(m, name, recipes, structure, hyper_values, nonfinite, plans)
        for m in IMPLS)
    assert len(log_ref) == len(log_fast)
    for a, b in zip(log_ref, log_fast):
        assert a == b, (a, b)  # same errors, same step results (True/False), same counts
    for x, y in zip(arrays_ref, arrays_fast):
        assert_ulp_equal(x, y)


@given(data=st.data())
@counted
def test_schedules(data):
    number = st.one_of(st.floats(-1, 5), st.integers(-2, 2000), st.sampled_from(HYPER_EDGE))
    kind = data.draw(st.sampled_from(["Constant", "InverseTimeDecay", "ExponentialDecay",
                                      "PiecewiseConstant", "CosineDecay", "LinearWarmup"]))
    try:
        if kind == "Constant":
            s = schedules.Constant(data.draw(number))
        elif kind in ("InverseTimeDecay", "ExponentialDecay"):
            s = getattr(schedules, kind)(data.draw(number), data.draw(number),
                                         data.draw(number), data.draw(st.sampled_from(
                                             [True, False, 1])))
        elif kind == "PiecewiseConstant":
            b = data.draw(st.lists(st.integers(-1, 100), max_size=4))
            v = data.draw(st.lists(st.floats(-0.5, 1), max_size=5))
            s = schedules.PiecewiseConstant(b, v)
        elif kind == "CosineDecay":
            s = schedules.CosineDecay(data.draw(number), data.draw(number), data.draw(number))
        else:
            s = schedules.LinearWarmup(data.draw(number), data.draw(number), data.draw(number))
    except (TypeError, ValueError) as exc:
        assert names_an_argument(str(exc)) or "boundaries" in str(exc) or "values" in str(exc)
        return
    steps = data.draw(hnp.arrays(np.int64, st.integers(0, 20),
                                 elements=st.integers(0, 10 ** 6)))
    got = s(steps)
    assert got.shape == steps.shape and got.dtype == np.float64
    assert [s(int(k)) for k in steps] == got.tolist() or np.isnan(got).any()
    assert repr(s).startswith(kind + "(")
