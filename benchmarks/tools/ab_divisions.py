"""Adam's bias divisions on the divider against the FMA sequence (docs/contract.md §10), in one
process, call for call: each round times one step with the sequence and one with the divider
(``set_fast_divisions(False)``), on the same arrays, so that the drift of a shared machine hits
both alike. Prints the median time of each and the ratio (divider / FMA: above 1, the sequence
is faster).

    python benchmarks/tools/ab_divisions.py                      # float32 and float64, t = 10
    python benchmarks/tools/ab_divisions.py --sizes 1e5,1e6 --steps 10,1000 --rounds 300

A plain script rather than a pytest-benchmark group: pytest-benchmark times one entry after the
other, and on this 2-core shared machine two entries of the same code differed by up to 20%.
"""
import argparse
import time

import numpy as np

import fastopt
from fastopt import _dispatch
from fastopt._apps import bench as _bench


def median_times(n, dtype, t, rounds):
    kernels = _dispatch.kernels
    p, g = _bench.data(n, dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    calls = rounds * max(1, int(1e6 // n))
    fma, divider = np.empty(calls), np.empty(calls)
    previous = kernels.set_fast_divisions(True)
    try:
        with fastopt.num_threads(1):
            for i in range(calls):
                for on, out in ((True, fma), (False, divider)):
                    kernels.set_fast_divisions(on)
                    t0 = time.perf_counter()
                    fastopt.adam_update(p, g, m, v, t, 1e-3)
                    out[i] = time.perf_counter() - t0
    finally:
        kernels.set_fast_divisions(previous)
    return np.median(fma), np.median(divider)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e4,1e5,1e6")
    ap.add_argument("--steps", default="10")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args(argv)
    if not _dispatch.kernels.fast_divisions():
        print(f"the {_dispatch.current} variant divides (no FMA here): nothing to compare")
        return
    print(f"{'dtype':8} {'items':>6} {'t':>5} {'FMA':>10} {'divider':>10}  divider/FMA")
    for dtype in args.dtypes.split(","):
        for size in args.sizes.split(","):
            for t in args.steps.split(","):
                fma, divider = median_times(int(float(size)), np.dtype(dtype).type, int(t),
                                            args.rounds)
                print(f"{dtype:8} {size:>6} {t:>5} {fma * 1e6:8.1f}us {divider * 1e6:8.1f}us"
                      f"  {divider / fma:.2f}x", flush=True)


if __name__ == "__main__":
    main()
