# --- threads ----------------------------------------------------------------------------------
# The count is set from Python (fastopt._threads: FASTOPT_NUM_THREADS, set_num_threads); a kernel
# uses it only above its measured size threshold, below which waking a team costs more than it
# saves. Every kernel here computes each output element independently of the split, so the bits
# do not depend on the thread count.

cdef int _num_threads = 1


def set_num_threads(n):
    """Set the count (1 to ``MAX_THREADS``). fastopt._threads checks it first and words the
    error; this is the second line, O(1), so that no direct call can ask the OpenMP runtime for
    a team it cannot start (100000 threads crashed the process at the next large update)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, _np.integer)):
        raise TypeError(f"n must be an integer from 1 to {MAX_THREADS}, got "
                        f"{type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be an integer from 1 to {MAX_THREADS} (the most threads this "
                         f"build starts), got {n}")
    _num_threads = n


def get_num_threads():
    return _num_threads


# Not `cimport openmp`: that includes <omp.h> unconditionally, and a compiler without OpenMP
# (Apple clang) has no such header. setup.py passes -fopenmp only when a test program compiles
# and links with it; without it _OPENMP is undefined, prange runs its loop serially (Cython
# guards its pragmas with #ifdef _OPENMP) and the bits are the same.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTOPT_OPENMP 1
    #define fastopt_omp_num_procs() omp_get_num_procs()
    #define fastopt_omp_thread_limit() omp_get_thread_limit()
    #else
    #define FASTOPT_OPENMP 0
    #define fastopt_omp_num_procs() 0
    #define fastopt_omp_thread_limit() 1
    #endif
    """
    const int FASTOPT_OPENMP
    int fastopt_omp_num_procs() nogil
    int fastopt_omp_thread_limit() nogil


OPENMP = bool(FASTOPT_OPENMP)
"""True when built with OpenMP; False for a serial build (threads are then always 1)."""

HARD_MAX_THREADS = 1024
"""The most threads fastopt asks the OpenMP runtime for. A team of n threads costs the thread that
starts it stack space in proportion to n (libgomp puts each new thread's start data, on the order
of 100 bytes, on that stack with alloca): 100000 threads crashed the process with a segmentation
fault under the default 8 MiB stack, while 1024 need ~100 KiB. No
machine this runs on has more hardware threads than that, and the kernels are bound by memory
bandwidth, so a larger count could only be slower."""

MAX_THREADS = max(1, min(HARD_MAX_THREADS, fastopt_omp_thread_limit())) if OPENMP else \
    HARD_MAX_THREADS
"""The largest count ``set_num_threads`` accepts: ``HARD_MAX_THREADS``, or OpenMP's own thread
limit (``OMP_THREAD_LIMIT``) when lower. A serial build accepts the same counts (and runs one
thread), so that the same code runs on every build."""


def omp_num_procs():
    """Processors OpenMP sees (0 when built without OpenMP)."""
    return fastopt_omp_num_procs()


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t threshold) noexcept nogil:
    return _num_threads if work >= threshold else 1


# --- when each kernel splits over threads: the one table ----------------------------------------
# The first size at which 2 threads beat 1, measured on a 2-core machine, float32, AVX2, default
# options (us, 1 thread / 2 threads):
#   sgd       2**14: 1.9 / 2.4   2**15:  3.5 / 2.9   2**16:  6.0 /  4.3
#   momentum  2**14: 3.1 / 3.0   2**15:  6.4 / 4.7   2**16: 12.7 /  7.8
#   rmsprop   2**13: 3.0 / 2.9   2**14:  5.6 / 4.3   2**15: 10.7 /  6.8
#   adam      2**12: 2.9 / 3.0   2**13:  5.0 / 4.0   2**14:  9.6 /  6.3
# Below them a call stays serial (waking the team costs ~1.5 us). Adagrad does RMSProp's work
# and takes its threshold; the sum of squares reads one array, like sgd (and scaling, which
# writes one, takes sgd's).
# columns_into: rows split from 2**18 items (1 MiB of float32): below, the serial gather takes
# under ~0.3 ms and a team wake-up is a visible share of it. On (784, 60000) float32, 2 threads
# took 34 ms against 66 ms for one (X.copy(): 18 ms).
# take_rows (in bytes per call): whole rows are memcpy'd, so threads pay early: measured on rows
# of 784 float32 drawn from a (60000, 784) array, one epoch of batches of 4 / 16 / 64 rows took
# 42 / 26 / 23 ms on one thread and 35 / 17 / 12 ms on two; on 64-float rows, 4 KiB per call
# broke even and 8 KiB gained 10%.
cdef enum:
    _T_SGD, _T_MOMENTUM, _T_RMSPROP, _T_ADAM, _T_ADAGRAD, _T_SUMSQ, _T_COLUMNS_INTO, _T_TAKE_ROWS
    _T_COUNT

_THRESHOLDS = {"sgd": (_T_SGD, 1 << 15), "momentum": (_T_MOMENTUM, 1 << 15),
               "rmsprop": (_T_RMSPROP, 1 << 14), "adam": (_T_ADAM, 1 << 13),
               "adagrad": (_T_ADAGRAD, 1 << 14), "sumsq": (_T_SUMSQ, 1 << 15),
               "columns_into": (_T_COLUMNS_INTO, 1 << 18), "take_rows": (_T_TAKE_ROWS, 8192)}

# Items per call (bytes for take_rows) from which each kernel splits over threads.
cdef Py_ssize_t _threads_from[_T_COUNT]
for _slot, _value in _THRESHOLDS.values():
    _threads_from[_slot] = _value


def thread_thresholds():
    """Items per call from which each kernel splits over threads (bytes for take_rows)."""
    return {name: _threads_from[slot] for name, (slot, _) in _THRESHOLDS.items()}


def set_thread_threshold(str name, Py_ssize_t value):
    """Change one threshold (tests use 0 to force threads on small arrays)."""
    _threads_from[_THRESHOLDS[name][0]] = value
