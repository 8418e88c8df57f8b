"""What the binding of fastopt._backend costs a call: ``fastopt.adam_update`` (the function
``bind`` generated, which calls ``fastopt._backend.adam_update`` with ``fastopt._ops``) against
the once-written function called with ``ops`` directly and against the function as it was
before the binding (fastopt/_updates.py, copied below), call for call in one process.

    python benchmarks/tools/ab_binding.py                  # 1000 float32 items, t = 1000
    python benchmarks/tools/ab_binding.py --n 100 --rounds 1000

Each round times a batch of calls of each, one after the other, so that the drift of a shared
machine hits them alike (short rounds: on a loaded machine a round of 2000 calls was often
preempted and took 15x as long); the minimum and the median over rounds are printed
(microseconds a call) with the difference to the function before the binding. One run on a
2-core machine at a load average of 8: 0.825 us before, 0.878 bound (+0.053; median +0.064),
0.837 called with ops directly (+0.012: reading ``ops.dispatch``). Every call takes the compiled
fast path (``adam_checked``), which is where the binding's share is largest.
"""
import argparse
import time

import numpy as np

import fastopt
from fastopt import _backend, _dispatch, _ops
from fastopt import _validation as _v
from fastopt._scalars import bias_divisor


def before(param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
           decoupled=False, v_max=None, maximize=False):
    """fastopt/_updates.py's adam_update before the binding (commit 37f6fce)."""
    if _dispatch.kernels.adam_checked(param, grad, m, v, v_max, t, lr, beta1, beta2, eps,
                                      weight_decay, decoupled, maximize):
        return
    t, lr, beta1, beta2, eps, weight_decay, decoupled, maximize = _v.adam_args(
        param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, v_max, maximize)
    _ops.adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias_divisor(beta1, t),
              bias_divisor(beta2, t), weight_decay, decoupled, maximize, 1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--calls", type=int, default=200, help="calls per round and function")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(args.n).astype(np.float32)
    g = rng.standard_normal(args.n).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    bound, unbound = fastopt.adam_update, _backend.adam_update
    entries = {
        "before the binding (_updates.py)": lambda: before(p, g, m, v, t=1000, lr=1e-3),
        "fastopt.adam_update (bound)": lambda: bound(p, g, m, v, t=1000, lr=1e-3),
        "_backend.adam_update(_ops, ...)": lambda: unbound(_ops, p, g, m, v, t=1000, lr=1e-3),
    }
    calls = range(args.calls)
    times = {label: [] for label in entries}
    with fastopt.num_threads(1):
        for r in range(args.rounds + 2):  # 2 warm-up rounds
            for label, call in entries.items():
                t0 = time.perf_counter()
                for _ in calls:
                    call()
                if r >= 2:
                    times[label].append((time.perf_counter() - t0) / args.calls * 1e6)
    first = next(iter(entries))
    base_min, base_med = min(times[first]), float(np.median(times[first]))
    print(f"adam_update, {args.n} float32 items, {args.rounds} rounds of {args.calls} calls "
          f"(us a call, lambda's call included)")
    for label, ts in times.items():
        lo, med = min(ts), float(np.median(ts))
        print(f"{label:34s} min {lo:.3f} ({lo - base_min:+.3f})  "
              f"median {med:.3f} ({med - base_med:+.3f})")


if __name__ == "__main__":
    main()
