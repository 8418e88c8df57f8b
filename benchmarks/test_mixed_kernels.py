"""Adam on 16-bit parameters (docs/contract.md §14): the fused kernel against float32 Adam, the
old three-pass step and torch's fused Adam on bfloat16 parameters; one group per size and
thread count. The steps and the bytes each moves are described in tools/mixed_precision.py, which
prints the same comparison as a table with GB/s.

    pytest benchmarks/test_mixed_kernels.py --benchmark-json=mixed.json
    python benchmarks/tools/ratios.py mixed.json --baseline "bf16 fused"
    FASTOPT_BENCH_LARGE=1 pytest benchmarks/test_mixed_kernels.py     # adds 1e7 items
"""
import os

import pytest

import fastopt
from fastopt._apps import bench as _bench
from tools.mixed_precision import steps  # benchmarks/ is on sys.path (rootdir conftest)

SIZES = [100_000, 1_000_000]
if os.environ.get("FASTOPT_BENCH_LARGE"):
    SIZES.append(10_000_000)
IMPLS = ["float32", "bf16 fused", "f16 fused", "bf16 3-pass", "torch bf16"]


@pytest.mark.parametrize("threads", [1, 2], ids=lambda k: f"{k}thr")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("impl", IMPLS)
def test_adam_16bit(benchmark, impl, n, threads):
    if impl == "torch bf16" and not _bench.have_torch():
        pytest.skip("torch is not installed")
    benchmark.group = f"Adam 16-bit parameters n={n:.0e} {threads}thr"
    with fastopt.num_threads(threads):
        fn = steps(n, torch_threads=threads if impl == "torch bf16" else None)[impl]
        benchmark(fn)
