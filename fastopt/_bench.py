"""Benchmark helpers shared by ``python -m fastopt bench`` and ``benchmarks/``.

torch is optional: every torch entry is skipped when it is not installed.
"""
import importlib.util
import time

import numpy as np

import fastopt
import fastopt.reference
from fastopt import _dispatch

OPTIMIZERS = {"SGD": dict(lr=1e-3), "Momentum": dict(lr=1e-3, beta=0.9),
              "RMSProp": dict(lr=1e-3, beta=0.9, eps=1e-8),
              "Adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)}
# torch.optim equivalents. SGD with momentum and dampening 0.9 is the course's momentum form.
# torch 2.13's RMSprop has no fused implementation; foreach=True is its fastest.
TORCH = {"SGD": ("SGD", dict(lr=1e-3), dict(fused=True)),
         "Momentum": ("SGD", dict(lr=1e-3, momentum=0.9, dampening=0.9), dict(fused=True)),
         "RMSProp": ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-8), dict(foreach=True)),
         "Adam": ("Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8), dict(fused=True))}
# Bytes moved per element and step for float32 (read p, g and the state, write p and the
# state); twice as many for float64.
BYTES_FLOAT32 = {"SGD": 12, "Momentum": 20, "RMSProp": 20, "Adam": 28}
# The most memory one benchmark holds at once, per element: the reference's float64 Adam step,
# its four arrays (p, g, m, v) and up to four temporaries of the same size (8 x 8 bytes).
BYTES_PER_ITEM = 64
# Steady state: past step 160 the float32 first bias correction of Adam (beta1 = 0.9) rounds
# to exactly 1 and its division is skipped; every run longer than that spends nearly all of its
# steps there. The benchmarks set the step count past it instead of stepping 1000 times first.
STEADY_STATE_STEP = 1000


def have_torch():
    return importlib.util.find_spec("torch") is not None


def data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(dtype),
            (rng.standard_normal(n) * 1e-3).astype(dtype))


def fastopt_step(name, n, dtype, module=fastopt):
    """A zero-argument step of ``module``'s optimizer ``name`` over one array, in steady state."""
    p, g = data(n, dtype)
    opt = getattr(module, name)([p], **OPTIMIZERS[name])
    grads = [g]
    opt.step(grads)
    opt.t = STEADY_STATE_STEP
    return lambda: opt.step(grads)


def torch_step(name, n, dtype, threads):
    """A zero-argument torch.optim step over one tensor (sets torch's thread count)."""
    import torch
    torch.set_num_threads(threads)
    p0, g0 = data(n, dtype)
    p = torch.from_numpy(p0)
    p.grad = torch.from_numpy(g0)
    cls, hyper, mode = TORCH[name]
    opt = getattr(torch.optim, cls)([p], **mode, **hyper)
    opt.step()
    return opt.step


def assignment_adam_step(n, dtype):
    """The assignment's Adam arithmetic on one array: a new array for every intermediate."""
    p, g = data(n, dtype)
    state = {"p": p, "m": np.zeros_like(p), "v": np.zeros_like(p), "t": 0}

    def step(lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        state["t"] += 1
        t = state["t"]
        state["m"] = beta1 * state["m"] + (1 - beta1) * g
        m_corrected = state["m"] / (1 - beta1 ** t)
        state["v"] = beta2 * state["v"] + (1 - beta2) * np.power(g, 2)
        v_corrected = state["v"] / (1 - beta2 ** t)
        state["p"] = state["p"] - lr * m_corrected / (np.sqrt(v_corrected) + epsilon)
    return step


def best_time(fn, min_time=0.05, repeat=5):
    """Best time per call over ``repeat`` batches of calls, each batch lasting >= min_time."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            break
        number *= 2 if elapsed == 0 else max(2, int(min_time / elapsed * 1.2))
    best = elapsed / number
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def run(optimizers, sizes, threads_list, dtype, out, min_time=0.05):
    """Print the comparison table; return its rows as dicts."""
    dtype = np.dtype(dtype)
    torch_ok = have_torch()
    per_element = {k: v * dtype.itemsize // 4 for k, v in BYTES_FLOAT32.items()}
    print(f"One optimizer step over one {dtype.name} array (best of 5; Adam in steady state, "
          f"step > 160). fastopt SIMD path: {_dispatch.current}.", file=out)
    if not torch_ok:
        print("torch is not installed: pip install torch==2.13.0 to compare with "
              "torch.optim fused=True.", file=out)
    header = (f"{'optimizer':<9} {'n':>9} {'thr':>3} {'fastopt':>13} {'GB/s':>6} "
              f"{'reference':>13} {'vs ref':>7}" + (f" {'torch':>13} {'vs torch':>8}"
                                                    if torch_ok else ""))
    print(header, file=out)
    rows = []
    for name in optimizers:
        for n in sizes:
            ref = best_time(fastopt_step(name, n, dtype, fastopt.reference), min_time, 3)
            for threads in threads_list:
                with fastopt.num_threads(threads):
                    fast = best_time(fastopt_step(name, n, dtype), min_time)
                row = dict(optimizer=name, n=n, threads=threads, fastopt=fast, reference=ref,
                           gbps=per_element[name] * n / fast / 1e9)
                line = (f"{name:<9} {n:>9.0e} {threads:>3} {_us(fast):>13} {row['gbps']:>6.1f} "
                        f"{_us(ref):>13} {ref / fast:>6.1f}x")
                if torch_ok:
                    row["torch"] = best_time(torch_step(name, n, dtype, threads), min_time)
                    line += f" {_us(row['torch']):>13} {row['torch'] / fast:>7.2f}x"
                rows.append(row)
                print(line, file=out, flush=True)
    return rows


def _us(seconds):
    # One unit for every time of the table, so that a column reads down without a switch from
    # "8488.6 us" to "41.63 ms".
    return f"{seconds * 1e6:.1f} us"
