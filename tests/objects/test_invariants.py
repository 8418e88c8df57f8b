"""Objects keep their promises (issue 10): no public assignment or mapping call can make a later
call write out of bounds, hang, or drop a gradient.

The two regressions that motivated it are first: ``MiniBatches.batch_size = 512`` after an epoch
with 64 (``take_rows`` wrote 512 rows into a 64-row buffer and hung), and ``grads |= {...}``
rebinding a packed gradient to a separate array (the optimizer then stepped with the old buffer).
The mini-batch repro runs in a subprocess with a timeout: a regression would otherwise corrupt or
hang the test process itself.
"""
import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import _dispatch
from fastopt import _validation as _v

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

ITERS = {"fastopt": fastopt, "reference": fastopt.reference}


@pytest.fixture(params=sorted(ITERS))
def mod(request):
    return ITERS[request.param]


def run_isolated(code, timeout=60):
    """Run ``code`` in a fresh interpreter; fail on a crash, a hang or a non-zero exit."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s:\n{code}")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


# --- 1. MiniBatches: reassigning the batch size after an epoch --------------------------------

@pytest.mark.parametrize("axis", [0, 1])
def test_regression_batch_size_grows_after_an_epoch(axis):
    out = run_isolated(f"""
        import numpy as np, fastopt, fastopt.reference
        rng = np.random.default_rng(0)
        X = rng.standard_normal((1000, 50)).astype(np.float32)
        X = X if {axis} == 0 else np.ascontiguousarray(X.T)
        Y = (rng.random(1000) > 0.5)
        epochs = []
        for mod in (fastopt, fastopt.reference):
            mb = mod.MiniBatches(X, Y, batch_size=64, seed=0, axis={axis})
            first = [(x.copy(), y.copy()) for x, y in mb]
            mb.batch_size = 512
            second = [(x.copy(), y.copy()) for x, y in mb]
            epochs.append((first, second))
        (f1, f2), (r1, r2) = epochs
        for got, want in ((f1, r1), (f2, r2)):
            assert len(got) == len(want)
            for (gx, gy), (wx, wy) in zip(got, want):
                assert gx.tobytes() == wx.tobytes() and gy.tobytes() == wy.tobytes()
        assert [len(y) for _, y in f1] == [64] * 15 + [40]
        assert [len(y) for _, y in f2] == [512, 488]
        # The second epoch is a permutation of the data: every example once.
        xs = np.concatenate([x if {axis} == 0 else x.T for x, _ in f2])
        key = X if {axis} == 0 else X.T
        assert sorted(map(bytes, xs)) == sorted(map(bytes, key))
        print("ok")
    """)
    assert out.strip() == "ok"


# --- 2. PackedArrays: no mapping call rebinds an entry or drops a gradient ----------------------

def packed_grads():
    params = fastopt.pack({"W": np.ones((2, 3)), "b": np.zeros((2, 1))})
    return params, fastopt.pack_like(params)


def assert_entries_are_views(grads):
    """Every entry is still the view of ``grads.buffer`` at its layout offset."""
    assert list(grads) == [key for key, _, _ in grads.layout]
    for key, shape, offset in grads.layout:
        view = dict.__getitem__(grads, key)
        assert view.base is grads.buffer and view.shape == shape
        assert (view.__array_interface__["data"][0]
                == grads.buffer.__array_interface__["data"][0] + offset * grads.buffer.itemsize)


def test_regression_ior_copies_into_the_buffer():
    params, grads = packed_grads()
    new = np.full((2, 3), 0.5)
    grads |= {"W": new}
    assert_entries_are_views(grads)
    assert grads["W"] is not new and grads.buffer[:6].tolist() == [0.5] * 6
    opt = fastopt.SGD(params, lr=1.0)
    opt.step(grads)
    assert params["W"].tolist() == [[0.5] * 3] * 2  # the step saw the new gradient


@pytest.mark.parametrize("call", [
    lambda g: g.__setitem__("W", np.full((2, 3), 2.0)),
    lambda g: g.update({"W": np.full((2, 3), 2.0)}),
    lambda g: g.update([("W", np.full((2, 3), 2.0))]),
    lambda g: g.update(W=np.full((2, 3), 2.0)),
    lambda g: g.__ior__({"W": np.full((2, 3), 2.0)}),
    lambda g: g.__ior__([("W", np.full((2, 3), 2.0))]),
], ids=["setitem", "update-dict", "update-pairs", "update-kwargs", "ior-dict", "ior-pairs"])
def test_writes_copy_into_the_buffer(call):
    _, grads = packed_grads()
    buffer = grads.buffer
    call(grads)
    assert grads.buffer is buffer
    assert_entries_are_views(grads)
    assert buffer.tolist() == [2.0] * 6 + [0.0, 0.0]


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda g: g.__delitem__("W"), TypeError, "fixed entries"),
    (lambda g: g.pop("W"), TypeError, "fixed entries"),
    (lambda g: g.pop("missing", None), TypeError, "fixed entries"),
    (lambda g: g.popitem(), TypeError, "fixed entries"),
    (lambda g: g.clear(), TypeError, "fixed entries"),
    (lambda g: g.setdefault("c", np.ones(2)), KeyError, "cannot be added"),
    (lambda g: g.__setitem__("c", np.ones(2)), KeyError, "cannot be added"),
    (lambda g: g.update({"W": np.full((2, 3), 9.0), "c": 1.0}), KeyError, "cannot be added"),
    (lambda g: g.update({"W": np.full((2, 3), 9.0), "b": np.ones(3)}), ValueError,
     r"value for 'b' has shape \(3,\); expected \(2, 1\)"),
    (lambda g: g.update({"W": np.full((2, 3), 9.0)}, b=np.ones(5)), ValueError, "value for 'b'"),
    (lambda g: g.update([("W", 1.0, 2.0)]), ValueError, "pairs"),
    (lambda g: g.update(1, 2), TypeError, "at most 1"),
    (lambda g: g.__ior__({"W": np.full((2, 3), 9.0), "c": 1.0}), KeyError, "cannot be added"),
    (lambda g: g.__setitem__("W", [["a"] * 3] * 2), TypeError, "cannot be converted"),
    (lambda g: g.__or__({"c": np.ones(2)}), KeyError, "cannot be added"),
    (lambda g: type(g).fromkeys(["W"], 0.0), TypeError, "fastopt.pack"),
    (lambda g: type(g)({"W": np.ones(2)}), TypeError, "fastopt.pack"),
    (lambda g: setattr(g, "buffer", np.zeros(8)), AttributeError, "read-only"),
    (lambda g: setattr(g, "layout", ()), AttributeError, "read-only"),
], ids=["del", "pop", "pop-default", "popitem", "clear", "setdefault-new", "setitem-new",
        "update-new-key", "update-bad-shape", "update-kwargs-bad", "update-not-pairs",
        "update-two-args", "ior-new-key", "setitem-strings", "or-new-key", "fromkeys",
        "constructor", "set-buffer", "set-layout"])
def test_refused_calls_change_nothing(call, exc, pattern):
    _, grads = packed_grads()
    grads["W"] = np.arange(6.0).reshape(2, 3)
    before, buffer = grads.buffer.copy(), grads.buffer
    with pytest.raises(exc, match=pattern):
        call(grads)
    assert grads.buffer is buffer and grads.buffer.tobytes() == before.tobytes()
    assert_entries_are_views(grads)


def test_reads_and_non_mutating_methods():
    _, grads = packed_grads()
    grads["W"] = np.arange(6.0).reshape(2, 3)
    assert len(grads) == 2 and "W" in grads and "c" not in grads
    assert list(grads) == ["W", "b"] and list(reversed(grads)) == ["b", "W"]
    assert list(grads.keys()) == ["W", "b"]
    assert [v.shape for v in grads.values()] == [(2, 3), (2, 1)]
    assert [k for k, _ in grads.items()] == ["W", "b"]
    assert grads.get("W") is grads["W"] and grads.get("c") is None
    assert grads.setdefault("W", None) is grads["W"]  # existing key: a read, as for a dict
    assert repr(grads).startswith("PackedArrays({'W': array(")
    # New objects: copies of the values with their own buffer, or plain dicts of our views.
    for clone in (grads.copy(), copy.copy(grads), copy.deepcopy(grads),
                  pickle.loads(pickle.dumps(grads))):
        assert type(clone) is fastopt.PackedArrays and clone.layout == grads.layout
        assert not np.shares_memory(clone.buffer, grads.buffer)
        assert clone.buffer.tobytes() == grads.buffer.tobytes()
        assert_entries_are_views(clone)
    merged = grads | {"b": np.full((2, 1), 7.0)}
    assert type(merged) is fastopt.PackedArrays and merged.buffer.tolist()[6:] == [7.0, 7.0]
    assert not np.shares_memory(merged.buffer, grads.buffer)
    assert_entries_are_views(merged)
    assert grads.__or__(3) is NotImplemented and grads.__ror__(3) is NotImplemented
    left = {"b": "dropped", "other": 1} | grads  # a plain dict, as for any dict on the left
    assert type(left) is dict and list(left) == ["b", "other", "W"]
    assert left["b"] is grads["b"] and left["other"] == 1
    assert dict(grads) == {"W": grads["W"], "b": grads["b"]}
    assert grads.buffer.tolist() == list(range(6)) + [0.0, 0.0]  # nothing above wrote
    assert_entries_are_views(grads)


@pytest.mark.parametrize("impl", sorted(ITERS))
def test_optimizers_step_packed_grads_after_every_write(impl):
    mod = ITERS[impl]
    params, grads = packed_grads()
    ref_params = {k: v.copy() for k, v in params.items()}
    opt = mod.Adam(params, lr=0.1)
    ref = fastopt.reference.Adam(ref_params, lr=0.1)
    writes = [lambda g: g.__setitem__("W", np.full((2, 3), 1.0)),
              lambda g: g.update(b=np.full((2, 1), -2.0)),
              lambda g: g.__ior__({"W": np.full((2, 3), 3.0), "b": np.full((2, 1), 4.0)})]
    for write in writes:
        write(grads)
        opt.step(grads)
        ref.step({k: v.copy() for k, v in grads.items()})
        for key in params:
            assert params[key].tobytes() == ref_params[key].tobytes()


# --- 3. EWA: derived scalars follow their hyperparameters ----------------------------------------

def test_ewa_beta_assignment_rederives_its_scalars():
    avg = fastopt.EWA(beta=0.9)
    avg.beta = 0.5
    assert avg.update(4.0) == 2.0  # (1 - 0.5) * 4, not (1 - 0.9) * 4
    with pytest.raises(ValueError, match=r"^beta must satisfy 0 <= beta < 1, got 1.0"):
        avg.beta = 1.0
    with pytest.raises(TypeError, match="^beta must be a real number"):
        avg.beta = "0.5"
    assert avg.beta == 0.5 and avg.update(4.0) == 3.0


def test_ewa_attributes():
    avg = fastopt.EWA(beta=0.5, dtype=np.float32)
    avg.update(1.0)
    avg.bias_correction = True
    assert avg.update(1.0) == 1.0  # 0.75 / (1 - 0.25)
    with pytest.raises(TypeError, match="^bias_correction must be True or False"):
        avg.bias_correction = 1
    for name, value in [("dtype", np.float64), ("count", 0), ("value", None)]:
        with pytest.raises(AttributeError, match=f"^{name} is read-only"):
            setattr(avg, name, value)
    assert (avg.count, avg.value, avg.dtype, avg.bias_correction) == (2, 1.0, np.float32, True)
    avg.reset()
    assert (avg.count, avg.value) == (0, None)


# --- MiniBatches: every public attribute ----------------------------------------------------------

def loader(mod, axis=1, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 23) if axis == 1 else (23, 5))
    Y = rng.integers(0, 3, 23)
    return mod.MiniBatches(X, Y, axis=axis, **dict(dict(batch_size=4, seed=0), **kwargs))


def epoch(mb):
    return [(x.copy(), y.copy()) for x, y in mb]


@pytest.mark.parametrize("name", ["X", "Y", "axis", "m"])
def test_read_only_minibatch_attributes(mod, name):
    mb = loader(mod)
    before = getattr(mb, name)
    with pytest.raises(AttributeError, match=f"^{name} is read-only"):
        setattr(mb, name, before)
    assert getattr(mb, name) is before


def test_data_is_held_as_a_view(mod):
    # Reshaping the caller's array in place cannot change what the buffers were sized for.
    X = np.arange(46.0).reshape(2, 23)
    mb = mod.MiniBatches(X, batch_size=4, seed=0)
    X.shape = (23, 2)
    assert mb.X.shape == (2, 23) and np.shares_memory(mb.X, X)
    assert [b.shape for b in mb] == [(2, 4)] * 5 + [(2, 3)]


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("name,value,sizes", [
    ("batch_size", 10, [10, 10, 3]),
    ("batch_size", 1000, [23]),
    ("batch_size", 1, [1] * 23),
    ("drop_last", True, [4] * 5),
    ("copy", True, [4] * 5 + [3]),
])
def test_validated_minibatch_attributes_take_effect(mod, axis, name, value, sizes):
    mb = loader(mod, axis)
    epoch(mb)
    setattr(mb, name, value)
    assert getattr(mb, name) == value
    got = epoch(mb)
    assert [len(y) for _, y in got] == sizes and len(mb) == len(sizes)
    # The same bits as a new loader with that configuration, at the same generator state.
    twin = loader(mod, axis, **{name: value})
    twin.rng.permutation(23)
    for (gx, gy), (wx, wy) in zip(got, epoch(twin)):
        assert gx.tobytes() == wx.tobytes() and gy.tobytes() == wy.tobytes()


@pytest.mark.parametrize("name,value,exc,pattern", [
    ("batch_size", 0, ValueError, "^batch_size must be an integer >= 1, got 0"),
    ("batch_size", 2.0, TypeError, "^batch_size must be an integer >= 1, got float"),
    ("batch_size", True, TypeError, "^batch_size must be an integer"),
    ("drop_last", None, TypeError, "^drop_last must be True or False"),
    ("copy", "yes", TypeError, "^copy must be True or False"),
    ("rng", 3, TypeError, "^rng must be a numpy.random.Generator, got int"),
])
def test_invalid_minibatch_assignments_change_nothing(mod, name, value, exc, pattern):
    mb = loader(mod)
    before = getattr(mb, name)
    with pytest.raises(exc, match=pattern):
        setattr(mb, name, value)
    assert getattr(mb, name) is before or getattr(mb, name) == before


def test_rng_assignment(mod):
    mb = loader(mod)
    mb.rng = np.random.default_rng(7)
    want = np.random.default_rng(7).permutation(23)
    assert np.concatenate([y for _, y in epoch(mb)]).tolist() == mb.Y[want].tolist()


def test_assignment_mid_epoch_leaves_the_running_epoch_alone(mod):
    # An epoch runs with the configuration and buffers it started with; a new value takes effect
    # at the next epoch, which gets new buffers.
    mb = loader(mod, axis=0, batch_size=4)
    it = iter(mb)
    first = next(it)
    mb.batch_size = 10
    mb.copy = True
    rest = list(it)
    assert [len(y) for _, y in [first] + rest] == [4] * 5 + [3]
    assert [len(y) for _, y in epoch(mb)] == [10, 10, 3]


def test_assignment_between_iter_and_first_batch(mod):
    # The permutation is drawn by iter(); the epoch's configuration is fixed there too.
    mb = loader(mod, axis=1, batch_size=4)
    it = iter(mb)
    mb.batch_size = 20
    assert [len(y) for _, y in it] == [4] * 5 + [3]
    assert [len(y) for _, y in mb] == [20, 3]


@pytest.mark.parametrize("axis", [1, 0])
def test_stale_iterator_raises_before_writing(mod, axis):
    # An older epoch resumed after a newer one handed out a batch must not overwrite that batch.
    mb = loader(mod, axis=axis)
    old = iter(mb)
    next(old)
    not_started = iter(mb)
    new = iter(mb)
    x, y = next(new)
    kept = x.copy(), y.copy()
    for stale in (old, not_started):
        with pytest.raises(RuntimeError, match="newer epoch"):
            next(stale)
    assert x.tobytes() == kept[0].tobytes() and y.tobytes() == kept[1].tobytes()


# --- kernels: the second line -------------------------------------------------------------------

# Each compiled variant directly (the gathers are the same source under other flags), and the
# reference, which calls the same checks.
class _Variant:
    """fastopt._ops' gathers on one SIMD variant: the compiled check and gather, and on a
    refusal (the kernel returns False, nothing written) the worded error of _validation."""

    def __init__(self, name):
        self.name = name

    def take_rows(self, *args):
        with _dispatch.using(self.name):
            return fastopt._ops.take_rows(*args)

    def columns_into(self, *args):
        with _dispatch.using(self.name):
            return fastopt._ops.columns_into(*args)


GATHERS = {"reference": fastopt.reference._ops,
           **{f"fastopt-{name}": _Variant(name) for name in _dispatch.MODULES}}


@pytest.fixture(params=sorted(GATHERS))
def gather(request):
    return GATHERS[request.param]


def rows_case():
    src = np.arange(40.0).reshape(10, 4)
    return src, np.array([3, 1, 4], np.intp), np.full((3, 4), -1.0)


@pytest.mark.parametrize("change,exc,pattern", [
    (lambda s, r, o: (s.ravel(), r, o), ValueError, "src must be 2-D"),
    (lambda s, r, o: (s, r, o[:2]), ValueError, r"out has shape \(2, 4\); expected \(3, 4\)"),
    (lambda s, r, o: (s, r, np.full((3, 5), -1.0)), ValueError, r"expected \(3, 4\)"),
    (lambda s, r, o: (s, r, np.full((4, 3), -1.0)), ValueError, r"expected \(3, 4\)"),
    (lambda s, r, o: (s, r, o.astype(np.float32)), ValueError, "out has dtype float32"),
    (lambda s, r, o: (s, r, np.full((4, 3), -1.0).T), ValueError, "out is not C-contiguous"),
    (lambda s, r, o: (s, r.astype(np.int32), o), ValueError, "rows has dtype int32"),
    (lambda s, r, o: (s, r.reshape(3, 1), o), ValueError, "rows must be 1-D"),
    (lambda s, r, o: (s, np.array([3, 10, 4]), o), ValueError, r"rows holds 10; every row "),
    (lambda s, r, o: (s, np.array([3, -1, 4]), o), ValueError, r"rows holds -1"),
])
def test_take_rows_checks_before_writing(gather, change, exc, pattern):
    src, rows, out = rows_case()
    src, rows, out = change(src, rows, out)
    before = out.copy()
    with pytest.raises(exc, match=pattern):
        gather.take_rows(src, rows, out)
    assert out.tobytes() == before.tobytes()


@pytest.mark.parametrize("variant", sorted(_dispatch.MODULES))
def test_a_refused_gather_writes_nothing_and_says_so(variant):
    # The kernels' own answer: False with nothing written (fastopt._ops then words the error).
    kernels = _dispatch.MODULES[variant]
    src, rows, out = rows_case()
    before = out.copy()
    assert kernels.take_rows(src, np.array([3, 10, 4]), out) is False
    assert out.tobytes() == before.tobytes()
    assert kernels.take_rows(src, rows, out) is True
    assert out.tolist() == src[rows].tolist()
    src, perm, batch, blocks = columns_case()
    saved = [b.copy() for b in blocks]
    assert kernels.columns_into(src, perm, 0, blocks) is False
    assert all(b.tobytes() == c.tobytes() for b, c in zip(blocks, saved))


def test_take_rows_read_only_out(gather):
    src, rows, out = rows_case()
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        gather.take_rows(src, rows, out)


def test_take_rows_valid(gather):
    src, rows, out = rows_case()
    gather.take_rows(src[:, ::-1], rows, out)
    assert out.tolist() == src[:, ::-1][rows].tolist()


def columns_case(m=10, batch=4):
    src = np.arange(3.0 * m).reshape(3, m)
    perm = np.random.default_rng(0).permutation(m)
    from fastopt._minibatch import new_blocks
    return src, perm, batch, new_blocks(src, m, batch)


@pytest.mark.parametrize("change,pattern", [
    (lambda s, p, b, k: (s.ravel(), p, b, k), "src must be 2-D"),
    (lambda s, p, b, k: (s, p, 0, k), "batch must be an integer >= 1, got 0"),
    (lambda s, p, b, k: (s, p, 3, k), r"blocks has 3 blocks; expected 4 \(10 columns"),
    (lambda s, p, b, k: (s, p, 5, k), "blocks has 3 blocks; expected 2"),
    (lambda s, p, b, k: (s, p, b, k[:2]), "blocks has 2 blocks; expected 3"),
    (lambda s, p, b, k: (s, p, b, k[:2] + [np.empty((3, 2))] + k[2:]), "blocks has 4"),
    (lambda s, p, b, k: (s, p, b, k[:2] + [np.empty((3, 4))]),
     r"blocks\[2\] has shape \(3, 4\); expected \(3, 2\)"),
    (lambda s, p, b, k: (s, p, b, [np.empty((2, 4))] + k[1:]),
     r"blocks\[0\] has shape \(2, 4\); expected \(3, 4\)"),
    (lambda s, p, b, k: (s, p, b, k[:2] + [np.empty((3, 2), np.float32)]),
     r"blocks\[2\] has dtype float32; expected float64"),
    (lambda s, p, b, k: (s, p, b, k[:2] + [np.empty((2, 3)).T]),
     r"blocks\[2\] is not C-contiguous"),
    (lambda s, p, b, k: (s, p, b, k[:2] + [[[0.0] * 2] * 3]),
     r"blocks\[2\] must be a numpy.ndarray, got list"),
    (lambda s, p, b, k: (s, p.astype(np.int32), b, k), "perm has dtype int32"),
    (lambda s, p, b, k: (s, np.where(p == 0, 10, p), b, k), "perm holds 10; every column "),
    (lambda s, p, b, k: (s, np.where(p == 0, -3, p), b, k), "perm holds -3"),
    (lambda s, p, b, k: (s, p, b, tuple(k)), "blocks must be a list"),
])
def test_columns_into_checks_before_writing(gather, change, pattern):
    src, perm, batch, blocks = change(*columns_case())
    before = [np.array(b, copy=True) for b in blocks]
    with pytest.raises(ValueError, match=pattern):
        gather.columns_into(src, perm, batch, blocks)
    assert all(np.asarray(b).tobytes() == w.tobytes() for b, w in zip(blocks, before))


def test_columns_into_read_only_block(gather):
    src, perm, batch, blocks = columns_case()
    blocks[1].flags.writeable = False
    with pytest.raises(ValueError, match=r"blocks\[1\] is read-only"):
        gather.columns_into(src, perm, batch, blocks)


def test_columns_into_valid_and_empty(gather):
    src, perm, batch, blocks = columns_case()
    gather.columns_into(src[::-1, ::2].repeat(2, axis=1), perm, batch, blocks)
    gather.columns_into(src, perm[:0], batch, [])


def test_kernels_refuse_even_if_the_wording_check_does_not(monkeypatch):
    # The kernels test the conditions in C; on a refusal fastopt._ops calls _validation to word it;
    # were the two ever to disagree, the kernel still refuses (a generic message) to write.
    monkeypatch.setattr(_v, "check_take_rows", lambda *args: None)
    monkeypatch.setattr(_v, "check_columns_into", lambda *args: None)
    src, rows, out = rows_case()
    with pytest.raises(ValueError, match="take_rows: arguments rejected by the kernel"):
        fastopt._ops.take_rows(src, rows, out[:2])
    src, perm, batch, blocks = columns_case()
    with pytest.raises(ValueError, match="columns_into: arguments rejected by the kernel"):
        fastopt._ops.columns_into(src, perm, batch, blocks[:-1])
    assert (out == -1).all()
