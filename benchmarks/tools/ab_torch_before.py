"""fastopt.torch's ``opt.step()`` against an earlier commit's and torch's fused, in turn.

    python benchmarks/tools/build_before.py HEAD~1 /tmp/fastopt-before
    python benchmarks/tools/ab_torch_before.py --before /tmp/fastopt-before

For each optimizer and parameter list (``fastopt._apps.bench.workload_shapes``: ``mlp`` the
784-256-256-10 network, ``mixed`` the 100 tensors of a small transformer, a number: one tensor of that many items),
the three steps are built from the same seeded parameters and gradients and timed round after
round by ``fastopt._apps.bench.interleaved_best`` (best of ``--repeat`` batches), on one thread unless
``--threads`` says otherwise. Ratios: torch fused / this tree, and the earlier commit / this tree
(above 1: this tree is faster).
"""
import argparse
import importlib

import numpy as np
import torch

import fastopt
from fastopt._apps import bench as _bench


def before_step(before, name, workload, dtype):
    """``opt.step`` of the earlier commit's fastopt.torch, set up as ``_bench`` sets up ours."""
    params, grads = _bench.torch_params(_bench.workload_shapes(workload), dtype)
    kwargs = _bench.TORCH_CASES[name]
    opt = getattr(before.torch, name)(params, **kwargs)
    _bench.set_grads(params, grads)
    opt.step()
    _bench.set_step_count(opt, _bench.STEADY_STATE_STEP)
    _bench.set_grads(params, grads)
    return opt.step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", metavar="DIR", required=True,
                    help="a folder built by benchmarks/tools/build_before.py")
    ap.add_argument("--optimizers", nargs="+", default=list(_bench.TORCH_CASES))
    ap.add_argument("--workloads", nargs="+", default=["mlp", "mixed", "1e6"],
                    help="mlp, mixed, or a number of items (one tensor)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    before = _bench.load_before(args.before)
    importlib.import_module("fastopt_before.torch")
    torch.set_num_threads(args.threads)
    fastopt.set_num_threads(args.threads)
    before.set_num_threads(args.threads)
    print(f"{'optimizer':9} {'parameters':10} {'this tree':>10} {'before':>10} "
          f"{'torch fused':>12} {'fused/this':>11} {'before/this':>12}")
    workloads = [w if w in ("mlp", "mixed") else int(float(w)) for w in args.workloads]
    for name in args.optimizers:
        for workload in workloads:
            steps = {"this": _bench.torch_optim_step("fastopt.torch", name, workload, np.float32),
                     "before": before_step(before, name, workload, np.float32),
                     "fused": _bench.torch_optim_step("torch fastest", name, workload,
                                                      np.float32)}
            best = _bench.interleaved_best(steps, repeat=args.repeat)
            this, old, fused = best["this"], best["before"], best["fused"]
            print(f"{name:9} {str(workload):10} {this * 1e6:8.1f}us {old * 1e6:8.1f}us "
                  f"{fused * 1e6:10.1f}us {fused / this:10.2f}x {old / this:11.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
