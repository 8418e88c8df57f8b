"""``python -m fastopt``: the assignment's experiment with fastopt and the reference side by side.

    python -m fastopt                       # the seven runs, 5000 epochs each, both backends
    python -m fastopt --epochs 1000 --only adam momentum
    python -m fastopt --backend fastopt --plot figures/
    python -m fastopt bench                 # optimizer steps: fastopt, reference, torch fused
    python -m fastopt bench --torch         # fastopt.torch's opt.step() against torch.optim's
    python -m fastopt train --compare       # an MLP end to end: fastopt vs the course's loop
    python -m fastopt surfaces --plot fig/  # saddles, plateaus, local minima; GOE minima
    python -m fastopt vectors --all --out DIR  # known-answer vectors for other implementations
    python -m fastopt conform torch         # torch.optim against the textbook formulas, in ULP
"""
import argparse
import sys

import fastopt
from fastopt._apps import bench as _bench, cli as _cli, demo as _demo
from fastopt._apps import surfaces as _surfaces, train as _train
from fastopt.testing import _conform_cli, _vectors


def bench(args, out=None, err=None):
    """Time optimizer steps: fastopt vs the reference vs torch fused, at each thread count;
    with ``--torch``, fastopt.torch vs torch.optim. ``--json FILE`` also writes the rows."""
    from fastopt._apps import bench as _bench
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    min_time = 0.02 if args.quick else 0.05
    if args.json:
        try:  # fail now, not after minutes of timing
            open(args.json, "w").close()
        except OSError as exc:
            print(f"bench: --json {args.json}: cannot write it ({exc.strerror})", file=err)
            return 2
    if args.torch:
        if not _bench.have_torch():
            print("bench --torch needs torch, which is optional: pip install torch (the CPU "
                  "build is enough)", file=err)
            return 2
        if not _bench.have_fastopt_torch():
            print("bench --torch needs fastopt.torch, which this fastopt does not have",
                  file=err)
            return 2
        by_lower = {n.lower(): n for n in _bench.TORCH_CASES}
        names = [by_lower.get(n.lower()) for n in (args.optimizers or _bench.TORCH_CASES)]
        if None in names:
            bad = (args.optimizers or [])[names.index(None)]
            print(f"bench --torch: {bad} is fastopt's own form, without a torch.optim class; "
                  f"choose from {', '.join(_bench.TORCH_CASES)}", file=err)
            return 2
        sizes = args.sizes or [1_000_000, 10_000_000]
        chosen = args.workloads or ["one", "mlp", "mixed"]
        workloads = (sizes if "one" in chosen else []) + [w for w in chosen if w != "one"]
        result = _bench.run_torch(names, workloads, args.threads, args.dtype, out, min_time)
    else:
        if args.workloads:
            print("bench: --workloads applies to --torch only", file=err)
            return 2
        names = args.optimizers or list(_bench.BENCH_OPTIMIZERS)
        bad = [n for n in names if n not in _bench.BENCH_OPTIMIZERS]
        if bad:
            print(f"bench: {bad[0]} is timed by bench --torch only (fastopt.torch against "
                  f"torch.optim); choose from {', '.join(_bench.BENCH_OPTIMIZERS)}", file=err)
            return 2
        sizes = args.sizes or [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
        result = _bench.run(names, sizes, args.threads, args.dtype, out, min_time=min_time)
    if args.json:
        result = dict(command="bench --torch" if args.torch else "bench", dtype=args.dtype,
                      machine=_bench.machine(), **result)
        _bench.write_json(args.json, result)
        print(f"wrote {args.json}", file=out)
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
    if len(backends) == 2:
        # Six arrays of at most 10 values: NumPy's forward and backward passes dominate here.
        print("This network is tiny; where fastopt's speed shows: python -m fastopt train "
              "--compare", file=out)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt",
        description="Train the Deep Learning Specialization's 'Optimization Methods' model "
                    "(two moons, layers [2, 5, 2, 1]) with fastopt and with the NumPy reference, "
                    "and show that they agree bit for bit and how long each took.",
        epilog="Runs: " + ", ".join(_demo.RUNS) + ". The first seven are the default; "
               "'rmsprop' is our addition. Subcommand 'bench' times optimizer steps against the "
               "reference and torch (python -m fastopt bench --help).")
    parser.add_argument("--epochs", type=_cli.positive_int, default=5000, metavar="N",
                        help="epochs per run (default: 5000, the assignment's)")
    parser.add_argument("--only", nargs="+", type=_cli.one_of(_demo.RUNS),
                        choices=list(_demo.RUNS), metavar="RUN",
                        help="train only these runs (choose from: %(choices)s)")
    parser.add_argument("--backend", choices=["fastopt", "reference", "both"], default="both",
                        help="which implementation to train with (default: both, and compare)")
    parser.add_argument("--plot", metavar="DIR",
                        help="write costs.png (raw and fastopt.ewa-smoothed cost curves) and "
                             "boundaries.png (decision boundaries) to DIR; needs matplotlib: "
                             "pip install 'fastopt[plot]'")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub = parser.add_subparsers(dest="command", metavar="{bench,train,surfaces,vectors,conform}")
    b = sub.add_parser(
        "bench", help="time optimizer steps: fastopt vs the reference vs torch fused",
        description="Time one optimizer step over one array: fastopt, the NumPy reference and "
                    "torch.optim with fused=True (when torch is installed) at the same thread "
                    "count. Prints time per step, achieved GB/s (bytes moved per float32 "
                    "element: Adam 28, Momentum/RMSProp 20, SGD 12; twice that for float64), "
                    "the ratios and their geometric mean. With --torch: opt.step() of "
                    "fastopt.torch against torch.optim's fastest path (fused=True; RMSprop "
                    "foreach=True, torch having no fused RMSprop) and its default, on one "
                    "tensor of each size, the train command's 784-256-256-10 network (6 "
                    "tensors) and 100 tensors of a small transformer (1.0e6 items).",
        epilog="Examples: python -m fastopt bench --sizes 1e6 1e7 --json bench.json; "
               "python -m fastopt bench --torch --json torch.json")
    timed = _bench.BENCH_OPTIMIZERS
    names = list(timed) + [n for n in _bench.TORCH_CASES
                           if n.lower() not in map(str.lower, timed)]
    b.add_argument("--optimizers", nargs="+", type=_cli.one_of(names), choices=names,
                   metavar="NAME", help="which optimizers, in any letter case (default: all of "
                                        f"{', '.join(timed)}; with --torch all of "
                                        f"{', '.join(_bench.TORCH_CASES)})")
    b.add_argument("--sizes", nargs="+", metavar="N",
                   type=_cli.array_items(_bench.BYTES_PER_ITEM, "the arrays of one benchmark"),
                   help="elements per array (default: 1e3 1e4 1e5 1e6 1e7; with --torch, the "
                        "one-tensor cases: 1e6 1e7)")
    b.add_argument("--threads", nargs="+", type=_cli.threads, metavar="T",
                   default=sorted({1, fastopt.get_num_threads()}),
                   help="thread counts, for fastopt and torch alike (default: 1 and all cores)")
    b.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    b.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    b.add_argument("--torch", action="store_true",
                   help="time fastopt.torch's opt.step() against torch.optim's (needs torch)")
    b.add_argument("--workloads", nargs="+", choices=["one", "mlp", "mixed"],
                   help="with --torch, which parameter lists: one tensor of each --sizes, the "
                        "784-256-256-10 network, 100 mixed tensors (default: all three)")
    b.add_argument("--json", metavar="FILE",
                   help="also write every row, the geometric means and the machine to FILE")
    train = _train.add_parser(sub)
    # What train's parser cannot see value by value: whether its data fit in memory, which
    # depends on --layers too. Checked after parsing, reported by the same parser.
    train.set_defaults(check_arguments=lambda args: _check_train_sizes(train, args))
    _surfaces.add_parser(sub)
    _vectors.add_parser(sub)
    _conform_cli.add_parser(sub)
    return parser


# The synthetic data take about 12 bytes per feature and example while made: the float32 inputs,
# their noise and the train/test copies (fastopt/_apps/datasets.py).
TRAIN_BYTES_PER_FEATURE = 12


def _check_train_sizes(parser, args):
    if args.data != "synthetic":
        return
    features = args.layers[0] if args.layers else _train.DEFAULT_LAYERS[0]
    examples = (args.train_size or 60_000) + (args.test_size or 10_000)
    need, memory = examples * features * TRAIN_BYTES_PER_FEATURE, _cli.physical_memory()
    if memory is not None and need > memory:
        parser.error(f"argument --train-size/--test-size: {examples:,} examples of {features} "
                     f"features need about {need / 2 ** 30:,.1f} GiB to make "
                     f"({TRAIN_BYTES_PER_FEATURE} bytes per feature and example); this machine "
                     f"has {memory / 2 ** 30:,.1f} GiB: use at most "
                     f"{memory // (features * TRAIN_BYTES_PER_FEATURE):,} examples in all")


def main(argv=None):
    args = build_parser().parse_args(argv)
    check = getattr(args, "check_arguments", None)
    if check is not None:
        check(args)
    try:
        if args.command == "bench":
            return bench(args)
        if args.command == "train":
            return _train.main(args)
        if args.command == "surfaces":
            return _surfaces.main(args)
        if args.command == "vectors":
            return _vectors.run(args)
        if args.command == "conform":
            return _conform_cli.run(args)
        return demo(args)
    except MemoryError as exc:
        # The arguments fit this machine's memory (checked above), but other processes may
        # hold it: a message, not a traceback.
        print(f"python -m fastopt: out of memory ({exc}); try smaller sizes", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
