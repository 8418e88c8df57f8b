"""Issue 13: Adam float32 against torch.optim.Adam(fused=True) at early (t = 10) and later
(t = 1000) steps, a streaming pass for the GB/s ceiling, and the small-array call; with the
package of an earlier commit beside it when ``FASTOPT_BEFORE`` names a folder built by
``benchmarks/tools/build_before.py``.

    python benchmarks/tools/build_before.py e02b80d /tmp/fastopt-before
    FASTOPT_BEFORE=/tmp/fastopt-before pytest benchmarks/test_adam_vs_torch_fused.py \\
        --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json

Entries of one group run in one process and one run: ``fastopt`` (this tree, array level,
``adam_update``), ``divider`` (the same with the FMA divisions of docs/contract.md §10 switched
off), ``before`` (the earlier commit, same call), ``torch-fused``, and ``stream``
(``np.add(p, g, out=p)``: a plain in-place streaming pass, single-threaded; compare its GB/s,
``extra_info["gbps"]``, with fastopt's, counting 28 bytes an item for Adam: read p, g, m, v and
write p, m, v).
"""
import contextlib

import numpy as np
import pytest

import fastopt
from fastopt import _dispatch
from fastopt._apps import bench as _bench


BEFORE = _bench.load_before()
# Warm up every entry before timing it: the first calls on fresh arrays fault their pages in
# (np.zeros_like maps zero pages lazily), which without warm-up skewed whichever entry of a
# group ran first by up to 30% at 1e6 items.
pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=20, min_rounds=30)
IMPLS = ["fastopt", "divider", "before", "torch-fused", "stream"]
ADAM_BYTES = 28


def _gbps(benchmark, nbytes):
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["gbps"] = round(nbytes / benchmark.stats.stats.median / 1e9, 2)


def _arrays(n):
    p, g = _bench.data(n, np.float32)
    return p, g, np.zeros_like(p), np.zeros_like(p)


@contextlib.contextmanager
def _divider(on):
    """Adam's bias divisions on the divider instead of the FMA sequence, for the block."""
    kernels = _dispatch.kernels
    previous = kernels.set_fast_divisions(not on) if on else None
    try:
        yield
    finally:
        if on:
            kernels.set_fast_divisions(previous)


def _skip(impl):
    if impl == "before" and BEFORE is None:
        pytest.skip("FASTOPT_BEFORE is not set (see the module docstring)")
    if impl == "torch-fused" and not _bench.have_torch():
        pytest.skip("torch is not installed (pip install torch==2.13.0 to compare)")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [100_000, 1_000_000, 10_000_000], ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("t", [10, 1000])
@pytest.mark.parametrize("impl", IMPLS)
def test_adam(benchmark, impl, t, n, threads):
    _skip(impl)
    if impl == "stream" and threads != 1:
        pytest.skip("NumPy's in-place add is single-threaded: measured once")
    benchmark.group = f"Adam float32 t={t} n={n:.0e} threads={threads}"
    if impl == "torch-fused":
        benchmark(_bench.torch_step("Adam", n, np.float32, threads))
        return
    p, g, m, v = _arrays(n)
    if impl == "stream":
        benchmark(np.add, p, g, out=p)
        _gbps(benchmark, 12 * n)
        return
    module = BEFORE if impl == "before" else fastopt
    with module.num_threads(threads), _divider(impl == "divider"):
        benchmark(module.adam_update, p, g, m, v, t, 1e-3)
    _gbps(benchmark, ADAM_BYTES * n)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("impl", ["fastopt", "before", "torch-fused"])
def test_adam_update_small(benchmark, impl, threads):
    """The array-level call on 1000 float32 items (the issue: at most 3 us, 10x torch)."""
    _skip(impl)
    benchmark.group = f"adam_update float32 n=1e+03 t=10 threads={threads}"
    if impl == "torch-fused":
        benchmark(_bench.torch_step("Adam", 1000, np.float32, threads))
        return
    module = fastopt if impl == "fastopt" else BEFORE
    p, g, m, v = _arrays(1000)
    with module.num_threads(threads):
        benchmark(module.adam_update, p, g, m, v, 10, 1e-3)


@pytest.mark.parametrize("rule", ["sgd", "momentum", "rmsprop"])
@pytest.mark.parametrize("impl", ["fastopt", "before"])
def test_other_updates_small(benchmark, impl, rule):
    """The other array-level calls on 1000 float32 items (their arrays take the compiled check)."""
    _skip(impl)
    benchmark.group = f"{rule}_update float32 n=1e+03"
    module = fastopt if impl == "fastopt" else BEFORE
    p, g, s, _ = _arrays(1000)
    call = {"sgd": lambda: module.sgd_update(p, g, 1e-3),
            "momentum": lambda: module.momentum_update(p, g, s, 1e-3, 0.9),
            "rmsprop": lambda: module.rmsprop_update(p, g, s, 1e-3, 0.9)}[rule]
    benchmark(call)
