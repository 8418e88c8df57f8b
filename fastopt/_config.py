"""``fastopt.show_config()``: what this installation runs."""
import sys

import numpy as np

from . import _dispatch, _threads
from ._version import __version__


def config():
    """The configuration as a dict (see :func:`show_config`)."""
    kernels = _dispatch.kernels
    return {
        "fastopt": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "simd_path": _dispatch.current,
        "simd_available": _dispatch.available(),
        "simd_env": f"{_dispatch.ENV_VAR} (baseline to force the portable path)",
        "cpu_avx2_fma": _dispatch.MODULES["baseline"].cpu_has_avx2(),
        "cpu_avx512": _dispatch.MODULES["baseline"].cpu_has_avx512(),
        "openmp": kernels.OPENMP,
        "threads": _threads.get_num_threads(),
        "threads_env": _threads.ENV_VAR,
        "max_threads": _threads.max_threads(),
        "openmp_processors": kernels.omp_num_procs(),
        "thread_thresholds": kernels.thread_thresholds(),
        "compile_flags": kernels.CFLAGS,
        "fma_divisions": kernels.fast_divisions(),
        "fma_divisions_up_to": kernels.FMA_DIVISIONS_UP_TO,
    }


def show_config(file=None):
    """Print the SIMD path in use, the thread count and the build flags.

    Examples
    --------
    >>> import fastopt
    >>> fastopt.show_config()  # doctest: +ELLIPSIS
    fastopt ...
      SIMD path        : ...
    """
    c = config()
    out = file or sys.stdout
    print(f"fastopt {c['fastopt']} (Python {c['python']}, NumPy {c['numpy']})", file=out)
    print(f"  SIMD path        : {c['simd_path']} (available: {', '.join(c['simd_available'])};"
          f" env {c['simd_env']})", file=out)
    avx512 = ("yes (F, VL, DQ; " + ("the avx512 variant is built" if "avx512" in
              c["simd_available"] else "no avx512 variant in this build: FASTOPT_AVX512=1 builds "
              "one, docs/contract.md §1") + ")") if c["cpu_avx512"] else "no"
    print(f"  CPU              : AVX2+FMA {'yes' if c['cpu_avx2_fma'] else 'no'}, AVX-512 "
          f"{avx512}", file=out)
    if c["openmp"]:
        print(f"  threads          : {c['threads']} (env {c['threads_env']}, 1 to "
              f"{c['max_threads']}; OpenMP sees {c['openmp_processors']} processors)", file=out)
    else:
        print(f"  threads          : 1 (serial build, compiled without OpenMP; "
              f"{c['threads_env']} and set_num_threads are accepted and have no effect)",
              file=out)
    thresholds = ", ".join(f"{k} {v}" for k, v in c["thread_thresholds"].items())
    print(f"  threads from     : {thresholds} items (take_rows: bytes)", file=out)
    print(f"  Adam bias divs   : "
          + (f"FMA sequence, no divider, up to {c['fma_divisions_up_to']:,} items (the divider "
             f"above)" if c["fma_divisions"] else "divider") + " (docs/contract.md §10)",
          file=out)
    print(f"  compile flags    : {c['compile_flags']}", file=out)
