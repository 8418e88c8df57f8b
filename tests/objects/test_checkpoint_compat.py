"""Checkpoints written by an earlier fastopt still load and resume (issue 21's renames, issue
24's master weights): ``tests/objects/checkpoints/*.npz`` were written by fastopt 0.1.0 (main at 37f6fce) on
2026-12-06 (format version 2) with ``python tests/objects/test_checkpoint_compat.py --write``,
from the cases below. Each test loads a file into a freshly built optimizer of the same
structure, checks the state it holds, takes two more steps and compares every array with the
bits the writer recorded (``*.expected.npz``) and with a straight run that never stopped.

Never regenerate these files to make a test pass: a file that no longer loads is a break of the
checkpoint format, which needs a reader for the old one instead.
"""
import os
import sys

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import schedules

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")

# name -> (optimizer class name, keyword arguments, dtype); each saved after 3 steps.
CASES = {
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                     np.float32),
    "momentum": ("Momentum", dict(lr=0.1, beta=0.8), np.float64),
    "rmsprop_centered": ("RMSProp", dict(lr=1e-3, beta=0.95, centered=True, momentum=0.5),
                         np.float32),
    "adam_amsgrad": ("Adam", dict(lr=schedules.CosineDecay(1e-2, decay_steps=20), amsgrad=True,
                                  weight_decay=1e-2), np.float32),
    "adamw_clipped": ("AdamW", dict(lr=3e-3, max_grad_norm=0.5, nonfinite="skip"), np.float64),
    "adagrad": ("Adagrad", dict(lr=0.1, lr_decay=0.01, eps=1e-8), np.float32),
}
SAVED_AT, RESUMED_FOR = 3, 2


def make_params(dtype):
    rng = np.random.default_rng(2026)
    return {"W1": rng.standard_normal((5, 4)).astype(dtype),
            "b1": np.zeros((5, 1), dtype=dtype),
            "W2": rng.standard_normal((1, 5)).astype(dtype)}


def grads(params, step):
    rng = np.random.default_rng(1000 + step)
    return {k: rng.standard_normal(a.shape).astype(a.dtype) for k, a in params.items()}


def build(impl, name):
    cls_name, kwargs, dtype = CASES[name]
    params = make_params(dtype)
    return params, getattr(impl, cls_name)(params, **kwargs)


def straight(impl, name, steps):
    params, opt = build(impl, name)
    for step in range(steps):
        opt.step(grads(params, step))
    return params, opt


def write():
    """Write the checkpoint files and their expected continuations (run by hand, once)."""
    os.makedirs(HERE, exist_ok=True)
    for name in CASES:
        params, opt = straight(fastopt, name, SAVED_AT)
        opt.save(os.path.join(HERE, f"{name}.npz"))
        for step in range(SAVED_AT, SAVED_AT + RESUMED_FOR):
            opt.step(grads(params, step))
        expected = {f"param.{k}": a for k, a in params.items()}
        expected.update({f"state.{s}.{k}": a for s in opt.state_names
                         for k, a in zip(params, [opt.state(s)[k] for k in params])})
        expected["t"] = np.array(opt.t)
        np.savez(os.path.join(HERE, f"{name}.expected.npz"), **expected)


@pytest.mark.parametrize("impl", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_an_earlier_checkpoint_loads_and_resumes(impl, name):
    params, opt = build(impl, name)
    opt.load(os.path.join(HERE, f"{name}.npz"))
    assert opt.t == SAVED_AT
    reference_params, reference_opt = straight(impl, name, SAVED_AT)
    for k in params:
        np.testing.assert_array_equal(params[k], reference_params[k])
    for s in reference_opt.state_names:
        for k in params:
            np.testing.assert_array_equal(opt.state(s)[k], reference_opt.state(s)[k])
    for step in range(SAVED_AT, SAVED_AT + RESUMED_FOR):
        opt.step(grads(params, step))
    with np.load(os.path.join(HERE, f"{name}.expected.npz")) as expected:
        assert opt.t == int(expected["t"])
        for k, a in params.items():
            np.testing.assert_array_equal(a, expected[f"param.{k}"])
        for key in expected.files:
            if key.startswith("state."):
                _, s, k = key.split(".")
                np.testing.assert_array_equal(opt.state(s)[k], expected[key])
    straight_params, _ = straight(impl, name, SAVED_AT + RESUMED_FOR)
    for k in params:
        np.testing.assert_array_equal(params[k], straight_params[k])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write()
