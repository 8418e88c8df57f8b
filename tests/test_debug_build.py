"""A FASTOPT_DEBUG=1 build checks bounds: a kernel handed a short array raises instead of
reading past its end (the validation layer never lets that happen; this checks the safety net
that .ci/run builds and tests once)."""
import os
import sys

import numpy as np
import pytest

from fastopt import _dispatch

DEBUG_BUILD = "-O0" in _dispatch.kernels.CFLAGS


def test_the_build_ci_asked_for():
    """.ci/run sets FASTOPT_EXPECT_DEBUG=1 for its debug pass: a stale release build must not
    let the bounds checks go untested."""
    if os.environ.get("FASTOPT_EXPECT_DEBUG") == "1":
        assert DEBUG_BUILD, f"expected a FASTOPT_DEBUG=1 build, got {_dispatch.kernels.CFLAGS}"


@pytest.mark.skipif(not DEBUG_BUILD, reason="release build: bounds checks are off by design "
                                            "(build with FASTOPT_DEBUG=1 to run this)")
@pytest.mark.parametrize("variant", _dispatch.available())
def test_out_of_bounds_read_is_caught(variant):
    caught = []
    old = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        with _dispatch.using(variant):
            _dispatch.kernels.sgd(np.zeros(10, np.float32), np.zeros(5, np.float32), 0.1)
    finally:
        sys.unraisablehook = old
    assert caught and caught[0].exc_type is IndexError
