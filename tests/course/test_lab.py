"""fastopt.lab and fastopt.reference.lab against the assignment's own code, bit for bit."""
import numpy as np
import pytest

import assignment
import fastopt.lab
import fastopt.reference.lab
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

LABS = {"fastopt": fastopt.lab, "reference": fastopt.reference.lab}
LAYERS = [[2, 5, 2, 1], [3, 1], [4, 7, 6, 5, 3, 1]]


@pytest.fixture(params=sorted(LABS))
def lab(request):
    return LABS[request.param]


def make_params(dims, dtype, seed=3):
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = (rng.standard_normal((dims[l], dims[l - 1])) * 0.5).astype(dtype)
        params[f"b{l}"] = rng.standard_normal((dims[l], 1)).astype(dtype)
    return params


def make_grads(params, rng):
    grads = {"d" + k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
    grads["dz1"] = np.ones(3)  # the assignment's backward pass returns extra entries
    return grads


def copy_dict(d):
    return {k: np.array(v, copy=True) for k, v in d.items()}


def assert_dicts_equal(got, want, what):
    assert sorted(got) == sorted(want), what
    for k in want:
        assert_ulp_equal(got[k], want[k], err_msg=f"{what}[{k!r}]")


def run(module, rule, params, steps, hp, seed=11):
    """Run ``steps`` updates; return every dict the functions returned at the last step."""
    rng = np.random.default_rng(seed)
    if rule == "momentum":
        state = (module.initialize_velocity(params),)
    elif rule == "adam":
        state = module.initialize_adam(params)
    elif rule == "rmsprop":
        state = (fastopt.reference.lab.initialize_rmsprop(params),)
    else:
        state = ()
    out = None
    for t in range(1, steps + 1):
        grads = make_grads(params, rng)
        if rule == "gd":
            out = (module.update_parameters_with_gd(params, grads, hp["learning_rate"]),)
        elif rule == "momentum":
            out = module.update_parameters_with_momentum(params, grads, *state, hp["beta"],
                                                         hp["learning_rate"])
        elif rule == "rmsprop":
            out = module.update_parameters_with_rmsprop(params, grads, *state, **hp)
        else:
            out = module.update_parameters_with_adam(params, grads, *state, t, **hp)
    return out


HP = {
    "gd": [dict(learning_rate=0.1), dict(learning_rate=0.0007)],
    "momentum": [dict(beta=0.9, learning_rate=0.0007), dict(beta=0.5, learning_rate=0.1)],
    "rmsprop": [dict(beta=0.9, learning_rate=0.01), dict(beta=0.99, learning_rate=0.1,
                                                          epsilon=1e-4)],
    "adam": [dict(learning_rate=0.01), dict(learning_rate=0.0007, beta1=0.8, beta2=0.99,
                                            epsilon=1e-6)],
}
CASES = [(rule, i) for rule in HP for i in range(len(HP[rule]))]


@pytest.mark.parametrize("dims", LAYERS, ids=str)
@pytest.mark.parametrize("rule,i", CASES)
def test_matches_assignment_float64(lab, rule, i, dims):
    want = run(assignment, rule, make_params(dims, np.float64), 12, HP[rule][i])
    got = run(lab, rule, make_params(dims, np.float64), 12, HP[rule][i])
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_dicts_equal(g, w, f"return value {k}")


@pytest.mark.parametrize("dims", LAYERS, ids=str)
@pytest.mark.parametrize("rule,i", CASES)
def test_fastopt_matches_reference_float32(rule, i, dims):
    want = run(fastopt.reference.lab, rule, make_params(dims, np.float32), 12, HP[rule][i])
    got = run(fastopt.lab, rule, make_params(dims, np.float32), 12, HP[rule][i])
    for k, (g, w) in enumerate(zip(got, want)):
        assert all(a.dtype == np.float32 for a in g.values())
        assert_dicts_equal(g, w, f"return value {k}")


def test_updates_in_place_and_returns_same_dicts(lab):
    params = make_params([2, 5, 2, 1], np.float64)
    arrays = dict(params)
    v, s = lab.initialize_adam(params)
    grads = make_grads(params, np.random.default_rng(0))
    out = lab.update_parameters_with_adam(params, grads, v, s, 1)
    assert out[0] is params and out[1] is v and out[2] is s
    assert all(params[k] is arrays[k] for k in params)  # no rebinding


def test_initializers(lab):
    params = make_params([3, 4, 1], np.float32)
    for init in (lab.initialize_velocity, lab.initialize_rmsprop):
        st = init(params)
        assert sorted(st) == ["dW1", "dW2", "db1", "db2"]
        for k, arr in st.items():
            assert arr.shape == params[k[1:]].shape and arr.dtype == np.float32
            assert not arr.any()
    v, s = lab.initialize_adam(params)
    assert all(not np.shares_memory(v[k], s[k]) for k in v)


def test_bad_fifth_gradient_leaves_everything_untouched(lab):
    params = make_params([2, 5, 2, 1], np.float64)
    v, s = lab.initialize_adam(params)
    grads = make_grads(params, np.random.default_rng(0))
    grads["dW3"] = np.zeros((2, 1))  # the 5th entry in update order (W1 b1 W2 b2 W3 b3)
    before = [copy_dict(d) for d in (params, v, s)]
    with pytest.raises(ValueError, match=r"grads\['dW3'\] has shape \(2, 1\); expected \(1, 2\), "
                                         r"the shape of parameters\['W3'\]"):
        lab.update_parameters_with_adam(params, grads, v, s, 1)
    for got, want in zip((params, v, s), before):
        assert_dicts_equal(got, want, "after a rejected call")


def test_missing_key_names_the_key(lab):
    params = make_params([2, 5, 1], np.float64)
    grads = make_grads(params, np.random.default_rng(0))
    del grads["db2"]
    before = copy_dict(params)
    with pytest.raises(KeyError, match=r"grads has no entry 'db2'") as info:
        lab.update_parameters_with_gd(params, grads, 0.1)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("grads has no entry 'db2'")
    assert_dicts_equal(params, before, "after a rejected call")
    v = lab.initialize_velocity(params)
    del v["dW1"]
    with pytest.raises(ValueError, match=r"v has no entry 'dW1'"):
        lab.update_parameters_with_momentum(params, make_grads(params, np.random.default_rng(1)),
                                            v, 0.9, 0.1)


def test_unexpected_parameter_keys(lab):
    params = make_params([2, 5, 1], np.float64)
    params["W3"] = np.zeros((1, 1))
    with pytest.raises(ValueError, match=r"missing \['b3'\], unexpected \[\]"):
        lab.initialize_velocity(params)
    params = make_params([2, 5, 1], np.float64)
    params["gamma"] = np.zeros(1)
    params["beta"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected \['beta', 'gamma'\]"):
        lab.update_parameters_with_gd(params, {}, 0.1)


def test_aliasing_across_entries(lab):
    params = make_params([3, 3, 3], np.float64)
    params["W2"] = params["W1"]  # the same array as two parameters would be stepped twice
    grads = make_grads(params, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"parameters\['W1'\] shares memory with "
                                         r"parameters\['W2'\]"):
        lab.update_parameters_with_gd(params, grads, 0.1)
    params = make_params([3, 3, 3], np.float64)
    v = lab.initialize_velocity(params)
    v["dW2"] = v["dW1"]
    before = copy_dict(params)
    with pytest.raises(ValueError, match=r"v\['dW1'\] shares memory with v\['dW2'\]"):
        lab.update_parameters_with_momentum(params, grads, v, 0.9, 0.1)
    assert_dicts_equal(params, before, "after a rejected call")


@pytest.mark.parametrize("call,pattern", [
    (lambda lab, p, g: lab.update_parameters_with_gd(p, g, -1.0), "^learning_rate must be"),
    (lambda lab, p, g: lab.update_parameters_with_momentum(p, g, lab.initialize_velocity(p),
                                                           1.5, 0.1), "^beta must satisfy"),
    (lambda lab, p, g: lab.update_parameters_with_adam(p, g, *lab.initialize_adam(p), 0),
     "^t must be >= 1"),
    (lambda lab, p, g: lab.update_parameters_with_adam(p, g, *lab.initialize_adam(p), 1,
                                                       beta2=1.0), "^beta2 must satisfy"),
    (lambda lab, p, g: lab.update_parameters_with_rmsprop(p, g, lab.initialize_rmsprop(p), 0.9,
                                                          0.1, epsilon=0), "^epsilon must be"),
    (lambda lab, p, g: lab.update_parameters_with_gd([], g, 0.1), "^parameters must be a dict"),
])
def test_hyperparameter_errors_use_the_assignment_names(lab, call, pattern):
    params = make_params([2, 3, 1], np.float64)
    grads = make_grads(params, np.random.default_rng(0))
    before = copy_dict(params)
    with pytest.raises((TypeError, ValueError), match=pattern):
        call(lab, params, grads)
    assert_dicts_equal(params, before, "after a rejected call")
