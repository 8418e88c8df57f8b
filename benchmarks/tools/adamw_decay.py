"""float32 AdamW's once-rounded decay factor (docs/contract.md §7): what it rounds to, that
torch's AdamW uses the same factor, and how far 1000 float32 steps end from the same steps in
float64, in ULP.

    python benchmarks/tools/adamw_decay.py                  # lr 1e-3, weight_decay 1e-2, 1e5 items
    python benchmarks/tools/adamw_decay.py --lr 1e-2 --weight-decay 1e-4 --steps 300

A measurement, not a test: the numbers are those docs/contract.md §7 quotes.
"""
import argparse
import importlib.util

import numpy as np

import fastopt
from fastopt.testing import ulp_distance


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    lr, wd = args.lr, args.weight_decay
    factor = np.float32(1 - lr * wd)  # as the kernels and the reference round it: once
    print(f"lr*weight_decay = {lr * wd:g}; 1 - lr*weight_decay in float32 = {factor!r} = "
          f"1 - {1 - float(factor):.6g}: {(1 - float(factor)) / (lr * wd) - 1:+.3%} decay per "
          f"step against the exact factor")
    p0 = np.random.default_rng(0).standard_normal(args.items).astype(np.float32)
    if importlib.util.find_spec("torch") is not None:
        import torch
        for mode in (dict(fused=True), dict(foreach=False)):
            t = torch.from_numpy(p0.copy())
            t.grad = torch.zeros_like(t)  # zero gradients: only the decay moves p
            torch.optim.AdamW([t], lr=lr, weight_decay=wd, **mode).step()
            same = np.array_equal(t.detach().numpy(), p0 * factor)
            print(f"torch.optim.AdamW({', '.join(f'{k}={v}' for k, v in mode.items())}), one "
                  f"step: p*float32(1 - lr*wd) exactly: {same}")
    for label, scale in (("zero gradients (the decay alone)", 0.0),
                         ("standard normal gradients", 1.0)):
        rng = np.random.default_rng(1)
        p32 = rng.standard_normal(args.items).astype(np.float32)
        p64 = p32.astype(np.float64)
        o32 = fastopt.AdamW([p32], lr=lr, weight_decay=wd)
        o64 = fastopt.AdamW([p64], lr=lr, weight_decay=wd)
        for _ in range(args.steps):
            g = (rng.standard_normal(args.items) * scale).astype(np.float32)
            o32.step([g])
            o64.step([g.astype(np.float64)])
        d = np.asarray(ulp_distance(p32, p64.astype(np.float32)), dtype=np.float64)
        q10, q50, q90 = np.percentile(d, [10, 50, 90])
        print(f"{label}: float32 against float64 after {args.steps} steps: median {q50:g} ULP "
              f"(10th-90th percentile {q10:g}-{q90:g})")


if __name__ == "__main__":
    main()
