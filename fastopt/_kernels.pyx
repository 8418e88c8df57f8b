# cython: language_level=3
"""Fused, in-place optimizer kernels over contiguous float32/float64 buffers.

Every kernel here assumes *valid* input: the Python layer (``fastopt._validation``) has already
checked dtypes, shapes, contiguity, writeability, overlap and hyperparameter ranges, so the loops
run with bounds checks off and the GIL released.

The arithmetic contract (../shared/SPEC.md section 1) shapes every line:

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
from libc.math cimport pow, sqrt, sqrtf
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from numpy cimport intp_t

cnp.import_array()


# --- threads ----------------------------------------------------------------------------------
# The count is set from Python (fastopt._threads: FASTOPT_NUM_THREADS, set_num_threads); a kernel
# uses it only above its measured size threshold, below which waking a team costs more than it
# saves. Every kernel here computes each output element independently of the split, so the bits
# do not depend on the thread count.

cdef int _num_threads = 1


def set_num_threads(int n):
    global _num_threads
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
    #else
    #define FASTOPT_OPENMP 0
    #define fastopt_omp_num_procs() 0
    #endif
    """
    const int FASTOPT_OPENMP
    int fastopt_omp_num_procs() nogil


OPENMP = bool(FASTOPT_OPENMP)
"""True when built with OpenMP; False for a serial build (threads are then always 1)."""


def omp_num_procs():
    """Processors OpenMP sees (0 when built without OpenMP)."""
    return fastopt_omp_num_procs()


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t threshold) noexcept nogil:
    return _num_threads if work >= threshold else 1


def thread_thresholds():
    """Items per call from which each kernel splits over threads (bytes for take_rows)."""
    return {"sgd": _SGD_THREADS_FROM, "momentum": _MOMENTUM_THREADS_FROM,
            "rmsprop": _RMSPROP_THREADS_FROM, "adam": _ADAM_THREADS_FROM,
            "columns_into": _GATHER_THREADS_FROM, "take_rows": _TAKE_ROWS_THREADS_FROM_BYTES}


def set_thread_threshold(str name, Py_ssize_t value):
    """Change one threshold (tests use 0 to force threads on small arrays)."""
    global _SGD_THREADS_FROM, _MOMENTUM_THREADS_FROM, _RMSPROP_THREADS_FROM
    global _ADAM_THREADS_FROM, _GATHER_THREADS_FROM, _TAKE_ROWS_THREADS_FROM_BYTES
    if name == "sgd":
        _SGD_THREADS_FROM = value
    elif name == "momentum":
        _MOMENTUM_THREADS_FROM = value
    elif name == "rmsprop":
        _RMSPROP_THREADS_FROM = value
    elif name == "adam":
        _ADAM_THREADS_FROM = value
    elif name == "columns_into":
        _GATHER_THREADS_FROM = value
    elif name == "take_rows":
        _TAKE_ROWS_THREADS_FROM_BYTES = value
    else:
        raise KeyError(name)


# --- what this build is ---------------------------------------------------------------------

cdef extern from *:
    """
    #ifndef FASTOPT_VARIANT
    #define FASTOPT_VARIANT "baseline"
    #endif
    #ifndef FASTOPT_CFLAGS
    #define FASTOPT_CFLAGS ""
    #endif
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    static int fastopt_cpu_has_avx2(void) {
        __builtin_cpu_init();
        /* libgcc also checks that the OS saves the AVX state (XGETBV). */
        return __builtin_cpu_supports("avx2");
    }
    #else
    static int fastopt_cpu_has_avx2(void) { return 0; }
    #endif
    """
    const char* FASTOPT_VARIANT
    const char* FASTOPT_CFLAGS
    int fastopt_cpu_has_avx2() nogil


VARIANT = FASTOPT_VARIANT.decode()
"""The instruction-set variant this module was compiled for ("baseline", "avx2")."""
CFLAGS = FASTOPT_CFLAGS.decode()
"""The compiler flags this module was compiled with."""


def cpu_has_avx2():
    """True when the CPU (and the OS) support AVX2."""
    return bool(fastopt_cpu_has_avx2())


cdef inline floating _sqrt(floating x) noexcept nogil:
    # sqrtf for float: correctly rounded like NumPy's float32 sqrt, and it vectorises to sqrtps.
    # (sqrt((double)x) rounded to float gives the same bits, but is half the SIMD width.)
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# --- the updates -------------------------------------------------------------------------------
#
# Each rule is one ``*_range`` loop over [start, stop), written once over ``floating``, and a
# driver that runs it on the whole array, or on one contiguous chunk per thread above the rule's
# measured threshold. Scalars are rounded once, in the driver, before any thread starts.

cdef inline Py_ssize_t _chunk_size(Py_ssize_t n, int nt) noexcept nogil:
    # One contiguous chunk per thread, a multiple of 16 items (64 bytes of float32) so that two
    # threads never write the same cache line. In the prange bodies below, start and stop must
    # be assigned directly (not through a pointer): that is what makes Cython keep them
    # thread-private.
    return ((n + nt - 1) // nt + 15) // 16 * 16


cdef void _sgd_range(floating[::1] p, const floating[::1] g, floating lr,
                     Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, stop):
        p[i] = p[i] - lr * g[i]


cdef void _momentum_range(floating[::1] p, const floating[::1] g, floating[::1] v,
                          floating lr, floating b, floating c,
                          Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating vi
    for i in range(start, stop):
        vi = b * v[i] + c * g[i]
        v[i] = vi
        p[i] = p[i] - lr * vi


cdef void _rmsprop_range(floating[::1] p, const floating[::1] g, floating[::1] s,
                         floating lr, floating b, floating c, floating e,
                         Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, si
    for i in range(start, stop):
        gi = g[i]
        si = b * s[i] + c * (gi * gi)
        s[i] = si
        p[i] = p[i] - (lr * gi) / (_sqrt(si) + e)


cdef inline void _adam_item(floating[::1] p, const floating[::1] g, floating[::1] m,
                            floating[::1] v, Py_ssize_t i, floating lr, floating b1, floating c1,
                            floating b2, floating c2, floating e, floating d1, floating d2,
                            bint divide1, bint divide2) noexcept nogil:
    cdef floating gi = g[i]
    cdef floating mi = b1 * m[i] + c1 * gi
    cdef floating vi = b2 * v[i] + c2 * (gi * gi)
    m[i] = mi
    v[i] = vi
    # Divisions, not multiplications by a reciprocal: x / d and x * (1/d) differ in the last
    # bit for about a third of inputs, and the reference divides.
    if divide1:
        mi = mi / d1
    if divide2:
        vi = vi / d2
    p[i] = p[i] - (lr * mi) / (_sqrt(vi) + e)


cdef void _adam_range(floating[::1] p, const floating[::1] g, floating[::1] m,
                      floating[::1] v, floating lr, floating b1, floating c1, floating b2,
                      floating c2, floating e, floating d1, floating d2,
                      Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    # A bias correction that rounds to exactly 1 (float32, beta1 = 0.9: from step 160 on;
    # float64: from step 355) makes its division a no-op, x / 1 == x bit for bit, NaN and -0.0
    # included: skip it (float32, 1e6 items, AVX2: 521 us with both divisions, 402 us without
    # the first). Four loops with constant flags, each branch-free once _adam_item is inlined:
    # leaving GCC to unswitch one loop with the tests inside vectorised the float32 versions
    # but not all float64 ones (6.4 ms instead of ~1 ms at 1e6).
    cdef Py_ssize_t i
    if d1 != 1 and d2 != 1:
        for i in range(start, stop):
            _adam_item(p, g, m, v, i, lr, b1, c1, b2, c2, e, d1, d2, True, True)
    elif d2 != 1:
        for i in range(start, stop):
            _adam_item(p, g, m, v, i, lr, b1, c1, b2, c2, e, d1, d2, False, True)
    elif d1 != 1:
        for i in range(start, stop):
            _adam_item(p, g, m, v, i, lr, b1, c1, b2, c2, e, d1, d2, True, False)
    else:
        for i in range(start, stop):
            _adam_item(p, g, m, v, i, lr, b1, c1, b2, c2, e, d1, d2, False, False)


# Thread thresholds (items per call): the first size at which 2 threads beat 1, measured on this
# 2-core machine, float32, AVX2 (us, 1 thread / 2 threads):
#   sgd       2**14: 1.9 / 2.4   2**15:  3.5 / 2.9   2**16:  6.0 /  4.3
#   momentum  2**14: 3.1 / 3.0   2**15:  6.4 / 4.7   2**16: 12.7 /  7.8
#   rmsprop   2**13: 3.0 / 2.9   2**14:  5.6 / 4.3   2**15: 10.7 /  6.8
#   adam      2**12: 2.9 / 3.0   2**13:  5.0 / 4.0   2**14:  9.6 /  6.3
# Below them a call stays serial (waking the team costs ~1.5 us).
cdef Py_ssize_t _SGD_THREADS_FROM = 1 << 15
cdef Py_ssize_t _MOMENTUM_THREADS_FROM = 1 << 15
cdef Py_ssize_t _RMSPROP_THREADS_FROM = 1 << 14
cdef Py_ssize_t _ADAM_THREADS_FROM = 1 << 13


def sgd(floating[::1] p, const floating[::1] g, double lr):
    """p = p - lr*g, in place over 1-D contiguous views."""
    cdef Py_ssize_t n = p.shape[0], c, start, stop, size
    cdef floating lr_ = <floating>lr
    cdef int nt = _threads_for(n, _SGD_THREADS_FROM)
    with nogil:
        if nt == 1:
            _sgd_range(p, g, lr_, 0, n)
        else:
            size = _chunk_size(n, nt)
            for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                start = min(c * size, n)
                stop = min(start + size, n)
                _sgd_range(p, g, lr_, start, stop)


def momentum(floating[::1] p, const floating[::1] g, floating[::1] v, double lr, double beta):
    """v = beta*v + (1-beta)*g; p = p - lr*v, in place over 1-D contiguous views."""
    cdef Py_ssize_t n = p.shape[0], c, start, stop, size
    cdef floating lr_ = <floating>lr, b = <floating>beta, cb = <floating>(1.0 - beta)
    cdef int nt = _threads_for(n, _MOMENTUM_THREADS_FROM)
    with nogil:
        if nt == 1:
            _momentum_range(p, g, v, lr_, b, cb, 0, n)
        else:
            size = _chunk_size(n, nt)
            for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                start = min(c * size, n)
                stop = min(start + size, n)
                _momentum_range(p, g, v, lr_, b, cb, start, stop)


def rmsprop(floating[::1] p, const floating[::1] g, floating[::1] s,
            double lr, double beta, double eps):
    """s = beta*s + (1-beta)*g*g; p = p - lr*g / (sqrt(s) + eps), in place."""
    cdef Py_ssize_t n = p.shape[0], c, start, stop, size
    cdef floating lr_ = <floating>lr, b = <floating>beta, cb = <floating>(1.0 - beta)
    cdef floating e = <floating>eps
    cdef int nt = _threads_for(n, _RMSPROP_THREADS_FROM)
    with nogil:
        if nt == 1:
            _rmsprop_range(p, g, s, lr_, b, cb, e, 0, n)
        else:
            size = _chunk_size(n, nt)
            for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                start = min(c * size, n)
                stop = min(start + size, n)
                _rmsprop_range(p, g, s, lr_, b, cb, e, start, stop)


def adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
         double lr, double beta1, double beta2, double eps, double bias1, double bias2):
    """Adam step in place; bias1 = 1 - beta1**t and bias2 = 1 - beta2**t come from Python."""
    cdef Py_ssize_t n = p.shape[0], c, start, stop, size
    cdef floating lr_ = <floating>lr, e = <floating>eps
    cdef floating b1 = <floating>beta1, c1 = <floating>(1.0 - beta1)
    cdef floating b2 = <floating>beta2, c2 = <floating>(1.0 - beta2)
    # bias1 and bias2 were computed by Python (float.__pow__), rounded once here.
    cdef floating d1 = <floating>bias1, d2 = <floating>bias2
    cdef int nt = _threads_for(n, _ADAM_THREADS_FROM)
    with nogil:
        if nt == 1:
            _adam_range(p, g, m, v, lr_, b1, c1, b2, c2, e, d1, d2, 0, n)
        else:
            size = _chunk_size(n, nt)
            for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                start = min(c * size, n)
                stop = min(start + size, n)
                _adam_range(p, g, m, v, lr_, b1, c1, b2, c2, e, d1, d2, start, stop)


# --- views ---------------------------------------------------------------------------------------

def as_view(floating[::1] x):
    """``x`` as this module's typed memoryview. The kernels take such an object without a new
    buffer request: the optimizers keep their own arrays this way (measured per Adam call on four
    arrays: 0.55 us from ndarrays, 0.28 us from memoryviews)."""
    return x


# --- non-finite check ----------------------------------------------------------------------------

cdef bint _all_finite(const floating[::1] x) noexcept nogil:
    # Test the exponent bits (all ones means inf or NaN) with an integer OR that vectorises,
    # 4096 items at a time, so a non-finite value near the start returns early.
    cdef Py_ssize_t i, start, stop, n = x.shape[0]
    cdef const uint32_t* b32
    cdef const uint64_t* b64
    cdef uint32_t bad32
    cdef uint64_t bad64
    if n == 0:
        return True
    start = 0
    while start < n:
        stop = start + 4096 if start + 4096 < n else n
        if floating is float:
            b32 = <const uint32_t*>&x[0]
            bad32 = 0
            for i in range(start, stop):
                bad32 |= <uint32_t>((b32[i] & 0x7f800000u) == 0x7f800000u)
            if bad32:
                return False
        else:
            b64 = <const uint64_t*>&x[0]
            bad64 = 0
            for i in range(start, stop):
                bad64 |= <uint64_t>((b64[i] & 0x7ff0000000000000u) == 0x7ff0000000000000u)
            if bad64:
                return False
        start = stop
    return True


def all_finite(const floating[::1] x):
    """True when no item of ``x`` is inf or NaN (True for an empty array)."""
    cdef bint result
    with nogil:
        result = _all_finite(x)
    return result


# --- exponentially weighted average (a serial recurrence: one thread, no SIMD) -----------------

cdef void _ewa(const floating[:] x, floating[:] out, double beta, bint bias_correction) noexcept nogil:
    cdef Py_ssize_t k, n = x.shape[0]
    cdef floating b = <floating>beta
    cdef floating c = <floating>(1.0 - beta)
    cdef floating v = 0
    cdef floating d
    for k in range(n):
        v = b * v + c * x[k]
        if bias_correction:
            # 1 - beta**(k+1) in double with C pow, as Python's float.__pow__ computes it, then
            # rounded once. Once it rounds to exactly 1 it stays 1 (beta**k only shrinks), and
            # v / 1 == v bit for bit, so the remaining pow calls (~20 ns each) can be skipped:
            # for beta = 0.9 in float32 that is after 165 values.
            d = <floating>(1.0 - pow(beta, <double>(k + 1)))
            if d == 1:
                bias_correction = False
            out[k] = v / d
        else:
            out[k] = v


def ewa(const floating[:] x, floating[:] out, double beta, bint bias_correction):
    """out[k] = v_k (optionally / (1 - beta**(k+1))), v_k = beta*v_{k-1} + (1-beta)*x[k]."""
    with nogil:
        _ewa(x, out, beta, bias_correction)


# --- mini-batch gathers: copy bits, whatever the dtype ------------------------------------------
#
# The gathers move items by their size (1, 2, 4, 8 bytes as unsigned integers, anything else with
# memcpy), so float data is copied bit for bit and bool/int labels go through the same code. The
# source may have any strides (it is only read); outputs are C-contiguous.

ctypedef fused item_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef void _column_row(const char* row, Py_ssize_t col_stride, const intp_t* perm, Py_ssize_t m,
                     Py_ssize_t i, Py_ssize_t batch, item_t** blocks) noexcept nogil:
    # One source row (240 KB for 60000 float32 columns) stays in L2 while it is read at random;
    # each batch receives one contiguous bk-item run (row i of its block). Gathering batch by
    # batch instead costs a cache miss per item.
    cdef Py_ssize_t j, bk, k = 0, k0 = 0
    cdef item_t* dst
    while k0 < m:
        bk = batch if m - k0 > batch else m - k0
        dst = blocks[k] + i * bk
        for j in range(bk):
            dst[j] = (<const item_t*>(row + perm[k0 + j] * col_stride))[0]
        k0 += batch
        k += 1


cdef void _column_row_bytes(const char* row, Py_ssize_t col_stride, const intp_t* perm,
                            Py_ssize_t m, Py_ssize_t i, Py_ssize_t batch, char** blocks,
                            Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t j, bk, k = 0, k0 = 0
    cdef char* dst
    while k0 < m:
        bk = batch if m - k0 > batch else m - k0
        dst = blocks[k] + i * bk * itemsize
        for j in range(bk):
            memcpy(dst + j * itemsize, row + perm[k0 + j] * col_stride, itemsize)
        k0 += batch
        k += 1


cdef void _columns_typed(const char* src, Py_ssize_t n_rows, Py_ssize_t row_stride,
                         Py_ssize_t col_stride, const intp_t* perm, Py_ssize_t m,
                         Py_ssize_t batch, item_t** blocks, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    for i in prange(n_rows, num_threads=n_threads, schedule="static"):
        _column_row(src + i * row_stride, col_stride, perm, m, i, batch, blocks)


cdef void _columns_into(const char* src, Py_ssize_t n_rows, Py_ssize_t row_stride,
                        Py_ssize_t col_stride, const intp_t* perm, Py_ssize_t m,
                        Py_ssize_t batch, char** blocks, Py_ssize_t itemsize,
                        int n_threads) noexcept nogil:
    # Items of 1, 2, 4 and 8 bytes move as unsigned integers (the cast picks the
    # specialisation); any other size item by item with memcpy.
    cdef Py_ssize_t i
    if itemsize == 1:
        _columns_typed(src, n_rows, row_stride, col_stride, perm, m, batch,
                       <uint8_t**>blocks, n_threads)
    elif itemsize == 2:
        _columns_typed(src, n_rows, row_stride, col_stride, perm, m, batch,
                       <uint16_t**>blocks, n_threads)
    elif itemsize == 4:
        _columns_typed(src, n_rows, row_stride, col_stride, perm, m, batch,
                       <uint32_t**>blocks, n_threads)
    elif itemsize == 8:
        _columns_typed(src, n_rows, row_stride, col_stride, perm, m, batch,
                       <uint64_t**>blocks, n_threads)
    else:
        for i in prange(n_rows, num_threads=n_threads, schedule="static"):
            _column_row_bytes(src + i * row_stride, col_stride, perm, m, i, batch, blocks,
                              itemsize)


# Rows split over threads from 2**18 items (1 MiB of float32): below, the serial gather takes
# under ~0.3 ms and a team wake-up is a visible share of it. On (784, 60000) float32, 2 threads
# took 34 ms against 66 ms for one (X.copy(): 18 ms).
cdef Py_ssize_t _GATHER_THREADS_FROM = 1 << 18


def columns_into(cnp.ndarray src, const intp_t[::1] perm, Py_ssize_t batch, list blocks):
    """Gather columns of 2-D ``src`` (any strides) batch by batch into ``blocks``.

    ``blocks[k]`` must be a C-contiguous ndarray of ``src``'s dtype and shape
    ``(src.shape[0], bk)``, ``bk = min(batch, len(perm) - k*batch)``; it receives
    ``src[:, perm[k*batch : k*batch + bk]]``. The caller builds ``blocks`` (not checked here).
    """
    cdef Py_ssize_t n_blocks = len(blocks), k, m = perm.shape[0]
    cdef Py_ssize_t n_rows = src.shape[0]
    cdef Py_ssize_t rs = src.strides[0], cs = src.strides[1], size = src.itemsize
    cdef const char* s = <const char*>cnp.PyArray_DATA(src)
    cdef const intp_t* p = &perm[0] if m > 0 else NULL
    cdef int nt = _threads_for(n_rows * m, _GATHER_THREADS_FROM)
    cdef char** dst = <char**>malloc((n_blocks if n_blocks else 1) * sizeof(char*))
    if dst == NULL:
        raise MemoryError()
    try:
        for k in range(n_blocks):
            dst[k] = <char*>cnp.PyArray_DATA(<cnp.ndarray?>blocks[k])
        with nogil:
            _columns_into(s, n_rows, rs, cs, p, m, batch, dst, size, nt)
    finally:
        free(dst)


# Whole rows are memcpy'd, so threads pay early: measured on rows of 784 float32 drawn from a
# (60000, 784) array, one epoch of batches of 4 / 16 / 64 rows took 42 / 26 / 23 ms on one thread
# and 35 / 17 / 12 ms on two; on 64-float rows, 4 KiB per call broke even and 8 KiB gained 10%.
cdef Py_ssize_t _TAKE_ROWS_THREADS_FROM_BYTES = 8192


def take_rows(cnp.ndarray src, const intp_t[::1] rows, cnp.ndarray out):
    """out[j, :] = src[rows[j], :] for 2-D ``src`` (any strides) into C-contiguous ``out``."""
    cdef const char* s = <const char*>cnp.PyArray_DATA(src)
    cdef char* o = <char*>cnp.PyArray_DATA(out)
    cdef Py_ssize_t k = rows.shape[0], n_cols = src.shape[1]
    cdef Py_ssize_t rs = src.strides[0], cs = src.strides[1], size = src.itemsize
    cdef Py_ssize_t row_bytes = n_cols * size, j
    cdef int nt = _threads_for(k * row_bytes, _TAKE_ROWS_THREADS_FROM_BYTES)
    with nogil:
        if nt > 1:
            for j in prange(k, num_threads=nt, schedule="static"):
                _take_row(s + rows[j] * rs, cs, n_cols, size, o + j * row_bytes)
        else:
            for j in range(k):
                _take_row(s + rows[j] * rs, cs, n_cols, size, o + j * row_bytes)


cdef inline void _take_row(const char* row, Py_ssize_t col_stride, Py_ssize_t n_cols,
                           Py_ssize_t itemsize, char* dst) noexcept nogil:
    cdef Py_ssize_t c
    if col_stride == itemsize:  # a contiguous row: one memcpy
        memcpy(dst, row, n_cols * itemsize)
    else:
        for c in range(n_cols):
            memcpy(dst + c * itemsize, row + c * col_stride, itemsize)
