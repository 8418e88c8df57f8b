"""The SIMD variants of the kernels against each other, call for call in one process.

    python benchmarks/ab_variants.py                          # every variant this build has
    python benchmarks/ab_variants.py --variants avx2,avx512 --sizes 1e5,1e6 --rounds 300

Each round calls every variant once, one after the other, on the same arrays (one thread), so
that the drift of a shared machine hits them alike; the medians are printed with the ratio of
each variant's time to the first one's (below 1: faster). Rules: SGD, Momentum, RMSProp,
Adagrad, and Adam at t = 10 (both bias divisions, the FMA sequence of docs/contract.md §10) and
t = 1000 (float32: one division left). An avx512 variant exists only in a build made with
``FASTOPT_AVX512=1 pip install -e .`` (setup.py) on a CPU that has AVX-512.
"""
import argparse
import time

import numpy as np

import fastopt
from fastopt import _bench, _dispatch

RULES = {
    "sgd": lambda p, g, a, b: fastopt.sgd_update(p, g, 1e-3),
    "momentum": lambda p, g, a, b: fastopt.momentum_update(p, g, a, 1e-3, 0.9),
    "rmsprop": lambda p, g, a, b: fastopt.rmsprop_update(p, g, a, 1e-3, 0.9),
    "adagrad": lambda p, g, a, b: fastopt.adagrad_update(p, g, a, 1, 1e-2),
    "adam t=10": lambda p, g, a, b: fastopt.adam_update(p, g, a, b, 10, 1e-3),
    "adam t=1000": lambda p, g, a, b: fastopt.adam_update(p, g, a, b, 1000, 1e-3),
}


def medians(rule, n, dtype, variants, rounds):
    p, g = _bench.data(n, dtype)
    a, b = np.zeros_like(p), np.zeros_like(p)
    call = RULES[rule]
    calls = rounds * max(1, int(1e6 // n))
    times = {v: np.empty(calls) for v in variants}
    with fastopt.num_threads(1):
        for i in range(calls + 5):  # 5 warm-up calls: fresh pages fault in on first touch
            for v in variants:
                with _dispatch.using(v):
                    t0 = time.perf_counter()
                    call(p, g, a, b)
                    elapsed = time.perf_counter() - t0
                if i >= 5:
                    times[v][i - 5] = elapsed
    return {v: float(np.median(t)) for v, t in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(_dispatch.available()))
    ap.add_argument("--sizes", default="1e5,1e6")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    missing = [v for v in variants if v not in _dispatch.available()]
    if missing:
        raise SystemExit(f"not available here: {missing} (available: {_dispatch.available()})")
    head = "  ".join(f"{v:>10}" for v in variants)
    print(f"{'rule':12} {'dtype':8} {'items':>6}  {head}  " +
          "  ".join(f"{v}/{variants[0]}" for v in variants[1:]))
    for dtype in args.dtypes.split(","):
        for size in args.sizes.split(","):
            for rule in args.rules.split(","):
                r = medians(rule, int(float(size)), np.dtype(dtype).type, variants, args.rounds)
                cells = "  ".join(f"{r[v] * 1e6:8.1f}us" for v in variants)
                ratios = "  ".join(f"{r[v] / r[variants[0]]:.2f}x".rjust(len(v) + len(variants[0]) + 1)
                                   for v in variants[1:])
                print(f"{rule:12} {dtype:8} {size:>6}  {cells}  {ratios}", flush=True)


if __name__ == "__main__":
    main()
