"""The options of docs/contract.md §7 and clipping (§8): every option and combination, fastopt
against the reference bit for bit on every SIMD variant and thread count, the array-level
functions, validation and invariants of the objects, checkpoints restoring hyperparameters, and a
float64 cross-check against torch.optim (skipped without torch)."""
import itertools
import math

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import schedules
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

SHAPES = {"W1": (33, 17), "b1": (33, 1), "W2": (5, 33), "b2": (5, 1)}


def _combos(**axes):
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


# Every option of every class, in combination (hyperparameters besides lr).
OPTIONS = {
    "SGD": _combos(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True],
                   weight_decay=[0.0, 0.01], maximize=[False, True]),
    "Momentum": _combos(beta=[0.9], nesterov=[False, True], weight_decay=[0.0, 0.01],
                        maximize=[False, True]),
    "RMSProp": _combos(beta=[0.9], centered=[False, True], momentum=[0.0, 0.5],
                       weight_decay=[0.0, 0.01], maximize=[False, True]),
    "Adam": _combos(weight_decay=[0.0, 0.01], amsgrad=[False, True], maximize=[False, True]),
    "AdamW": _combos(weight_decay=[0.0, 0.1], amsgrad=[False, True], maximize=[False, True]),
    "Adagrad": _combos(lr_decay=[0.0, 0.01], weight_decay=[0.0, 0.01],
                       initial_accumulator_value=[0.0, 0.1], maximize=[False, True]),
}
CASES = [(name, hp) for name, combos in OPTIONS.items() for hp in combos
         if not (name == "SGD" and hp["nesterov"]
                 and (hp["momentum"] == 0 or hp["dampening"] != 0))]


def params_for(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grads_for(dtype, steps, seed=1, scale=1.0):
    rng = np.random.default_rng(seed)
    out = [{k: (rng.standard_normal(s) * scale).astype(dtype) for k, s in SHAPES.items()}
           for _ in range(steps)]
    if steps > 4:  # signed zeros in the gradient
        out[3]["W1"][2, 3] = 0.0
        out[4]["W1"][2, 3] = -0.0
    return out


def run(module, name, dtype, hp, structure, max_grad_norm, steps=6):
    params = params_for(dtype)
    if structure == "packed":
        params = fastopt.pack(params)
    opt = getattr(module, name)(params, lr=0.01, max_grad_norm=max_grad_norm, **hp)
    for grads in grads_for(dtype, steps):
        if structure == "packed":
            packed = fastopt.pack_like(params)
            packed.update(grads)
            grads = packed
        assert opt.step(grads) is True
    return opt


def assert_same(a, b, msg):
    for k in SHAPES:
        assert_ulp_equal(a.params[k], b.params[k], err_msg=f"{msg} param {k}")
    assert a.state_names == b.state_names
    for s in a.state_names:
        for k in SHAPES:
            assert_ulp_equal(a.state(s)[k], b.state(s)[k], err_msg=f"{msg} {s}[{k}]")


_REFERENCE_RUNS = {}


def reference_run(name, dtype, hp, clip):
    """The reference's run, computed once for every fast configuration that compares with it."""
    key = (name, np.dtype(dtype).name, tuple(sorted(hp.items())), clip)
    if key not in _REFERENCE_RUNS:
        _REFERENCE_RUNS[key] = run(fastopt.reference, name, dtype, hp, "dict", clip)
    return _REFERENCE_RUNS[key]


@pytest.mark.parametrize("name,hp", CASES, ids=lambda x: x if isinstance(x, str) else "-".join(
    f"{k}={v}" for k, v in x.items()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_option_matches_the_reference(fast_config, name, hp, dtype):
    # max_grad_norm: None, and one that clips every step (the gradients' norm is ~14)
    for clip in (None, 0.5):
        ref = reference_run(name, dtype, hp, clip)
        for structure in ("dict", "packed"):
            got = run(fastopt, name, dtype, hp, structure, clip)
            assert_same(got, ref, f"{name} {hp} clip={clip} {structure}")
            if clip is not None:
                assert got.last_grad_norm == ref.last_grad_norm


def test_state_arrays_exist_only_for_options_that_need_them():
    p = params_for(np.float32)
    assert fastopt.Adam(p).state_names == ("m", "v")
    assert fastopt.Adam(params_for(np.float32), amsgrad=True).state_names == ("m", "v", "v_max")
    assert fastopt.SGD(params_for(np.float32)).state_names == ()
    assert fastopt.SGD(params_for(np.float32), momentum=0.9).state_names == ("momentum_buffer",)
    assert fastopt.RMSProp(params_for(np.float32), centered=True, momentum=0.5).state_names == (
        "sq_avg", "grad_avg", "momentum_buffer")
    acc = fastopt.Adagrad(params_for(np.float32), initial_accumulator_value=0.25)
    assert (acc.state("sum_sq")["W1"] == np.float32(0.25)).all()


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
def test_invalid_combinations_and_values_raise_at_construction(module):
    p = [np.ones(3)]
    cases = [
        (lambda: module.SGD(p, nesterov=True), "^nesterov=True needs momentum > 0"),
        (lambda: module.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "dampening == 0"),
        (lambda: module.SGD(p, momentum=-0.1), "^momentum must be finite and >= 0"),
        (lambda: module.Adam(p, weight_decay=-1), "^weight_decay must be finite and >= 0"),
        (lambda: module.AdamW(p, weight_decay=math.inf), "^weight_decay must be finite"),
        (lambda: module.RMSProp(p, momentum=-1), "^momentum must be"),
        (lambda: module.Adagrad(p, lr_decay=-0.1), "^lr_decay must be"),
        (lambda: module.Adagrad(p, initial_accumulator_value=-1),
         "^initial_accumulator_value must be"),
        (lambda: module.Adagrad(p, eps=0), "^eps must be finite and > 0"),
        (lambda: module.Adam(p, max_grad_norm=0), "^max_grad_norm must be finite and > 0"),
    ]
    for make, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            make()
    with pytest.raises(TypeError, match="^amsgrad must be True or False"):
        module.Adam(p, amsgrad=1)


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
def test_assignments_validate_or_are_refused(module):
    """Issue 10, case 3: nonsense assigned to an optimizer raises, with the constructor's
    message, and changes nothing."""
    w = np.ones(3)
    opt = module.Adam([w], lr=0.1)
    with pytest.raises(ValueError, match="^t must be an integer >= 0, got -1"):
        opt.t = -1
    with pytest.raises(ValueError, match="^nonfinite must be one of"):
        opt.nonfinite = "Raise"
    with pytest.raises(ValueError, match="^beta2 must satisfy"):
        opt.beta2 = 1.0
    with pytest.raises(TypeError, match="^maximize must be True or False"):
        opt.maximize = "yes"
    with pytest.raises(AttributeError, match="^amsgrad sizes the optimizer's state"):
        opt.amsgrad = True
    assert (opt.t, opt.nonfinite, opt.beta2, opt.maximize) == (0, "propagate", 0.999, False)
    opt.step([np.ones(3)])
    assert np.isfinite(w).all()
    opt.beta1, opt.weight_decay, opt.max_grad_norm = 0.5, 0.1, 2.0
    assert opt.hyperparameters["beta1"] == 0.5
    sgd = module.SGD([np.ones(3)], momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match="^nesterov=True needs"):
        sgd.dampening = 0.5
    assert sgd.dampening == 0.0
    heavy = module.SGD([np.ones(3)], momentum=0.9)
    with pytest.raises(ValueError, match="whether momentum is 0 decides its state"):
        heavy.momentum = 0.0
    assert heavy.momentum == 0.9
    plain = module.SGD([np.ones(3)])
    with pytest.raises(ValueError, match="whether momentum is 0 decides its state"):
        plain.momentum = 0.5


def test_checkpoint_restores_hyperparameters_and_schedules(tmp_path):
    """Issue 10, case 3: a checkpoint saved after ``opt.lr = 0.5`` loads into an optimizer
    built with ``lr=0.1`` and brings its hyperparameters, a schedule included."""
    grads = grads_for(np.float32, 6)
    opt = fastopt.AdamW(params_for(np.float32), lr=0.1, amsgrad=True)
    opt.step(grads[0])
    opt.lr = 0.5
    opt.weight_decay = 0.2
    opt.save(tmp_path / "a.npz")
    other = fastopt.AdamW(params_for(np.float32, seed=5), lr=0.1, amsgrad=True)
    other.load(tmp_path / "a.npz")
    assert other.lr == 0.5 and other.weight_decay == 0.2 and other.t == 1
    sched = schedules.LinearWarmup(schedules.PiecewiseConstant([2, 4], [0.1, 0.05, 0.01]), 2)
    opt.lr = sched
    opt.save(tmp_path / "b.npz")
    for step in grads[1:]:
        opt.step(step)
    ref = fastopt.reference.AdamW(params_for(np.float32, seed=7), amsgrad=True)
    ref.load(tmp_path / "b.npz")
    assert ref.lr == sched
    for step in grads[1:]:
        ref.step(step)
    assert_same(opt, ref, "after reload")
    with pytest.raises(ValueError, match="fixes its state arrays"):
        fastopt.AdamW(params_for(np.float32)).load(tmp_path / "b.npz")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_array_level_options_match_the_reference(fast_config, dtype):
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 1000, 5003):
        for impl_kwargs in _combos(weight_decay=[0.0, 0.1], decoupled=[False, True],
                                   amsgrad=[False, True], maximize=[False, True]):
            amsgrad = impl_kwargs.pop("amsgrad")
            arrays = {}
            for impl in (fastopt, fastopt.reference):
                p = rng.standard_normal(n).astype(dtype) if impl is fastopt else None
                arrays[impl] = p
            base = arrays[fastopt]
            out = {}
            for impl in (fastopt, fastopt.reference):
                p = base.copy()
                m, v = np.zeros_like(p), np.zeros_like(p)
                v_max = np.zeros_like(p) if amsgrad else None
                g_rng = np.random.default_rng(n)
                for t in range(1, 6):
                    g = g_rng.standard_normal(n).astype(dtype)
                    impl.adam_update(p, g, m, v, t, 0.01, v_max=v_max, **impl_kwargs)
                out[impl] = (p, m, v, v_max)
            for a, b in zip(out[fastopt], out[fastopt.reference]):
                if a is not None:
                    assert_ulp_equal(a, b)
        for kw in _combos(lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.1], maximize=[False, True]):
            res = []
            for impl in (fastopt, fastopt.reference):
                p = np.linspace(-1, 1, n).astype(dtype)
                s = np.zeros_like(p)
                for t in range(1, 5):
                    impl.adagrad_update(p, np.cos(p * t).astype(dtype), s, t, 0.1, **kw)
                res.append((p, s))
            for a, b in zip(*res):
                assert_ulp_equal(a, b)
        for kw in _combos(centered=[False, True], momentum=[0.0, 0.9], weight_decay=[0.0, 0.1],
                          maximize=[False, True]):
            centered = kw.pop("centered")
            res = []
            for impl in (fastopt, fastopt.reference):
                p = np.linspace(-1, 1, n).astype(dtype)
                s, ga, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
                for _ in range(4):
                    impl.rmsprop_update(p, np.sin(p * 3).astype(dtype), s, 0.01,
                                        grad_avg=ga if centered else None,
                                        momentum_buffer=buf, **kw)
                res.append((p, s, ga, buf))
            for a, b in zip(*res):
                assert_ulp_equal(a, b)
        for kw in _combos(nesterov=[False, True], weight_decay=[0.0, 0.1],
                          maximize=[False, True]):
            res = []
            for impl in (fastopt, fastopt.reference):
                p = np.linspace(-1, 1, n).astype(dtype)
                vel = np.zeros_like(p)
                for _ in range(4):
                    impl.momentum_update(p, np.sin(p).astype(dtype), vel, 0.1, **kw)
                res.append((p, vel))
            for a, b in zip(*res):
                assert_ulp_equal(a, b)


def test_array_level_option_validation():
    p, g = np.ones(4), np.ones(4)
    with pytest.raises(ValueError, match=r"^v_max has shape \(3,\); expected \(4,\)"):
        fastopt.adam_update(p, g, np.zeros(4), np.zeros(4), 1, 0.1, v_max=np.zeros(3))
    with pytest.raises(ValueError, match="m shares memory with v_max"):
        m = np.zeros(4)
        fastopt.adam_update(p, g, m, np.zeros(4), 1, 0.1, v_max=m)
    with pytest.raises(ValueError, match="^momentum=0.9 needs a momentum_buffer"):
        fastopt.rmsprop_update(p, g, np.zeros(4), 0.1, momentum=0.9)
    with pytest.raises(TypeError, match="^decoupled must be True or False"):
        fastopt.adam_update(p, g, np.zeros(4), np.zeros(4), 1, 0.1, decoupled=None)
    assert (p == 1).all()


# --- clipping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_clip_grad_norm_matches_the_reference_on_every_path(fast_config, dtype):
    rng = np.random.default_rng(0)
    for sizes in ([0], [1], [7, 1023, 1024, 1025], [100003, 3], [5000] * 3):
        grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
        for max_norm in (0.0, 1.0, 1e6):
            a = [g.copy() for g in grads]
            b = [g.copy() for g in grads]
            total_a = fastopt.clip_grad_norm(a, max_norm)
            total_b = fastopt.reference.clip_grad_norm(b, max_norm)
            assert total_a == total_b
            assert math.isclose(total_a, math.sqrt(sum(float((g.astype(np.float64) ** 2).sum())
                                                       for g in grads)), rel_tol=1e-12)
            for x, y in zip(a, b):
                assert_ulp_equal(x, y)


def test_clip_grad_norm_structures_and_nonfinite():
    params = params_for(np.float32)
    grads = grads_for(np.float32, 1, scale=10.0)[0]
    as_list = [g.copy() for g in grads.values()]
    packed = fastopt.pack(grads)
    totals = [fastopt.clip_grad_norm(x, 1.0) for x in (dict(grads), as_list, packed)]
    assert totals[0] == totals[1] == totals[2]
    for a, b in zip(as_list, packed.values()):
        assert_ulp_equal(a, b)
    bad = {k: v.copy() for k, v in grads.items()}
    bad["b1"][3, 0] = np.inf
    before = {k: v.copy() for k, v in bad.items()}
    with pytest.raises(fastopt.NonFiniteNormError, match="global norm is inf; nothing"):
        fastopt.clip_grad_norm(bad, 1.0, error_if_nonfinite=True)
    for k in bad:
        assert_ulp_equal(bad[k], before[k])
    assert fastopt.clip_grad_norm(bad, 1.0) == math.inf
    assert np.isnan(bad["b1"][3, 0]) and (bad["W1"] == 0).all()
    with pytest.raises(ValueError, match="shares memory"):
        g = np.ones(4)
        fastopt.clip_grad_norm([g, g], 1.0)
    with pytest.raises(ValueError, match="^max_norm must be finite and >= 0"):
        fastopt.clip_grad_norm([np.ones(3)], -1.0)
    del params


def test_max_grad_norm_in_step_equals_clip_then_step():
    for name in ("Adam", "SGD", "Adagrad"):
        grads = grads_for(np.float64, 5, scale=10.0)
        fused = getattr(fastopt, name)(params_for(np.float64), lr=0.01, max_grad_norm=1.0)
        plain = getattr(fastopt, name)(params_for(np.float64), lr=0.01)
        for g in grads:
            kept = {k: v.copy() for k, v in g.items()}
            fused.step(g)
            for k in g:
                assert_ulp_equal(g[k], kept[k])  # the gradients are not written
            norm = fastopt.clip_grad_norm(g, 1.0)
            assert norm == fused.last_grad_norm
            plain.step(g)
        assert_same(fused, plain, name)


# --- torch.optim in float64 ----------------------------------------------------------------------

TORCH = {
    "SGD": ("SGD", {}), "Adam": ("Adam", {}), "AdamW": ("AdamW", {}), "Adagrad": ("Adagrad", {}),
}


def _torch_cases():
    cases = []
    for hp in OPTIONS["SGD"]:
        if hp["nesterov"] and (hp["momentum"] == 0 or hp["dampening"] != 0):
            continue
        cases.append(("SGD", hp, dict(hp)))
    for name in ("Adam", "AdamW"):
        for hp in OPTIONS[name]:
            cases.append((name, hp, dict(hp, betas=(0.9, 0.999), eps=1e-8)))
    for hp in OPTIONS["Adagrad"]:
        cases.append(("Adagrad", hp, dict(hp, eps=1e-10)))
    for hp in OPTIONS["RMSProp"]:
        cases.append(("RMSProp", hp, dict(alpha=0.9, eps=1e-8, centered=hp["centered"],
                                          momentum=hp["momentum"],
                                          weight_decay=hp["weight_decay"],
                                          maximize=hp["maximize"])))
    return cases


@pytest.mark.parametrize("name,hp,torch_hp", _torch_cases(),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_agrees_with_torch_in_float64(name, hp, torch_hp):
    """torch.optim's semantics, in the course's arithmetic: equal within rounding. Adam's eps
    sits elsewhere in torch (outside sqrt(v)/sqrt(1-beta2**t)), so eps is made negligible
    there; RMSProp's beta is torch's alpha."""
    torch = pytest.importorskip("torch")
    torch_hp = {k: v for k, v in torch_hp.items() if k not in ("beta",)}
    if name in ("Adam", "AdamW"):
        torch_hp["eps"] = hp_eps = 1e-30
        hp = dict(hp, eps=hp_eps)
    if name == "RMSProp":
        torch_hp["eps"] = hp_eps = 1e-30
        hp = dict(hp, eps=hp_eps)
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(257)
    ours = getattr(fastopt, name)([p0.copy()], lr=0.01, **hp)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    tcls = getattr(torch.optim, "RMSprop" if name == "RMSProp" else name)
    topt = tcls([tp], lr=0.01, **torch_hp)
    for _ in range(50):
        g = rng.standard_normal(257)
        ours.step([g])
        tp.grad = torch.tensor(g)
        topt.step()
    want = tp.detach().numpy()
    got = ours.params[0]
    scale = np.abs(p0).max()
    assert np.abs(got - want).max() <= 1e-12 * scale, np.abs(got - want).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_block_sums_add_up_to_sumsq(fast_config, dtype):
    from fastopt import _ops
    from fastopt.reference import _ops as _ref_ops
    rng = np.random.default_rng(1)
    for n in (0, 5, 1024, 1025, 70000):
        x = rng.standard_normal(n).astype(dtype)
        blocks = -(-n // _ref_ops.SUMSQ_BLOCK)
        a, b = np.empty(blocks), np.empty(blocks)
        _ops.sumsq_blocks(x, a)
        _ref_ops.sumsq_blocks(x, b)
        assert_ulp_equal(a, b)
        total = 0.0
        for s in a:
            total += s
        assert total == _ops.sumsq(x) == _ref_ops.sumsq(x)
