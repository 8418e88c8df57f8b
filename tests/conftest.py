import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastopt
import fastopt.reference
from fastopt import _dispatch

DTYPES = [np.float32, np.float64]


@contextlib.contextmanager
def kernel_config(variant, threads, force_threads):
    """Run on SIMD ``variant`` with ``threads`` threads; ``force_threads`` sets every kernel's
    size threshold to 0 so that even a 1-element array is split over the threads."""
    saved = {name: dict(m.thread_thresholds()) for name, m in _dispatch.MODULES.items()}
    try:
        with _dispatch.using(variant), fastopt.num_threads(threads):
            if force_threads:
                for module in _dispatch.MODULES.values():
                    for key in module.thread_thresholds():
                        module.set_thread_threshold(key, 0)
            yield
    finally:
        for name, module in _dispatch.MODULES.items():
            for key, value in saved[name].items():
                module.set_thread_threshold(key, value)


# Every path the fast implementation can take on this machine: each SIMD variant, serial and
# split over 2 threads (forced, whatever the size). Parity must hold on all of them. A variant
# forced with FASTOPT_SIMD (as .ci/run's older-CPU step does) is the only one run.
_VARIANTS = ([_dispatch.current] if os.environ.get(_dispatch.ENV_VAR, "").strip()
             else _dispatch.available())
FAST_CONFIGS = {f"fastopt-{v}-{t}t": (v, t, t > 1) for v in _VARIANTS for t in (1, 2)}
IMPLEMENTATIONS = ["reference"] + sorted(FAST_CONFIGS)


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    """The reference, then fastopt on each SIMD variant and thread count."""
    if request.param == "reference":
        yield fastopt.reference
        return
    with kernel_config(*FAST_CONFIGS[request.param]):
        yield fastopt


@pytest.fixture(params=sorted(FAST_CONFIGS))
def fast_config(request):
    """fastopt on each SIMD variant and thread count (for tests that compare with reference)."""
    with kernel_config(*FAST_CONFIGS[request.param]):
        yield request.param


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param


# Hypothesis profiles. "ci" (default): deterministic, 700 cases for each of the 15 property tests
# in test_hypothesis.py (10,500 in all, ~1 minute); "thorough": random, ten times as many.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=700, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=7000, **_COMMON)
# "asan": the AddressSanitizer pass of .ci/run, where every case runs at -O0 under ASan (the ci
# profile's cases took 12.5 of its 30 minutes there); deterministic, a seventh of "ci".
settings.register_profile("asan", max_examples=100, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter):
    import sys
    hypothesis_module = sys.modules.get("test_hypothesis")
    if hypothesis_module is not None and hypothesis_module.COUNTER["cases"]:
        terminalreporter.write_line(
            f"hypothesis: {hypothesis_module.COUNTER['cases']} generated cases run "
            f"(profile {settings._current_profile})")
    stateful_module = sys.modules.get("test_stateful")
    if stateful_module is not None and stateful_module.STEPS:
        steps = stateful_module.STEPS
        each = ", ".join(f"{name} {n}" for name, n in sorted(steps.items()))
        terminalreporter.write_line(
            f"stateful: {sum(steps.values())} rule steps run ({each}; profile "
            f"{settings._current_profile})")
    memory_module = sys.modules.get("test_memory")
    if memory_module is not None and memory_module.GROWTH:
        for name, (traced, rss) in memory_module.GROWTH.items():
            terminalreporter.write_line(
                f"memory: {name}: {traced} B still traced, resident set {rss / 1024:+.0f} KiB")
