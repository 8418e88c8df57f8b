"""Optimizer objects: bit parity with the oracle and between implementations, packing, schedules,
non-finite gradients, checkpoints, validation and allocation."""
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastopt
import fastopt.reference
import oracle
from fastopt import schedules
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

CLASSES = {"SGD": ("sgd", ()), "Momentum": ("momentum", ("velocity",)),
           "RMSProp": ("rmsprop", ("sq_avg",)), "Adam": ("adam", ("m", "v"))}
HYPER = {"SGD": dict(lr=0.05), "Momentum": dict(lr=0.05, beta=0.8),
         "RMSProp": dict(lr=0.01, beta=0.95, eps=1e-6),
         "Adam": dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7)}
SHAPES = {"W1": (5, 2), "b1": (5, 1), "W2": (300, 5), "b2": (300, 1), "W3": (1, 300),
          "b3": (1, 1)}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grad_stream(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: (rng.standard_normal(s) * 0.1).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(steps)]


def oracle_run(name, params, grads_seq, hp, lr_at=None):
    """Expected parameters and state after each step, from tests/oracle.py."""
    rule, state_names = CLASSES[name]
    params = {k: v.copy() for k, v in params.items()}
    state = {s: {k: np.zeros_like(v) for k, v in params.items()} for s in state_names}
    extra = {k: v for k, v in hp.items() if k != "lr"}
    out = []
    for t, grads in enumerate(grads_seq, 1):
        lr = lr_at(t - 1) if lr_at else hp["lr"]
        for k in params:
            args = [params[k], grads[k]] + [state[s][k] for s in state_names]
            res = getattr(oracle, rule)(*args, *((t,) if rule == "adam" else ()), lr=lr,
                                        **extra)
            params[k] = res[0]
            for s, r in zip(state_names, res[1:]):
                state[s][k] = r
        out.append(({k: v.copy() for k, v in params.items()},
                    {s: {k: v.copy() for k, v in d.items()} for s, d in state.items()}))
    return out


def build(module, name, dtype, structure, hp, seed=0):
    """An optimizer over params in ``structure``: dict, list or packed."""
    params = make_params(dtype, seed)
    if structure == "packed":
        params = fastopt.pack(params)
    elif structure == "list":
        params = list(params.values())
    return getattr(module, name)(params, **hp)


def as_grads(structure, grads, opt=None):
    if structure == "list":
        return list(grads.values())
    if structure == "packed":
        packed = fastopt.pack_like(opt._packed)
        packed.update(grads)
        return packed
    return grads


def snapshot(opt):
    keys = list(SHAPES)
    params = dict(zip(keys, (p.copy() for p in opt._params)))
    state = {s: dict(zip(keys, (a.copy() for a in opt._state[s]))) for s in opt._state_names}
    return params, state


@pytest.mark.parametrize("structure", ["dict", "list", "packed", "packed-unpacked-grads"])
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_objects_match_oracle_on_every_path(fast_config, name, structure, dtype):
    hp = HYPER[name]
    grads_seq = grad_stream(dtype, 25)
    want = oracle_run(name, make_params(dtype), grads_seq, hp)
    built = "packed" if structure.startswith("packed") else structure
    grads_structure = "dict" if structure == "packed-unpacked-grads" else built
    for module in (fastopt, fastopt.reference):
        opt = build(module, name, dtype, built, hp)
        for t, grads in enumerate(grads_seq):
            assert opt.step(as_grads(grads_structure, grads, opt)) is True
            got_params, got_state = snapshot(opt)
            want_params, want_state = want[t]
            for k in SHAPES:
                assert_ulp_equal(got_params[k], want_params[k],
                                 err_msg=f"{module.__name__} {name} {k} step {t + 1}")
                for s in want_state:
                    assert_ulp_equal(got_state[s][k], want_state[s][k],
                                     err_msg=f"{module.__name__} {name} {s}[{k}] step {t + 1}")
        assert opt.t == 25


class CountingOps:
    """The reference arithmetic, counting kernel calls."""

    def __init__(self):
        from fastopt.reference import _ops
        self.calls = 0
        self._ops = _ops
        table = _ops.kernel_table()

        def counted(fn):
            def wrapper(*args):
                self.calls += 1
                return fn(*args)
            return wrapper
        self._table = {key: (fn if key[0] == "as_view" else counted(fn))
                       for key, fn in table.items()}

    def kernel_table(self):
        return self._table

    def all_finite(self, x):
        return self._ops.all_finite(x)


@pytest.mark.parametrize("structure,calls", [("packed", 1), ("dict", 6), ("list", 6)])
def test_packed_step_is_one_kernel_call(structure, calls):
    ops = CountingOps()
    Adam = type("Adam", (fastopt.Adam,), {"_ops": ops})
    params = make_params(np.float32)
    params = fastopt.pack(params) if structure == "packed" else (
        list(params.values()) if structure == "list" else params)
    opt = Adam(params, lr=0.01)
    opt.step(as_grads(structure, grad_stream(np.float32, 1)[0], opt))
    assert ops.calls == calls


def test_schedule_is_evaluated_at_the_step_count(dtype):
    sched = schedules.ExponentialDecay(0.1, 0.5, decay_steps=3)
    grads_seq = grad_stream(dtype, 10)
    want = oracle_run("Adam", make_params(dtype), grads_seq,
                      dict(lr=None, beta1=0.9, beta2=0.999, eps=1e-8), lr_at=sched)
    for module in (fastopt, fastopt.reference):
        opt = module.Adam(make_params(dtype), lr=sched)
        for grads in grads_seq:
            opt.step(grads)
        params, _ = snapshot(opt)
        for k in SHAPES:
            assert_ulp_equal(params[k], want[-1][0][k])


def test_a_schedule_value_is_validated_before_anything_is_written():
    w = np.ones(3)
    opt = fastopt.SGD([w], lr=schedules.ExponentialDecay(0.1, 1e10, decay_steps=1))
    opt.step([np.ones(3)])
    opt.t = 400  # 0.1 * 1e10 ** 400 overflows to inf
    before = w.copy()
    with pytest.raises(ValueError, match=r"^lr \(from ExponentialDecay\(.*\) at step 400\) "
                                         r"must be finite and >= 0, got inf"):
        opt.step([np.ones(3)])
    assert opt.t == 400
    assert_ulp_equal(w, before)


def test_lr_can_be_set_between_steps():
    opt = fastopt.SGD([np.ones(3)], lr=0.1)
    opt.step([np.ones(3)])
    opt.lr = 0.5
    opt.step([np.ones(3)])
    assert_ulp_equal(opt.params[0], np.ones(3) - 0.1 - 0.5)
    with pytest.raises(ValueError, match="^lr must be finite and >= 0"):
        opt.lr = -1.0
    with pytest.raises(TypeError, match="^lr must be a float or a fastopt.schedules.Schedule"):
        opt.lr = "0.1"


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
@pytest.mark.parametrize("structure", ["dict", "packed"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_modes(module, structure, bad):
    grads = grad_stream(np.float32, 1)[0]
    grads["W2"][7, 3] = bad
    for mode in ("raise", "skip"):
        opt = build(module, "Adam", np.float32, structure, dict(lr=0.01, nonfinite=mode))
        opt.step(as_grads(structure, grad_stream(np.float32, 1, seed=5)[0], opt))
        before = snapshot(opt)
        if mode == "raise":
            with pytest.raises(fastopt.NonFiniteGradientError, match="inf or NaN at step 2"):
                opt.step(as_grads(structure, grads, opt))
        else:
            assert opt.step(as_grads(structure, grads, opt)) is False
            assert opt.skipped == 1
        assert opt.t == 1
        after = snapshot(opt)
        for k in SHAPES:
            assert_ulp_equal(after[0][k], before[0][k])
            for s in after[1]:
                assert_ulp_equal(after[1][s][k], before[1][s][k])
    # propagate: the reference arithmetic, NaN/inf included
    results = []
    for mod in (fastopt, fastopt.reference):
        opt = build(mod, "Adam", np.float32, structure, dict(lr=0.01))
        assert opt.step(as_grads(structure, grads, opt)) is True
        results.append(snapshot(opt))
    for k in SHAPES:
        assert_ulp_equal(results[0][0][k], results[1][0][k])
    assert not np.isfinite(results[0][0]["W2"][7, 3])


def test_state_dict_round_trip_and_cross_implementation(tmp_path):
    grads_seq = grad_stream(np.float64, 10)
    opt = fastopt.Adam(make_params(np.float64), lr=0.01)
    for grads in grads_seq[:5]:
        opt.step(grads)
    state = opt.state_dict()
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind
    for grads in grads_seq[5:]:
        opt.step(grads)
    want = snapshot(opt)
    for restore in ("state_dict", "file", "reference-file"):
        cls = fastopt.reference.Adam if restore == "reference-file" else fastopt.Adam
        other = cls(make_params(np.float64, seed=9), lr=0.01)
        if restore == "state_dict":
            other.load_state_dict(state)
        else:
            other.load(path)
        assert other.t == 5
        for grads in grads_seq[5:]:
            other.step(grads)
        got = snapshot(other)
        for k in SHAPES:
            assert_ulp_equal(got[0][k], want[0][k], err_msg=restore)
            assert_ulp_equal(got[1]["v"][k], want[1]["v"][k], err_msg=restore)


def test_load_keeps_packing(tmp_path):
    opt = fastopt.Adam(fastopt.pack(make_params(np.float32)), lr=0.01)
    buffer = opt._packed.buffer
    opt.step(as_grads("packed", grad_stream(np.float32, 1)[0], opt))
    opt.save(tmp_path / "a.npz")
    opt2 = fastopt.Adam(fastopt.pack(make_params(np.float32, seed=3)), lr=0.01)
    opt2.load(tmp_path / "a.npz")
    assert_ulp_equal(opt2._packed.buffer, buffer)
    assert np.shares_memory(opt2._packed["W1"], opt2._packed.buffer)


def corrupt_cases(tmp_path):
    good = tmp_path / "good.npz"
    opt = fastopt.Adam(make_params(np.float32), lr=0.01)
    opt.step(grad_stream(np.float32, 1)[0])
    opt.save(good)
    data = good.read_bytes()
    cases = {}
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    cases["truncated"] = tmp_path / "truncated.npz"
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "corrupted.npz").write_bytes(bytes(flipped))
    cases["corrupted"] = tmp_path / "corrupted.npz"
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file at all")
    cases["garbage"] = tmp_path / "garbage.npz"
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    variants = {
        "pickle": {**arrays, "param.0": np.array([{"evil": 1}], dtype=object)},
        "wrong-keys": {**arrays, "meta.keys": np.array(["a", "b", "c", "d", "e", "f"])},
        "wrong-shape": {**arrays, "param.2": np.zeros((3, 3), np.float32)},
        "wrong-dtype": {**arrays, "state.m.1": arrays["state.m.1"].astype(np.float64)},
        "invalid-hyper": {**arrays, "meta.hyperparameters": np.array(
            str(arrays["meta.hyperparameters"]).replace('"beta2": 0.999', '"beta2": 1.5'))},
        "fixed-hyper-differs": {**arrays, "meta.hyperparameters": np.array(
            str(arrays["meta.hyperparameters"]).replace('"amsgrad": false', '"amsgrad": true'))},
        "unknown-schedule": {**arrays, "meta.hyperparameters": np.array(
            str(arrays["meta.hyperparameters"]).replace(
                '"lr": 0.01', '"lr": {"schedule": "os.system", "args": {}}'))},
        "not-json": {**arrays, "meta.hyperparameters": np.array("{beta2: 0.9")},
        "wrong-optimizer": {**arrays, "meta.optimizer": np.array("SGD")},
        "missing-state": {k: v for k, v in arrays.items() if k != "state.v.3"},
        "wrong-version": {**arrays, "meta.version": np.array(99)},
    }
    for name, content in variants.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **content)
        cases[name] = path
    return cases


def test_bad_checkpoints_are_rejected_and_change_nothing(tmp_path):
    for name, path in corrupt_cases(tmp_path).items():
        opt = fastopt.Adam(make_params(np.float32, seed=4), lr=0.01)
        opt.step(grad_stream(np.float32, 1, seed=8)[0])
        before = snapshot(opt)
        with pytest.raises((ValueError, TypeError)) as info:
            opt.load(path)
        assert "Traceback" not in str(info.value)
        if name == "pickle":
            assert "pickle" in str(info.value).lower() or "object" in str(info.value).lower()
        after = snapshot(opt)
        assert opt.t == 1, name
        for k in SHAPES:
            assert_ulp_equal(after[0][k], before[0][k], err_msg=name)
            assert_ulp_equal(after[1]["m"][k], before[1]["m"][k], err_msg=name)


def test_load_never_unpickles(tmp_path, monkeypatch):
    import pickle
    calls = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a))
    path = corrupt_cases(tmp_path)["pickle"]
    with pytest.raises(ValueError):
        fastopt.Adam(make_params(np.float32), lr=0.01).load(path)
    assert calls == []


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    opt = fastopt.Adam(make_params(np.float32), lr=0.01)
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    opt.step(grad_stream(np.float32, 1)[0])
    with pytest.raises(OSError, match="disk full"):
        opt.save(path)
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
def test_validation(module):
    a, b = np.ones(4), np.ones(4)
    ro = np.ones(4)
    ro.flags.writeable = False
    cases = [
        (lambda: module.Adam(np.ones(4)), TypeError, "^params must be a dict of arrays or a list"),
        (lambda: module.Adam([]), ValueError, "^params is empty"),
        (lambda: module.Adam([np.arange(3)]), TypeError, r"^params\[0\] has dtype int64"),
        (lambda: module.Adam([np.ones(8)[::2]]), ValueError, r"^params\[0\] is not C-contig"),
        (lambda: module.Adam({"w": ro}), ValueError, r"^params\['w'\] is read-only"),
        (lambda: module.Adam([a, a]), ValueError, r"shares memory"),
        (lambda: module.Adam([a], lr=-1), ValueError, "^lr must be finite and >= 0"),
        (lambda: module.Adam([a], beta2=1.0), ValueError, "^beta2 must satisfy"),
        (lambda: module.Momentum([a], beta=-0.1), ValueError, "^beta must satisfy"),
        (lambda: module.RMSProp([a], eps=0), ValueError, "^eps must be finite and > 0"),
        (lambda: module.Adam([a], nonfinite="ignore"), ValueError, "^nonfinite must be one of"),
    ]
    for make, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            make()
    opt = module.Adam({"a": a, "b": b}, lr=0.1)
    step_cases = [
        ([np.ones(4), np.ones(4)], TypeError, "^grads must be a dict with the keys"),
        ({"a": np.ones(4)}, ValueError, r"missing \['b'\]"),
        ({"a": np.ones(4), "c": np.ones(4)}, ValueError, r"missing \['b'\], unexpected \['c'\]"),
        ({"a": np.ones(4), "b": np.ones(3)}, ValueError,
         r"^grads\['b'\] has shape \(3,\); expected \(4,\), the shape of params\['b'\]"),
        ({"a": np.ones(4, np.float32), "b": np.ones(4)}, TypeError, r"^grads\['a'\] has dtype"),
        ({"a": np.ones(8)[::2], "b": np.ones(4)}, ValueError, "not C-contiguous"),
        ({"a": [1.0] * 4, "b": np.ones(4)}, TypeError, r"^grads\['a'\] must be a numpy.ndarray"),
        ({"a": a, "b": np.ones(4)}, ValueError, r"grads\['a'\] is one of the optimizer's own"),
        ({"a": np.ones(4), "b": opt.state("m")["a"]}, ValueError, "one of the optimizer's own"),
    ]
    before = a.copy()
    for grads, exc, pattern in step_cases:
        with pytest.raises(exc, match=pattern):
            opt.step(grads)
        assert opt.t == 0
        assert_ulp_equal(a, before)
    # a gradient that is a view of a parameter
    buf = np.zeros(8)
    view_opt = module.SGD([buf[:4]], lr=0.1)
    with pytest.raises(ValueError, match="shares memory"):
        view_opt.step([buf[2:6]])
    with pytest.raises(ValueError, match=r"^grads has 2 arrays; expected 1"):
        view_opt.step([np.ones(4), np.ones(4)])


@pytest.mark.parametrize("structure", ["list", "dict", "packed"])
def test_steady_state_step_allocates_no_arrays(structure):
    opt = build(fastopt, "Adam", np.float32, structure, dict(lr=0.01))
    grads = as_grads(structure, grad_stream(np.float32, 1)[0], opt)
    opt.step(grads)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(100):
            opt.step(grads)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 16_384 and current - base < 4_096, (peak - base, current - base)


def test_accessors_and_repr():
    opt = fastopt.Adam({"w": np.ones(2)}, lr=schedules.Constant(0.1), beta1=0.5)
    assert repr(opt) == ("Adam(1 arrays, lr=Constant(lr=0.1), beta1=0.5, beta2=0.999, "
                         "eps=1e-08, weight_decay=0.0, amsgrad=False, maximize=False, "
                         "nonfinite='propagate', max_grad_norm=None, step 0)")
    assert list(opt.params) == ["w"] and sorted(opt.hyperparameters) == [
        "amsgrad", "beta1", "beta2", "eps", "lr", "max_grad_norm", "maximize", "nonfinite",
        "weight_decay"]
    assert not opt.state("v")["w"].any()
    with pytest.raises(KeyError, match="has no state 'velocity'"):
        opt.state("velocity")


def test_packed_arrays_behave_like_a_fixed_dict():
    packed = fastopt.pack({"a": np.ones(2), "b": np.zeros((1, 2))})
    packed["a"] = [3.0, 4.0]
    assert packed.buffer.tolist() == [3.0, 4.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"has shape \(3,\); expected \(2,\)"):
        packed["a"] = np.ones(3)
    with pytest.raises(KeyError, match="cannot be added"):
        packed["c"] = np.ones(2)
    with pytest.raises(TypeError, match="fixed entries"):
        del packed["a"]
    with pytest.raises(TypeError, match="mixes dtypes"):
        fastopt.pack({"a": np.ones(2), "b": np.ones(2, np.float32)})
    assert fastopt.pack({"a": np.ones(2), "b": np.ones(2, np.float32)},
                        dtype=np.float32).buffer.dtype == np.float32
    with pytest.raises(TypeError, match="must be a PackedArrays"):
        fastopt.pack_like({"a": np.ones(2)})
    import pickle
    clone = pickle.loads(pickle.dumps(packed))
    assert isinstance(clone, fastopt.PackedArrays) and clone.buffer.tolist() == [3, 4, 0, 0]
