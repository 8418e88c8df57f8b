"""``python -m fastopt conform``: the conformance report (:func:`fastopt.testing.check_update`)
from the command line.

    python -m fastopt conform torch                      # every torch.optim optimizer fastopt has
    python -m fastopt conform torch --only Adam --full --plot fig/
    python -m fastopt conform fastopt                    # the compiled kernels: bit-identical
    python -m fastopt conform mypkg.optim:adam_step --rule Adam --max-ulp 0
"""
import argparse
import importlib
import importlib.util
import os
import sys

import numpy as np

from .._apps import cli as _cli
from .._apps.demo import require_matplotlib
from . import _conform, _conform_adapters


def _target(text):
    """``torch``, ``fastopt`` or ``MODULE:FUNCTION`` (imported here, so that a bad one is a
    usage error)."""
    if text.lower() in ("torch", "fastopt"):
        return text.lower()
    if ":" not in text:
        raise argparse.ArgumentTypeError(
            f"expected torch, fastopt or MODULE:FUNCTION (e.g. mypkg.optim:adam_step), got "
            f"{text!r}")
    module, _, attr = text.partition(":")
    try:
        obj = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure of the user's module
        raise argparse.ArgumentTypeError(f"cannot import {module!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise argparse.ArgumentTypeError(f"{module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise argparse.ArgumentTypeError(f"{text} is a {type(obj).__name__}, not a function")
    return obj


def _max_ulp(text):
    return _cli.seed(text)  # a whole number >= 0, worded as every count is


def add_parser(sub):
    """Add the ``conform`` subcommand to ``sub`` (an argparse subparsers object)."""
    rules = list(_conform.RULES)
    p = sub.add_parser(
        "conform", help="how far an optimizer is from the textbook formulas, and where",
        description="Run an optimizer update through fastopt's known-answer cases (every "
                    "option set, odd lengths, misaligned starts, late step counts, edge "
                    "values) and print, per option set and dtype, the largest and "
                    "99th-percentile ULP distance to fastopt.reference over every step and "
                    "array, the fraction bit-identical, zeros of the other sign (0 ULP apart), "
                    "the first divergence and whether edge values behave alike (NaN where "
                    "NaN, no spurious inf, the sign of zero, subnormals not flushed to zero). TARGET: 'torch' (every "
                    "torch.optim optimizer fastopt implements; torch's SGD(momentum=beta, "
                    "dampening=beta) against the course's Momentum), 'fastopt' (the compiled "
                    "kernels), or MODULE:FUNCTION, a function "
                    "fn(param, grad, state, *, t, lr, **hyper) (see "
                    "help(fastopt.testing.check_update)).")
    p.add_argument("target", type=_target, help="torch, fastopt or MODULE:FUNCTION")
    p.add_argument("--rule", type=_cli.one_of(rules), choices=rules, metavar="RULE",
                   help="the rule a MODULE:FUNCTION computes (default: its .rule attribute); "
                        "one of %(choices)s, any letter case")
    p.add_argument("--only", nargs="+", type=_cli.one_of(rules), choices=rules,
                   metavar="RULE", help="torch/fastopt: only these rules (default: all of "
                                        "%(choices)s)")
    p.add_argument("--dtype", choices=["float32", "float64"],
                   help="only this dtype (default: both)")
    p.add_argument("--full", action="store_true",
                   help="the whole catalogue (tails to 1000 elements, 100003 elements, "
                        "1000-step runs); default: its quick subset")
    p.add_argument("--forced", action="store_true",
                   help="start every step from the reference's values (each step's own "
                        "error) instead of the function's own results")
    p.add_argument("--max-ulp", type=_max_ulp, metavar="N",
                   help="exit with status 1 unless every case is within N ULP (0: the same "
                        "bits) with edge values behaving alike")
    p.add_argument("--fused", action="store_true",
                   help="torch: the fused implementation (fused=True) where the class has one "
                        "(Adam, AdamW, SGD, Adagrad), instead of the default for-loop")
    p.add_argument("--verbose", action="store_true",
                   help="also every case's table per step and array")
    p.add_argument("--plot", metavar="DIR",
                   help="write ULP distance against step per array, one PNG per rule, to DIR; "
                        "needs matplotlib: pip install 'fastopt[plot]'")
    return p


def _unique(rules):
    """``rules`` without repeats (any letter case), in order: a rule given twice runs once."""
    seen = {}
    for r in rules:
        seen.setdefault(r.lower(), r)
    return list(seen.values())


def _functions(args):
    """(fn, rule) pairs for the target."""
    rules = _unique(args.only) if args.only else list(_conform.RULES)
    if args.target == "torch":
        import inspect

        import torch
        out = []
        for r in rules:
            cls = getattr(torch.optim, _conform_adapters.TORCH_CLASSES[r])
            fused = args.fused and "fused" in inspect.signature(cls).parameters
            out.append((_conform_adapters.from_torch(cls, rule=r, **({"fused": True} if fused else {})),
                        r))
        return out
    if args.target == "fastopt":
        return [(_conform_adapters.from_fastopt(r), r) for r in rules]
    rule = args.rule or getattr(args.target, "rule", None)
    return [(args.target, rule)]


def run(args, out=None):
    """Run ``conform`` with parsed ``args``; return the exit status."""
    out = sys.stdout if out is None else out
    if args.target == "torch":
        if importlib.util.find_spec("torch") is None:
            print("python -m fastopt conform torch: torch is not installed "
                  "(pip install torch)", file=sys.stderr)
            return 2
    if callable(args.target) and args.rule is None and getattr(args.target, "rule",
                                                                 None) is None:
        print("python -m fastopt conform: give --rule (which of fastopt's rules the function "
              "computes)", file=sys.stderr)
        return 2
    plt = require_matplotlib() if args.plot else None  # fail before the runs, not after
    dtypes = None if args.dtype is None else [np.dtype(args.dtype)]
    reports = [_conform.check_update(fn, rule, dtypes=dtypes, small=not args.full,
                                     forced=args.forced, name=getattr(fn, "__name__", None))
               for fn, rule in _functions(args)]
    _print(reports, args, out)
    if plt is not None:
        for path in plot(reports, args.plot, plt):
            print(f"wrote {path}", file=out)
    if args.max_ulp is not None:
        failed = 0
        for r in reports:
            try:
                r.assert_conforms(args.max_ulp)
            except AssertionError:
                failed += 1
        return 1 if failed else 0
    return 0


def _print(reports, args, out):
    how = ("each step from the reference" if args.forced
           else "each optimizer running on its own results")
    if args.target == "torch":
        import torch
        print(f"torch {torch.__version__} against fastopt.reference (the textbook formulas "
              f"of docs/contract.md §2 and §7), {'full' if args.full else 'quick'} "
              f"catalogue; ULP distances over every step and array (param and state), "
              f"{how}.", file=out)
    else:
        print(f"{reports[0].name if len(reports) == 1 else args.target} against "
              f"fastopt.reference, {'full' if args.full else 'quick'} catalogue", file=out)
    rows = [row for rep in reports for row in rep.rows()]
    print(_conform.format_rows(rows), file=out)
    for rep in reports:
        d = rep.first_divergence
        verdict = "bit-identical" if rep.bit_identical else rep.verdict
        print(f"\n{rep.name} ({rep.rule}): {len(rep.run)} of {len(rep.results)} cases run, "
              f"{verdict}", file=out)
        if d is not None:
            print(str(d), file=out)
        bad = {c: first for c, (_, _, first) in rep.edge_summary().items() if first}
        for c, first in bad.items():
            print(f"  edge {c}: {first}", file=out)
        reasons = {}
        for _, why in rep.not_run:
            reasons[why] = reasons.get(why, 0) + 1
        for why, n in reasons.items():
            print(f"  not run: {n} x {why}", file=out)
        for name, step, err in rep.errors[:3]:
            print(f"  raised: {name} at step {step}: {err}", file=out)
        if args.verbose:
            for r in rep.run:
                print(str(r), file=out)


def plot(reports, directory, plt):
    """One PNG per report: the largest ULP distance at each step (step count t on x), one
    panel per array, one line per option set and dtype (its longest case). Returns the
    paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for rep in reports:
        longest = {}
        for r in rep.run:
            key = (_conform.options_label(rep.rule, r.case.hyper), r.case.dtype.name)
            if r.steps_taken and (key not in longest
                                  or r.steps_taken > longest[key].steps_taken):
                longest[key] = r
        names = list(dict.fromkeys(n for r in longest.values() for n in r.arrays))
        if not names:
            continue
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6),
                                 squeeze=False)
        for ax, name in zip(axes[0], names):
            for (label, dtype), r in longest.items():
                if name in r.arrays:
                    t = [inp["t"] for inp in r.inputs]
                    # NaN against a number is the largest uint64: drawn at the top, not lost
                    y = np.minimum(r.max_ulp(name).astype(np.float64), 2.0 ** 64)
                    ax.plot(t, y, marker="." if len(t) < 50 else None,
                            label=f"{label}, {dtype}")
            ax.set_yscale("symlog", linthresh=1)
            # Log steps: the cases run steps 1..1000 and late windows near 1e4 and 1e5, which a
            # linear axis squeezed into one vertical line at the left.
            ax.set_xscale("log")
            ax.set_xlabel("step t (log)")
            ax.set_ylabel("largest ULP distance")
            ax.set_title(name)
        axes[0][0].legend(fontsize=6)
        fig.suptitle(f"{rep.name} against fastopt.reference.{rep.rule}")
        fig.tight_layout()
        safe = "".join(ch if ch.isalnum() else "-" for ch in f"{rep.name}-{rep.rule}").lower()
        path = os.path.join(directory, f"conform-{safe}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
