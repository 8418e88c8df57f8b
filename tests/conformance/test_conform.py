"""fastopt.testing.check_update: the conformance report finds real differences, names where
they first show, and says bit-identical for fastopt's own compiled path.

Planted deviations are copies of the reference's Adam arithmetic with one change each; the
position where each first shows is computed here independently (a plain loop over the case,
comparing bits), and the report must name exactly that step and index.
"""
import math
import sys
import types
from typing import NamedTuple

import numpy as np
import pytest

import fastopt
from fastopt.testing import _conform, check_update, from_fastopt, from_optax, from_torch
from fastopt.testing._cases import trajectory

DTYPES = (np.float32, np.float64)


# -- independent first-divergence finder -----------------------------------------------------

def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def first_difference(fn, case, **hyper):
    """Run ``fn`` (in place on param and the state dict) over ``case`` and return the
    (step, index) where any array first differs in bits from the case (NaN equal to NaN)."""
    p = case.param.copy()
    state = {k: v.copy() for k, v in case.state.items()}
    for i in range(len(case.steps)):
        fn(p, case.grads[i].copy(), state, t=int(case.steps[i]), lr=float(case.lr[i]),
           **hyper)
        got = [p] + [state[k] for k in case.state]
        exp = [case.expected_param[i]] + [case.expected_state[k][i] for k in case.state]
        bad = np.zeros(p.shape[0], bool)
        for g, e in zip(got, exp):
            bad |= (_bits(g) != _bits(e)) & ~(np.isnan(g) & np.isnan(e))
        if bad.any():
            return i + 1, int(np.argmax(bad))
    return None


# -- planted deviations: the reference's Adam with one change each ---------------------------

def adam_variant(change):
    """The reference's Adam (fastopt/reference/_ops.py, docs/contract.md §2) in the calling
    convention, with ``change`` applied."""

    def update(param, grad, state, *, t, lr, beta1, beta2, eps):
        m, v = state["m"], state["v"]
        before = (param.copy(), m.copy(), v.copy())
        tt = t + 1 if change == "t_off_by_one" else t
        bias1, bias2 = 1 - beta1 ** tt, 1 - beta2 ** tt
        if change == "float32_bias":  # computed in float32 arithmetic, not double
            bias1 = float(np.float32(1) - np.float32(beta1) ** np.float32(tt))
            bias2 = float(np.float32(1) - np.float32(beta2) ** np.float32(tt))
        with np.errstate(all="ignore"):
            m[...] = beta1 * m + (1 - beta1) * grad
            m_hat = m / bias1
            v[...] = beta2 * v + (1 - beta2) * (grad * grad)
            v_hat = v / bias2
            if change == "reassociated":
                param[...] = param - lr * (m_hat / (np.sqrt(v_hat) + eps))
            elif change == "eps_inside_sqrt":
                param[...] = param - lr * m_hat / np.sqrt(v_hat + eps)
            else:
                param[...] = param - lr * m_hat / (np.sqrt(v_hat) + eps)
        if change == "missed_signed_zero":
            param[param == 0] = 0.0  # -0.0 becomes +0.0
        if change == "skipped_range" and t == 3:
            # One thread's range (the second of two halves) not updated at step 3.
            half = param.shape[0] // 2
            param[half:], m[half:], v[half:] = (b[half:] for b in before)

    return update


DEVIATIONS = ("reassociated", "eps_inside_sqrt", "float32_bias", "missed_signed_zero",
              "t_off_by_one", "skipped_range")


def _deviation_case(change, dtype):
    if change == "missed_signed_zero":
        return trajectory("Adam", dtype, size=24, steps=5, offset=1, edges=True)
    if change == "float32_bias":
        return trajectory("Adam", dtype, size=17, steps=10, offset=3)
    if change == "reassociated":  # lr*(a/b) and (lr*a)/b agree on most elements
        return trajectory("Adam", dtype, size=1000, steps=4, offset=1)
    return trajectory("Adam", dtype, size=33, steps=6, offset=1, seed=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("change", DEVIATIONS)
def test_every_planted_deviation_is_named_at_its_first_step_and_index(change, dtype):
    case = _deviation_case(change, dtype)
    fn = adam_variant(change)
    expected = first_difference(fn, case, beta1=0.9, beta2=0.999, eps=1e-8)
    assert expected is not None, "the deviation must change some bits of this case"
    report = check_update(fn, "Adam", cases=[case])
    assert not report.bit_identical
    d = report.first_divergence
    assert (d.step, d.index) == expected
    assert d.case == case.name and d.t == case.steps[d.step - 1]
    # the inputs shown are those of that step at that index
    assert d.inputs["grad"] == case.grads[d.step - 1, d.index] or math.isnan(d.inputs["grad"])
    assert d.expected["param"] is not None and str(d).startswith("first divergence")


def test_the_positions_of_the_simple_deviations_are_where_the_arithmetic_says():
    """Beyond the independent loop: a step count off by one changes the bias correction of
    every element from step 1; a skipped range shows at step 3, at the range's first element;
    a missed -0.0 shows at step 1 at the first element holding -0.0 (the neg_zero edges)."""
    case = _deviation_case("t_off_by_one", np.float64)
    d = check_update(adam_variant("t_off_by_one"), "Adam", cases=[case]).first_divergence
    assert (d.step, d.index) == (1, 0)
    d = check_update(adam_variant("skipped_range"), "Adam", cases=[case]).first_divergence
    assert (d.step, d.index) == (3, case.size // 2)
    zcase = _deviation_case("missed_signed_zero", np.float32)
    r = check_update(adam_variant("missed_signed_zero"), "Adam", cases=[zcase])
    d = r.first_divergence
    neg = zcase.expected_param[0] == 0
    neg &= np.signbit(zcase.expected_param[0])
    assert (d.step, d.index, d.arrays) == (1, int(np.argmax(neg)), ("param",))
    assert d.ulp["param"] == 0  # 0 ULP apart, yet not the same bits
    assert not r.results[0].edges["neg_zero"].matches
    assert "zero sign" in r.results[0].edges["neg_zero"].problems
    assert r.results[0].zero_sign_mismatches > 0


def test_the_reference_copy_itself_is_bit_identical():
    case = _deviation_case("reassociated", np.float32)
    assert first_difference(adam_variant(None), case, beta1=0.9, beta2=0.999, eps=1e-8) is None
    report = check_update(adam_variant(None), "Adam", cases=[case])
    assert report.bit_identical and report.max_ulp == 0 and report.first_divergence is None


# -- fastopt's own compiled path -------------------------------------------------------------

@pytest.mark.parametrize("rule", _conform.RULES)
def test_fastopt_compiled_path_is_bit_identical_on_every_case(rule):
    """The whole catalogue (every option set and dtype, tails, offsets, 1000-step runs, late
    windows, edge values, 100003 elements), about 3 s a rule."""
    report = check_update(from_fastopt(rule))
    assert report.run and not report.not_run and not report.errors
    assert report.bit_identical, str(report)
    assert all(e.matches and e.identical for r in report.run for e in r.edges.values())
    report.assert_conforms(0)


def test_fastopt_compiled_path_is_bit_identical_at_every_thread_count():
    """Above 2**20 items a call is split over threads (README, Measured); an odd size off the
    boundary puts the split inside a vector."""
    case = trajectory("Adam", np.float32, size=2 ** 20 + 17, steps=2, offset=1, amsgrad=True)
    for n in sorted({1, 2, fastopt.get_num_threads()}):
        with fastopt.num_threads(n):
            assert check_update(from_fastopt("Adam"), cases=[case]).bit_identical


# -- the report: per step and array, edge classes, not run, errors ---------------------------

def test_per_step_and_array_statistics():
    case = trajectory("Adam", np.float32, size=1000, steps=4, offset=1)
    report = check_update(adam_variant("reassociated"), "Adam", cases=[case])
    r = report.results[0]
    assert r.arrays == ("param", "m", "v")
    for name in r.arrays:
        assert r.max_ulp(name).shape == r.p99_ulp(name).shape == (4,)
        assert (r.p99_ulp(name) <= r.max_ulp(name)).all()
        assert ((0 <= r.fraction_identical(name)) & (r.fraction_identical(name) <= 1)).all()
    # only the parameter's last operation changed: the moments stay the reference's bits
    assert r.fraction_identical("m").min() == 1 and r.fraction_identical("v").min() == 1
    assert r.max_ulp("param").max() > 0
    text = str(r)
    assert "max ULP" in text and "first divergence" in text


def test_edge_classes_nan_where_nan_no_spurious_inf():
    case = trajectory("SGD", np.float64, size=64, steps=5, offset=1, edges=True)

    def nan_to_zero(param, grad, state, *, t, lr):
        param -= lr * np.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)

    r = check_update(nan_to_zero, "SGD", cases=[case]).results[0]
    assert set(r.edges) <= set(_conform.EDGE_CLASSES)
    assert not r.edges["nan_grad"].matches and "NaN missing" in r.edges["nan_grad"].problems
    assert not r.edges["inf_grad"].matches and "missing inf" in r.edges["inf_grad"].problems
    assert r.edges["pos_zero"].matches

    def spurious_inf(param, grad, state, *, t, lr):
        with np.errstate(all="ignore"):
            param[...] = param - lr * grad * np.float64(1e300) * 1e300  # overflows everywhere
    r = check_update(spurious_inf, "SGD", cases=[case]).results[0]
    assert "spurious inf" in r.edges["subnormal"].problems or \
        "spurious inf" in r.edges["max_finite"].problems


@pytest.mark.parametrize("dtype", DTYPES)
def test_flush_to_zero_is_an_edge_problem_not_values_differ(dtype):
    # the usual -ffast-math failure: subnormal inputs and results flushed to zero, the sign
    # kept (so "zero sign" does not see it) and 1 ULP from the smallest subnormal
    case = trajectory("SGD", dtype, size=64, steps=5, offset=1, edges=True)
    tiny = np.finfo(dtype).tiny

    def ftz_sgd(param, grad, state, *, t, lr):
        g = np.where(np.abs(grad) < tiny, dtype(0), grad)
        p = param - dtype(lr) * g
        param[...] = np.where(np.abs(p) < tiny, dtype(0) * np.sign(p), p)

    report = check_update(ftz_sgd, "SGD", cases=[case])
    e = report.results[0].edges["subnormal"]
    assert not e.matches and set(e.problems) == {"flushed to zero"}
    step, index = e.problems["flushed to zero"]
    assert step == 1 and index in case.edges["subnormal"]
    assert case.expected_param[0, index] != 0 and report.results[0].got["param"][0, index] == 0
    assert "flushed to zero at step 1" in str(e)
    assert all(report.results[0].edges[c].matches for c in case.edges if c != "subnormal")
    assert report.max_ulp <= 8  # within a few ULP, and yet:
    with pytest.raises(AssertionError, match="flushed to zero"):
        report.assert_conforms(max_ulp=8)
    # the same function without the flush matches in behaviour
    def plain_sgd(param, grad, state, *, t, lr):
        param -= lr * grad
    assert all(e.matches for e in check_update(plain_sgd, "SGD",
                                               cases=[case]).results[0].edges.values())


def test_cases_the_function_cannot_run_are_listed_with_the_reason():
    cs = [trajectory("Adam", np.float32, size=9, steps=3),
          trajectory("Adam", np.float32, size=9, steps=3, amsgrad=True)]
    report = check_update(adam_variant(None), "Adam", cases=cs)
    assert len(report.run) == 1 and report.bit_identical
    (name, why), = report.not_run
    assert name == cs[1].name and "amsgrad" in why
    assert "not run: 1 cases" in str(report)


def test_a_function_that_raises_or_returns_the_wrong_dtype_is_reported_not_raised():
    case = trajectory("SGD", np.float32, size=9, steps=4)

    def raises_at_3(param, grad, state, *, t, lr):
        if t == 3:
            raise RuntimeError("boom")
        param -= lr * grad

    r = check_update(raises_at_3, "SGD", cases=[case])
    assert r.errors == [(case.name, 3, "RuntimeError: boom")]
    assert r.results[0].steps_taken == 2 and not r.bit_identical

    def float64_out(param, grad, state, *, t, lr):
        return (param - lr * grad).astype(np.float64)

    r = check_update(float64_out, "SGD", cases=[case])
    assert "float64" in r.errors[0][2] and "float32" in r.errors[0][2]


def test_headline_says_no_step_completed_when_every_case_raised_at_step_one(capsys):
    cs = [trajectory("SGD", np.float32, size=9, steps=3),
          trajectory("SGD", np.float64, size=9, steps=3)]

    def always_raises(param, grad, state, *, t, lr):
        raise RuntimeError("not implemented")

    report = check_update(always_raises, "SGD", cases=cs)
    assert report.max_ulp == 0 and len(report.errors) == 2
    head = str(report).splitlines()[0]
    assert "no step completed" in head and "0 ULP" not in head
    with pytest.raises(AssertionError):
        report.assert_conforms(max_ulp=10)
    # one step done somewhere: a distance again
    def raises_at_2(param, grad, state, *, t, lr):
        if t == 2:
            raise RuntimeError("boom")
        param -= lr * grad
    assert "bit-identical" not in check_update(raises_at_2, "SGD", cases=cs).verdict
    assert "largest distance 0 ULP" in check_update(raises_at_2, "SGD", cases=cs).verdict
    assert check_update(always_raises, "SGD", cases=cs,
                        hyper={"momentum": 0.5}).verdict == "no case run"


def test_array_out_and_functional_state_conventions():
    case = trajectory("Momentum", np.float64, size=17, steps=5)

    def functional(param, grad, state, *, t, lr, beta):
        v = beta * state["velocity"] + (1 - beta) * grad
        return param - lr * v, {"velocity": v}

    assert check_update(functional, "Momentum", cases=[case]).bit_identical

    def keeps_no_state(param, grad, state, *, t, lr, beta):
        state.setdefault("_mine", np.zeros_like(param))
        state["velocity"] = None
        state["_mine"][...] = beta * state["_mine"] + (1 - beta) * grad
        return param - lr * state["_mine"]

    r = check_update(keeps_no_state, "Momentum", cases=[case])
    assert r.bit_identical and r.results[0].arrays == ("param",)


def test_forced_mode_measures_each_step_alone():
    case = trajectory("Adam", np.float32, size=17, steps=6, offset=1)
    free = check_update(adam_variant("skipped_range"), "Adam", cases=[case]).results[0]
    forced = check_update(adam_variant("skipped_range"), "Adam", cases=[case],
                          forced=True).results[0]
    # the range skipped at step 3 stays behind in a free run; forced, only step 3 differs
    assert free.fraction_identical("param")[3:].max() < 1
    assert forced.fraction_identical("param")[3:].min() == 1
    assert forced.fraction_identical("param")[2] < 1


def test_bad_arguments():
    with pytest.raises(TypeError, match="rule is missing"):
        check_update(lambda p, g, s, **k: None)
    with pytest.raises(ValueError, match="rule must be one of"):
        check_update(lambda p, g, s, **k: None, "Adamax")
    with pytest.raises(ValueError, match="does not take"):
        check_update(lambda p, g, s, **k: None, "SGD", hyper={"beta9": 1})
    with pytest.raises(AssertionError, match="not within 0 ULP"):
        check_update(adam_variant("reassociated"), "Adam",
                     cases=[trajectory("Adam", np.float32)]).assert_conforms()


def test_one_dtype_or_case_is_accepted_and_bad_ones_name_the_argument():
    def f(param, grad, state, *, t, lr):
        param -= lr * grad
    c32, c64 = trajectory("SGD", np.float32, size=9, steps=2), \
        trajectory("SGD", np.float64, size=9, steps=2)
    # a single string is one dtype (it iterated its characters: "got int64")
    report = check_update(f, "SGD", cases=[c32, c64], dtypes="float32")
    assert [r.case.name for r in report.results] == [c32.name]
    assert check_update(f, "SGD", cases=[c32, c64], dtypes=np.float64).results[0].case is c64
    assert {r.case.dtype for r in check_update(f, "SGD", dtypes="float64",
                                               small=True).results} == {np.dtype(np.float64)}
    # a single Case is one case
    report = check_update(f, "SGD", cases=c32)
    assert len(report.results) == 1 and report.bit_identical
    for kwargs, match in ((dict(cases=[1, 2]), r"cases\[0\] is int, not a Case"),
                          (dict(cases=[c32, "x"]), r"cases\[1\] is str, not a Case"),
                          (dict(cases=3), "cases must be a Case or a sequence of Cases"),
                          (dict(cases="sgd"), "cases must be a Case or a sequence of Cases"),
                          (dict(dtypes=["float16"]), "dtypes must hold float32 or float64"),
                          (dict(dtypes=[None]), "dtypes must hold float32 or float64"),
                          (dict(dtypes=5), "dtypes must be a dtype or a sequence")):
        with pytest.raises(TypeError, match=match):
            check_update(f, "SGD", **kwargs)


# -- torch -----------------------------------------------------------------------------------

def test_torch_sgd_as_course_momentum_differs_exactly_at_step_one():
    torch = pytest.importorskip("torch")
    fn = from_torch(torch.optim.SGD, rule="Momentum")
    case = trajectory("Momentum", np.float32, size=17, steps=5, offset=1)
    d = check_update(fn, cases=[case]).first_divergence
    # torch starts its buffer at g, the course at (1-beta)*g: every element differs at step 1
    assert (d.step, d.index) == (1, 0) and "velocity" in d.arrays
    assert d.got["velocity"] == case.grads[0, 0]
    start = check_update(fn, cases=[case]).results[0]
    # From a given buffer the recurrences are the same formula; torch's add_(g, alpha=1-beta)
    # is a fused multiply-add on the CPU (one rounding for (1-beta)*g + buf), so a late
    # window differs by rounding only, against a factor 1/(1-beta) at step 1 from the start.
    late = trajectory("Momentum", np.float32, size=17, steps=5, start_step=10_000)
    r = check_update(fn, cases=[late]).results[0]
    assert r.max_ulp("velocity")[0] < 2 ** 10 < start.max_ulp("velocity")[0]
    with pytest.raises(ValueError, match="dampening equal to momentum"):
        from_torch(torch.optim.SGD, rule="Momentum", momentum=0.9, dampening=0.0)


def test_torch_sgd_as_course_momentum_with_momentum_alone():
    torch = pytest.importorskip("torch")
    # momentum alone: dampening defaults to it (it used to be popped before being read)
    fn = from_torch(torch.optim.SGD, rule="Momentum", momentum=0.5)
    assert fn.fixed_hyper == {"beta": 0.5}
    case = trajectory("Momentum", np.float32, size=9, steps=3, beta=0.5)
    report = check_update(fn, cases=[case])
    assert len(report.run) == 1 and not report.errors, str(report)
    assert from_torch(torch.optim.SGD, rule="Momentum", dampening=0.9).fixed_hyper == \
        {"beta": 0.9}
    assert from_torch(torch.optim.SGD, rule="Momentum", momentum=0.5,
                      dampening=0.5).fixed_hyper == {"beta": 0.5}


def test_torch_adapters_run_every_option_set_torch_has():
    torch = pytest.importorskip("torch")
    for cls, rule in ((torch.optim.SGD, "SGD"), (torch.optim.RMSprop, "RMSProp"),
                      (torch.optim.Adam, "Adam"), (torch.optim.AdamW, "AdamW"),
                      (torch.optim.Adagrad, "Adagrad")):
        report = check_update(from_torch(cls), dtypes=[np.float64], small=True)
        assert report.rule == rule and report.run and not report.errors, str(report)
        # float64 torch is within rounding of the textbook formula on ordinary cases
        ordinary = [r for r in report.run if not r.case.edges]
        assert max(int(r.ulp["param"].max(initial=0)) for r in ordinary) < 2 ** 20
        assert all("nonfinite" in why or "max_grad_norm" in why for _, why in report.not_run)
        assert "torch.optim." + cls.__name__ in str(report)


def test_torch_fixed_hyperparameters_select_or_build_cases():
    torch = pytest.importorskip("torch")
    report = check_update(from_torch(torch.optim.Adam, betas=(0.9, 0.99)), dtypes=[np.float32])
    assert report.run and all(r.case.hyper["beta2"] == 0.99 for r in report.run)
    assert "betas=(0.9, 0.99)" in report.table()


# -- optax -----------------------------------------------------------------------------------

class AdamState(NamedTuple):
    count: np.ndarray
    mu: np.ndarray
    nu: np.ndarray


class NumpyScaleByAdam:
    """A duck-typed optax ``scale_by_adam`` in NumPy (optax's arithmetic: the direction
    ``m_hat / (sqrt(v_hat) + eps)``, the learning rate applied after)."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        self.b1, self.b2, self.eps = b1, b2, eps

    def init(self, params):
        return AdamState(np.zeros([], np.int32), np.zeros_like(params), np.zeros_like(params))

    def update(self, updates, state, params=None):
        g = updates
        count = int(state.count) + 1
        with np.errstate(all="ignore"):
            mu = self.b1 * state.mu + (1 - self.b1) * g
            nu = self.b2 * state.nu + (1 - self.b2) * (g * g)
            m_hat = mu / (1 - self.b1 ** count)
            v_hat = nu / (1 - self.b2 ** count)
            u = m_hat / (np.sqrt(v_hat) + self.eps)
        return u, AdamState(np.asarray(count, np.int32), mu, nu)


class TraceState(NamedTuple):
    trace: np.ndarray


class NumpyTrace:
    def __init__(self, decay):
        self.decay = decay

    def init(self, params):
        return (TraceState(np.zeros_like(params)), ())

    def update(self, updates, state, params=None):
        tr = self.decay * state[0].trace + updates
        return tr, (TraceState(tr), ())


@pytest.mark.parametrize("dtype", DTYPES)
def test_optax_adapter_with_a_duck_typed_transformation(dtype):
    fn = from_optax(NumpyScaleByAdam(), "Adam")
    cs = [trajectory("Adam", dtype, size=1000, steps=4, offset=1),
          trajectory("Adam", dtype, size=17, steps=4, start_step=10_000),
          trajectory("Adam", dtype, size=9, steps=3, amsgrad=True)]
    report = check_update(fn, cases=cs)
    assert len(report.run) == 2 and "amsgrad" in report.not_run[0][1]
    for r in report.run:
        assert r.arrays == ("param", "m", "v")
        # the moments are the same arithmetic; the direction times -lr is another association
        assert r.same["m"].all() and r.same["v"].all()
        # within a few roundings of the step (lr 0.01, |step| <= ~1): ULPs alone mislead
        # where the parameter is far smaller than the step
        got, exp = r.got["param"].astype(np.float64), r.expected("param").astype(np.float64)
        assert (abs(got - exp) <= 8 * np.finfo(dtype).eps * (abs(exp) + 0.01)).all()
    assert report.run[0].ulp["param"].max() > 0
    # torch-style heavy ball: optax.trace is fastopt's SGD(momentum) bit for bit
    sgd = from_optax(NumpyTrace(0.9), "SGD", momentum=0.9)
    assert check_update(sgd, cases=[trajectory("SGD", dtype, size=17, steps=5,
                                               momentum=0.9)]).bit_identical


def test_optax_adapter_with_real_optax():
    optax = pytest.importorskip("optax")
    report = check_update(from_optax(optax.scale_by_adam(), "Adam"), dtypes=[np.float32],
                          small=True)
    assert report.run and not report.errors, str(report)
    assert all(r.arrays == ("param", "m", "v") for r in report.run)
    assert report.max_ulp < 2 ** 16 or any(r.case.edges for r in report.run)


def test_optax_adapter_refuses_what_is_not_a_transformation():
    with pytest.raises(TypeError, match="init"):
        from_optax(object(), "Adam")
    with pytest.raises(ValueError, match="does not take"):
        from_optax(NumpyScaleByAdam(), "Adam", b1=0.9)


# -- the command line ------------------------------------------------------------------------

def test_cli_conform_torch_prints_the_table(capsys):
    pytest.importorskip("torch")
    from fastopt.__main__ import main
    assert main(["conform", "torch", "--only", "Adam", "Momentum", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "Adam()" in out and "SGD(momentum=0.9, dampening=0.9)" in out
    assert "max ULP" in out and "first divergence" in out
    assert main(["conform", "torch", "--only", "Adam", "--dtype", "float64", "--fused"]) == 0
    assert "Adam(fused=True)" in capsys.readouterr().out


def test_cli_conform_module_function_and_plot(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    mod = types.ModuleType("conform_user_mod")

    def my_sgd(param, grad, state, *, t, lr):
        param -= lr * grad
    mod.my_sgd = my_sgd
    monkeypatch.setitem(sys.modules, "conform_user_mod", mod)
    from fastopt.__main__ import main
    assert main(["conform", "conform_user_mod:my_sgd", "--rule", "sgd", "--max-ulp", "0",
                 "--plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cases run, bit-identical" in out
    assert list(tmp_path.glob("*.png"))
    assert main(["conform", "conform_user_mod:my_sgd", "--rule", "Adam", "--max-ulp",
                 "0"]) == 1


def test_cli_conform_a_rule_given_twice_runs_once(capsys):
    from fastopt.__main__ import main
    assert main(["conform", "fastopt", "--only", "Adam", "adam", "SGD", "--dtype",
                 "float32"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nfastopt.Adam (Adam):") == 1 and out.count("\nfastopt.SGD (SGD):") == 1
    assert out.index("fastopt.Adam (Adam)") < out.index("fastopt.SGD (SGD)")


def test_cli_bad_targets_are_usage_errors(capsys):
    from fastopt.__main__ import main
    for argv in (["conform", "no_such_module_xyz:f", "--rule", "SGD"],
                 ["conform", "fastopt:no_such_function", "--rule", "SGD"],
                 ["conform", "nothing"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "error: argument target" in capsys.readouterr().err


def test_docstring_examples():
    import doctest
    from fastopt.testing import _conform_adapters, _conform_cli
    for module in (_conform, _conform_adapters, _conform_cli):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0
