"""Optimizer objects over 16-bit parameters (master_dtype=np.float32) next to float32 ones:
one packed Adam step, with and without loss scaling and clipping.

    pytest benchmarks/test_mixed_objects.py --benchmark-json=mixed.json

The per-step cost of the object (validation, the loss-scale and found_inf checks, one kernel
call) shows at n=1e3; the kernel itself at n=1e6 (the compiled 16-bit entries of
fastopt._dispatch, whatever they are in this build).
"""
import numpy as np
import pytest

import fastopt

ml_dtypes = pytest.importorskip("ml_dtypes")

FORMATS = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@pytest.mark.parametrize("options", ["plain", "loss-scale", "loss-scale+clip"])
@pytest.mark.parametrize("n", [1_000, 1_000_000], ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_packed_adam_step(benchmark, fmt, n, options):
    benchmark.group = f"packed Adam step n={n:.0e} {options}"
    rng = np.random.default_rng(0)
    dtype = FORMATS[fmt]
    params = fastopt.pack({"w": rng.standard_normal(n).astype(np.float32)}, dtype=dtype)
    grads = fastopt.pack_like(params)
    grads["w"] = rng.standard_normal(n).astype(np.float32)
    master = None if fmt == "float32" else np.float32
    clip = 1e9 if options == "loss-scale+clip" else None
    opt = fastopt.Adam(params, lr=1e-6, master_dtype=master, max_grad_norm=clip)
    opt.t = 200
    kwargs = {} if options == "plain" else {"grad_scale": 1024.0, "found_inf": False}
    benchmark(opt.step, grads, **kwargs)
