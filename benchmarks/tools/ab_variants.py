"""The SIMD variants of the kernels against each other, call for call in one process, and
against an earlier commit's build.

    python benchmarks/tools/ab_variants.py                          # every variant this build has
    python benchmarks/tools/ab_variants.py --variants avx2,avx512 --sizes 1e5,1e6 --rounds 300
    python benchmarks/tools/build_before.py d7c297b /tmp/fastopt-before
    python benchmarks/tools/ab_variants.py --variants avx2 --before /tmp/fastopt-before

``--before DIR`` adds, for each variant, the same variant of the package that
``benchmarks/tools/build_before.py`` built in DIR (``fastopt_before``), called the same way.

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
from fastopt import _dispatch
from fastopt._apps import bench as _bench

RULES = {
    "sgd": lambda m, p, g, a, b: m.sgd_update(p, g, 1e-3),
    "momentum": lambda m, p, g, a, b: m.momentum_update(p, g, a, 1e-3, 0.9),
    "rmsprop": lambda m, p, g, a, b: m.rmsprop_update(p, g, a, 1e-3, 0.9),
    "adagrad": lambda m, p, g, a, b: m.adagrad_update(p, g, a, 1, 1e-2),
    "adam t=10": lambda m, p, g, a, b: m.adam_update(p, g, a, b, 10, 1e-3),
    "adam t=1000": lambda m, p, g, a, b: m.adam_update(p, g, a, b, 1000, 1e-3),
}


def medians(rule, n, dtype, entries, rounds):
    """``entries``: label -> (package, variant). Median seconds a call, by label."""
    p, g = _bench.data(n, dtype)
    a, b = np.zeros_like(p), np.zeros_like(p)
    call = RULES[rule]
    calls = rounds * max(1, int(1e6 // n))
    times = {label: np.empty(calls) for label in entries}
    with fastopt.num_threads(1):
        for package, _ in entries.values():
            package.set_num_threads(1)
        for i in range(calls + 5):  # 5 warm-up calls: fresh pages fault in on first touch
            for label, (package, variant) in entries.items():
                with package._dispatch.using(variant):
                    t0 = time.perf_counter()
                    call(package, p, g, a, b)
                    elapsed = time.perf_counter() - t0
                if i >= 5:
                    times[label][i - 5] = elapsed
    return {label: float(np.median(t)) for label, t in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(_dispatch.available()))
    ap.add_argument("--sizes", default="1e5,1e6")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--before", metavar="DIR", help="a folder built by build_before.py")
    args = ap.parse_args(argv)
    names = args.variants.split(",")
    missing = [v for v in names if v not in _dispatch.available()]
    if missing:
        raise SystemExit(f"not available here: {missing} (available: {_dispatch.available()})")
    entries = {v: (fastopt, v) for v in names}
    if args.before:
        before = _bench.load_before(args.before)
        entries.update({f"before:{v}": (before, v) for v in names})
    variants = list(entries)
    head = "  ".join(f"{v:>10}" for v in variants)
    print(f"{'rule':12} {'dtype':8} {'items':>6}  {head}  " +
          "  ".join(f"{v}/{variants[0]}" for v in variants[1:]))
    for dtype in args.dtypes.split(","):
        for size in args.sizes.split(","):
            for rule in args.rules.split(","):
                r = medians(rule, int(float(size)), np.dtype(dtype).type, entries, args.rounds)
                cells = "  ".join(f"{r[v] * 1e6:8.1f}us" for v in variants)
                ratios = "  ".join(f"{r[v] / r[variants[0]]:.2f}x".rjust(len(v) + len(variants[0]) + 1)
                                   for v in variants[1:])
                print(f"{rule:12} {dtype:8} {size:>6}  {cells}  {ratios}", flush=True)


if __name__ == "__main__":
    main()
