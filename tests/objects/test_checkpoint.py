"""Checkpoints hold only what they can load, and all of it (docs/contract.md; fastopt._checkpoint):
a schedule of one's own is refused at save time, files respect the umask, the step counts are
bounded where they are set, ``last_grad_norm`` comes back, and a ``MiniBatches``' position is
saved with the optimizer so that training resumes bit for bit mid-epoch."""
import json
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastopt
import fastopt.reference
from fastopt import schedules

IMPLS = {"fastopt": fastopt, "reference": fastopt.reference}


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return IMPLS[request.param]


def params64(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((4, 3)), "b": np.zeros((4, 1))}


def grads_like(params, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(a.shape) for k, a in params.items()}


# --- a schedule of one's own ------------------------------------------------------------------

class Halving(schedules.Schedule):
    _fields = ("initial_lr",)

    def __init__(self, initial_lr):
        self.initial_lr = initial_lr

    def _at(self, step):
        return self.initial_lr / 2 ** step


class ExponentialDecay(schedules.ExponentialDecay):  # named like fastopt's, does otherwise
    def _at(self, step):
        return 2 * super()._at(step)


@pytest.mark.parametrize("lr", [Halving(0.1),
                                schedules.LinearWarmup(Halving(0.1), 5),
                                ExponentialDecay(0.1, 0.5)],
                         ids=["subclass", "nested", "same-name"])
def test_a_schedule_a_checkpoint_cannot_rebuild_is_refused_at_save(impl, lr, tmp_path):
    opt = impl.Adam(params64(), lr=lr)
    opt.step(grads_like(opt.params, 1))
    path = tmp_path / "ckpt.npz"
    with pytest.raises(TypeError, match=r"^hyperparameter 'lr'.* is a .*, a schedule that a "
                                        r"checkpoint cannot rebuild.*Nothing was written"):
        opt.save(path)
    assert os.listdir(tmp_path) == []
    # fastopt's own schedules, nested too, save and load.
    opt.lr = schedules.LinearWarmup(schedules.ExponentialDecay(0.1, 0.5), 5)
    opt.save(path)
    other = impl.Adam(params64(1), lr=0.5)
    other.load(path)
    assert other.lr == opt.lr


# --- permissions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_respect_the_umask(impl, umask, mode, tmp_path):
    opt = impl.SGD(params64(), lr=0.1)
    path = tmp_path / "ckpt.npz"
    old = os.umask(umask)
    try:
        opt.save(path)
        first = os.stat(path).st_mode & 0o777
        opt.save(path)  # over an existing file: the new file's mode
        second = os.stat(path).st_mode & 0o777
    finally:
        os.umask(old)
    assert first == second == mode
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left


# --- the step counts ------------------------------------------------------------------------------

def test_step_counts_are_bounded_on_assignment(impl, tmp_path):
    opt = impl.Adam(params64(), lr=0.1)
    for name in ("t", "skipped"):
        with pytest.raises(ValueError, match=rf"^{name} must be an integer in \[0, 2\*\*63 - 1\]"):
            setattr(opt, name, 2**63)
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 0"):
            setattr(opt, name, -1)
        assert getattr(opt, name) == 0
    opt.t = opt.skipped = 2**63 - 1  # the largest a checkpoint holds: saves and loads
    opt.save(tmp_path / "max.npz")
    other = impl.Adam(params64(), lr=0.1)
    other.load(tmp_path / "max.npz")
    assert other.t == other.skipped == 2**63 - 1


def _rewrite(path, **changes):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize("key", ["meta.t", "meta.skipped"])
def test_step_counts_are_bounded_on_load(impl, key, tmp_path):
    path = tmp_path / "ckpt.npz"
    opt = impl.Adam(params64(), lr=0.1)
    opt.step(grads_like(opt.params, 1))
    opt.save(path)
    _rewrite(path, **{key: np.array(2**64 - 1, np.uint64)})
    other = impl.Adam(params64(3), lr=0.2)
    before = {k: a.copy() for k, a in other.params.items()}
    name = key.split(".")[1]
    with pytest.raises(ValueError, match=rf"^state\['{name}'\] must be an integer in \[0, 2\*\*63"):
        other.load(path)
    assert other.t == 0 and other.lr == 0.2
    assert all(np.array_equal(other.params[k], before[k]) for k in before)
    state = opt.state_dict()
    state[name] = 2**63
    with pytest.raises(ValueError, match=rf"^state\['{name}'\] must be an integer in"):
        other.load_state_dict(state)


def test_a_count_a_step_would_carry_past_int64_is_refused_before_the_step(tmp_path):
    # A step from t = 2**63 - 1 used to carry t past int64, and save refused the result; the
    # step itself is refused now (test_a_step_that_would_pass_the_largest_count_is_refused),
    # so what a step leaves can always be saved. save still checks, behind it.
    opt = fastopt.SGD(params64(), lr=0.1)
    opt.t = 2**63 - 1
    with pytest.raises(ValueError, match=r"^t is 9223372036854775807, the largest"):
        opt.step(grads_like(opt.params, 1))
    opt.save(tmp_path / "ckpt.npz")
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    opt._t = 2**63  # only by reaching past the setter
    with pytest.raises(ValueError, match=r"^t must be an integer in \[0, 2\*\*63 - 1\]"):
        opt.save(tmp_path / "past.npz")
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# --- last_grad_norm -------------------------------------------------------------------------------

@pytest.mark.parametrize("grad_scale", [1.0, np.inf], ids=["finite", "inf"])
def test_last_grad_norm_is_restored(impl, grad_scale, tmp_path):
    opt = impl.Adam(params64(), lr=0.1, max_grad_norm=0.5)
    assert opt.last_grad_norm is None
    opt.save(tmp_path / "none.npz")
    grads = grads_like(opt.params, 1)
    grads["W"][0, 0] *= grad_scale
    opt.step(grads)
    norm = opt.last_grad_norm
    assert norm is not None
    opt.save(tmp_path / "ckpt.npz")
    for restore in ("file", "state_dict"):
        other = impl.Adam(params64(2), lr=0.1, max_grad_norm=0.5)
        if restore == "file":
            other.load(tmp_path / "ckpt.npz")
        else:
            other.load_state_dict(opt.state_dict())
        assert repr(other.last_grad_norm) == repr(norm), restore
        other.load(tmp_path / "none.npz")
        assert other.last_grad_norm is None
    state = opt.state_dict()
    state["last_grad_norm"] = -1.0
    with pytest.raises(ValueError, match=r"^state\['last_grad_norm'\] must be None or a norm"):
        other.load_state_dict(state)


# --- MiniBatches: seed, state, and resuming with the optimizer ------------------------------------

@pytest.mark.parametrize("make", [lambda: 5, lambda: [1, 2], lambda: np.random.SeedSequence(7),
                                  lambda: np.random.PCG64(8), lambda: np.random.MT19937(9),
                                  lambda: np.random.default_rng(10)],
                         ids=["int", "list", "SeedSequence", "PCG64", "MT19937", "Generator"])
def test_seed_takes_what_default_rng_takes(impl, make):
    X = np.arange(40.0).reshape(2, 20)
    (got,) = impl.MiniBatches(X, batch_size=20, seed=make(), copy=True)
    want = np.random.default_rng(make()).permutation(20)
    assert np.array_equal(got, X[:, want])
    gen = np.random.default_rng(1)
    assert impl.MiniBatches(X, seed=gen).rng is gen
    assert isinstance(impl.MiniBatches(X, seed=None).rng, np.random.Generator)


@pytest.mark.parametrize("seed,exc,pattern", [
    ("abc", TypeError, "^seed must be an integer >= 0, a sequence of them, a numpy.random"),
    (1.5, TypeError, "^seed must be an integer >= 0, a sequence of them"),
    ([1, -2], ValueError, "^seed must be an integer >= 0, a sequence of them"),
    (-1, ValueError, "^seed must be an integer >= 0"),
])
def test_seed_errors_name_it(impl, seed, exc, pattern):
    with pytest.raises(exc, match=pattern):
        impl.MiniBatches(np.ones((2, 5)), seed=seed)


def train(impl, axis, params, opt, batches, steps, path=None, save_at=None):
    """``steps`` steps of least squares over ``batches``, epoch after epoch; saves optimizer and
    loader at step ``save_at``."""
    done = 0
    while done < steps:
        for xb, yb in batches:
            W = params["W"]
            x = xb if axis == 1 else xb.T
            err = W @ x - yb.reshape(1, -1)
            opt.step({"W": err @ x.T / x.shape[1]})
            done += 1
            if done == save_at:
                opt.save(path, batches=batches)
            if done == steps:
                return


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("save_at", [3, 7, 10, 16])  # mid-epoch, an epoch's last batch (7 batches)
def test_optimizer_and_loader_resume_bit_for_bit_mid_epoch(impl, axis, world, save_at, tmp_path):
    rng = np.random.default_rng(0)
    m = 50
    X = rng.standard_normal((m, 6) if axis == 0 else (6, m))
    Y = rng.standard_normal(m)

    def fresh():
        params = {"W": np.zeros((1, 6))}
        opt = impl.Adam(params, lr=0.05, max_grad_norm=1.0)
        batches = impl.MiniBatches(X, Y, batch_size=8, seed=np.random.SeedSequence(42),
                                   axis=axis, rank=world - 1, world=world)
        return params, opt, batches

    path = tmp_path / "ckpt.npz"
    params, opt, batches = fresh()
    train(impl, axis, params, opt, batches, 25, path, save_at)
    params2, opt2, batches2 = fresh()
    batches2.batch_size = 5  # restored from the file
    opt2.load(path, batches=batches2)
    assert opt2.t == save_at and batches2.batch_size == 8
    train(impl, axis, params2, opt2, batches2, 25 - save_at)
    assert params2["W"].tobytes() == params["W"].tobytes()
    assert opt2.last_grad_norm == opt.last_grad_norm
    assert opt2.state("m")["W"].tobytes() == opt.state("m")["W"].tobytes()


def test_minibatches_state_dict(impl):
    X = np.arange(60.0).reshape(3, 20)
    batches = impl.MiniBatches(X, batch_size=6, seed=1)
    state = batches.state_dict()
    assert state["epoch"] is None and json.loads(json.dumps(state)) == state
    it = iter(batches)
    first = next(it).copy()
    state = batches.state_dict()
    assert state["epoch"]["batches"] == 1 and json.loads(json.dumps(state)) == state
    rest = [b.copy() for b in it]
    # A state taken mid-epoch resumes after the batch handed out, then goes on epoch by epoch.
    other = impl.MiniBatches(X, batch_size=6, seed=99)
    other.load_state_dict(state)
    assert other.state_dict() == state
    got = [b.copy() for b in other]
    assert len(got) == 3 and all(np.array_equal(g, r) for g, r in zip(got, rest))
    assert other.state_dict() == batches.state_dict()
    assert all(np.array_equal(a, b) for a, b in zip(other, [b.copy() for b in batches]))
    del first
    # Loading makes an iteration in progress stale.
    it = iter(batches)
    next(it)
    batches.load_state_dict(state)
    with pytest.raises(RuntimeError, match="newer epoch"):
        next(it)


@pytest.mark.parametrize("change,exc,pattern", [
    (dict(m=21), ValueError, r"^state is for data with m=21; this MiniBatches has m=20"),
    (dict(axis=0), ValueError, r"^state is for data with axis=0"),
    (dict(rng={"bit_generator": "Nope"}), ValueError, r"^state\['rng'\] must be a numpy bit"),
    (dict(rng={"bit_generator": "PCG64", "state": 3}), ValueError,
     r"^state\['rng'\] is not a valid PCG64 state"),
    (dict(batch_size=0), ValueError, r"^state\['batch_size'\] must be an integer >= 1"),
    (dict(version=7), ValueError, "^state has version 7"),
    (dict(loader="Other"), ValueError, "^state is for a 'Other', not a MiniBatches"),
    (dict(epoch={"rng": None, "batches": 0, "batch_size": 6, "drop_last": False}), ValueError,
     r"^state\['epoch'\]\['rng'\] must be a numpy bit"),
])
def test_minibatches_state_errors_change_nothing(impl, change, exc, pattern):
    X = np.arange(60.0).reshape(3, 20)
    batches = impl.MiniBatches(X, batch_size=6, seed=1)
    it = iter(batches)
    next(it)
    state = batches.state_dict()
    state.update(change)
    target = impl.MiniBatches(X, batch_size=4, seed=2)
    before = target.state_dict()
    with pytest.raises(exc, match=pattern):
        target.load_state_dict(state)
    assert target.state_dict() == before


def test_minibatches_state_epoch_position_is_bounded(impl):
    batches = impl.MiniBatches(np.ones((2, 20)), batch_size=6, seed=1)
    it = iter(batches)
    next(it)
    state = batches.state_dict()
    state["epoch"]["batches"] = 4  # 20 examples in batches of 6: 4 batches, 0..3 handed out
    with pytest.raises(ValueError, match=r"^state\['epoch'\]\['batches'\] is 4; that epoch has 4"):
        batches.load_state_dict(state)


def test_load_with_batches_validates_everything_first(impl, tmp_path):
    X = np.arange(60.0).reshape(3, 20)
    opt = impl.SGD(params64(), lr=0.1)
    opt.save(tmp_path / "plain.npz")
    batches = impl.MiniBatches(X, batch_size=6, seed=1)
    with pytest.raises(ValueError, match="holds no MiniBatches state"):
        opt.load(tmp_path / "plain.npz", batches=batches)
    with pytest.raises(TypeError, match="^batches must be a fastopt.MiniBatches"):
        opt.save(tmp_path / "x.npz", batches=[1, 2])
    opt.save(tmp_path / "with.npz", batches=impl.MiniBatches(np.ones((3, 21)), seed=0))
    other = impl.SGD(params64(5), lr=0.3)
    before = other.params["W"].copy()
    with pytest.raises(ValueError, match="^state is for data with m=21"):
        other.load(tmp_path / "with.npz", batches=batches)  # the loader's data differ
    assert other.lr == 0.3 and np.array_equal(other.params["W"], before)
    other.load(tmp_path / "with.npz")  # the optimizer alone: the loader state is ignored
    assert other.lr == 0.1


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(),
       axis=st.sampled_from([0, 1]), world=st.integers(1, 3), taken=st.integers(0, 30),
       impl_name=st.sampled_from(sorted(IMPLS)))
def test_any_position_resumes_the_same_batches(m, batch_size, drop_last, axis, world, taken,
                                               impl_name):
    impl = IMPLS[impl_name]
    X = np.arange(2 * m, dtype=np.float32).reshape((m, 2) if axis == 0 else (2, m))
    Y = np.arange(m)

    def make():
        return impl.MiniBatches(X, Y, batch_size, seed=3, axis=axis, drop_last=drop_last,
                                rank=world - 1, world=world)

    def labels(loader, epochs):
        return [yb.tolist() for _ in range(epochs) for _, yb in loader]

    everything = labels(make(), 6)
    target = min(taken, 4 * len(make()))  # within 4 epochs: 2 more follow in `everything`
    loader, seen = make(), 0
    while seen < target:  # hand out `target` batches, across epochs
        for _ in loader:
            seen += 1
            if seen == target:
                break
    resumed = make()
    resumed.load_state_dict(json.loads(json.dumps(loader.state_dict())))
    per_epoch = len(loader)
    rest_of_epoch = (per_epoch - seen % per_epoch) % per_epoch if per_epoch else 0
    stream = labels(resumed, 1) if rest_of_epoch else []
    stream += labels(resumed, 1)
    assert stream == everything[seen:seen + len(stream)]


def test_a_load_into_an_array_made_read_only_changes_nothing(impl, tmp_path):
    """A parameter or state array made read-only after construction: load and load_state_dict
    refuse with the step's message, naming it, before anything is written (the copies stopped
    at it, half done, with NumPy's "assignment destination is read-only")."""
    params = params64()
    opt = impl.Adam(params, lr=0.1)
    opt.step(grads_like(params, 1))
    opt.save(tmp_path / "c.npz")
    state = opt.state_dict()
    for name, arr in (("params['b']", params["b"]), ("state('v')['b']", opt.state("v")["b"])):
        params["W"][...] = 9.0
        arr.flags.writeable = False
        try:
            for call in (lambda: opt.load(tmp_path / "c.npz"), lambda: opt.load_state_dict(state)):
                with pytest.raises(ValueError, match=re.escape(name) + " was made read-only"):
                    call()
                assert (params["W"] == 9.0).all() and opt.t == 1
        finally:
            arr.flags.writeable = True
    opt.load(tmp_path / "c.npz")
    assert not (params["W"] == 9.0).any()


def test_a_step_that_would_pass_the_largest_count_is_refused(impl):
    """t = 2**63 - 1 is accepted (a checkpoint holds it); a step from there would make it
    2**63, which no checkpoint holds: refused before anything changes."""
    params = params64()
    opt = impl.Adam(params, lr=0.1)
    before = params["W"].copy()
    for name in ("t", "skipped"):
        setattr(opt, name, 2**63 - 1)
        with pytest.raises(ValueError, match=rf"^{name} is 9223372036854775807, the largest"):
            opt.step(grads_like(params, 1))
        np.testing.assert_array_equal(params["W"], before)
        setattr(opt, name, 0)
