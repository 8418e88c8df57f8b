"""Build the fastopt extension; metadata lives in pyproject.toml.

Compiler flags are part of the arithmetic contract (docs/contract.md §1):

* ``-O3`` for speed, but never ``-ffast-math``/``-Ofast``: they reassociate, flush denormals to
  zero and break bit-identity with NumPy.
* ``-ffp-contract=off``: GCC contracts ``a*b + c`` into one fused multiply-add by default, which
  rounds once instead of twice and so differs from NumPy in the last bit.
* ``-fno-math-errno``: value-safe (``sqrt`` returns the same bits); it only lets GCC emit
  ``sqrtps``/``sqrtpd`` without a scalar errno branch, so the loops vectorise.

``-fopenmp``: large gathers and updates split their outer loop over threads; every output element
is computed the same way whatever the split, so the bits never depend on it. It is passed only if
the compiler compiles and links a small OpenMP program with it (Apple clang cannot); otherwise the
kernels build serial (same bits, threads report 1). ``FASTOPT_OPENMP=0`` forces the serial build.

``FASTOPT_DEBUG=1`` turns Cython's bounds and initialisation checks back on and compiles with
``-O0 -g``: slower, but an out-of-bounds index raises instead of reading past an array.
``FASTOPT_SANITIZE=address`` compiles and links with AddressSanitizer (GCC/clang); run it with
``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``, as .ci/run does.
"""
import glob
import os
import shutil
import sys
import sysconfig
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTOPT_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("FASTOPT_SANITIZE", "")
WANT_OPENMP = os.environ.get("FASTOPT_OPENMP", "") != "0"
if SANITIZE not in ("", "address"):
    sys.exit(f"FASTOPT_SANITIZE must be 'address' or unset, got {SANITIZE!r}")

if sys.platform == "win32":
    # MSVC: /fp:precise is its default and never contracts across statements.
    COMPILE_ARGS = ["/Od" if DEBUG else "/O2", "/fp:precise"]
    LINK_ARGS = []
    OPENMP_COMPILE, OPENMP_LINK = ["/openmp"], []
else:
    # -g0 overrides the -g in Python's own CFLAGS: debug information was 1.56 of the 1.94 MB of
    # each module (GCC 12, x86-64), and a release wheel does not need it.
    COMPILE_ARGS = ["-O0" if DEBUG else "-O3", "-ffp-contract=off", "-fno-math-errno",
                    "-g" if DEBUG or SANITIZE else "-g0"]
    LINK_ARGS = []
    OPENMP_COMPILE, OPENMP_LINK = ["-fopenmp"], ["-fopenmp"]
    if SANITIZE:
        COMPILE_ARGS += [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"]
        LINK_ARGS += [f"-fsanitize={SANITIZE}"]

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
# An AVX-512 variant is built only on request (FASTOPT_AVX512=1, below): on an AMD EPYC (Zen 4)
# it made Adam 1.05-1.18x faster at 1e5-1e6 float32 items but SGD 0.91-0.94x slower
# (docs/contract.md §1, "The avx512 variant is opt-in", has the table).
# The avx2 variant also gets -mfma, and the CPU must have both: Adam's divisions by its bias
# corrections use explicit fma() there (docs/contract.md §10). -ffp-contract=off still forbids
# the compiler to contract a*b + c on its own, so every other expression keeps its two
# roundings.
# The target's architecture, not the build machine's: cibuildwheel builds macOS arm64 wheels on
# x86_64 runners and says so in _PYTHON_HOST_PLATFORM, which sysconfig.get_platform() reads.
X86 = sysconfig.get_platform().rsplit("-", 1)[-1].lower() in ("x86_64", "amd64", "i686", "win32")
VARIANTS = {"baseline": ("fastopt._kernels", "fastopt/_kernels.pyx", [])}
if X86:
    VARIANTS["avx2"] = ("fastopt._kernels_avx2", "fastopt/_kernels_avx2.pyx",
                        ["/arch:AVX2"] if sys.platform == "win32" else ["-mavx2", "-mfma"])
# FASTOPT_AVX512=1 also builds an avx512 variant (-mprefer-vector-width=512: the loops in
# 512-bit vectors, whatever the tuning prefers), preferred by dispatch on a CPU and OS with
# AVX-512 F/VL/DQ; it is not part of a default build or a wheel. .ci/run tests it where the CPU
# has AVX-512.
if X86 and os.environ.get("FASTOPT_AVX512", "") not in ("", "0") and sys.platform != "win32":
    VARIANTS["avx512"] = ("fastopt._kernels_avx512", "fastopt/_kernels_avx512.pyx",
                          ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512dq",
                           "-mprefer-vector-width=512"])

OPENMP_PROBE = """#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_num_procs() > 0 ? 0 : 1;
}
"""


def has_openmp(compiler):
    """Whether ``compiler`` compiles and links OPENMP_PROBE (not run: wheels may be cross-built)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=OPENMP_COMPILE)
            compiler.link_executable(objects, os.path.join(tmp, "probe"),
                                     extra_postargs=OPENMP_LINK)
        except Exception:  # CompileError or LinkError, whatever the compiler
            return False
    return True


def _quoted(text):
    return '"' + text.replace('"', "'") + '"'


class BuildExt(build_ext):
    """Probes OpenMP with the compiler the build will use, then cythonizes and compiles.

    Cythonizing here rather than at import keeps ``python -m build --sdist`` from generating C.
    """

    def build_extensions(self):
        openmp = WANT_OPENMP and has_openmp(self.compiler)
        if not openmp:
            print("fastopt: building serial kernels (" + ("FASTOPT_OPENMP=0" if not WANT_OPENMP
                  else "the compiler has no OpenMP") + ")")
        for ext in self.extensions:
            if openmp:
                ext.extra_compile_args += OPENMP_COMPILE
                ext.extra_link_args += OPENMP_LINK
            ext.define_macros.append(("FASTOPT_CFLAGS", _quoted(" ".join(ext.extra_compile_args))))
        # Each mode generates its C into its own directory: cythonize does not notice a change of
        # directives, so a shared directory would let a debug build reuse release C (no bounds
        # checks) or the other way round.
        for ext in self.extensions:
            ext.sources = cythonize([ext], compiler_directives=DIRECTIVES, build_dir=(
                "build/cython-debug" if DEBUG else "build/cython-release"))[0].sources
        super().build_extensions()
        self._place_beside_sources()

    def _place_beside_sources(self):
        """Leave this build's compiled modules in the checkout's fastopt/, and only them.

        ``pip install . && python -m fastopt``, typed in the checkout as the README says, runs
        the checkout's ``fastopt/`` (Python puts the current directory first on ``sys.path``),
        not the installed copy: without compiled modules beside the sources it failed to import
        ``_kernels``. So a regular install also copies them there, as an editable one builds
        them there. Modules of a variant this build did not make (an earlier
        ``FASTOPT_AVX512=1`` build's, say) are removed: dispatch would import them, stale.
        Nothing is done where the folder cannot be written (a read-only checkout)."""
        root = os.path.dirname(os.path.abspath(__file__))
        targets = {os.path.join(root, self.get_ext_filename(ext.name)): self.get_ext_fullpath(
            ext.name) for ext in self.extensions}
        try:
            for target, built in targets.items():
                if os.path.abspath(built) != os.path.abspath(target):
                    shutil.copyfile(built, target)
            for stale in glob.glob(os.path.join(root, "fastopt", "_kernels*.so")) + glob.glob(
                    os.path.join(root, "fastopt", "_kernels*.pyd")):
                if stale not in targets:
                    os.remove(stale)
        except OSError as exc:
            print(f"fastopt: compiled modules not placed beside the sources ({exc})")


extensions = [
    Extension(name, [source], extra_compile_args=COMPILE_ARGS + flags,
              extra_link_args=list(LINK_ARGS), include_dirs=[numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
                             ("FASTOPT_VARIANT", _quoted(variant))])
    for variant, (name, source, flags) in VARIANTS.items()
]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
