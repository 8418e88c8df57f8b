"""Build the fastopt extension; metadata lives in pyproject.toml.

Compiler flags are part of the arithmetic contract (../shared/SPEC.md section 1):

* ``-O3`` for speed, but never ``-ffast-math``/``-Ofast``: they reassociate, flush denormals to
  zero and break bit-identity with NumPy.
* ``-ffp-contract=off``: GCC contracts ``a*b + c`` into one fused multiply-add by default, which
  rounds once instead of twice and so differs from NumPy in the last bit.
* ``-fno-math-errno``: value-safe (``sqrt`` returns the same bits); it only lets GCC emit
  ``sqrtps``/``sqrtpd`` without a scalar errno branch, so the loops vectorise.

``-fopenmp``: large gathers (and, later, updates) split their outer loop over threads; every
output element is computed the same way whatever the split, so the bits never depend on it.

``FASTOPT_DEBUG=1`` turns Cython's bounds and initialisation checks back on and compiles with
``-O0 -g``: slower, but an out-of-bounds index raises instead of reading past an array.
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTOPT_DEBUG", "") not in ("", "0")

if sys.platform == "win32":
    # MSVC: /fp:precise is its default and never contracts across statements.
    COMPILE_ARGS = ["/Od" if DEBUG else "/O2", "/fp:precise", "/openmp"]
    LINK_ARGS = []
else:
    COMPILE_ARGS = ["-O0" if DEBUG else "-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp"]
    LINK_ARGS = ["-fopenmp"]
    if DEBUG:
        COMPILE_ARGS.append("-g")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension("fastopt._kernels", ["fastopt/_kernels.pyx"], extra_compile_args=COMPILE_ARGS,
              extra_link_args=LINK_ARGS, include_dirs=[numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
