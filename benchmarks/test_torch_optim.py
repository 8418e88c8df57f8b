"""``opt.step()`` of fastopt.torch against torch.optim, per optimizer, parameter list and thread
count: fastopt.torch, torch's fastest CPU path (``fused=True``; RMSprop ``foreach=True``, torch
2.13 having no fused RMSprop) and torch's default (``fused=None``: on CPU its loop over the
tensors) in one group.

    pytest benchmarks/test_torch_optim.py --benchmark-json=torch.json
    python benchmarks/ratios.py torch.json --baseline fastopt.torch
    FASTOPT_BENCH_LARGE=1 pytest benchmarks/test_torch_optim.py     # adds one tensor of 1e7

Parameter lists (``fastopt._apps.bench.TORCH_WORKLOADS``): one float32 tensor of 1e6 items; the
train command's 784-256-256-10 network (weights and biases, 6 tensors, 269,322 items); 100
tensors of a small transformer's shapes (1,003,200 items). Step count past 1000 (steady state,
as ``fastopt._apps.bench.STEADY_STATE_STEP`` explains); torch and fastopt at the same thread count.
``python -m fastopt bench --torch`` times the same cases in turn, round after round, and prints
the ratios and their geometric mean.
"""
import os

import numpy as np
import pytest

import fastopt
from fastopt._apps import bench as _bench

torch = pytest.importorskip("torch")

WORKLOADS = [1_000_000, "mlp", "mixed"]
if os.environ.get("FASTOPT_BENCH_LARGE"):
    WORKLOADS.append(10_000_000)  # memory-bound: 280 MB moved by an Adam step


@pytest.fixture
def threads_of_both(request):
    """Set torch's and fastopt's thread counts for the test; restore both after."""
    saved = torch.get_num_threads()
    k = request.param
    torch.set_num_threads(k)
    with fastopt.num_threads(k):
        yield k
    torch.set_num_threads(saved)


@pytest.mark.parametrize("threads_of_both", [1, 2], indirect=True, ids=lambda k: f"{k}thr")
@pytest.mark.parametrize("workload", WORKLOADS, ids=_bench.workload_label)
@pytest.mark.parametrize("name", list(_bench.TORCH_CASES))
@pytest.mark.parametrize("impl", _bench.TORCH_IMPLS)
def test_step(benchmark, impl, name, workload, threads_of_both):
    if impl == "fastopt.torch" and not _bench.have_fastopt_torch():
        pytest.skip("fastopt.torch is not in this build")
    benchmark.group = (f"torch.optim.{name} float32 {_bench.workload_label(workload)} "
                       f"threads={threads_of_both}")
    benchmark(_bench.torch_optim_step(impl, name, workload, np.float32))
