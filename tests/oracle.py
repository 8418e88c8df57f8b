"""Independent expectations, written from docs/contract.md without looking at fastopt's code.

Two forms: ``vector`` rounds every hyperparameter scalar explicitly (``dt(...)``) and calls ufuncs
with the dtype spelled out, rather than relying on NEP 50 as the reference does; ``scalar`` walks
the elements one by one with NumPy scalars, so it shares no SIMD loop with either implementation.
Both take copies and return new arrays: ``(param, *state)``.
"""
import math

import numpy as np


def _consts(dtype, **scalars):
    dt = np.dtype(dtype).type
    return {name: dt(value) for name, value in scalars.items()}


def sgd(p, g, lr):
    c = _consts(p.dtype, lr=lr)
    return (np.subtract(p, np.multiply(c["lr"], g, dtype=p.dtype), dtype=p.dtype),)


def momentum(p, g, v, lr, beta):
    c = _consts(p.dtype, lr=lr, b=beta, c=1.0 - beta)
    v = np.add(np.multiply(c["b"], v), np.multiply(c["c"], g), dtype=p.dtype)
    p = np.subtract(p, np.multiply(c["lr"], v), dtype=p.dtype)
    return p, v


def rmsprop(p, g, s, lr, beta, eps):
    c = _consts(p.dtype, lr=lr, b=beta, c=1.0 - beta, e=eps)
    s = np.add(np.multiply(c["b"], s), np.multiply(c["c"], np.multiply(g, g)), dtype=p.dtype)
    step = np.divide(np.multiply(c["lr"], g), np.add(np.sqrt(s), c["e"]), dtype=p.dtype)
    return np.subtract(p, step, dtype=p.dtype), s


def adam(p, g, m, v, t, lr, beta1, beta2, eps):
    c = _consts(p.dtype, lr=lr, b1=beta1, c1=1.0 - beta1, b2=beta2, c2=1.0 - beta2, e=eps,
                d1=1.0 - math.pow(beta1, t), d2=1.0 - math.pow(beta2, t))
    m = np.add(np.multiply(c["b1"], m), np.multiply(c["c1"], g), dtype=p.dtype)
    m_hat = np.divide(m, c["d1"])
    v = np.add(np.multiply(c["b2"], v), np.multiply(c["c2"], np.multiply(g, g)), dtype=p.dtype)
    v_hat = np.divide(v, c["d2"])
    step = np.divide(np.multiply(c["lr"], m_hat), np.add(np.sqrt(v_hat), c["e"]))
    return np.subtract(p, step, dtype=p.dtype), m, v


def scalar(rule, p, g, *state_and_hp):
    """The same rule, element by element on NumPy scalars (for small arrays)."""
    n_state = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[rule]
    state, hp = state_and_hp[:n_state], state_and_hp[n_state:]
    out = [p.copy()] + [s.copy() for s in state]
    flat = [o.reshape(-1) for o in out]
    g = g.reshape(-1)
    fn = {"sgd": sgd, "momentum": momentum, "rmsprop": rmsprop, "adam": adam}[rule]
    for i in range(g.size):
        # 0-d arrays through the vector rule give NumPy's scalar loops, one element at a time.
        res = fn(*(f[i:i + 1].reshape(()) for f in flat[:1]), g[i:i + 1].reshape(()),
                 *(f[i:i + 1].reshape(()) for f in flat[1:]), *hp)
        for f, r in zip(flat, res):
            f[i] = r
    return tuple(out)
