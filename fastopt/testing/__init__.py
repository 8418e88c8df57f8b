"""Helpers to hold one floating-point implementation up to another, bit for bit or within ULPs.

These are the comparisons fastopt's own test suite uses. Hold your own optimizer (or another
library's) up to ``fastopt.reference`` with them:

>>> import numpy as np
>>> from fastopt.testing import assert_ulp_equal, ulp_distance
>>> a = np.float32([1.0, 2.0])
>>> ulp_distance(a, np.nextafter(a, np.float32(3)))
array([1, 1], dtype=uint64)
>>> assert_ulp_equal(a, a.copy())           # bit-identical: passes

Conventions
-----------
* Two NaNs match whatever their payloads (NumPy and C may propagate different NaN payloads when
  both operands are NaN; the contract is the same NaN *positions*). A NaN against a number is the
  largest distance.
* ``+0.0`` and ``-0.0`` are 0 ULP apart, but ``assert_ulp_equal`` with ``max_ulp=0`` (bitwise
  equality) still reports a differing sign of zero.
"""
from ._ulp import assert_ulp_equal, ulp_distance
from ._cases import Case, cases, trajectory
from ._conform import CaseResult, ConformanceReport, Divergence, check_update
from ._conform_adapters import from_fastopt, from_optax, from_torch

__all__ = ["ulp_distance", "assert_ulp_equal", "Case", "cases", "trajectory", "check_update",
           "ConformanceReport", "CaseResult", "Divergence", "from_torch", "from_optax",
           "from_fastopt"]
