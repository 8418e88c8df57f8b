"""``python -m fastopt``: what the library offers, and one step of each update timed against the
NumPy reference with a bit-identity check."""
import argparse
import sys
import time

import numpy as np

import fastopt
import fastopt.reference
from fastopt.testing import ulp_distance


def _best_time(fn, repeat=7, number=20):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def compare_steps(n=1_000_000, dtype=np.float32, out=sys.stdout):
    """Time one step of each update, fastopt vs reference, and check the bits agree."""
    rng = np.random.default_rng(0)
    print(f"One step on {n:,} {np.dtype(dtype).name} values (best of 7):", file=out)
    print(f"  {'update':<10} {'fastopt':>10} {'reference':>11} {'speed-up':>9}  bit-identical",
          file=out)
    for rule, n_state, extra in (("sgd", 0, ()), ("momentum", 1, ()), ("rmsprop", 1, ()),
                                 ("adam", 2, (1,))):
        p0 = rng.standard_normal(n).astype(dtype)
        g = rng.standard_normal(n).astype(dtype)
        arrays = {}
        times = {}
        for name, impl in (("fastopt", fastopt), ("reference", fastopt.reference)):
            p, state = p0.copy(), [np.zeros(n, dtype) for _ in range(n_state)]
            update = getattr(impl, f"{rule}_update")
            update(p, g, *state, *extra, 1e-3)
            arrays[name] = [p, *state]
            times[name] = _best_time(lambda: update(p, g, *state, *extra, 1e-3))
        same = all(not ulp_distance(a, b).any()
                   for a, b in zip(arrays["fastopt"], arrays["reference"]))
        print(f"  {rule:<10} {times['fastopt'] * 1e6:>8.0f}us {times['reference'] * 1e6:>9.0f}us "
              f"{times['reference'] / times['fastopt']:>8.1f}x  {'yes' if same else 'NO'}",
              file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastopt", description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="elements per array")
    args = parser.parse_args(argv)
    print(f"fastopt {fastopt.__version__}: fused, in-place, bit-identical optimizer kernels.")
    print("  array level : fastopt.sgd_update, momentum_update, rmsprop_update, adam_update")
    print("  reference   : fastopt.reference (the same API in plain NumPy)")
    print("  assignment  : fastopt.lab (update_parameters_with_gd/momentum/adam, ...)")
    print("  testing     : fastopt.testing.ulp_distance, assert_ulp_equal")
    print()
    compare_steps(args.size)


if __name__ == "__main__":
    main()
