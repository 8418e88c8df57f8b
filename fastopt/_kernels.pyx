# cython: language_level=3
"""Fused, in-place optimizer kernels over contiguous float32/float64 buffers.

Every kernel here assumes *valid* input: the Python layer (``fastopt._validation``) has already
checked dtypes, shapes, contiguity, writeability, overlap and hyperparameter ranges, so the loops
run with bounds checks off and the GIL released.

The arithmetic contract (docs/contract.md §1) shapes every line:

* Each hyperparameter scalar arrives as a C double (a Python float) and is rounded **once** to the
  array dtype with ``<floating>``, exactly what NumPy 2 does for ``python_float * float32_array``
  (NEP 50). ``1.0 - beta`` is computed in double first, as Python computes ``1 - beta``.
* Each loop body evaluates the same expression tree, in the same order, as the NumPy reference in
  ``fastopt/reference/__init__.py``. ``a * b / c`` there is ``(a * b) / c`` here.
* ``float op float`` stays float in C on x86-64/aarch64 (FLT_EVAL_METHOD == 0), and the build turns
  off FMA contraction, so vector body, scalar tail and every SIMD width give the same bits.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.object cimport PyObject
from libc.math cimport fma, fmaf, frexp, isfinite, ldexp, pow, sqrt, sqrtf
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from numpy cimport intp_t

cnp.import_array()

import numpy as _np

# The kernels by concern, in dependency order: each file uses only what the files before it
# define. A new rule is one more file like sgd.pxi (its struct, loop, ``_pick_`` stages, range
# function and ``def`` entry point), its threshold in threads.pxi's table, its entry in
# fastopt/_dispatch.py and its signature in the .pyi stubs.
include "_pxi/threads.pxi"
include "_pxi/build.pxi"
include "_pxi/divisions.pxi"
include "_pxi/driver.pxi"
include "_pxi/half.pxi"
include "_pxi/sgd.pxi"
include "_pxi/momentum.pxi"
include "_pxi/rmsprop.pxi"
include "_pxi/adam.pxi"
include "_pxi/adagrad.pxi"
include "_pxi/fast_path.pxi"
include "_pxi/clipping.pxi"
include "_pxi/finite.pxi"
include "_pxi/mixed.pxi"
include "_pxi/ewa.pxi"
include "_pxi/gathers.pxi"
