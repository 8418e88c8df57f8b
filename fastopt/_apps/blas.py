"""The thread count of the BLAS behind NumPy's matrix products (OpenBLAS), set at run time.

NumPy has no API for it. threadpoolctl does it when installed; otherwise the OpenBLAS library
already loaded into the process is found in ``/proc/self/maps`` (Linux) and its own getter and
setter are called through ctypes. Environment variables (``OPENBLAS_NUM_THREADS``) would be too
late: OpenBLAS reads them when NumPy is imported, before ``python -m fastopt`` parses options.
"""
import contextlib
import ctypes
import os

# Exported names: NumPy's wheels ship OpenBLAS with a "scipy_" prefix and a "64_" suffix (the
# 64-bit-integer build); a system OpenBLAS has the plain names.
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


def _openblas_functions():
    """(get, set) ctypes functions of the loaded OpenBLAS, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:  # not Linux
        return None
    for path in paths:
        if not os.path.isabs(path):
            continue
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing new is loaded
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    return get, put
    return None


@contextlib.contextmanager
def blas_threads(n):
    """Context manager: BLAS matrix products use ``n`` threads inside the block.

    Parameters
    ----------
    n : int
        >= 1.

    Yields
    ------
    bool
        True if the count was set; False if neither threadpoolctl nor a loaded OpenBLAS was
        found (the count then stays what ``OPENBLAS_NUM_THREADS`` said at start-up).
    """
    try:
        import threadpoolctl
    except ImportError:
        pass
    else:
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            yield True
        return
    functions = _openblas_functions()
    if functions is None:
        yield False
        return
    get, put = functions
    previous = get()
    put(int(n))
    try:
        yield True
    finally:
        put(previous)
