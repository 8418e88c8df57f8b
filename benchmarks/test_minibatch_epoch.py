"""One epoch of mini-batches on (784, 60000) float32, batch 64: fastopt vs the assignment's
function, the NumPy reference and ``X.copy()``.

    pytest benchmarks/test_minibatch_epoch.py --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json

Ratios are other / fastopt: ``copy 0.45x`` means a copy takes 0.45 of fastopt's time, i.e. fastopt
takes 2.2 copies.

A/B against another build of the gathers, in the same run (e.g. before a kernel change): point
``FASTOPT_AB_KERNELS`` at that build's compiled ``_kernels`` module and the MiniBatches groups
gain an entry ``fastopt-ab``, the same Python over that build's ``columns_into``/``take_rows``::

    FASTOPT_AB_KERNELS=/tmp/old/fastopt/_kernels_avx2.cpython-311-x86_64-linux-gnu.so \
        pytest benchmarks/test_minibatch_epoch.py -k iterator --benchmark-json=ab.json
    python benchmarks/tools/ratios.py ab.json
"""
import importlib.util
import os

import numpy as np
import pytest

import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab
from fastopt._apps import course as _course

SHAPE = (784, 60000)
BATCH = 64
SLOW = dict(rounds=3, iterations=1)  # entries of ~0.4 s: three rounds give a stable ratio


def assignment_random_mini_batches(X, Y, mini_batch_size=64, seed=0):
    """The course's function with the assignment's seeding: NumPy's global generator reseeded,
    then the course's code (``fastopt._apps.course``, held to the assignment's own copy in
    tests/apps/test_train.py)."""
    np.random.seed(seed)
    return _course.random_mini_batches(X, Y, mini_batch_size, np.random)


def ab_ops():
    """The gathers of the build named by FASTOPT_AB_KERNELS, called as fastopt._ops calls its
    own (through one module-level function each), or None."""
    path = os.environ.get("FASTOPT_AB_KERNELS")
    if not path:
        return None
    name = os.path.basename(path).split(".")[0]  # the init symbol is PyInit_<name>
    spec = importlib.util.spec_from_file_location(f"fastopt_ab.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_num_threads(fastopt.get_num_threads())

    class Ops:
        @staticmethod
        def columns_into(src, perm, batch, blocks):
            module.columns_into(src, perm, batch, blocks)

        @staticmethod
        def take_rows(src, rows, out):
            module.take_rows(src, rows, out)
    return Ops


AB = ab_ops()
LOADERS = ["fastopt", "reference"] + (["fastopt-ab"] if AB else [])


def make_loader(impl, *args, **kwargs):
    if impl == "fastopt-ab":
        return type("MiniBatches", (fastopt.MiniBatches,), {"_ops": AB})(*args, **kwargs)
    return (fastopt if impl == "fastopt" else fastopt.reference).MiniBatches(*args, **kwargs)


@pytest.fixture(scope="module")
def columns():
    rng = np.random.default_rng(0)
    return rng.standard_normal(SHAPE).astype(np.float32), (rng.random((1, SHAPE[1])) > 0.5)


@pytest.fixture(scope="module")
def rows(columns):
    X, Y = columns
    return np.ascontiguousarray(X.T), np.ascontiguousarray(Y.ravel())


def consume(loader):
    for _ in loader:
        pass


@pytest.mark.parametrize("impl", ["fastopt", "assignment", "reference", "copy"])
def test_lab_function_columns(benchmark, columns, impl):
    X, Y = columns
    benchmark.group = "epoch columns (784, 60000) f32: random_mini_batches"
    fn = {"fastopt": lambda: fastopt.lab.random_mini_batches(X, Y, BATCH, 1),
          "assignment": lambda: assignment_random_mini_batches(X, Y, BATCH, 1),
          "reference": lambda: fastopt.reference.lab.random_mini_batches(X, Y, BATCH, 1),
          "copy": lambda: (X.copy(), Y.copy())}[impl]
    if impl in ("assignment", "reference"):
        benchmark.pedantic(fn, **SLOW)
    else:
        benchmark(fn)


@pytest.mark.parametrize("impl", LOADERS + ["copy"])
def test_iterator_columns(benchmark, columns, impl):
    X, Y = columns
    benchmark.group = "epoch columns (784, 60000) f32: MiniBatches"
    if impl == "copy":
        benchmark(lambda: (X.copy(), Y.copy()))
        return
    loader = make_loader(impl, X, Y.ravel(), BATCH, seed=0, axis=1)
    consume(loader)  # buffers allocated outside the timed epochs
    if impl == "reference":
        benchmark.pedantic(consume, args=(loader,), **SLOW)
    else:
        benchmark(consume, loader)


@pytest.mark.parametrize("impl", LOADERS + ["numpy-fancy", "copy"])
def test_iterator_rows(benchmark, rows, impl):
    X, Y = rows
    benchmark.group = "epoch rows (60000, 784) f32: MiniBatches"
    if impl == "copy":
        benchmark(lambda: (X.copy(), Y.copy()))
        return
    if impl == "numpy-fancy":  # the usual NumPy epoch: one fancy-indexed copy, then slices
        rng = np.random.default_rng(0)

        def epoch():
            perm = rng.permutation(X.shape[0])
            Xs, Ys = X[perm], Y[perm]
            for k0 in range(0, X.shape[0], BATCH):
                Xs[k0:k0 + BATCH], Ys[k0:k0 + BATCH]
        benchmark(epoch)
        return
    loader = make_loader(impl, X, Y, BATCH, seed=0, axis=0)
    consume(loader)
    benchmark(consume, loader)
