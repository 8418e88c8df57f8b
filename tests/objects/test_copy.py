"""Copying and pickling optimizers and MiniBatches (issue item 1).

``copy.deepcopy`` and a ``pickle`` round trip give an independent working object: its own
parameters and state (no memory shared with the original), the same step count, hyperparameters
and generator state, so that from then on both give the same bits for the same input. Before the
first step and after it, for both implementations. ``copy.copy`` is refused with a TypeError (a
shallow copy would step the original's arrays a second time).
"""
import copy
import pickle

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt.schedules import ExponentialDecay

IMPLS = {"fastopt": fastopt, "reference": fastopt.reference}

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Momentum", dict(lr=0.1, beta=0.9)),
    ("RMSProp", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.01, amsgrad=True, max_grad_norm=1.0)),
    ("Adam", dict(lr=ExponentialDecay(0.01, 0.5, decay_steps=2), nonfinite="skip")),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]

COPIERS = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda obj: pickle.loads(pickle.dumps(obj)),
    "pickle-protocol-2": lambda obj: pickle.loads(pickle.dumps(obj, protocol=2)),
}


def _params(kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"W1": rng.standard_normal((4, 3)).astype(dtype),
              "b1": rng.standard_normal((4, 1)).astype(dtype),
              "W2": rng.standard_normal((1, 4)).astype(dtype)}
    if kind == "dict":
        return arrays
    if kind == "packed":
        return fastopt.pack(arrays)
    return list(arrays.values())


def _grads(opt, rng, nonfinite=False):
    params = opt.params
    items = params.items() if isinstance(params, dict) else enumerate(params)
    grads = {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in items}
    if nonfinite:
        next(iter(grads.values())).flat[0] = np.nan
    if isinstance(opt.params, dict):
        if opt._packed is not None:
            packed = fastopt.pack_like(opt._packed)
            packed.update(grads)
            return packed
        return grads
    return [grads[k] for k in range(len(grads))]


def _arrays(opt):
    """Every array the optimizer steps: parameters, then each state."""
    out = []
    for structure in [opt.params] + [opt.state(s) for s in opt.state_names]:
        out += list(structure.values()) if isinstance(structure, dict) else list(structure)
    return out


def _assert_same_bits(a, b):
    assert type(a) is type(b)
    assert a.t == b.t and a.skipped == b.skipped
    assert a.hyperparameters == b.hyperparameters
    assert repr(a.last_grad_norm) == repr(b.last_grad_norm)
    assert a.state_names == b.state_names
    assert len(_arrays(a)) == len(_arrays(b))
    for x, y in zip(_arrays(a), _arrays(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def _assert_independent(a, b):
    for x in _arrays(a):
        for y in _arrays(b):
            assert not np.shares_memory(x, y)
    if a._packed is not None:
        assert b._packed is not None and b._packed is not a._packed
        assert not np.shares_memory(a._packed.buffer, b._packed.buffer)


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("kind", ["dict", "list", "packed"])
@pytest.mark.parametrize("copier", sorted(COPIERS))
@pytest.mark.parametrize("steps_before", [0, 3])
def test_an_optimizer_copies_into_an_independent_working_one(impl, config, kind, copier,
                                                             steps_before):
    name, kwargs = CONFIGS[config]
    dtype = np.float32 if config % 2 else np.float64
    opt = getattr(IMPLS[impl], name)(_params(kind, dtype), **kwargs)
    rng = np.random.default_rng(1)
    skips = kwargs.get("nonfinite") == "skip"  # then a NaN gradient is skipped, and counted
    for k in range(steps_before):
        opt.step(_grads(opt, rng, nonfinite=skips and k == 1))
    twin = COPIERS[copier](opt)
    _assert_same_bits(opt, twin)
    _assert_independent(opt, twin)
    assert isinstance(twin.params, dict) == isinstance(opt.params, dict)
    assert (twin._packed is None) == (opt._packed is None)
    before = [x.copy() for x in _arrays(opt)]
    for k in range(4):
        g = _grads(opt, rng, nonfinite=skips and k == 2)
        opt.step(g)
        twin.step(g)
        _assert_same_bits(opt, twin)
    assert opt.t == twin.t >= 3 - skips
    # Both moved: neither was stepping hidden arrays (the bug: the copy advanced t alone).
    assert any(x.tobytes() != y.tobytes() for x, y in zip(before, _arrays(twin)))
    # A copy of a copy, and the copy's checkpoint, hold the values it stepped.
    assert copy.deepcopy(twin).t == twin.t
    state = twin.state_dict()
    assert state["t"] == twin.t
    for x, y in zip(state["params"], list(twin.params.values()) if kind != "list"
                    else twin.params):
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_deepcopy_keeps_parameters_copied_with_it_attached(impl):
    params = _params("dict", np.float64)
    opt = IMPLS[impl].Adam(params, lr=0.1)
    params2, opt2 = copy.deepcopy((params, opt))
    for k in params:
        assert opt2.params[k] is params2[k]
    opt2.step({k: np.ones_like(p) for k, p in params2.items()})
    assert all((params2[k] != params[k]).all() for k in params)

    packed = _params("packed", np.float32)
    opt = IMPLS[impl].SGD(packed, lr=0.1)
    packed2, opt2 = pickle.loads(pickle.dumps((packed, opt)))
    assert opt2._packed is packed2


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("kind", ["dict", "list", "packed"])
def test_copy_copy_is_refused(impl, kind):
    opt = IMPLS[impl].Adam(_params(kind, np.float32), lr=0.1)
    with pytest.raises(TypeError, match=r"copy\.copy.*Adam.*copy\.deepcopy"):
        copy.copy(opt)


def _loader(impl, axis, Y=True, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 50) if axis == 1 else (50, 7)).astype(np.float32)
    labels = rng.integers(0, 2, 50) if Y else None
    return IMPLS[impl].MiniBatches(X, labels, batch_size=8, seed=3, axis=axis, **kwargs)


def _epoch(loader):
    return [tuple(a.copy() for a in (b if isinstance(b, tuple) else (b,))) for b in loader]


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("Y", [True, False])
@pytest.mark.parametrize("copier", sorted(COPIERS))
@pytest.mark.parametrize("epochs_before", [0, 1])
def test_minibatches_copy_into_an_independent_working_one(impl, axis, Y, copier,
                                                          epochs_before):
    loader = _loader(impl, axis, Y, drop_last=True, rank=1, world=2)
    loader.batch_size = 6
    for _ in range(epochs_before):
        _epoch(loader)
    twin = COPIERS[copier](loader)
    assert type(twin) is type(loader)
    for attr in ("axis", "m", "batch_size", "drop_last", "copy", "rank", "world"):
        assert getattr(twin, attr) == getattr(loader, attr)
    assert twin.X.tobytes() == loader.X.tobytes() and not np.shares_memory(twin.X, loader.X)
    if Y:
        assert twin.Y.tobytes() == loader.Y.tobytes()
        assert not np.shares_memory(twin.Y, loader.Y)
    assert twin.rng is not loader.rng
    for _ in range(2):
        mine, theirs = _epoch(loader), _epoch(twin)
        assert len(mine) == len(theirs) == len(loader)
        for a, b in zip(mine, theirs):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_a_copy_made_mid_epoch_starts_at_the_next_epoch_and_leaves_the_original_going(impl):
    loader = _loader(impl, 1)
    it = iter(loader)
    first = next(it)[1].copy()
    twin = copy.deepcopy(loader)
    rest = [y.copy() for _, y in it]        # the original's epoch is not disturbed
    assert len(rest) == len(loader) - 1 and first.shape == (8,)
    assert [y.tolist() for _, y in twin] == [y.tolist() for _, y in loader]


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_minibatches_copy_copy_is_refused(impl):
    with pytest.raises(TypeError, match=r"copy\.copy.*MiniBatches.*copy\.deepcopy"):
        copy.copy(_loader(impl, 0))


@pytest.mark.parametrize("copier", sorted(COPIERS) + ["copy"])
def test_a_distributed_optimizer_refuses_to_be_copied(copier):
    # One collective object across the ranks: a copy would share the communicator (its
    # collectives pairing silently with the original's). Before: deepcopy and pickle raised
    # "cannot pickle 'module' object" and copy.copy returned an object sharing the optimizer.
    pytest.importorskip("mpi4py")
    from fastopt.distributed import DistributedOptimizer
    opt = DistributedOptimizer(fastopt.Adam, fastopt.pack({"w": np.zeros(10)}), lr=0.1)
    copier = copy.copy if copier == "copy" else COPIERS[copier]
    with pytest.raises(TypeError, match="DistributedOptimizer cannot be copied or pickled.*"
                                        "save"):
        copier(opt)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_checks_its_dict_for_rebound_entries(how):
    """params2, opt2 = copy.deepcopy((params, opt)): opt2 steps params2's arrays and, like the
    original, refuses a step after params2["W"] was rebound to a new array (the course's
    params["W"] = params["W"] - ...), instead of stepping the array the dict no longer holds."""
    for mod in (fastopt, fastopt.reference):
        params = {"W": np.ones(3), "b": np.zeros(3)}
        opt = mod.SGD(params, lr=0.1)
        both = (params, opt)
        p2, o2 = copy.deepcopy(both) if how == "deepcopy" else pickle.loads(pickle.dumps(both))
        o2.step({"W": np.ones(3), "b": np.ones(3)})
        np.testing.assert_array_equal(p2["W"], np.full(3, 0.9))  # its own dict's arrays
        p2["W"] = p2["W"] - 1.0
        with pytest.raises(ValueError, match=r"params\['W'\] is no longer the array"):
            o2.step({"W": np.ones(3), "b": np.ones(3)})
        assert o2.t == 1


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_keeps_a_loaded_resume(how):
    """A MiniBatches restored by load_state_dict and not iterated since resumes the saved
    epoch at its next iter(); so does its copy (it used to start a new epoch instead)."""
    for mod in (fastopt, fastopt.reference):
        X = np.arange(40.0).reshape(4, 10)
        ref = mod.MiniBatches(X, np.arange(10), batch_size=3, seed=0)
        it = iter(ref)
        next(it)
        saved = ref.state_dict()
        rest = [y.tolist() for _, y in it]
        loader = mod.MiniBatches(X, np.arange(10), batch_size=3, seed=7)
        loader.load_state_dict(saved)
        clone = copy.deepcopy(loader) if how == "deepcopy" else pickle.loads(pickle.dumps(loader))
        assert [y.tolist() for _, y in clone] == rest
        assert [y.tolist() for _, y in loader] == rest
