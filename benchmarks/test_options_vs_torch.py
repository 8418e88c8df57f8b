"""The options of docs/contract.md §7–§8 against torch.optim, and the default Adam kernel before
and after they were added.

    pytest benchmarks/test_options_vs_torch.py --benchmark-json=options.json
    python benchmarks/tools/ratios.py options.json

Optimizers run in steady state (step count past 1000, see ``fastopt._apps.bench``), one float32 array
of ``n`` items, fastopt and torch at the same thread count. torch has no fused RMSprop, so RMSProp
is compared with ``foreach=True``. ``FASTOPT_BEFORE=DIR``, a folder where
``benchmarks/tools/build_before.py`` built an earlier commit's package (as ``fastopt_before``), adds
its Adam kernel to the ``default Adam kernel`` groups (before/after in one run); without it
those groups are skipped.
"""
import importlib

import numpy as np
import pytest

import fastopt
from fastopt import _dispatch, _scalars
from fastopt._apps import bench as _bench

SIZES = [1_000, 100_000, 1_000_000, 10_000_000]

# name -> (fastopt class and hyperparameters, torch class, torch hyperparameters, torch mode)
CASES = {
    "AdamW": ("AdamW", dict(weight_decay=0.01), "AdamW", dict(weight_decay=0.01), "fused"),
    "Adam amsgrad": ("Adam", dict(amsgrad=True), "Adam", dict(amsgrad=True), "fused"),
    "SGD nesterov": ("SGD", dict(momentum=0.9, nesterov=True), "SGD",
                     dict(momentum=0.9, nesterov=True), "fused"),
    "Adagrad": ("Adagrad", dict(), "Adagrad", dict(), "fused"),
    "RMSProp centered": ("RMSProp", dict(centered=True, momentum=0.9), "RMSprop",
                         dict(centered=True, momentum=0.9), "foreach"),
    "Adam max_grad_norm": ("Adam", dict(max_grad_norm=1.0), "Adam", dict(), "fused"),
}


def _fastopt_step(cls, hp, n):
    p, g = _bench.data(n, np.float32)
    opt = getattr(fastopt, cls)([p], lr=1e-3, **hp)
    grads = [g]
    opt.step(grads)
    opt.t = _bench.STEADY_STATE_STEP
    return lambda: opt.step(grads)


def _torch_step(cls, hp, mode, n, threads, clip=None):
    import torch
    torch.set_num_threads(threads)
    p0, g0 = _bench.data(n, np.float32)
    p = torch.from_numpy(p0)
    p.grad = torch.from_numpy(g0)
    opt = getattr(torch.optim, cls)([p], lr=1e-3, **{mode: True}, **hp)
    opt.step()
    if clip is None:
        return opt.step

    def step():
        torch.nn.utils.clip_grad_norm_([p], clip, foreach=True)
        opt.step()
    return step


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", ["fastopt", "torch"])
def test_option(benchmark, impl, case, n, threads):
    cls, hp, tcls, thp, mode = CASES[case]
    benchmark.group = f"{case} float32 n={n:.0e} threads={threads}"
    if impl == "torch":
        if not _bench.have_torch():
            pytest.skip("torch is not installed (pip install torch==2.13.0 to compare)")
        clip = 1.0 if "max_grad_norm" in hp else None
        benchmark(_torch_step(tcls, thp, mode, n, threads, clip))
        return
    with fastopt.num_threads(threads):
        benchmark(_fastopt_step(cls, hp, n))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("impl", ["fastopt", "torch"])
def test_clip_grad_norm(benchmark, impl, n, threads):
    """One gradient of n float32 items, max_norm large enough that nothing is scaled: the norm
    itself (torch's foreach implementation)."""
    benchmark.group = f"clip_grad_norm float32 n={n:.0e} threads={threads}"
    _, g = _bench.data(n, np.float32)
    if impl == "torch":
        if not _bench.have_torch():
            pytest.skip("torch is not installed")
        import torch
        torch.set_num_threads(threads)
        p = torch.zeros(n)
        p.grad = torch.from_numpy(g)
        benchmark(torch.nn.utils.clip_grad_norm_, [p], 1e30, foreach=True)
        return
    with fastopt.num_threads(threads):
        benchmark(fastopt.clip_grad_norm, [g], 1e30)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("impl", ["fastopt", "before"])
def test_default_adam_kernel(benchmark, impl, n, threads):
    """The default Adam kernel (no option on), steady state (first bias division skipped), called
    directly: this build against an earlier one, in one run."""
    benchmark.group = f"default Adam kernel float32 n={n:.0e} threads={threads}"
    p, g = _bench.data(n, np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    t = _bench.STEADY_STATE_STEP
    b1, b2 = _scalars.bias_divisor(0.9, t), _scalars.bias_divisor(0.999, t)
    if impl == "before":
        before = _bench.load_before()
        if before is None:
            pytest.skip("FASTOPT_BEFORE is not set (see benchmarks/tools/build_before.py)")
        old = importlib.import_module("fastopt_before._dispatch").kernels
        old.set_num_threads(threads)
        kernel = old.adam["float"]
        # The kernel's arguments grew with the options (issue 12): call a build from before them
        # with its own ten.
        args = (p, g, m, v, None, 1e-3, 0.9, 0.999, 1e-8, b1, b2, 0.0, False, False, 1.0)
        try:
            kernel(*args)
        except TypeError:
            args = (p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, b1, b2)
        benchmark(kernel, *args)
        return
    kernel = _dispatch.table["adam", np.dtype(np.float32)]
    with fastopt.num_threads(threads):
        benchmark(kernel, p, g, m, v, None, 1e-3, 0.9, 0.999, 1e-8, b1, b2, 0.0, False, False,
                  1.0)
