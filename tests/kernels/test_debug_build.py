"""The kernels' second line: a kernel handed an array shorter than the parameter raises
``ValueError`` instead of reading or writing past its end, in every build (the validation layer
never lets that happen; this checks the safety net). .ci/run also builds once with
FASTOPT_DEBUG=1 (Cython's bounds checks on) and runs the kernel-level tests against it."""
import os

import numpy as np
import pytest

from fastopt import _dispatch

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

DEBUG_BUILD = "-O0" in _dispatch.kernels.CFLAGS


def test_the_build_ci_asked_for():
    """.ci/run sets FASTOPT_EXPECT_DEBUG=1 for its debug pass: a stale release build must not
    let the bounds checks go untested."""
    if os.environ.get("FASTOPT_EXPECT_DEBUG") == "1":
        assert DEBUG_BUILD, f"expected a FASTOPT_DEBUG=1 build, got {_dispatch.kernels.CFLAGS}"


def _calls(short, full):
    z = np.zeros
    n = full
    return {
        "sgd": lambda k: k.sgd(z(n), z(short), None, 0.1, 0.0, 0.0, 0.0, False, False, False,
                               1.0),
        "sgd buffer": lambda k: k.sgd(z(n), z(n), z(short), 0.1, 0.0, 0.9, 0.0, False, False,
                                      False, 1.0),
        "momentum": lambda k: k.momentum(z(n), z(n), z(short), 0.1, 0.9, 0.0, False, False, 1.0),
        "rmsprop": lambda k: k.rmsprop(z(n), z(n), z(n), z(short), None, 0.1, 0.9, 1e-8, 0.0,
                                       0.0, False, 1.0),
        "adam": lambda k: k.adam(z(n), z(n), z(n), z(n), z(short), 0.1, 0.9, 0.999, 1e-8, 0.1,
                                 0.001, 0.0, False, False, 1.0),
        "adam grad": lambda k: k.adam(z(n), z(short), z(n), z(n), None, 0.1, 0.9, 0.999, 1e-8,
                                      0.1, 0.001, 0.0, False, False, 1.0),
        "adagrad": lambda k: k.adagrad(z(n), z(n), z(short), 0.1, 1e-10, 0.0, False, 1.0),
        "ewa": lambda k: k.ewa(z(n), z(short), 0.9, False),
    }


@pytest.mark.parametrize("variant", _dispatch.available())
@pytest.mark.parametrize("name", sorted(_calls(5, 10)))
def test_a_short_array_is_refused_by_the_kernel(variant, name):
    with pytest.raises(ValueError, match="has 5 items; expected 10"):
        _calls(5, 10)[name](_dispatch.MODULES[variant])
