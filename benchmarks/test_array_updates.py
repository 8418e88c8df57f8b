"""Array-level updates, fastopt vs the NumPy reference, float32, one group per rule and size.

    pytest benchmarks/test_array_updates.py --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json
"""
import numpy as np
import pytest

import fastopt
import fastopt.reference

IMPLS = {"fastopt": fastopt, "reference": fastopt.reference}
SIZES = [1_000, 100_000, 1_000_000]


def make_step(impl, rule, n, dtype=np.float32):
    """Arrays set up outside the timed body; returns a zero-argument step."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 1e-3).astype(dtype)
    s1, s2 = np.zeros(n, dtype), np.zeros(n, dtype)
    if rule == "sgd":
        return lambda: impl.sgd_update(p, g, 1e-3)
    if rule == "momentum":
        return lambda: impl.momentum_update(p, g, s1, 1e-3, 0.9)
    if rule == "rmsprop":
        return lambda: impl.rmsprop_update(p, g, s1, 1e-3, 0.9)
    # t only changes two scalars, not the work: a fixed step keeps the body free of counters.
    return lambda: impl.adam_update(p, g, s1, s2, 10, 1e-3)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rule", ["sgd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_update(benchmark, impl, rule, n):
    benchmark.group = f"{rule} float32 n={n:.0e}"
    benchmark(make_step(IMPLS[impl], rule, n))
