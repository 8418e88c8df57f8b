"""Bad input: a TypeError/ValueError naming the argument, raised before any array is written."""
import re

import numpy as np
import pytest

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

N = 6


def arrays(dtype=np.float64, n=N):
    rng = np.random.default_rng(0)
    return {"param": rng.standard_normal(n).astype(dtype),
            "grad": rng.standard_normal(n).astype(dtype),
            "state1": rng.standard_normal(n).astype(dtype),
            "state2": rng.standard_normal(n).astype(dtype)}


def call(impl, rule, a, **hp):
    """Call one update with the arrays of ``a`` (``state1``/``state2`` as its state)."""
    if rule == "sgd":
        return impl.sgd_update(a["param"], a["grad"], hp.pop("lr", 0.1), **hp)
    if rule == "momentum":
        return impl.momentum_update(a["param"], a["grad"], a["state1"], hp.pop("lr", 0.1), **hp)
    if rule == "rmsprop":
        return impl.rmsprop_update(a["param"], a["grad"], a["state1"], hp.pop("lr", 0.1), **hp)
    return impl.adam_update(a["param"], a["grad"], a["state1"], a["state2"], hp.pop("t", 1),
                            hp.pop("lr", 0.1), **hp)


RULES = ["sgd", "momentum", "rmsprop", "adam"]
STATE_ARG = {"momentum": ["velocity"], "rmsprop": ["sq_avg"], "adam": ["m", "v"], "sgd": []}


def arg_name(rule, key):
    return {"param": "param", "grad": "grad", "state1": (STATE_ARG[rule] + [None])[0],
            "state2": (STATE_ARG[rule] + [None, None])[1]}[key]


def used_keys(rule):
    return ["param", "grad"] + ["state1", "state2"][:len(STATE_ARG[rule])]


def expect_error(impl, rule, a, exc, pattern, **hp):
    before = {k: v.copy() for k, v in a.items()}
    with pytest.raises(exc, match=pattern):
        call(impl, rule, a, **hp)
    for k in a:  # byte for byte, whatever the dtype
        assert a[k].tobytes() == before[k].tobytes(), f"{k} was written before the error"


@pytest.mark.parametrize("rule", RULES)
def test_not_an_array(impl, rule):
    for key in used_keys(rule):
        a = arrays()
        a[key] = list(a[key])
        with pytest.raises(TypeError, match=rf"^{arg_name(rule, key)} must be a numpy.ndarray"):
            call(impl, rule, a)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("bad", [np.int64, np.float16, np.complex128, np.bool_])
def test_bad_dtype(impl, rule, bad):
    for key in used_keys(rule):
        a = arrays()
        a[key] = a[key].astype(bad)
        # A float16 param is a 16-bit parameter: told to pass its float32 master (issue 24).
        expected = (", a 16-bit format: pass master=" if bad is np.float16 and key == "param"
                    else "; expected float32 or float64")
        expect_error(impl, rule, a, TypeError,
                     rf"^{arg_name(rule, key)} has dtype {np.dtype(bad).name}{expected}")


@pytest.mark.parametrize("rule", RULES)
def test_mixed_dtypes(impl, rule):
    for key in used_keys(rule)[1:]:
        a = arrays()
        a[key] = a[key].astype(np.float32)
        expect_error(impl, rule, a, TypeError,
                     rf"^{arg_name(rule, key)} has dtype float32; expected float64, the dtype "
                     "of param")


@pytest.mark.parametrize("rule", RULES)
def test_shape_mismatch(impl, rule):
    for key in used_keys(rule)[1:]:
        a = arrays(n=N)
        a[key] = np.zeros((2, 3))
        expect_error(impl, rule, a, ValueError,
                     re.escape(f"{arg_name(rule, key)} has shape (2, 3); expected (6,), the "
                               "shape of param"))
        a = arrays(n=N)
        a[key] = np.zeros(N - 1)  # a short gradient must never be read past its end
        expect_error(impl, rule, a, ValueError, "has shape")


@pytest.mark.parametrize("rule", RULES)
def test_not_contiguous(impl, rule):
    for key in used_keys(rule):
        a = arrays()
        base = np.zeros(2 * N)
        base[::2] = a[key]
        a[key] = base[::2]
        expect_error(impl, rule, a, ValueError,
                     rf"^{arg_name(rule, key)} is not C-contiguous.*np.ascontiguousarray")


@pytest.mark.parametrize("rule", RULES)
def test_fortran_order_2d_is_rejected(impl, rule):
    a = {k: np.asfortranarray(v.reshape(2, 3)) for k, v in arrays().items()}
    expect_error(impl, rule, a, ValueError, "^param is not C-contiguous")


@pytest.mark.parametrize("rule", RULES)
def test_read_only_written_array(impl, rule):
    for key in used_keys(rule):
        if key == "grad":
            continue
        a = arrays()
        a[key].flags.writeable = False
        expect_error(impl, rule, a, ValueError, rf"^{arg_name(rule, key)} is read-only")


@pytest.mark.parametrize("rule", RULES)
def test_read_only_grad_is_accepted(impl, rule):
    a = arrays()
    a["grad"].flags.writeable = False
    call(impl, rule, a)


@pytest.mark.parametrize("rule", RULES)
def test_overlap(impl, rule):
    keys = used_keys(rule)
    for i, k1 in enumerate(keys):
        for k2 in keys[i + 1:]:
            a = arrays()
            a[k2] = a[k1]  # the same array twice
            expect_error(impl, rule, a, ValueError, "shares memory with")
            a = arrays()
            buf = np.zeros(N + 3)
            a[k1], a[k2] = buf[:N], buf[3:]  # partial overlap
            expect_error(impl, rule, a, ValueError, "shares memory with")


HYPER_ERRORS = [
    ("lr", -0.1, ValueError, r"^lr must be finite and >= 0"),
    ("lr", float("inf"), ValueError, r"^lr must be finite"),
    ("lr", float("nan"), ValueError, r"^lr must not be NaN"),
    ("lr", "0.1", TypeError, r"^lr must be a real number, got str"),
    ("lr", True, TypeError, r"^lr must be a real number, got bool"),
    ("lr", None, TypeError, r"^lr must be a real number"),
    ("lr", np.array([0.1]), TypeError, r"^lr must be a real number, got ndarray"),
]
BETA_NAMES = {"momentum": ["beta"], "rmsprop": ["beta"], "adam": ["beta1", "beta2"], "sgd": []}


def hyper_cases():
    for rule in RULES:
        for name, value, exc, pat in HYPER_ERRORS:
            yield rule, name, value, exc, pat
        for beta in BETA_NAMES[rule]:
            yield rule, beta, 1.0, ValueError, rf"^{beta} must satisfy 0 <= {beta} < 1, got 1.0"
            yield rule, beta, -0.01, ValueError, rf"^{beta} must satisfy 0 <= {beta} < 1"
            yield rule, beta, float("nan"), ValueError, rf"^{beta} must not be NaN"
        if rule in ("rmsprop", "adam"):
            yield rule, "eps", 0.0, ValueError, r"^eps must be finite and > 0"
            yield rule, "eps", float("inf"), ValueError, r"^eps must be finite and > 0"
        if rule == "adam":
            yield rule, "t", 0, ValueError, r"^t must be >= 1"
            yield rule, "t", 1.0, TypeError, r"^t must be an integer >= 1"
            yield rule, "t", True, TypeError, r"^t must be an integer >= 1, got bool"


@pytest.mark.parametrize("rule,name,value,exc,pattern", list(hyper_cases()))
def test_hyperparameters(impl, rule, name, value, exc, pattern):
    expect_error(impl, rule, arrays(), exc, pattern, **{name: value})


def test_both_implementations_raise_identical_messages():
    import fastopt
    import fastopt.reference
    a = arrays()
    a["grad"] = np.zeros((2, 3))
    messages = []
    for impl in (fastopt, fastopt.reference):
        with pytest.raises(ValueError) as info:
            call(impl, "adam", a)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_zero_size_and_boundaries_are_accepted(impl, dtype):
    a = {k: np.zeros(0, dtype) for k in ("param", "grad", "state1", "state2")}
    for rule in RULES:
        call(impl, rule, a)
    b = arrays(dtype)
    call(impl, "adam", b, lr=0.0, beta1=0.0, beta2=0.0, t=10**6)
    call(impl, "momentum", b, beta=np.nextafter(1.0, 0.0))
