"""Two Python threads stepping two optimizers overlap, because the kernels release the GIL.

    pytest benchmarks/test_two_threads_overlap.py --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json --baseline two-threads

``sequential`` steps optimizer A 50 times, then B 50 times; ``two-threads`` steps A and B in two
Python threads at once (a pool started outside the timed body). fastopt's own threads are set
to 1, so any speed-up comes from the two Python threads running kernels at the same time: on 2
cores, perfect overlap is a ratio of 2.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastopt

# 2e5 items: each optimizer's 3.2 MB stay in its core's share of the cache. At 1e6 (16 MB each)
# the two fill the 32 MB L3 and compete for memory bandwidth (measured: 1.25x), which says
# nothing about the GIL.
N = 200_000
STEPS = 50


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def make(seed):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(N).astype(np.float32)
    g = (rng.standard_normal(N) * 1e-3).astype(np.float32)
    opt = fastopt.Adam([p], lr=1e-3)
    opt.t = 1000  # steady state, as in benchmarks/test_optimizer_steps.py
    return lambda: [opt.step([g]) for _ in range(STEPS)]


@pytest.mark.parametrize("impl", ["sequential", "two-threads"])
def test_two_optimizers(benchmark, pool, impl):
    benchmark.group = f"two Adam optimizers, {N:.0e} float32 each, {STEPS} steps, 1 fastopt thread"
    a, b = make(1), make(2)
    with fastopt.num_threads(1):
        if impl == "sequential":
            benchmark(lambda: (a(), b()))
        else:
            benchmark(lambda: [f.result() for f in (pool.submit(a), pool.submit(b))])
