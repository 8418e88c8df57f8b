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


# -- bfloat16 parameters: fastopt.torch keeps a float32 master, torch's fused Adam does not ---------

HALF_SIZES = [1_000_000] + ([10_000_000] if os.environ.get("FASTOPT_BENCH_LARGE") else [])


def bf16_adam_step(impl, n, seed=0):
    """A zero-argument ``opt.step`` of Adam over one bfloat16 parameter of ``n`` items with a
    bfloat16 gradient: ``fastopt.torch.Adam`` (float32 master and state inside: 28 bytes an
    item, the gradient read, master/exp_avg/exp_avg_sq read and written, the parameter written)
    or ``torch.optim.Adam(fused=True)`` (no master, bfloat16 state: 14 bytes an item), past step
    1000 as the float32 rows."""
    params, grads = _bench.torch_params([(n,)], np.float32, seed)
    p = torch.nn.Parameter(params[0].detach().to(torch.bfloat16))
    g = torch.from_numpy(grads[0]).to(torch.bfloat16)
    if impl == "fastopt.torch":
        opt = _bench.fastopt_torch_class("Adam")([p], lr=1e-3)
    else:
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
    p.grad = g.clone()
    opt.step()
    _bench.set_step_count(opt, _bench.STEADY_STATE_STEP)
    if p.grad is None:
        p.grad = g.clone()
    return opt.step


@pytest.mark.parametrize("threads_of_both", [1], indirect=True, ids=lambda k: f"{k}thr")
@pytest.mark.parametrize("n", HALF_SIZES, ids=lambda n: f"1x{n:.0e}")
@pytest.mark.parametrize("impl", ["fastopt.torch", "torch fused"])
def test_step_bfloat16_adam(benchmark, impl, n, threads_of_both):
    if impl == "fastopt.torch" and not _bench.have_fastopt_torch():
        pytest.skip("fastopt.torch is not in this build")
    benchmark.group = f"torch.optim.Adam bfloat16 1x{n:.0e} threads={threads_of_both}"
    benchmark(bf16_adam_step(impl, n))
