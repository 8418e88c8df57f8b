"""The fast path allocates no arrays in steady state and releases the GIL inside its kernels."""
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastopt

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

N = 100_000  # 400 KB per float32 array: any temporary array would dwarf the threshold below


def steps(dtype, n):
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    s1, s2 = np.zeros(n, dtype), np.zeros(n, dtype)
    return {
        "sgd": lambda t: fastopt.sgd_update(p, g, 0.01),
        "momentum": lambda t: fastopt.momentum_update(p, g, s1, 0.01, 0.9),
        "rmsprop": lambda t: fastopt.rmsprop_update(p, g, s1, 0.01, 0.9),
        "adam": lambda t: fastopt.adam_update(p, g, s1, s2, t, 0.01),
    }


@pytest.mark.parametrize("rule", ["sgd", "momentum", "rmsprop", "adam"])
def test_steady_state_step_allocates_no_array(rule, dtype):
    step = steps(dtype, N)[rule]
    step(1)  # warm up: first-call caches (memoryview types, dispatch tables)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for t in range(2, 52):
            step(t)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # NumPy reports its data allocations to tracemalloc; one temporary array would be 400 KB.
    # A few KB of transient Python objects (views, floats, memoryview structs) are expected.
    assert peak - base < 16_384, f"peak grew by {peak - base} bytes during 50 steps"
    assert current - base < 4_096, f"{current - base} bytes still held after 50 steps"


LONG_CALLS = {
    # ~30 ms each on this machine
    "adam": lambda n: (lambda p, g, m, v: lambda: fastopt.adam_update(p, g, m, v, 1, 0.01))(
        np.zeros(n, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32),
        np.zeros(n, np.float32)),
    "ewa": lambda n: (lambda x, out: lambda: fastopt.ewa(x, 0.9, True, out))(
        np.ones(n // 2, np.float32), np.empty(n // 2, np.float32)),
}


@pytest.mark.parametrize("kernel", sorted(LONG_CALLS))
def test_kernels_release_the_gil(kernel):
    """While a long kernel runs, another Python thread makes progress.

    With a 10 s switch interval a thread can only take the GIL when its holder releases it. If
    the kernel held the GIL, the counter thread could not run at all during the call.
    """
    call = LONG_CALLS[kernel](20_000_000)
    count = [0]
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1
            time.sleep(0)  # hand the GIL back at once, so the main thread never waits 10 s

    old = sys.getswitchinterval()
    thread = threading.Thread(target=counter)
    try:
        thread.start()
        sys.setswitchinterval(10.0)
        time.sleep(0.02)  # let a GIL request made under the old interval lapse
        before = count[0]
        call()
        during = count[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        thread.join()
    # Measured: 0 increments around 0.6 s of pure-Python work (GIL held), 300-3000 around the
    # ~30 ms kernel call (GIL released).
    assert during >= 10, f"another thread ran only {during} times: the kernel held the GIL"
