"""Runtime SIMD dispatch: which compiled variant of the kernels runs.

Every variant is the same ``_kernels.pyx`` compiled with different flags (see setup.py), so they
compute exactly the same bits; only speed differs. At import the best variant that was built and
that the CPU supports is chosen, unless ``FASTOPT_SIMD`` names another one (to force a lower path,
e.g. ``FASTOPT_SIMD=baseline``). ``use(name)`` switches at run time (the tests run every path).
"""
import contextlib
import functools
import importlib
import os
import warnings

import numpy as np

from . import _half
from . import _kernels as _baseline

ENV_VAR = "FASTOPT_SIMD"
ORDER = ("baseline", "avx2", "avx512")  # lowest to highest; avx512 only with FASTOPT_AVX512=1
_MODULE_NAMES = {"baseline": "fastopt._kernels", "avx2": "fastopt._kernels_avx2",
                 "avx512": "fastopt._kernels_avx512"}
_CPU_SUPPORTS = {"baseline": lambda: True, "avx2": _baseline.cpu_has_avx2,
                 "avx512": _baseline.cpu_has_avx512}


def _load_available():
    modules = {}
    for name in ORDER:
        if not _CPU_SUPPORTS[name]():
            continue
        try:
            modules[name] = importlib.import_module(_MODULE_NAMES[name])
        except ImportError:  # not built for this platform (e.g. avx2 on aarch64)
            continue
    return modules


MODULES = _load_available()
"""Variant name -> kernel module, for every variant built and supported by this CPU."""


def available():
    """Names of the variants this machine can run, lowest first."""
    return list(MODULES)


def _initial():
    requested = os.environ.get(ENV_VAR, "").strip().lower()
    if not requested:
        return available()[-1]
    if requested not in ORDER:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(ORDER)}, got {requested!r}")
    if requested not in MODULES:
        fallback = available()[-1]
        warnings.warn(f"{ENV_VAR}={requested} is not available on this machine (available: "
                      f"{', '.join(available())}); using {fallback}", RuntimeWarning,
                      stacklevel=2)
        return fallback
    return requested


# The float and double specialisations of each fused kernel. Calling a specialisation directly
# skips Cython's fused-type dispatch, measured at 0.7 us of a 1.85 us call (Adam, 1000 float32).
FUSED = ("sgd", "momentum", "rmsprop", "adam", "adagrad", "sumsq", "sumsq_blocks", "scale", "ewa",
         "all_finite", "as_view")
_SPECIALISATION = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _table(module):
    table = {(rule, dtype): getattr(module, rule)[name]
             for rule in FUSED for dtype, name in _SPECIALISATION.items()}
    table.update(_half_entries(module))
    return table


_HALF_RULES = ("sgd", "momentum", "rmsprop", "adam", "adagrad", "all_finite", "sumsq",
               "sumsq_blocks")


def _half_entries(module):
    """(name, "bfloat16"/"float16") -> the 16-bit parameter kernels (docs/contract.md §14):
    ``module.<name>_half`` with its first argument, the format (``f16``), bound by
    ``functools.partial`` (implemented in C; on this loaded 2-core machine its cost was lost in
    the noise of a 16-item Adam call's 7-10 us)."""
    entries = {}
    for kind in _half.KINDS:
        f16 = kind == _half.F16
        for name in _HALF_RULES:
            entries[name, kind] = functools.partial(getattr(module, f"{name}_half"), f16)
        entries["as_view", kind] = module.as_view_half
    return entries


current = _initial()
kernels = MODULES[current]
"""The kernel module in use; fastopt._ops calls through this name."""
table = _table(kernels)
"""(rule, dtype) -> specialised kernel of the module in use; a new dict after each switch."""


def use(name):
    """Switch every kernel call to variant ``name`` (one of :func:`available`)."""
    global current, kernels, table
    if name not in MODULES:
        raise ValueError(f"SIMD variant {name!r} is not available here; choose from "
                         f"{', '.join(available())}")
    current, kernels, table = name, MODULES[name], _table(MODULES[name])


@contextlib.contextmanager
def using(name):
    """Context manager: run the block on variant ``name``, then switch back."""
    previous = current
    use(name)
    try:
        yield
    finally:
        use(previous)
