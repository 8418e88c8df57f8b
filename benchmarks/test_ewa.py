"""fastopt.ewa vs the reference loop on 1e6 values (issue: at least 50x).

    pytest benchmarks/test_ewa.py --benchmark-json=bench.json && python benchmarks/tools/ratios.py bench.json
"""
import numpy as np
import pytest

import fastopt
import fastopt.reference

N = 1_000_000


@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("impl", ["fastopt", "reference"])
def test_ewa(benchmark, impl, bias_correction):
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    out = np.empty_like(x)
    fn = {"fastopt": fastopt.ewa, "reference": fastopt.reference.ewa}[impl]
    benchmark.group = f"ewa float32 n={N:.0e} bias_correction={bias_correction}"
    if impl == "reference":  # ~2 s a call: three rounds are enough for a ratio of ~1000
        benchmark.pedantic(fn, args=(x, 0.9, bias_correction, out), rounds=3, iterations=1)
    else:
        benchmark(fn, x, 0.9, bias_correction, out)
