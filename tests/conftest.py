import contextlib

import numpy as np
import pytest

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
# split over 2 threads (forced, whatever the size). Parity must hold on all of them.
FAST_CONFIGS = {f"fastopt-{v}-{t}t": (v, t, t > 1)
                for v in _dispatch.available() for t in (1, 2)}
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
