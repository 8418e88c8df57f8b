"""Mini-batches: the assignment's random_mini_batches and the MiniBatches iterator, bit for bit."""
import tracemalloc

import numpy as np
import pytest

import assignment
import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab

# Markers (pyproject.toml): bits: compares bits; asan: runs under ASan (.ci/run selects by them).
pytestmark = [pytest.mark.bits, pytest.mark.asan]

LABS = {"fastopt": fastopt.lab, "reference": fastopt.reference.lab}
ITERS = {"fastopt": fastopt, "reference": fastopt.reference}
DATA_DTYPES = [np.float32, np.float64, np.int64, np.int16, np.uint8, np.bool_, np.complex128]


@pytest.fixture(params=sorted(LABS))
def lab(request):
    return LABS[request.param]


@pytest.fixture(params=sorted(ITERS))
def mod(request):
    return ITERS[request.param]


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 100
    if np.dtype(dtype).kind == "b":
        return x > 0
    if np.dtype(dtype).kind == "c":
        return (x + 1j * rng.standard_normal(shape)).astype(dtype)
    return x.astype(dtype)


def assert_same(got, want, what):
    """Same shape, dtype and bytes (floats bit for bit)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


def assert_batches_equal(got, want):
    assert len(got) == len(want)
    for k, ((gx, gy), (wx, wy)) in enumerate(zip(got, want)):
        assert_same(gx, wx, f"X of batch {k}")
        assert_same(gy, wy, f"Y of batch {k}")


@pytest.mark.parametrize("m,batch", [(300, 64), (64, 64), (65, 64), (1, 1), (7, 1), (7, 7),
                                     (7, 8), (130, 7), (1000, 999)])
@pytest.mark.parametrize("seed", [0, 1, 10, 2**32 - 1])
def test_lab_matches_assignment(lab, m, batch, seed):
    X = data((5, m), np.float64, seed=m)
    Y = data((1, m), np.bool_, seed=m + 1)
    want = assignment.random_mini_batches(X, Y, batch, seed)
    after_want = np.random.random()
    got = lab.random_mini_batches(X, Y, batch, seed)
    after_got = np.random.random()
    assert_batches_equal(got, want)
    assert after_got == after_want  # the same reseeding side effect on the global generator
    for x, y in got:
        assert x.flags.c_contiguous and y.flags.c_contiguous


@pytest.mark.parametrize("dtype", DATA_DTYPES, ids=lambda d: np.dtype(d).name)
def test_lab_any_dtype(lab, dtype):
    X, Y = data((3, 101), dtype), data((1, 101), np.int32)
    assert_batches_equal(lab.random_mini_batches(X, Y, 16, 3),
                         assignment.random_mini_batches(X, Y, 16, 3))
    Yf = data((1, 101), dtype, seed=4)
    assert_batches_equal(lab.random_mini_batches(X, Yf, 16, 3),
                         assignment.random_mini_batches(X, Yf, 16, 3))


def test_lab_strided_inputs(lab):
    base = data((8, 400), np.float32)
    for X in (base[::2, ::3], np.asfortranarray(base), base[:, ::-1]):
        Y = data((1, X.shape[1]), np.float64)
        assert_batches_equal(lab.random_mini_batches(X, Y, 32, 5),
                             assignment.random_mini_batches(X, Y, 32, 5))


def test_lab_label_shapes(lab):
    X = data((4, 50), np.float64)
    y = data((50,), np.int64)
    got = lab.random_mini_batches(X, y, 16, 2)  # 1-D labels are taken as (1, m)
    assert_batches_equal(got, assignment.random_mini_batches(X, y[np.newaxis], 16, 2))
    onehot = data((3, 50), np.float32)
    np.random.seed(2)
    perm = np.random.permutation(50)
    for k, (_, yb) in enumerate(lab.random_mini_batches(X, onehot, 16, 2)):
        assert_same(yb, onehot[:, perm[16 * k:16 * (k + 1)]], f"one-hot batch {k}")


def test_fastopt_lab_matches_reference_lab_large():
    X, Y = data((50, 20_000), np.float32), data((1, 20_000), np.float32)  # above thread cut-off
    for threads in (1, 2):
        with fastopt.num_threads(threads):
            assert_batches_equal(fastopt.lab.random_mini_batches(X, Y, 64, 9),
                                 fastopt.reference.lab.random_mini_batches(X, Y, 64, 9))


@pytest.mark.parametrize("axis", [1, 0])
def test_gathers_on_every_path(fast_config, axis):
    """Small data with the thread thresholds forced to 0: split gathers, every SIMD variant."""
    X = data((7, 301) if axis == 1 else (301, 7), np.float64)
    Y = data((301,), np.uint8)
    assert_batches_equal(list(fastopt.MiniBatches(X, Y, 16, seed=3, axis=axis, copy=True)),
                         list(fastopt.reference.MiniBatches(X, Y, 16, seed=3, axis=axis,
                                                            copy=True)))


def expected_epoch(X, Y, batch, perm, axis, drop_last):
    """Independent expectation: fancy indexing of each batch's slice of the permutation."""
    m = X.shape[axis]
    stop = m - m % batch if drop_last else m
    out = []
    for k0 in range(0, stop, batch):
        idx = perm[k0:k0 + batch]
        xb = X[:, idx] if axis == 1 else X[idx]
        if Y is None:
            out.append(xb)
        else:
            yb = Y[idx] if Y.ndim == 1 else (Y[:, idx] if axis == 1 else Y[idx])
            out.append((xb, yb))
    return out


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("m,batch,drop_last", [(100, 32, False), (100, 32, True), (64, 64, False),
                                                (5, 8, False), (5, 8, True), (9, 1, False)])
@pytest.mark.parametrize("ylayout", ["none", "1d", "2d"])
def test_iterator_matches_expectation(mod, axis, m, batch, drop_last, ylayout):
    X = data((3, m) if axis == 1 else (m, 3), np.float32)
    Y = {"none": None, "1d": data((m,), np.int8),
         "2d": data((2, m) if axis == 1 else (m, 2), np.float64)}[ylayout]
    loader = mod.MiniBatches(X, Y, batch_size=batch, seed=42, axis=axis, drop_last=drop_last)
    rng = np.random.default_rng(42)
    for epoch in range(3):
        want = expected_epoch(X, Y, batch, rng.permutation(m), axis, drop_last)
        # Copy while iterating: a yielded batch is only valid until the next one.
        got = [b.copy() if Y is None else tuple(x.copy() for x in b) for b in loader]
        assert len(got) == len(want) == len(loader)
        for k, (g, w) in enumerate(zip(got, want)):
            if Y is None:
                assert_same(g, w, f"epoch {epoch} batch {k}")
            else:
                assert_same(g[0], w[0], f"X, epoch {epoch} batch {k}")
                assert_same(g[1], w[1], f"Y, epoch {epoch} batch {k}")


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("dtype", DATA_DTYPES, ids=lambda d: np.dtype(d).name)
def test_iterator_fastopt_equals_reference(axis, dtype):
    X = data((6, 333) if axis == 1 else (333, 6), dtype)
    Y = data((333,), np.bool_)
    fast = fastopt.MiniBatches(X, Y, 50, seed=7, axis=axis)
    ref = fastopt.reference.MiniBatches(X, Y, 50, seed=7, axis=axis)
    for _ in range(2):
        for (fx, fy), (rx, ry) in zip(fast, ref):
            assert_same(fx, rx, "X")
            assert_same(fy, ry, "Y")
            assert fx.flags.c_contiguous and fy.flags.c_contiguous


def test_minibatches_function_and_generator_seed(mod):
    X = data((4, 90), np.float64)
    gen = np.random.default_rng(3)
    first = [b.copy() for b in mod.minibatches(X, batch_size=30, seed=gen)]
    second = [b.copy() for b in mod.minibatches(X, batch_size=30, seed=gen)]  # gen advanced
    perm1 = np.random.default_rng(3).permutation(90)
    assert_same(first[0], X[:, perm1[:30]], "first epoch")
    assert not np.array_equal(first[0], second[0])


@pytest.mark.parametrize("axis", [1, 0])
def test_buffer_reuse_does_not_corrupt_copies(mod, axis):
    X = data((4, 200) if axis == 1 else (200, 4), np.float32)
    loader = mod.MiniBatches(X, batch_size=16, seed=1, axis=axis)
    kept, views = [], []
    for batch in loader:
        kept.append(batch.copy())
        views.append(batch)
    perm = np.random.default_rng(1).permutation(200)
    for k, batch in enumerate(kept):
        idx = perm[16 * k:16 * (k + 1)]
        assert_same(batch, X[:, idx] if axis == 1 else X[idx], f"kept batch {k}")
    # copy=True gives independent arrays
    fresh = list(mod.MiniBatches(X, batch_size=16, seed=1, axis=axis, copy=True))
    for k, batch in enumerate(fresh):
        assert_same(batch, kept[k], f"copied batch {k}")
    assert not any(np.shares_memory(a, b) for a, b in zip(fresh, fresh[1:]))


def test_new_epoch_invalidates_the_old_iterator(mod):
    loader = mod.MiniBatches(data((3, 100), np.float32), batch_size=10, seed=0)
    old = iter(loader)
    next(old)
    new = iter(loader)
    next(new)
    with pytest.raises(RuntimeError, match="newer epoch"):
        next(old)


@pytest.mark.parametrize("axis", [1, 0])
def test_steady_state_epoch_allocates_no_batch_arrays(axis):
    m = 20_000
    X = data((50, m) if axis == 1 else (m, 50), np.float32)
    Y = data((m,), np.float32)
    loader = fastopt.MiniBatches(X, Y, batch_size=64, seed=0, axis=axis)
    for _ in loader:  # first epoch: buffers allocated
        pass
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        n = sum(1 for _ in loader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The permutation (8 bytes per example) is drawn once an epoch; one batch of X alone would
    # be 12.8 KB and the whole epoch 4 MB.
    assert n == len(loader) == 313
    assert peak - base < 8 * m + 64 * 1024, f"peak grew by {peak - base} bytes"


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda f: f(np.zeros((2, 0)), np.zeros((1, 0))), ValueError, "^X has no examples"),
    (lambda f: f(np.zeros((2, 5)), np.zeros((1, 4))), ValueError,
     r"^Y has 4 examples \(shape \(1, 4\)\); expected 5"),
    (lambda f: f([[1.0, 2.0]], np.zeros((1, 2))), TypeError, "^X must be a numpy.ndarray, got list"),
    (lambda f: f(np.zeros((2, 5)), [0, 1, 0, 1, 1]), TypeError, "^Y must be a numpy.ndarray"),
    (lambda f: f(np.zeros((2, 5)), None), TypeError, "^Y must be a numpy.ndarray of labels"),
    (lambda f: f(np.zeros(5), np.zeros((1, 5))), ValueError, r"^X must be 2-D \(features, exam"),
    (lambda f: f(np.zeros((2, 5), object), np.zeros((1, 5))), TypeError, "object arrays"),
    (lambda f: f(np.zeros((2, 5)), np.zeros((1, 5)), 0), ValueError,
     "^mini_batch_size must be an integer >= 1, got 0"),
    (lambda f: f(np.zeros((2, 5)), np.zeros((1, 5)), 2.0), TypeError,
     "^mini_batch_size must be an integer >= 1, got float"),
    (lambda f: f(np.zeros((2, 5)), np.zeros((1, 5)), 2, -1), ValueError, "^seed must be"),
    (lambda f: f(np.zeros((2, 5)), np.zeros((1, 5)), 2, 2**32), ValueError, "^seed must be < 2"),
])
def test_lab_errors(lab, make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make(lab.random_mini_batches)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(axis=2), ValueError, "^axis must be 0 .one example per row. or 1"),
    (dict(axis="rows"), TypeError, "^axis must be 0 or 1"),
    (dict(batch_size=0), ValueError, "^batch_size must be an integer >= 1"),
    (dict(batch_size=True), TypeError, "^batch_size must be an integer"),
    (dict(seed="abc"), TypeError, "^seed must be an integer"),
    (dict(seed=-3), ValueError, "^seed must be an integer >= 0"),
    (dict(drop_last=None), TypeError, "^drop_last must be True or False"),
    (dict(copy="yes"), TypeError, "^copy must be True or False"),
    (dict(Y=np.zeros((7, 3)), axis=0), ValueError, r"^Y has 7 examples .*expected 6"),
    (dict(Y=np.zeros((2, 2, 6))), ValueError, "^Y must be 1-D or 2-D"),
])
def test_iterator_errors(mod, kwargs, exc, pattern):
    args = dict(X=np.zeros((6, 6)), Y=None)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        mod.MiniBatches(**args)
    with pytest.raises(exc, match=pattern):
        mod.minibatches(**args)


def test_num_threads_api():
    before = fastopt.get_num_threads()
    with fastopt.num_threads(1):
        assert fastopt.get_num_threads() == 1
    assert fastopt.get_num_threads() == before
    with pytest.raises(ValueError, match="^n must be an integer >= 1, got 0"):
        fastopt.set_num_threads(0)


@pytest.mark.parametrize("world", [1, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_a_huge_batch_size_allocates_at_most_the_data(mod, axis, world):
    # batch_size=10**9 over 3 MB: one batch of every example, in buffers of at most m examples
    # (the row buffers were once sized by batch_size: 2.85 TiB asked for 3 MB of data).
    m, n = 100_000, 8
    X = data((m, n) if axis == 0 else (n, m), np.float32)
    Y = np.arange(m)
    loader = mod.MiniBatches(X, Y, batch_size=10**9, seed=0, axis=axis, rank=world - 1,
                             world=world)
    tracemalloc.start()
    try:
        (xb, yb), = list(loader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert yb.shape == (len(np.array_split(np.arange(m), world)[-1]),)
    assert np.array_equal(np.take(X, yb, axis=axis), xb)
    assert peak < 3 * X.nbytes  # the buffers, the permutation and its parts: about 2 X
