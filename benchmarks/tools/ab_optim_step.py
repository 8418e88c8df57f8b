"""``Optimizer.step``'s Python overhead: this checkout's ``fastopt/_optim.py`` against the one of
an earlier commit, on the same compiled kernels, step for step.

    python benchmarks/tools/ab_optim_step.py                      # against main, 1000 float32
    python benchmarks/tools/ab_optim_step.py --rev HEAD~3 --size 1000 --rounds 400 --steps 200

Why: a change to the object layer alone (issue 21's internal seams: ``_decide``,
``_check_can_step``, ...) must not slow the hot path, a packed Adam step of a small model,
where the Python around the one kernel call is most of the time. The earlier ``_optim.py``
(``git show REV:fastopt/_optim.py``) is loaded as the module ``fastopt._optim_before`` inside
this fastopt package (its relative imports resolve to this checkout's modules; only the
optimizer classes differ), so both run on the same kernels in one process.

Each round times ``--steps`` packed steps of each optimizer (``fastopt.pack`` parameters and
``pack_like`` gradients, Adam, float32), in alternating order (A then B, B then A); printed:
the minimum and median per step of each over the rounds, and the ratio after/before.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import time

import numpy as np

import fastopt
from fastopt import _optim as after


def load_before(rev):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = subprocess.run(["git", "-C", root, "show", f"{rev}:fastopt/_optim.py"],
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("fastopt._optim_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastopt"
    sys.modules[spec.name] = module
    exec(compile(source, f"{rev}:fastopt/_optim.py", "exec"), module.__dict__)
    return module


def make(module, size, kwargs):
    rng = np.random.default_rng(0)
    params = fastopt.pack({"W": rng.standard_normal(size - size // 10).astype(np.float32),
                           "b": rng.standard_normal(size // 10).astype(np.float32)})
    grads = fastopt.pack_like(params)
    grads.buffer[...] = rng.standard_normal(size).astype(np.float32) * 1e-3
    return module.Adam(params, lr=1e-3, **kwargs), grads


def per_step(opt, grads, steps):
    step = opt.step
    t0 = time.perf_counter()
    for _ in range(steps):
        step(grads)
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="main", help="the commit whose _optim.py is 'before'")
    ap.add_argument("--size", type=int, default=1000, help="float32 items (default 1000)")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument("--clip", action="store_true", help="also max_grad_norm=1.0, "
                    "nonfinite='skip' (the decision path)")
    args = ap.parse_args(argv)
    before = load_before(args.rev)
    kwargs = dict(max_grad_norm=1.0, nonfinite="skip") if args.clip else {}
    pairs = {"before": make(before, args.size, kwargs), "after": make(after, args.size, kwargs)}
    times = {k: [] for k in pairs}
    for k, (opt, grads) in pairs.items():  # warm-up: bind kernels, fill caches
        per_step(opt, grads, args.steps)
    order = list(pairs)
    for r in range(args.rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            times[k].append(per_step(*pairs[k], args.steps))
    print(f"packed float32 Adam, {args.size} items, {args.rounds} rounds x {args.steps} steps"
          f"{', max_grad_norm=1 nonfinite=skip' if args.clip else ''}; before = {args.rev}")
    for k in order:
        t = np.array(times[k]) * 1e6
        print(f"  {k:6s}  min {t.min():7.3f} us   median {np.median(t):7.3f} us")
    b, a = (np.array(times[k]) for k in order)
    print(f"  after/before: min {a.min() / b.min():.3f}   median {np.median(a) / np.median(b):.3f}")


if __name__ == "__main__":
    main()
