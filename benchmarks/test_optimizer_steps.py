"""Optimizer steps: fastopt vs the NumPy reference vs torch.optim (fused=True, when torch is
installed; skipped otherwise), per optimizer, dtype, size and thread count.

    pytest benchmarks/test_optimizer_steps.py --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json

Each group is one case measured in one run. Optimizer steps are measured in steady state (the
step count set past 160: from there fastopt's float32 Adam skips the first bias division, which
has rounded to exactly 1); ``test_adam_first_steps`` measures the steps before that.
"""
import numpy as np
import pytest

import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab
from fastopt._apps import bench as _bench

SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(_bench.BENCH_OPTIMIZERS))
@pytest.mark.parametrize("impl", ["fastopt", "reference", "torch-fused", "numpy-assignment"])
def test_step(benchmark, impl, name, dtype, n, threads):
    if impl == "numpy-assignment" and name != "Adam":
        pytest.skip("the assignment-style comparison is for Adam")
    if impl in ("reference", "numpy-assignment") and threads != 1:
        pytest.skip("NumPy's element-wise arithmetic is single-threaded: measured once")
    if impl == "torch-fused" and not _bench.have_torch():
        pytest.skip("torch is not installed (pip install torch==2.13.0 to compare)")
    benchmark.group = f"{name} {dtype} n={n:.0e} threads={threads}"
    if impl == "torch-fused":
        benchmark(_bench.torch_step(name, n, np.dtype(dtype), threads))
    elif impl == "numpy-assignment":
        benchmark(_bench.assignment_adam_step(n, np.dtype(dtype)))
    else:
        module = fastopt if impl == "fastopt" else fastopt.reference
        with fastopt.num_threads(threads):
            benchmark(_bench.fastopt_step(name, n, np.dtype(dtype), module))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES[2:], ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("impl", ["fastopt", "torch-fused"])
def test_adam_first_steps(benchmark, impl, n, threads):
    """Adam before step 160, when both bias corrections still divide (array level, t = 10)."""
    if impl == "torch-fused" and not _bench.have_torch():
        pytest.skip("torch is not installed (pip install torch==2.13.0 to compare)")
    benchmark.group = f"Adam float32 first steps (t=10) n={n:.0e} threads={threads}"
    if impl == "torch-fused":
        benchmark(_bench.torch_step("Adam", n, np.float32, threads))
        return
    p, g = _bench.data(n, np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    with fastopt.num_threads(threads):
        benchmark(fastopt.adam_update, p, g, m, v, 10, 1e-3)


@pytest.mark.parametrize("impl", ["fastopt-packed", "fastopt-dict", "fastopt-lab",
                                  "reference-lab"])
def test_assignment_model_adam_step(benchmark, impl):
    """The assignment's model (W1..b3 for layers [2, 5, 2, 1]): one Adam step."""
    benchmark.group = "assignment model [2, 5, 2, 1]: one Adam step"
    params = fastopt.lab.initialize_parameters([2, 5, 2, 1])
    rng = np.random.default_rng(0)
    grads = {"d" + k: rng.standard_normal(v.shape) * 1e-2 for k, v in params.items()}
    if impl == "fastopt-packed":
        packed = fastopt.pack(params)
        packed_grads = fastopt.pack_like(packed)
        packed_grads.update({k: grads["d" + k] for k in params})
        opt = fastopt.Adam(packed, lr=0.0007)
        benchmark(opt.step, packed_grads)
    elif impl == "fastopt-dict":
        opt = fastopt.Adam(params, lr=0.0007)
        plain = {k: grads["d" + k] for k in params}
        benchmark(opt.step, plain)
    else:
        lab = fastopt.lab if impl == "fastopt-lab" else fastopt.reference.lab
        v, s = lab.initialize_adam(params)
        t = [0]

        def step():
            t[0] += 1
            lab.update_parameters_with_adam(params, grads, v, s, t[0], 0.0007)
        benchmark(step)
