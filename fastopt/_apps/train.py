"""``python -m fastopt train``: a multilayer perceptron trained on the CPU, end to end.

Forward and backward passes are NumPy (:mod:`fastopt._apps.mlp`, BLAS matrix products); every
optimizer step is one fastopt kernel call over packed parameters, and every shuffle is a
:class:`fastopt.MiniBatches`. ``--compare`` trains the same network from the same initial
weights on the same batches with the course's loop (:mod:`fastopt._apps.course`), times both phase by
phase, and checks that the final parameters are the same bits; ``--compare torch`` adds
``torch.nn`` with a fused ``torch.optim`` step ("torch") and ``torch.nn`` with a
:mod:`fastopt.torch` step ("torch + fastopt.torch"). ``--distributed`` (under ``mpiexec -n N``)
trains data-parallel with :class:`fastopt.distributed.DistributedOptimizer`
(:mod:`fastopt._apps.train_distributed`).

``--dtype float64`` trains in float64 (data, weights, forward and backward, optimizer).
``--dtype bfloat16`` or ``float16`` (issue 24, "does it train better?") trains three times from
the same initial weights (the float32 ones rounded to the 16-bit format) on the same batches:
"float32", the plain float32 training; "master", 16-bit weights stepped by fastopt with float32
master weights and float32 state (``cls(params16, lr=lr, master_dtype=np.float32)``); and
"pure", weights and optimizer state stored in 16 bits, each step computed in float32 and rounded
back (as torch's fused CPU Adam does for bfloat16 parameters). In the two 16-bit runs the
forward and backward passes are the float32 network's on the 16-bit weights widened exactly, and
the gradients are rounded to the 16-bit format (nearest even, :func:`fastopt._half.narrow`)
before the step (:class:`fastopt._apps.loops.MasterLoop`, :class:`~fastopt._apps.loops.PureLoop`).
No loss scaling: float16 gradients below 2**-24 are lost. It prints a table of the three runs.

Seeds: the data, the initial weights and the batches each draw from their own stream of the one
``--seed``, so changing the batch size does not change the data or the weights.
"""
import os
import sys

import numpy as np

import fastopt
from fastopt import _half

from . import cli as _cli, datasets as _datasets, mlp as _mlp, registry as _registry
from .bench import have_fastopt_torch
from .blas import blas_threads
# The loops live in .loops: train_distributed builds on them without importing this module.
from .loops import (DEFAULT_HIDDEN, DEFAULT_LAYERS, DEFAULT_THREADS, TORCH,
                    CourseLoop, FastoptLoop, FastoptTorchLoop, MasterLoop, Progress, PureLoop,
                    TorchLoop, print_comparison, plot, rounded, torch_optimizer_name)

DTYPES = ("float32", "float64", "bfloat16", "float16")
DEFAULT_EPOCHS = 5
# --dtype bfloat16/float16: the learning rate when --lr is not given is the class's divided by
# HALF_LR_DIVISOR, so that the pure 16-bit run's weakness shows. bfloat16 keeps 8 significant
# bits: a weight w moves only if its update exceeds about |w| * 2**-9 (half its spacing).
# Adam's update is about lr per step; the first layer's He-initialised weights are ~0.05
# (sqrt(2/784)), so at Adam's default lr 1e-3 the update is ~2% of a weight and survives the
# rounding: pure bfloat16 trains as well as float32 (measured with the defaults below and --lr
# 1e-3: test accuracy 0.733 float32, 0.730 master, 0.726 pure). At 1e-4 it is ~0.2%, below
# half the spacing for many weights (in 10 steps of a 256 x 784 layer 56% never moved):
# pure bfloat16 lags (0.597) while the master weights add up the small steps and follow
# float32 (0.705 and 0.707; the README's table).
HALF_LR_DIVISOR = 10
# The 16-bit runs' defaults for --epochs and --train-size: three runs of 3 epochs of 20,000
# (938 steps each) took 37 s wall, 12 s CPU, on the 2-core machine this was written on, shared
# with other jobs (load 9; float32 3.4 s, master 9.8 s, pure 16.0 s: the 16-bit conversions
# are NumPy integer code). 30,000 examples took 36-76 s wall as the load varied.
HALF_EPOCHS, HALF_TRAIN_SIZE = 3, 20_000


def _check_layers(layers, n_features, n_classes, data_name):
    if layers[0] != n_features or layers[-1] != n_classes:
        hidden = " ".join(map(str, layers[1:-1]))
        raise ValueError(f"--layers {' '.join(map(str, layers))} does not fit the {data_name} "
                         f"data ({n_features} features, {n_classes} classes): use --layers "
                         f"{n_features} {hidden} {n_classes}".replace("  ", " "))


def main(args, out=None, err=None):
    """Run ``python -m fastopt train`` with parsed ``args``; return the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    distributed = None
    if not args.distributed and (args.check or args.shard_state):
        print("--check and --shard-state apply to --distributed only: run mpiexec -n N python "
              "-m fastopt train --distributed " + ("--check" if args.check else
                                                    "--shard-state"), file=err)
        return 2
    kind = args.dtype if args.dtype in _half.KINDS else None  # "bfloat16", "float16"
    if kind is not None and (args.compare is not None or args.distributed):
        option = "--compare" if args.compare is not None else "--distributed"
        print(f"--dtype {args.dtype} trains three runs of its own (float32, fastopt's float32 "
              f"master weights, pure {args.dtype}) in one process; {option} takes --dtype "
              f"float32 or float64", file=err)
        return 2
    if args.distributed:
        if args.compare is not None:
            print("--compare does not go with --distributed: use --check, which compares with "
                  "one process (docs/contract.md §9)", file=err)
            return 2
        try:
            # Imported only here: nothing else in fastopt imports mpi4py.
            from . import train_distributed as distributed
        except ImportError as exc:
            print(f"train --distributed: {exc}", file=err)
            return 2
        if not distributed.is_root():
            # Every rank parses the same options and reads the same data, so each message
            # below would be printed once per rank: rank 0 alone prints them.
            out = err = open(os.devnull, "w")
    registry = _registry.optimizers()
    cls = registry[args.optimizer]
    lr = args.lr if args.lr is not None else _registry.default_lr(cls)
    if kind is not None:
        if args.lr is None:
            lr = lr / HALF_LR_DIVISOR
        if args.epochs is None:
            args.epochs = HALF_EPOCHS
        if args.data == "synthetic" and args.train_size is None:
            args.train_size = HALF_TRAIN_SIZE
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    compare = [] if args.compare is None else (["course", "torch"] if args.compare == "torch"
                                                else ["course"])
    plt = None
    if args.plot:  # fail before training, not after
        from .demo import require_matplotlib
        plt = require_matplotlib()
    if "torch" in compare:
        try:
            import torch
        except ImportError:
            print("--compare torch needs torch, which is optional: pip install torch (the CPU "
                  "build is enough)", file=err)
            return 2
        if torch_optimizer_name(cls) is None:
            print(f"--compare torch: torch.optim has no counterpart of {cls.__name__} here; "
                  f"use --optimizer {' or '.join(n.lower() for n in TORCH)}", file=err)
            return 2
    if args.data == "digits" and (args.train_size or args.test_size):
        print("--train-size and --test-size apply to --data synthetic only", file=err)
        return 2
    progress = Progress(err, enabled=not args.quiet)
    if args.data == "digits":
        layers = list(args.layers) if args.layers else [64, *DEFAULT_HIDDEN, 10]
        try:
            data = _datasets.digits(args.seed)
        except ImportError as exc:
            print(exc, file=err)
            return 2
        n_features, n_classes = 64, 10
    else:
        layers = list(args.layers) if args.layers else list(DEFAULT_LAYERS)
        n_features, n_classes = layers[0], layers[-1]
        if n_classes < 2:
            print("--layers must end with at least 2 classes", file=err)
            return 2
        data = _datasets.synthetic(args.seed, args.train_size or 60_000,
                                   args.test_size or 10_000, n_features, n_classes)
    try:
        _check_layers(layers, n_features, n_classes, args.data)
    except ValueError as exc:
        print(exc, file=err)
        return 2
    params0 = _mlp.init_params(layers, args.seed)
    if args.dtype == "float64":
        data = tuple(a.astype(np.float64) if a.dtype == np.float32 else a for a in data)
        params0 = {k: v.astype(np.float64) for k, v in params0.items()}
    X, y, X_test, y_test = data
    weights = (f"{args.dtype} parameters" if kind is None else
               f"parameters; three runs: float32, {args.dtype} with fastopt's float32 master "
               f"weights, pure {args.dtype}")
    print(f"fastopt train: layers {'-'.join(map(str, layers))} "
          f"({_mlp.parameter_count(layers):,} {weights}), {cls.__name__} lr {lr:g} "
          f"(other hyperparameters: the class defaults), batch {args.batch_size}, "
          f"{args.epochs} epoch{'s' * (args.epochs > 1)}, {args.threads} "
          f"thread{'s' * (args.threads > 1)}, {args.data} data ({X.shape[1]:,} train / "
          f"{X_test.shape[1]:,} test examples, seed {args.seed}). Train accuracy is the "
          f"running one, over the epoch's batches before each step.", file=out, flush=True)
    if distributed is not None:
        return distributed.main(args, cls, lr, layers, data, params0, out, err, plt)
    with fastopt.num_threads(args.threads), blas_threads(args.threads) as blas_set:
        if not blas_set:
            print(f"note: could not set the BLAS thread count (no threadpoolctl, no OpenBLAS "
                  f"found); set OPENBLAS_NUM_THREADS={args.threads} before starting Python",
                  file=err)
        if kind is not None:
            return half_runs(args, kind, cls, lr, layers, data, params0, out, progress, plt)
        fast_loop = FastoptLoop(params0, data, cls, lr, args.batch_size, args.seed)
        fast = fast_loop.run(args.epochs, out, progress)
        hyperparameters = fast_loop.opt.hyperparameters
        others, descriptions = [], {"fastopt": f"MiniBatches, packed {cls.__name__}.step"}
        if "course" in compare:
            loop = CourseLoop(params0, data, cls, hyperparameters, args.batch_size, args.seed)
            descriptions["course"] = loop.description
            others.append(loop.run(args.epochs, out, progress))
        if "torch" in compare:  # torch was imported above
            loops = [TorchLoop]
            descriptions["torch"] = f"torch.nn, {torch_optimizer_name(cls)}"
            if have_fastopt_torch():
                loops.append(FastoptTorchLoop)
                descriptions[FastoptTorchLoop.name] = (
                    f"torch.nn, {torch_optimizer_name(cls, 'fastopt.torch')}")
            else:
                print("note: this fastopt has no fastopt.torch; the row 'torch + "
                      "fastopt.torch' is left out", file=err)
            threads = torch.get_num_threads()
            torch.set_num_threads(args.threads)
            try:
                for loop_cls in loops:
                    loop = loop_cls(params0, data, cls, hyperparameters, args.batch_size,
                                    args.seed)
                    others.append(loop.run(args.epochs, out, progress))
            finally:
                torch.set_num_threads(threads)
    ok = True
    if others:
        ok = print_comparison(fast, others, descriptions, out)
    if plt is not None:
        title = (f"fastopt train: {'-'.join(map(str, layers))}, {cls.__name__} lr {lr:g}, "
                 f"batch {args.batch_size}, {args.data} data")
        print(f"wrote {plot(fast, args.plot, plt, title)}", file=out)
    total = sum(e["seconds"] for e in fast.epochs)
    share = sum(e["phases"]["optimizer step"] for e in fast.epochs) / total
    print(f"done: {args.epochs} epoch{'s' * (args.epochs > 1)} in {total:.2f} s "
          f"({total / args.epochs:.2f} s per epoch, optimizer step {share:.0%} of it); final "
          f"loss {fast.epochs[-1]['loss']:.4f}, test accuracy {fast.epochs[-1]['test_acc']:.4f}"
          + ("" if others else ". --compare shows the course-style loop beside it."), file=out)
    return 0 if ok else 1


def half_runs(args, kind, cls, lr, layers, data, params0, out, progress, plt):
    """``--dtype bfloat16`` / ``float16``: the three runs, their table and ``--plot``; the exit
    status (0). Called inside ``main``'s thread settings."""
    params0 = rounded(params0, kind)  # every run starts from weights the 16-bit format holds
    what = {"float32": ("float32", "float32"),
            "master": (f"{kind}, float32 master (fastopt)", "float32"),
            "pure": (kind, kind)}
    common = (params0, data, cls, lr, args.batch_size, args.seed)
    runs = []
    # Built one at a time: each holds its own copy of the batches (63 MB at the defaults).
    for make in (lambda: FastoptLoop(*common), lambda: MasterLoop(*common, kind),
                 lambda: PureLoop(*common, kind)):
        loop = make()
        if type(loop) is FastoptLoop:
            loop.name = "float32"  # the plain loop, named by its dtype beside the other two
        runs.append(loop.run(args.epochs, out, progress))
    header = ["run", "weights", "optimizer state", "final loss", "test acc", "time"]
    rows = [[r.name, *what[r.name], f"{r.epochs[-1]['loss']:.4f}",
             f"{r.epochs[-1]['test_acc']:.4f}",
             f"{sum(e['seconds'] for e in r.epochs):.2f} s"] for r in runs]
    widths = [max(len(c) for c in col) for col in zip(header, *rows)]
    print(file=out)
    for row in [header] + rows:
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip(), file=out)
    print(f"final loss: the last epoch's mean training loss; test accuracy after it. Forward and "
          f"backward in float32 on the {kind} weights widened exactly; gradients rounded to "
          f"{kind} before the step; no loss scaling.", file=out)
    if plt is not None:
        title = (f"fastopt train --dtype {kind}: {'-'.join(map(str, layers))}, {cls.__name__} "
                 f"lr {lr:g}, batch {args.batch_size}, {args.data} data")
        labels = {"float32": "float32", "master": f"{kind} + float32 master (fastopt)",
                  "pure": f"pure {kind} (weights and state)"}
        print(f"wrote {plot(runs, args.plot, plt, title, labels)}", file=out)
    return 0


# -- command line -----------------------------------------------------------------------------


def add_parser(sub):
    """Add the ``train`` subcommand to ``sub`` (an argparse subparsers object)."""
    names = list(_registry.optimizers())
    p = sub.add_parser(
        "train", help="train an MLP on the CPU with fastopt (--compare: course loop, torch)",
        description="Train a multilayer perceptron (ReLU hidden layers, softmax cross-entropy, "
                    "float32) on the CPU: forward and backward in NumPy, every optimizer step "
                    "one fastopt kernel call over packed parameters, every shuffle a "
                    "fastopt.MiniBatches. Prints one line per epoch; progress goes to stderr.",
        epilog="Examples: python -m fastopt train --epochs 1 --compare; mpiexec -n 2 python -m "
               "fastopt train --distributed --check")
    p.add_argument("--layers", nargs="+", type=_cli.positive_int, metavar="N",
                   action=_cli.at_least(2, "the input size first and the classes last"),
                   help="layer sizes, input first (default: 784 256 256 10; 64 256 256 10 with "
                        "--data digits)")
    p.add_argument("--optimizer", type=_cli.one_of(names), choices=names,
                   default="adam" if "adam" in names else names[0],
                   help="every optimizer fastopt has, in any letter case: %(choices)s "
                        "(default: %(default)s)")
    p.add_argument("--lr", type=_cli.positive_real,
                   help=f"learning rate (default: the optimizer class's; divided by "
                        f"{HALF_LR_DIVISOR} with --dtype bfloat16/float16)")
    p.add_argument("--batch-size", type=_cli.positive_int, default=64, metavar="N",
                   help="examples per batch (default: 64)")
    p.add_argument("--epochs", type=_cli.positive_int, metavar="N",
                   help=f"passes over the training set (default: {DEFAULT_EPOCHS}; "
                        f"{HALF_EPOCHS} with --dtype bfloat16/float16)")
    p.add_argument("--threads", type=_cli.threads, default=DEFAULT_THREADS, metavar="N",
                   help="threads for fastopt's kernels and for BLAS (and torch), for every "
                        "loop alike (default: 1; batches of 64 are too small for more to pay)")
    p.add_argument("--seed", type=_cli.seed, default=0,
                   help="seed of the data, the initial weights and the batches (default: 0)")
    p.add_argument("--data", choices=_datasets.DATASETS, default="synthetic",
                   help="synthetic (default; numpy only: 60,000 + 10,000 examples labelled by "
                        "a random teacher network) or digits (scikit-learn's bundled 8x8 "
                        "digits, 1,797 images, 20%% held out; needs scikit-learn)")
    p.add_argument("--train-size", type=_cli.positive_int, metavar="N",
                   help=f"synthetic training examples (default: 60000; {HALF_TRAIN_SIZE} with "
                        f"--dtype bfloat16/float16)")
    p.add_argument("--test-size", type=_cli.positive_int, metavar="N",
                   help="synthetic test examples (default: 10000)")
    p.add_argument("--compare", nargs="?", const="course", choices=["course", "torch"],
                   help="also train with the course-style loop (same weights, same batches) "
                        "and print the time of each phase, the speed-ups and whether the final "
                        "parameters are bit-identical; 'torch' adds torch.nn with a fused "
                        "torch.optim step and torch.nn with a fastopt.torch step (needs "
                        "torch)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="float32 (default) or float64: the data, weights and optimizer. "
                        "bfloat16 or float16: three runs from the same weights and batches: "
                        "float32; 16-bit weights with fastopt's float32 master weights and "
                        "state (master_dtype=np.float32); and pure 16-bit, weights and state "
                        "stored in 16 bits, each step computed in float32 and rounded back (as "
                        "torch's fused CPU Adam does for bfloat16). The 16-bit runs' forward "
                        "and backward are float32 on the 16-bit weights widened exactly, their "
                        "gradients rounded to the 16-bit format (nearest even) for the step; "
                        "no loss scaling. Prints final loss, test accuracy and time of each; "
                        "not with --compare or --distributed")
    p.add_argument("--plot", metavar="DIR",
                   help="write DIR/train.png: loss per batch (raw and fastopt.ewa-smoothed) "
                        "and accuracy per epoch (with --dtype bfloat16/float16: the three "
                        "runs' loss curves and test accuracies); needs matplotlib: pip install "
                        "'fastopt[plot]'")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    d = p.add_argument_group(
        "data-parallel (under mpiexec -n N; needs pip install \"fastopt[mpi]\")")
    d.add_argument("--distributed", action="store_true",
                   help="train data-parallel over the MPI ranks: each rank computes the "
                        "gradient of its part of every batch, fastopt.distributed."
                        "DistributedOptimizer adds them in rank order, times 1/N, and steps; "
                        "rank 0 prints the epoch lines")
    d.add_argument("--shard-state", action="store_true",
                   help="with --distributed: ZeRO stage 1, each rank keeps the optimizer state "
                        "of its slice of the parameters only")
    d.add_argument("--check", action="store_true",
                   help="with --distributed: rank 0 then trains in one process that computes "
                        "the same per-part gradients and sums them in rank order, and reports "
                        "whether the final parameters are bit-identical (exit status 1 if not)")
    return p
