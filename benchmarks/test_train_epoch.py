"""One training epoch of ``python -m fastopt train``'s default model (784-256-256-10, float32,
Adam, batch 64, 60,000 synthetic examples, 1 thread): fastopt's loop against the course-style
loop, in one group so that the ratio comes from one run.

    pytest benchmarks/test_train_epoch.py --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json          # "course 3.1x": the course takes 3.1 times

Each round is one whole epoch (~1.5 s and ~4 s on an idle 2-core Zen 4), continuing the same
training; the loops are built, and their first epoch run, outside the timed rounds (buffers,
workspaces and page faults belong to start-up). With ``--benchmark-disable`` (the CI smoke run)
the data shrink to 2,000 examples so that the file takes a second.
"""
import numpy as np
import pytest

import fastopt
from fastopt._apps import datasets as _datasets, loops as _loops, mlp as _mlp
from fastopt._apps.blas import blas_threads

LAYERS = list(_loops.DEFAULT_LAYERS)
ROUNDS = dict(rounds=3, iterations=1, warmup_rounds=0)


@pytest.fixture(scope="module")
def data(request):
    quick = request.config.getoption("benchmark_disable", default=False)
    n_train, n_test = (2_000, 500) if quick else (60_000, 10_000)
    return _datasets.synthetic(0, n_train, n_test, LAYERS[0], LAYERS[-1])


@pytest.fixture
def one_thread():
    with fastopt.num_threads(1), blas_threads(1):
        yield


@pytest.mark.parametrize("impl", ["fastopt", "course"])
def test_epoch(benchmark, data, one_thread, impl):
    benchmark.group = "train epoch 784-256-256-10 f32 Adam batch 64, 1 thread"
    params0 = _mlp.init_params(LAYERS, 0)
    if impl == "fastopt":
        loop = _loops.FastoptLoop(params0, data, fastopt.Adam, 1e-3, 64, 0)
    else:
        hyper = fastopt.Adam([np.zeros(1, np.float32)], lr=1e-3).hyperparameters
        loop = _loops.CourseLoop(params0, data, fastopt.Adam, hyper, 64, 0)
    loop.epoch()  # first epoch: allocation and page faults, not timed
    result = benchmark.pedantic(loop.epoch, **ROUNDS)
    phases = result["phases"]
    benchmark.extra_info.update({k: round(v, 4) for k, v in phases.items()})
    benchmark.extra_info["step_share"] = round(phases["optimizer step"] / result["seconds"], 4)
