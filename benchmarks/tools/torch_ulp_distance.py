"""How far fastopt.torch's results lie from torch.optim's, in ULP, after 1, 10, 100 and 1000 steps.

    python benchmarks/tools/torch_ulp_distance.py                  # the Markdown table of docs/torch.md
    python benchmarks/tools/torch_ulp_distance.py --torch-impl fused --steps 1,10,100,1000

fastopt.torch computes torch.optim's rules in fastopt's arithmetic (docs/contract.md §2, §7: the
course's expression order, each scalar rounded once), torch in its own order (Adam, for one,
divides by ``sqrt(v)/sqrt(1 - beta2**t)`` rather than taking the root of ``v/(1 - beta2**t)``),
so the two are not bit-identical. For each class and its main option sets, in float32 and
float64, both start from the same seeded parameters and take the same seeded gradients, step
after step; each cell is the largest :func:`fastopt.testing.ulp_distance` over every element of
the parameters and of each state tensor (torch's names), read at the step of its column.

fastopt's side is ``fastopt.torch`` when it is installed, else ``fastopt.reference``'s
optimizer objects with the same hyperparameters (the contract guarantees that both write the
same bits; when both are present the script checks that they do and says so). torch's side is
its default implementation (``--torch-impl default``: on CPU, the loop over the tensors), or
``fused``/``foreach``.

Why a maximum can be large: the ULP is relative to each value's own magnitude, so a value near
zero (a moment whose sign flips, an accumulator just initialised) that differs by a rounding
error of its neighbours' size counts many ULP. The median is printed beside the maximum for
that reason.
"""
import argparse
import importlib.util

import numpy as np

import fastopt.reference
from fastopt.testing import ulp_distance

# (torch.optim class, options, label). The learning rates are torch's defaults.
CASES = [
    ("Adam", {}, "defaults"),
    ("Adam", dict(weight_decay=0.01), "weight_decay=0.01"),
    ("Adam", dict(amsgrad=True), "amsgrad"),
    ("Adam", dict(maximize=True), "maximize"),
    ("AdamW", {}, "defaults (weight_decay=0.01)"),
    ("AdamW", dict(amsgrad=True), "amsgrad"),
    ("SGD", {}, "defaults (no momentum)"),
    ("SGD", dict(momentum=0.9), "momentum=0.9"),
    ("SGD", dict(momentum=0.9, nesterov=True), "momentum=0.9, nesterov"),
    ("SGD", dict(momentum=0.9, dampening=0.1, weight_decay=1e-4),
     "momentum=0.9, dampening=0.1, weight_decay=1e-4"),
    ("RMSprop", {}, "defaults"),
    ("RMSprop", dict(centered=True), "centered"),
    ("RMSprop", dict(momentum=0.9), "momentum=0.9"),
    ("RMSprop", dict(centered=True, momentum=0.9, weight_decay=1e-4),
     "centered, momentum=0.9, weight_decay=1e-4"),
    ("Adagrad", {}, "defaults"),
    ("Adagrad", dict(lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1),
     "lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1"),
]
# A small network's worth of tensors (4,426 items): a matrix, its bias, and a long vector.
SHAPES = [(64, 32), (32,), (2346,)]
# torch's state name -> fastopt.reference's, per class.
STATE_NAMES = {
    "Adam": {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max"},
    "SGD": {"momentum_buffer": "momentum_buffer"},
    "RMSprop": {"square_avg": "sq_avg", "grad_avg": "grad_avg",
                "momentum_buffer": "momentum_buffer"},
    "Adagrad": {"sum": "sum_sq"},
}
STATE_NAMES["AdamW"] = STATE_NAMES["Adam"]


def have_fastopt_torch():
    return importlib.util.find_spec("fastopt.torch") is not None


def reference_optimizer(name, group, arrays):
    """The ``fastopt.reference`` optimizer with the hyperparameters of torch's ``group``."""
    common = dict(lr=group["lr"], weight_decay=group["weight_decay"],
                  maximize=group["maximize"])
    if name in ("Adam", "AdamW"):
        beta1, beta2 = group["betas"]
        return getattr(fastopt.reference, name)(arrays, beta1=beta1, beta2=beta2,
                                                eps=group["eps"], amsgrad=group["amsgrad"],
                                                **common)
    if name == "SGD":
        return fastopt.reference.SGD(arrays, momentum=group["momentum"],
                                     dampening=group["dampening"],
                                     nesterov=group["nesterov"], **common)
    if name == "RMSprop":
        return fastopt.reference.RMSProp(arrays, beta=group["alpha"], eps=group["eps"],
                                         centered=group["centered"],
                                         momentum=group["momentum"], **common)
    if name == "Adagrad":
        return fastopt.reference.Adagrad(
            arrays, lr_decay=group["lr_decay"], eps=group["eps"],
            initial_accumulator_value=group["initial_accumulator_value"], **common)
    raise ValueError(name)


class TorchSide:
    """A torch.optim (or fastopt.torch) optimizer over fresh copies of ``params0``."""

    def __init__(self, cls, options, params0):
        import torch
        self.torch = torch
        self.params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params0]
        self.opt = cls(self.params, **options)

    def step(self, grads):
        with self.torch.no_grad():
            for p, g in zip(self.params, grads):
                if p.grad is None:
                    p.grad = self.torch.from_numpy(g.copy())
                else:
                    p.grad.copy_(self.torch.from_numpy(g))
        self.opt.step()

    def arrays(self, state_names):
        """{"param": [...], state name: [...]} as NumPy copies, torch's state names."""
        out = {"param": [p.detach().numpy().copy() for p in self.params]}
        for name in state_names:
            if all(name in self.opt.state[p] for p in self.params):
                out[name] = [self.opt.state[p][name].detach().numpy().copy()
                             for p in self.params]
        return out


class ReferenceSide:
    """fastopt.reference's optimizer object with torch's hyperparameters."""

    def __init__(self, name, group, params0):
        self.name = name
        self.params = [p.copy() for p in params0]
        self.opt = reference_optimizer(name, group, self.params)

    def step(self, grads):
        self.opt.step(grads)

    def arrays(self, state_names):
        out = {"param": [p.copy() for p in self.params]}
        for torch_name in state_names:
            ours = STATE_NAMES[self.name][torch_name]
            try:
                out[torch_name] = [a.copy() for a in self.opt.state(ours)]
            except KeyError:
                pass
        return out


def max_and_median(a_list, b_list):
    d = np.concatenate([ulp_distance(a, b).ravel() for a, b in zip(a_list, b_list)])
    return int(d.max()), float(np.median(d))


def measure(name, options, dtype, steps, torch_impl, seed=0):
    """{tensor name: {step: (max ULP, median ULP)}}, and whether fastopt.torch (when present)
    wrote the reference's bits at every checkpoint (None when it was not run)."""
    import torch
    rng = np.random.default_rng(seed)
    params0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    flags = {"default": {}, "fused": dict(fused=True), "foreach": dict(foreach=True)}[torch_impl]
    if name == "RMSprop" and torch_impl == "fused":
        flags = dict(foreach=True)  # torch 2.13 has no fused RMSprop
    theirs = TorchSide(getattr(torch.optim, name), {**options, **flags}, params0)
    group = theirs.opt.param_groups[0]
    ours = ReferenceSide(name, group, params0)
    fot = None
    if have_fastopt_torch():
        import fastopt.torch
        fot = TorchSide(getattr(fastopt.torch, name), options, params0)
    state_names = list(STATE_NAMES[name])
    result, same_as_reference = {}, (None if fot is None else True)
    for step in range(1, max(steps) + 1):
        grads = [(rng.standard_normal(s) * 0.1).astype(dtype) for s in SHAPES]
        theirs.step(grads)
        ours.step(grads)
        if fot is not None:
            fot.step(grads)
        if step in steps:
            a, b = theirs.arrays(state_names), ours.arrays(state_names)
            if fot is not None:
                c = fot.arrays(state_names)
                if set(c) != set(b) or any(
                        not np.array_equal(x.view(np.uint8), y.view(np.uint8))
                        for k in b for x, y in zip(c[k], b[k])):
                    same_as_reference = False
                b = c  # the table measures fastopt.torch itself
            for key in a:
                if key in b:
                    result.setdefault(key, {})[step] = max_and_median(b[key], a[key])
    return result, same_as_reference


def table(steps, torch_impl, dtypes=("float32", "float64")):
    """The Markdown table's lines, and the classes where fastopt.torch and the reference
    disagreed."""
    head = ("| class | options | dtype | tensor | "
            + " | ".join(f"{s} step{'s' * (s > 1)}" for s in steps) + " |")
    lines = [head, "|" + "---|" * (4 + len(steps))]
    disagreements = []
    for name, options, label in CASES:
        for dtype in dtypes:
            result, same = measure(name, options, np.dtype(dtype), steps, torch_impl)
            if same is False:
                disagreements.append(f"{name}({label}) {dtype}")
            for key, per_step in result.items():
                cells = [f"{per_step[s][0]:,} ({per_step[s][1]:g})" for s in steps]
                lines.append(f"| {name} | {label} | {dtype} | {key} | " + " | ".join(cells)
                             + " |")
    return lines, disagreements


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="1,10,100,1000",
                    help="the step counts of the columns (default: 1,10,100,1000)")
    ap.add_argument("--torch-impl", choices=["default", "fused", "foreach"], default="default",
                    help="torch.optim's implementation (default: its default; fused means "
                         "foreach for RMSprop, which has no fused one)")
    args = ap.parse_args(argv)
    import torch
    steps = sorted({int(s) for s in args.steps.split(",")})
    side = "fastopt.torch" if have_fastopt_torch() else "fastopt.reference's objects"
    items = sum(int(np.prod(s)) for s in SHAPES)
    print(f"Largest ULP distance (median in parentheses) between {side} and torch.optim "
          f"(torch {torch.__version__}, {args.torch_impl} implementation), over {items:,} items "
          f"in {len(SHAPES)} tensors, the same seeded initial values and gradients (standard "
          f"normal, gradients times 0.1).")
    print()
    lines, disagreements = table(steps, args.torch_impl)
    print("\n".join(lines))
    if have_fastopt_torch():
        print()
        print("fastopt.torch wrote fastopt.reference's bits at every checkpoint"
              if not disagreements else
              "fastopt.torch and fastopt.reference DISAGREE (please report): "
              + "; ".join(disagreements))
    return 1 if disagreements else 0


if __name__ == "__main__":
    raise SystemExit(main())
