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
import platform
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

# Runtime SIMD dispatch: the same kernels are compiled once portably (x86-64: SSE2) and once
# more per instruction-set variant; fastopt._dispatch imports the best one the CPU supports.
# Measured on this AMD EPYC (Zen 4), Adam float32 at 1e6 items, one thread: SSE2 1031 us,
# AVX2 522 us, AVX-512 (512-bit vectors) 502 us; at 1e7: 10.6, 5.9, 6.1 ms. The updates are
# bound by the divider, which is 256 bits wide here, so an AVX-512 variant does not pay off and
# is not built. -mavx2 does not enable FMA (and -ffp-contract=off would forbid contracting).
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
VARIANTS = {"baseline": ("fastopt._kernels", "fastopt/_kernels.pyx", [])}
if X86:
    VARIANTS["avx2"] = ("fastopt._kernels_avx2", "fastopt/_kernels_avx2.pyx",
                        ["/arch:AVX2"] if sys.platform == "win32" else ["-mavx2"])


def _quoted(text):
    return '"' + text.replace('"', "'") + '"'


extensions = [
    Extension(name, [source], extra_compile_args=COMPILE_ARGS + flags,
              extra_link_args=LINK_ARGS, include_dirs=[numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
                             ("FASTOPT_VARIANT", _quoted(variant)),
                             ("FASTOPT_CFLAGS", _quoted(" ".join(COMPILE_ARGS + flags)))])
    for variant, (name, source, flags) in VARIANTS.items()
]

# Each mode generates its C into its own directory: cythonize does not notice a change of
# directives, so a shared directory would let a debug build reuse release C (no bounds checks)
# or the other way round.
setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES,
                            build_dir="build/cython-debug" if DEBUG else "build/cython-release"))
