"""A small stand-in for fastopt.testing._cases (the vectors branch) with its interface, so that
tests/test_conform.py runs before that module is merged. Dropped once it is."""
import dataclasses

import numpy as np

from fastopt import reference
from fastopt.testing._conform import _aligned_copy

EDGE_CLASSES = ("pos_zero", "neg_zero", "subnormal", "max_finite", "overflow", "inf_grad",
                "nan_grad")


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    name: str
    rule: str
    dtype: np.dtype
    hyper: dict
    steps: np.ndarray
    lr: np.ndarray
    param: np.ndarray
    state: dict
    grads: np.ndarray
    expected_param: np.ndarray
    expected_state: dict
    edges: dict

    @property
    def size(self):
        return self.param.shape[0]

    @property
    def skipped(self):
        if self.hyper.get("nonfinite", "propagate") == "propagate":
            return np.zeros(len(self.steps), bool)
        return ~np.isfinite(self.grads).all(axis=1)


def trajectory(rule, dtype, size=17, steps=10, *, start_step=1, seed=0, offset=0, edges=False,
               schedule=None, **hyper):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    cls = getattr(reference, rule)
    param = rng.standard_normal(size).astype(dtype)
    grads = rng.standard_normal((steps, size)).astype(dtype)
    probe = cls([np.zeros(1, dtype)], lr=0.01, **hyper)
    full = {k: v for k, v in probe.hyperparameters.items() if k != "lr"}
    state = {}
    for s in probe.state_names:
        if start_step > 1:
            x = rng.standard_normal(size) * 0.01
            state[s] = (x * x if s in ("v", "v_max", "sq_avg", "sum_sq") else x).astype(dtype)
        else:
            init = full.get("initial_accumulator_value", 0.0) if s == "sum_sq" else 0.0
            state[s] = np.full(size, init, dtype)
    if "v_max" in state:
        state["v_max"] = np.maximum(state["v_max"], state["v"])
    edge_idx = {}
    if edges:
        order = rng.permutation(size)
        each = max(1, size // 8)
        info = np.finfo(dtype)
        for j, c in enumerate(EDGE_CLASSES):
            idx = np.sort(order[j * each:(j + 1) * each]).astype(np.int64)
            if idx.size == 0:
                break
            edge_idx[c] = idx
            if c in ("pos_zero", "neg_zero"):
                param[idx] = grads[:, idx] = 0.0 if c == "pos_zero" else -0.0
            elif c == "subnormal":
                param[idx] = info.smallest_subnormal
                grads[:, idx] = -info.smallest_subnormal
            elif c == "max_finite":
                param[idx] = info.max
            elif c == "overflow":
                param[idx], grads[:, idx] = info.max, -info.max
            elif c == "inf_grad":
                grads[min(1, steps - 1), idx] = np.inf
            else:
                grads[min(2, steps - 1), idx] = np.nan
    p = _aligned_copy(param, offset)
    opt = cls([p], lr=0.01, **full)
    opt.t = start_step - 1
    for s in opt.state_names:
        opt.state(s)[0][...] = state[s]
    exp_p = np.empty((steps, size), dtype)
    exp_s = {s: np.empty((steps, size), dtype) for s in opt.state_names}
    counts = np.empty(steps, np.int64)
    for i in range(steps):
        try:
            opt.step([grads[i].copy()])
        except reference.NonFiniteGradientError if hasattr(reference, "NonFiniteGradientError") \
                else ():
            pass
        counts[i] = opt.t
        exp_p[i] = p
        for s in opt.state_names:
            exp_s[s][i] = opt.state(s)[0]
    opts = "-".join(f"{k}{v}" for k, v in hyper.items()) or "default"
    name = (f"{rule.lower()}-{opts}-{dtype.name}-n{size}-off{offset}-t{start_step}-"
            f"{start_step + steps - 1}" + ("-edges" if edges else "") +
            (f"-seed{seed}" if seed else ""))
    return Case(name, rule, dtype, full, counts, np.full(steps, 0.01), _aligned_copy(param,
                offset), state, grads, exp_p, exp_s, edge_idx)


OPTION_SETS = {
    "SGD": ({}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"weight_decay": 0.01},
            {"max_grad_norm": 1.0}),
    "Momentum": ({}, {"nesterov": True}, {"maximize": True}),
    "RMSProp": ({}, {"centered": True, "momentum": 0.9}, {"weight_decay": 0.01}),
    "Adam": ({}, {"amsgrad": True}, {"weight_decay": 0.01}, {"beta1": 0.5, "beta2": 0.9}),
    "AdamW": ({}, {"weight_decay": 0.1}, {"amsgrad": True}),
    "Adagrad": ({}, {"lr_decay": 0.01}, {"initial_accumulator_value": 0.1}),
}


def cases(rule=None, dtype=None, *, small=False):
    rules = list(OPTION_SETS) if rule is None else [rule]
    dts = [np.float32, np.float64] if dtype is None else [dtype]
    out = []
    for r in rules:
        for dt in dts:
            for opts in OPTION_SETS[r]:
                out.append(trajectory(r, dt, size=9, steps=3, offset=1, **opts))
            out.append(trajectory(r, dt, size=24, steps=5, offset=1, edges=True))
            out.append(trajectory(r, dt, size=24, steps=5, offset=1, edges=True,
                                  nonfinite="skip"))
            out.append(trajectory(r, dt, size=17, steps=4, start_step=10_000))
    return out
