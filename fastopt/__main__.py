"""``python -m fastopt``: the assignment's experiment with fastopt and the reference side by side.

    python -m fastopt                       # the seven runs, 5000 epochs each, both backends
    python -m fastopt --epochs 1000 --only adam momentum
    python -m fastopt --backend fastopt --plot figures/
    python -m fastopt bench                 # one optimizer step, fastopt vs the reference
"""
import argparse
import sys
import time

import numpy as np

import fastopt
import fastopt.reference
from fastopt import _demo
from fastopt.testing import ulp_distance


def _best_time(fn, repeat=7, number=20):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def bench(args, out=sys.stdout):
    """Time one step of each update, fastopt vs reference, and check the bits agree."""
    n, dtype = args.size, np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"One step on {n:,} {dtype.name} values, {fastopt.get_num_threads()} thread(s), "
          f"best of 7:", file=out)
    print(f"  {'update':<10} {'fastopt':>10} {'reference':>11} {'speed-up':>9}  bit-identical",
          file=out)
    for rule, n_state, extra in (("sgd", 0, ()), ("momentum", 1, ()), ("rmsprop", 1, ()),
                                 ("adam", 2, (1,))):
        p0 = rng.standard_normal(n).astype(dtype)
        g = rng.standard_normal(n).astype(dtype)
        arrays, times = {}, {}
        for name, impl in (("fastopt", fastopt), ("reference", fastopt.reference)):
            p, state = p0.copy(), [np.zeros(n, dtype) for _ in range(n_state)]
            update = getattr(impl, f"{rule}_update")
            update(p, g, *state, *extra, 1e-3)
            arrays[name] = [p.copy()] + [s.copy() for s in state]
            times[name] = _best_time(lambda: update(p, g, *state, *extra, 1e-3))
        same = all(not ulp_distance(a, b).any()
                   for a, b in zip(arrays["fastopt"], arrays["reference"]))
        print(f"  {rule:<10} {times['fastopt'] * 1e6:>8.0f}us {times['reference'] * 1e6:>9.0f}us "
              f"{times['reference'] / times['fastopt']:>8.1f}x  {'yes' if same else 'NO'}",
              file=out)
    return 0


def demo(args, out=sys.stdout):
    names = args.only or _demo.DEFAULT_RUNS
    backends = ["fastopt", "reference"] if args.backend == "both" else [args.backend]
    plt = _demo.require_matplotlib() if args.plot else None  # fail before training, not after
    results = _demo.run_all(names, backends, args.epochs, out=out,
                            progress=None if args.quiet else _demo.Progress())
    if plt is not None:
        for path in _demo.plot(results, names, backends[0], args.plot, plt):
            print(f"wrote {path}", file=out)
    if len(backends) == 2 and not all(
            _demo.same_bits(results[n, "fastopt"]["parameters"],
                            results[n, "reference"]["parameters"]) for n in names):
        print("fastopt and the reference disagree: please report this.", file=sys.stderr)
        return 1
    return 0


def _epochs(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt",
        description="Train the Deep Learning Specialization's 'Optimization Methods' model "
                    "(two moons, layers [2, 5, 2, 1]) with fastopt and with the NumPy reference, "
                    "and show that they agree bit for bit and how long each took.",
        epilog="Runs: " + ", ".join(_demo.RUNS) + ". The first seven are the default; "
               "'rmsprop' is our addition. Subcommand 'bench' times single optimizer steps.")
    parser.add_argument("--epochs", type=_epochs, default=5000, metavar="N",
                        help="epochs per run (default: 5000, the assignment's)")
    parser.add_argument("--only", nargs="+", choices=list(_demo.RUNS), metavar="RUN",
                        help="train only these runs (choose from: %(choices)s)")
    parser.add_argument("--backend", choices=["fastopt", "reference", "both"], default="both",
                        help="which implementation to train with (default: both, and compare)")
    parser.add_argument("--plot", metavar="DIR",
                        help="write costs.png (raw and fastopt.ewa-smoothed cost curves) and "
                             "boundaries.png (decision boundaries) to DIR; needs matplotlib: "
                             "pip install 'fastopt[plot]'")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub = parser.add_subparsers(dest="command", metavar="{bench}")
    b = sub.add_parser("bench", help="time one step of each update, fastopt vs the reference",
                       description="Time one step of each update, fastopt vs the reference, "
                                   "and check that they write the same bits.")
    b.add_argument("--size", type=int, default=1_000_000, help="elements per array")
    b.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return bench(args)
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
