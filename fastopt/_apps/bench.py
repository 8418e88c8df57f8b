"""Benchmark helpers shared by ``python -m fastopt bench`` and ``benchmarks/``.

torch is optional: every torch entry is skipped when it is not installed.
"""
import importlib
import importlib.util
import json
import math
import os
import platform
import sys
import time

import numpy as np

import fastopt
import fastopt.reference
from fastopt import _dispatch

from . import registry as _registry

# The optimizers `python -m fastopt bench` times (the course's four), each with the class's
# default hyperparameters but the learning rate, BENCH_LR (which does not change the time).
# Their torch.optim counterparts come from the registry (fastest path: fused=True, RMSprop
# foreach=True); the course's Momentum is torch's SGD with momentum = dampening = 0.9.
BENCH_OPTIMIZERS = ("SGD", "Momentum", "RMSProp", "Adam")
BENCH_LR = 1e-3
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


def load_before(folder=None):
    """The package ``benchmarks/tools/build_before.py`` built (an earlier commit's fastopt,
    renamed ``fastopt_before``) in ``folder``, default the folder ``FASTOPT_BEFORE`` names; None
    when neither names one. Its submodules import as ``fastopt_before.<name>`` after this."""
    folder = folder or os.environ.get("FASTOPT_BEFORE")
    if not folder:
        return None
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("fastopt_before")
    finally:
        sys.path.remove(folder)


def have_torch():
    return importlib.util.find_spec("torch") is not None


def data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(dtype),
            (rng.standard_normal(n) * 1e-3).astype(dtype))


def fastopt_step(name, n, dtype, module=fastopt):
    """A zero-argument step of ``module``'s optimizer ``name`` over one array, in steady state."""
    p, g = data(n, dtype)
    opt = getattr(module, name)([p], lr=BENCH_LR)
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
    cls = getattr(fastopt, name)
    hyper = dict(_registry.default_hyperparameters(cls), lr=BENCH_LR)
    torch_name, kwargs, fastest = _registry.torch_counterpart(cls, hyper)
    opt = getattr(torch.optim, torch_name)([p], **fastest, **kwargs)
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


def _calibrate(fn, min_time):
    """How many calls of ``fn`` make a batch lasting at least ``min_time``, and that batch's
    time per call."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 20:
            return number, elapsed / number
        number *= 2 if elapsed == 0 else max(2, int(min_time / elapsed * 1.2))


def _batch(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def best_time(fn, min_time=0.05, repeat=5):
    """Best time per call over ``repeat`` batches of calls, each batch lasting >= min_time."""
    number, best = _calibrate(fn, min_time)
    for _ in range(repeat - 1):
        best = min(best, _batch(fn, number))
    return best


def interleaved_best(fns, min_time=0.05, repeat=5):
    """Best time per call of each of ``fns`` (a dict of zero-argument callables), their batches
    taken in turn in every round: on a shared machine a burst of load then hits every entry
    of a comparison alike instead of one of them.

    Returns
    -------
    dict
        The same keys, seconds per call.
    """
    numbers, best = {}, {}
    for key, fn in fns.items():
        numbers[key], best[key] = _calibrate(fn, min_time)
    for _ in range(repeat - 1):
        for key, fn in fns.items():
            best[key] = min(best[key], _batch(fn, numbers[key]))
    return best


def geometric_mean(values):
    """The geometric mean of positive ratios (NaN for none)."""
    values = [v for v in values if v > 0 and math.isfinite(v)]
    if not values:
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def machine():
    """What a JSON result records about where it was measured."""
    info = dict(fastopt=fastopt.__version__, numpy=np.__version__, simd=_dispatch.current,
                cpu=_cpu_model(), cores=os.cpu_count(), python=platform.python_version(),
                time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    if have_torch():
        import torch
        info["torch"] = torch.__version__
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path, result):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def run(optimizers, sizes, threads_list, dtype, out, min_time=0.05):
    """Print the comparison table; return ``{"rows": [dict per row], "geometric_mean": {...}}``."""
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
    means = {"reference / fastopt": geometric_mean([r["reference"] / r["fastopt"] for r in rows])}
    if torch_ok:
        means["torch / fastopt"] = geometric_mean([r["torch"] / r["fastopt"] for r in rows])
    print(f"geometric mean over {len(rows)} rows: "
          + ", ".join(f"{k} {v:.2f}x" for k, v in means.items()), file=out)
    return dict(rows=rows, geometric_mean=means)


def _us(seconds):
    # One unit for every time of the table, so that a column reads down without a switch from
    # "8488.6 us" to "41.63 ms".
    return f"{seconds * 1e6:.1f} us"


# -- fastopt.torch against torch.optim (python -m fastopt bench --torch) ----------------------

# The cases of `bench --torch`: torch.optim class name (the fastopt.torch class of the same
# name) -> its keyword arguments, in torch's names. The hyperparameters are torch's defaults
# but for SGD's momentum (heavy ball, the common use) and the learning rates, which do not
# change the time. torch's fastest path for each is the registry's (TORCH_FASTEST: fused=True;
# RMSprop foreach=True, torch 2.13 having no fused RMSprop, and what the table labels it).
TORCH_CASES = {
    "Adam": dict(lr=1e-3),
    "AdamW": dict(lr=1e-3, weight_decay=0.01),
    "SGD": dict(lr=1e-3, momentum=0.9),
    "RMSprop": dict(lr=1e-3),
    "Adagrad": dict(lr=1e-2),
}
# The three implementations of a comparison: fastopt.torch, torch's fastest CPU path and
# torch's default (fused=None, foreach=None: on CPU tensors, the loop over the tensors).
TORCH_IMPLS = ("fastopt.torch", "torch fastest", "torch default")


def _mlp_shapes(layers):
    """torch.nn.Linear's parameter shapes for ``layers``: weight (out, in), then bias (out,)."""
    shapes = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        shapes += [(n_out, n_in), (n_out,)]
    return shapes


def _transformer_shapes(vocab=1000, context=128, d=96, ff=384, layers=8):
    """The parameter shapes of a small GPT-style transformer: 100 tensors of 96 to 96,000
    items, 1,003,200 in all (8 blocks of 12 tensors, the two embeddings, the final norm)."""
    shapes = [(vocab, d), (context, d)]
    for _ in range(layers):
        shapes += [(d,), (d,),                   # layer norm before attention
                   (3 * d, d), (3 * d,),         # q, k, v projections
                   (d, d), (d,),                 # output projection
                   (d,), (d,),                   # layer norm before the MLP
                   (ff, d), (ff,), (d, ff), (d,)]
    return shapes + [(d,), (d,)]


# The parameter lists of the comparison, besides one tensor of each --sizes: (b) the train
# command's default network (784-256-256-10, 269,322 items in 6 tensors) and (c) 100 tensors
# of mixed sizes totalling about 1e6.
TORCH_WORKLOADS = {"mlp": _mlp_shapes((784, 256, 256, 10)), "mixed": _transformer_shapes()}


def workload_shapes(workload):
    """The tensor shapes of a workload: ``"mlp"``, ``"mixed"`` or an int (one tensor)."""
    if isinstance(workload, int):
        return [(workload,)]
    return TORCH_WORKLOADS[workload]


def workload_label(workload):
    if isinstance(workload, int):
        return f"1x{workload:.0e}"
    shapes = TORCH_WORKLOADS[workload]
    return f"{workload} {len(shapes)}x"


def fastopt_torch_class(name):
    """``fastopt.torch.<name>`` (imported here: only torch code paths import torch)."""
    import fastopt.torch
    return getattr(fastopt.torch, name)


def have_fastopt_torch():
    """Whether torch is installed and this fastopt has :mod:`fastopt.torch` (found without
    importing either)."""
    return have_torch() and importlib.util.find_spec("fastopt.torch") is not None


def make_torch_optimizer(impl, name, params):
    """The optimizer ``impl`` (one of :data:`TORCH_IMPLS`) of class ``name`` over ``params``,
    with the keyword arguments of :data:`TORCH_CASES`."""
    import torch
    kwargs, fastest = TORCH_CASES[name], _registry.TORCH_FASTEST[name]
    if impl == "fastopt.torch":
        return fastopt_torch_class(name)(params, **kwargs)
    if impl == "torch fastest":
        return getattr(torch.optim, name)(params, **kwargs, **fastest)
    if impl == "torch default":
        return getattr(torch.optim, name)(params, **kwargs)
    raise ValueError(f"impl must be one of {TORCH_IMPLS}, got {impl!r}")


def torch_params(shapes, dtype, seed=0):
    """Seeded parameters (``torch.nn.Parameter``) and gradients (NumPy) of ``shapes``."""
    import torch
    params, grads = [], []
    for i, shape in enumerate(shapes):
        p, g = data(int(np.prod(shape)), dtype, seed=[seed, i])
        params.append(torch.nn.Parameter(torch.from_numpy(p.reshape(shape))))
        grads.append(g.reshape(shape))
    return params, grads


def set_grads(params, grads):
    """Write ``grads`` (NumPy arrays) into ``p.grad``: in place where a gradient exists (a
    fastopt.torch optimizer keeps ``p.grad`` as views of its gradient buffer), else a new
    tensor."""
    import torch
    with torch.no_grad():
        for p, g in zip(params, grads):
            if p.grad is None:
                p.grad = torch.from_numpy(g.copy())
            else:
                p.grad.copy_(torch.from_numpy(g))


def set_step_count(opt, t):
    """Move every parameter's ``step`` to ``t`` through ``state_dict``/``load_state_dict``, the
    one way that both torch.optim and fastopt.torch document."""
    import torch
    sd = opt.state_dict()
    for state in sd["state"].values():
        if "step" in state:
            state["step"] = torch.tensor(float(t), dtype=torch.float32)
    opt.load_state_dict(sd)


def torch_optim_step(impl, name, workload, dtype, seed=0):
    """A zero-argument ``opt.step`` of ``impl``'s optimizer ``name`` over ``workload``, after
    one step and with the step count moved to :data:`STEADY_STATE_STEP`."""
    params, grads = torch_params(workload_shapes(workload), dtype, seed)
    opt = make_torch_optimizer(impl, name, params)
    set_grads(params, grads)
    opt.step()
    set_step_count(opt, STEADY_STATE_STEP)
    set_grads(params, grads)  # a load_state_dict may not touch p.grad; this makes sure
    return opt.step


def run_torch(names, workloads, threads_list, dtype, out, min_time=0.05, repeat=5):
    """Print the fastopt.torch vs torch.optim table; return ``{"rows", "geometric_mean"}``.

    ``names`` are keys of :data:`TORCH_CASES`, ``workloads`` ints (one tensor of that many
    items) or keys of :data:`TORCH_WORKLOADS`. Each row's three implementations are timed in
    turn, round after round (:func:`interleaved_best`). Ratios are torch's time over
    fastopt.torch's: above 1, fastopt.torch is faster.
    """
    import torch
    dtype = np.dtype(dtype)
    print(f"One opt.step() of fastopt.torch and torch.optim over the same {dtype.name} "
          f"parameters (best of {repeat}, the three timed in turn; step count {STEADY_STATE_STEP}"
          f"). fastopt SIMD path: {_dispatch.current}. torch fastest: fused=True, but "
          f"RMSprop foreach=True (torch {torch.__version__} has no fused RMSprop); torch "
          f"default: fused=None, foreach=None (on CPU, its loop over the tensors). Ratio = "
          f"torch / fastopt.torch.", file=out)
    header = (f"{'optimizer':<9} {'params':<11} {'thr':>3} {'fastopt.torch':>13} "
              f"{'torch fastest':>13} {'ratio':>6} {'torch default':>13} {'ratio':>6}")
    print(header, file=out)
    rows = []
    saved_threads = torch.get_num_threads()
    try:
        for name in names:
            for workload in workloads:
                for threads in threads_list:
                    torch.set_num_threads(threads)
                    with fastopt.num_threads(threads):
                        fns = {impl: torch_optim_step(impl, name, workload, dtype)
                               for impl in TORCH_IMPLS}
                        t = interleaved_best(fns, min_time, repeat)
                    del fns
                    n = sum(int(np.prod(s)) for s in workload_shapes(workload))
                    row = dict(optimizer=name, workload=workload_label(workload), items=n,
                               tensors=len(workload_shapes(workload)), threads=threads,
                               dtype=dtype.name, fastopt_torch=t["fastopt.torch"],
                               torch_fastest=t["torch fastest"],
                               torch_fastest_flags=_registry.TORCH_FASTEST[name],
                               torch_default=t["torch default"])
                    row["ratio_fastest"] = row["torch_fastest"] / row["fastopt_torch"]
                    row["ratio_default"] = row["torch_default"] / row["fastopt_torch"]
                    rows.append(row)
                    print(f"{name:<9} {row['workload']:<11} {threads:>3} "
                          f"{_us(row['fastopt_torch']):>13} {_us(row['torch_fastest']):>13} "
                          f"{row['ratio_fastest']:>5.2f}x {_us(row['torch_default']):>13} "
                          f"{row['ratio_default']:>5.2f}x", file=out, flush=True)
    finally:
        torch.set_num_threads(saved_threads)
    means = {"torch fastest / fastopt.torch": geometric_mean([r["ratio_fastest"] for r in rows]),
             "torch default / fastopt.torch": geometric_mean([r["ratio_default"] for r in rows])}
    print(f"geometric mean over {len(rows)} rows: "
          + ", ".join(f"{k} {v:.2f}x" for k, v in means.items()), file=out)
    return dict(rows=rows, geometric_mean=means)
