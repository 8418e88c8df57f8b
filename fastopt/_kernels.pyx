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


def thread_thresholds():
    """Items per call from which each kernel splits over threads (bytes for take_rows)."""
    return {"sgd": _SGD_THREADS_FROM, "momentum": _MOMENTUM_THREADS_FROM,
            "rmsprop": _RMSPROP_THREADS_FROM, "adam": _ADAM_THREADS_FROM,
            "adagrad": _ADAGRAD_THREADS_FROM, "sumsq": _SUMSQ_THREADS_FROM,
            "columns_into": _GATHER_THREADS_FROM, "take_rows": _TAKE_ROWS_THREADS_FROM_BYTES}


def set_thread_threshold(str name, Py_ssize_t value):
    """Change one threshold (tests use 0 to force threads on small arrays)."""
    global _SGD_THREADS_FROM, _MOMENTUM_THREADS_FROM, _RMSPROP_THREADS_FROM
    global _ADAM_THREADS_FROM, _GATHER_THREADS_FROM, _TAKE_ROWS_THREADS_FROM_BYTES
    global _ADAGRAD_THREADS_FROM, _SUMSQ_THREADS_FROM
    if name == "sgd":
        _SGD_THREADS_FROM = value
    elif name == "momentum":
        _MOMENTUM_THREADS_FROM = value
    elif name == "rmsprop":
        _RMSPROP_THREADS_FROM = value
    elif name == "adam":
        _ADAM_THREADS_FROM = value
    elif name == "adagrad":
        _ADAGRAD_THREADS_FROM = value
    elif name == "sumsq":
        _SUMSQ_THREADS_FROM = value
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
        /* libgcc also checks that the OS saves the AVX state (XGETBV). The avx2 variant is also
           compiled with -mfma (the divisions of docs/contract.md §10). */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int fastopt_cpu_has_avx512(void) {
        __builtin_cpu_init();
        /* For the AVX-512 features libgcc also checks that the OS saves the opmask and ZMM
           state (XGETBV), so a CPU whose kernel or hypervisor hides it reports 0. */
        return fastopt_cpu_has_avx2() && __builtin_cpu_supports("avx512f")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    #else
    static int fastopt_cpu_has_avx2(void) { return 0; }
    static int fastopt_cpu_has_avx512(void) { return 0; }
    #endif
    """
    const char* FASTOPT_VARIANT
    const char* FASTOPT_CFLAGS
    int fastopt_cpu_has_avx2() nogil
    int fastopt_cpu_has_avx512() nogil


VARIANT = FASTOPT_VARIANT.decode()
"""The instruction-set variant this module was compiled for ("baseline", "avx2", "avx512")."""
CFLAGS = FASTOPT_CFLAGS.decode()
"""The compiler flags this module was compiled with."""


def cpu_has_avx2():
    """True when the CPU (and the OS) support AVX2 and FMA (what the avx2 variant is built for)."""
    return bool(fastopt_cpu_has_avx2())


def cpu_has_avx512():
    """True when the CPU (and the OS) support AVX-512 F, VL and DQ besides AVX2 and FMA (what an
    avx512 variant, built with ``FASTOPT_AVX512=1``, needs)."""
    return bool(fastopt_cpu_has_avx512())


# --- divisions by a constant without the divider (docs/contract.md §10) ------------------------
#
# Adam divides every element by the same two bias corrections. On a variant compiled with FMA
# (the AVX2 one: -mavx2 -mfma), ``_div_const`` computes RN(x / d) from y = RN(1/d) with one
# multiplication, one product and two fused multiply-adds (Markstein's correction, with x scaled
# by 2**K so that the remainder is exact down to subnormal x); §10 proves it bit for bit, for
# every finite x up to MAX * 2**-K. Outside that range, and for an infinite x, it returns NaN and
# the processor raises its overflow or invalid flag: the Adam loop reads the flags once per
# chunk and redoes a flagged chunk with the divisions. It needs round-to-nearest without
# flush-to-zero or denormals-are-zero (the MXCSR defaults), and overflow and invalid masked (so
# an overflow raises a flag, not SIGFPE): any other MXCSR setting keeps the divisions.
# Per Adam step at t = 10, one thread, 1e6 items: float32 607 -> 520 us, float64 1885 -> 1503 us
# (divider -> FMA, alternating calls; the table is in §10.5).
cdef extern from *:
    """
    /* x86-64 only: a 32-bit x87 build would compute in excess precision and keep its flags in
       the x87 status word, which the MXCSR check below does not read. */
    #if defined(__FMA__) && defined(__x86_64__)
    #include <immintrin.h>
    #define FASTOPT_FMA 1
    static inline unsigned int fastopt_csr(void) { return _mm_getcsr(); }
    static inline void fastopt_set_csr(unsigned int csr) { _mm_setcsr(csr); }
    /* Chunks run with the sequence [0] and redone with divisions [1], for the tests. */
    static long long fastopt_div_chunks[2];
    static inline void fastopt_count(int which) {
        __atomic_fetch_add(&fastopt_div_chunks[which], 1, __ATOMIC_RELAXED);
    }
    static inline long long fastopt_counted(int which) {
        return __atomic_load_n(&fastopt_div_chunks[which], __ATOMIC_RELAXED);
    }
    #else
    #define FASTOPT_FMA 0
    static inline unsigned int fastopt_csr(void) { return 0; }
    static inline void fastopt_set_csr(unsigned int csr) { (void)csr; }
    static inline void fastopt_count(int which) { (void)which; }
    static inline long long fastopt_counted(int which) { (void)which; return 0; }
    #endif
    """
    const bint FASTOPT_FMA
    unsigned int fastopt_csr() noexcept nogil
    void fastopt_set_csr(unsigned int csr) noexcept nogil
    void fastopt_count(int which) noexcept nogil
    long long fastopt_counted(int which) noexcept nogil

# MXCSR: exception flags (bits 0-5), DAZ (6), the six exception masks (7-12), rounding control
# (13-14), FTZ (15). The fast divisions run only in the default mode, 0x1F80 but for the flags:
# round to nearest, no FTZ or DAZ, every exception masked. (With the denormal-operand exception
# unmasked, for one, the exact subnormal remainder of a normal x would trap where x / d does not.)
cdef unsigned int _CSR_FLAGS = 0x3F
cdef unsigned int _CSR_FAILED = 0x09        # invalid | overflow
cdef unsigned int _CSR_MODE = 0xFFC0        # everything but the flags
cdef unsigned int _CSR_MODE_OK = 0x1F80     # the default
DIV_CHUNK_BYTES = 16384
"""Bytes of param the Adam loop copies, and reads the flags after, at a time (§10.4)."""
# param is saved, and the flags checked, 16 KB at a time (4096 float32 or 2048 float64 items).
# Reading the flags (stmxcsr) waits for every floating-point instruction in flight: ~90 ns
# here. Every 512 float32 items that was a third of a 1e5-item step (68.7 us against 50.5 us
# without the check); every 16 KB it is ~4%, and the copy still fits in L1 (32 KB).
cdef union _Saved:
    float f[4096]
    double d[2048]

FMA = bool(FASTOPT_FMA)
"""True when this variant divides by Adam's bias corrections with the FMA sequence."""

cdef bint _fast_divisions_on = True


def set_fast_divisions(bint on):
    """Turn the FMA divisions off (False) or back on, returning the previous setting: for
    benchmarks that compare them with the divider in one process, and for tests."""
    global _fast_divisions_on
    previous = _fast_divisions_on
    _fast_divisions_on = on
    return previous


def division_chunks():
    """(chunks an Adam step ran with the FMA divisions, chunks it then redid with the divider)
    since the module was loaded: for the tests, which check that both paths really run."""
    return fastopt_counted(0), fastopt_counted(1)


def fast_divisions():
    """Whether the FMA divisions are available to an Adam step called from this thread: this
    variant has FMA, they are switched on, and the thread's MXCSR is in its default mode. A
    step then uses them where §10.4 says (float64 whenever a bias division is done, float32
    while both are, divisors in range), on each thread whose MXCSR is in its default mode."""
    return bool(FASTOPT_FMA and _fast_divisions_on
                and (fastopt_csr() & _CSR_MODE) == _CSR_MODE_OK)


cdef struct _Recip:
    # The constants of one divisor d for _div_const, rounded to the array's dtype (a float32
    # value is exact in a double): ns = -2**K, ny = -RN(1/d) * 2**-K, dk = d * 2**K.
    double ns, ny, dk


cdef bint _recip(_Recip* r, double d, bint f64) noexcept nogil:
    """Fill ``r`` for the divisor ``d`` (already rounded to the dtype); False when §10 does not
    cover it (d outside [2**-24, 1] for float32, [2**-53, 1] for float64)."""
    cdef int p = 53 if f64 else 24
    cdef int e
    cdef float df, yf
    if not (d >= ldexp(1.0, -p) and d <= 1.0):
        return False
    frexp(d, &e)                 # d = f * 2**e with f in [0.5, 1): d's exponent is e - 1
    e = p - 1 - (e - 1)           # K = (p - 1) - exponent(d): the remainder stays exact
    r.ns = -ldexp(1.0, e)
    if f64:
        r.ny = -ldexp(1.0 / d, -e)
    else:
        df = <float>d
        yf = (<float>1.0) / df    # RN32(1/d): a float division, not a rounded double
        r.ny = -ldexp(<double>yf, -e)
    r.dk = ldexp(d, e)
    return True


cdef inline floating _fma(floating a, floating b, floating c) noexcept nogil:
    if floating is float:
        return fmaf(a, b, c)
    else:
        return fma(a, b, c)


cdef inline floating _div_const(floating x, floating ns, floating ny, floating dk) noexcept nogil:
    # RN(x / d) for finite |x| <= MAX * 2**-K; NaN (with the overflow or invalid flag) otherwise.
    # Written without a negation: GCC folds -fma(a, b, c) into one negated FMA (vfnmadd or
    # vfnmsub), whose exact zero has the other sign, and x = -0.0 would give +0.0.
    cdef floating xn = x * ns       # -x * 2**K, exact (the remainder below is then exact)
    cdef floating q = xn * ny       # RN(x * y): the same product as x * y
    cdef floating s = _fma(q, dk, xn)   # 2**K * (q*d - x), exact (§10)
    return _fma(s, ny, q)           # RN(q + (x - q*d) * y) = RN(x / d)


cdef inline floating _sqrt(floating x) noexcept nogil:
    # sqrtf for float: correctly rounded like NumPy's float32 sqrt, and it vectorises to sqrtps.
    # (sqrt((double)x) rounded to float gives the same bits, but is half the SIMD width.)
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# --- the updates -------------------------------------------------------------------------------
#
# One fused pass per step, whatever the options (docs/contract.md §2 and §7). Each rule has:
#
# * a struct of its arrays (as raw pointers: an option's state array may be absent, NULL) and its
#   hyperparameters as doubles, filled once per call by the ``def`` entry point, which also
#   checks in O(1) that every array it writes through has the parameter's length;
# * ``_<rule>_loop``: the per-element arithmetic over [start, stop), written once over
#   ``floating`` and over compile-time *option flags*. A flag is a fused type of empty structs,
#   so ``if decay_t is _L2`` is decided by Cython when it generates each specialisation: every
#   combination of options is its own branch-free loop that GCC vectorises (an option that is
#   off costs nothing, not even a test). Scalars are rounded once to ``floating`` at the top of
#   the loop function, from the doubles Python computed (docs/contract.md §1);
# * ``_<rule>_range``: picks the specialisation from the runtime flags, in a few inline stages;
# * the shared driver ``_run``: the whole array on the calling thread, or one contiguous chunk
#   per thread above the rule's measured threshold.

cdef struct _Off:
    char unused
cdef struct _On:
    char unused
cdef struct _L2:
    char unused
cdef struct _Decoupled:
    char unused
cdef struct _First:
    char unused
cdef struct _Second:
    char unused
cdef struct _Both:
    char unused
cdef struct _SecondFMA:
    char unused
cdef struct _BothFMA:
    char unused

cdef _Off _OFF
cdef _On _ON
cdef _L2 _L2_DECAY
cdef _Decoupled _DECOUPLED
cdef _First _FIRST
cdef _Second _SECOND
cdef _Both _BOTH
cdef _SecondFMA _SECOND_FMA
cdef _BothFMA _BOTH_FMA

ctypedef fused scale_t:      # the gradient is multiplied by a scalar first (clipping, maximize)
    _Off
    _On
ctypedef fused decay_t:      # weight decay of SGD, Momentum, RMSProp, Adagrad: none or L2
    _Off
    _L2
ctypedef fused adam_decay_t:  # Adam's: none, L2 (coupled), or decoupled (AdamW)
    _Off
    _L2
    _Decoupled
ctypedef fused nesterov_t:
    _Off
    _On
ctypedef fused heavy_t:      # SGD's heavy-ball buffer: none, its first step, a later step
    _Off
    _First
    _On
ctypedef fused centered_t:
    _Off
    _On
ctypedef fused buffer_t:     # RMSProp's momentum buffer
    _Off
    _On
ctypedef fused amsgrad_t:
    _Off
    _On
ctypedef fused bias_t:       # Adam's bias divisions still done: none, the second only, both;
    _Off                     # the last two without the divider (docs/contract.md §10)
    _Second
    _Both
    _SecondFMA
    _BothFMA


ctypedef void (*_range_fn)(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil


cdef inline Py_ssize_t _chunk_size(Py_ssize_t n, int nt) noexcept nogil:
    # One contiguous chunk per thread, a multiple of 16 items (64 bytes of float32) so that two
    # threads never write the same cache line. In the prange body below, start and stop must be
    # assigned directly (not through a pointer): that is what makes Cython keep them
    # thread-private.
    return ((n + nt - 1) // nt + 15) // 16 * 16


cdef void _run(_range_fn fn, const void* args, Py_ssize_t n, Py_ssize_t threshold) noexcept nogil:
    """Run ``fn`` over [0, n): serially, or one chunk per thread from ``threshold`` items."""
    cdef Py_ssize_t c, start, stop, size
    cdef int nt = _threads_for(n, threshold)
    if nt == 1:
        fn(args, 0, n)
        return
    size = _chunk_size(n, nt)
    for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
        start = min(c * size, n)
        stop = min(start + size, n)
        fn(args, start, stop)


cdef inline floating _max_nan(floating current, floating new) noexcept nogil:
    # np.maximum's rule as the reference writes it: the larger, NaN wins, a tie keeps current.
    return new if (new > current or new != new) else current


cdef inline floating* _ptr(floating[::1] x) noexcept:
    # NULL for an absent array (an option that is off) or an empty one.
    if x is None or x.shape[0] == 0:
        return NULL
    return &x[0]


cdef inline const floating* _cptr(const floating[::1] x) noexcept:
    if x is None or x.shape[0] == 0:
        return NULL
    return &x[0]


cdef int _length_error(str name, Py_ssize_t length, Py_ssize_t n) except -1:
    raise ValueError(f"{name} has {length} items; expected {n}, the length of param")


# Thread thresholds (items per call): the first size at which 2 threads beat 1, measured on this
# 2-core machine, float32, AVX2, default options (us, 1 thread / 2 threads):
#   sgd       2**14: 1.9 / 2.4   2**15:  3.5 / 2.9   2**16:  6.0 /  4.3
#   momentum  2**14: 3.1 / 3.0   2**15:  6.4 / 4.7   2**16: 12.7 /  7.8
#   rmsprop   2**13: 3.0 / 2.9   2**14:  5.6 / 4.3   2**15: 10.7 /  6.8
#   adam      2**12: 2.9 / 3.0   2**13:  5.0 / 4.0   2**14:  9.6 /  6.3
# Below them a call stays serial (waking the team costs ~1.5 us). Adagrad does RMSProp's work
# and takes its threshold; the sum of squares reads one array, like sgd.
cdef Py_ssize_t _SGD_THREADS_FROM = 1 << 15
cdef Py_ssize_t _MOMENTUM_THREADS_FROM = 1 << 15
cdef Py_ssize_t _RMSPROP_THREADS_FROM = 1 << 14
cdef Py_ssize_t _ADAM_THREADS_FROM = 1 << 13
cdef Py_ssize_t _ADAGRAD_THREADS_FROM = 1 << 14
cdef Py_ssize_t _SUMSQ_THREADS_FROM = 1 << 15


# --- gradient descent, plain or with torch's heavy-ball momentum -------------------------------

cdef struct _SGD:
    bint f64, scaled, decay, nesterov
    int heavy                      # 0: no buffer; 1: its first step (buf = g); 2: later steps
    char* param
    const char* grad
    char* momentum_buffer
    double lr, weight_decay, momentum, dampening, scale


cdef void _sgd_loop(const _SGD* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                    scale_t sc, decay_t dc, heavy_t hv, nesterov_t ns) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* buf = <floating*>a.momentum_buffer
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, s = <floating>a.scale
    cdef floating mu = <floating>a.momentum, cd = <floating>(1.0 - a.dampening)
    cdef floating gi, bi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * s
        if decay_t is _L2:
            gi = gi + wd * p[i]
        if heavy_t is _Off:
            p[i] = p[i] - lr * gi
        else:
            if heavy_t is _First:
                bi = gi
            else:
                bi = mu * buf[i] + cd * gi
            buf[i] = bi
            if nesterov_t is _On:
                p[i] = p[i] - lr * (gi + mu * bi)
            else:
                p[i] = p[i] - lr * bi


cdef inline void _sgd_h(const _SGD* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                        scale_t sc, decay_t dc) noexcept nogil:
    if a.heavy == 0:
        _sgd_loop(a, start, stop, k, sc, dc, _OFF, _OFF)
    elif a.heavy == 1:
        if a.nesterov:
            _sgd_loop(a, start, stop, k, sc, dc, _FIRST, _ON)
        else:
            _sgd_loop(a, start, stop, k, sc, dc, _FIRST, _OFF)
    elif a.nesterov:
        _sgd_loop(a, start, stop, k, sc, dc, _ON, _ON)
    else:
        _sgd_loop(a, start, stop, k, sc, dc, _ON, _OFF)


cdef inline void _sgd_d(const _SGD* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                        scale_t sc) noexcept nogil:
    if a.decay:
        _sgd_h(a, start, stop, k, sc, _L2_DECAY)
    else:
        _sgd_h(a, start, stop, k, sc, _OFF)


cdef inline void _sgd_s(const _SGD* a, Py_ssize_t start, Py_ssize_t stop,
                        floating k) noexcept nogil:
    if a.scaled:
        _sgd_d(a, start, stop, k, _ON)
    else:
        _sgd_d(a, start, stop, k, _OFF)


cdef void _sgd_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _SGD* a = <const _SGD*>args
    if a.f64:
        _sgd_s(a, start, stop, <double>0)
    else:
        _sgd_s(a, start, stop, <float>0)


def sgd(floating[::1] param not None, const floating[::1] grad not None,
        floating[::1] momentum_buffer, double lr, double weight_decay, double momentum,
        double dampening, bint nesterov, bint first, bint maximize, double grad_scale):
    """Gradient descent in place: ``p = p - lr*g``; with ``momentum_buffer``, torch's heavy ball
    (``first``: the buffer's first step, ``buf = g``). The gradient is first multiplied by
    ``grad_scale`` (negated too when ``maximize``), then decayed (``g + weight_decay*p``)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _SGD a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if momentum_buffer is not None and momentum_buffer.shape[0] != n:
        _length_error("momentum_buffer", momentum_buffer.shape[0], n)
    a.f64 = floating is double
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.momentum_buffer = <char*>_ptr(momentum_buffer)
    a.heavy = 0 if momentum_buffer is None else (1 if first else 2)
    a.nesterov, a.decay = nesterov, weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.weight_decay, a.momentum, a.dampening = lr, weight_decay, momentum, dampening
    with nogil:
        _run(_sgd_range, &a, n, _SGD_THREADS_FROM)


# --- momentum, the course's form -------------------------------------------------------------

cdef struct _Momentum:
    bint f64, scaled, decay, nesterov
    char* param
    const char* grad
    char* velocity
    double lr, beta, weight_decay, scale


cdef void _momentum_loop(const _Momentum* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                         scale_t sc, decay_t dc, nesterov_t ns) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* velocity = <floating*>a.velocity
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, s = <floating>a.scale
    cdef floating b = <floating>a.beta, c = <floating>(1.0 - a.beta)
    cdef floating gi, vi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * s
        if decay_t is _L2:
            gi = gi + wd * p[i]
        vi = b * velocity[i] + c * gi
        velocity[i] = vi
        if nesterov_t is _On:
            p[i] = p[i] - lr * (b * vi + c * gi)
        else:
            p[i] = p[i] - lr * vi


cdef inline void _momentum_d(const _Momentum* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                             scale_t sc) noexcept nogil:
    if a.decay:
        if a.nesterov:
            _momentum_loop(a, start, stop, k, sc, _L2_DECAY, _ON)
        else:
            _momentum_loop(a, start, stop, k, sc, _L2_DECAY, _OFF)
    elif a.nesterov:
        _momentum_loop(a, start, stop, k, sc, _OFF, _ON)
    else:
        _momentum_loop(a, start, stop, k, sc, _OFF, _OFF)


cdef inline void _momentum_s(const _Momentum* a, Py_ssize_t start, Py_ssize_t stop,
                             floating k) noexcept nogil:
    if a.scaled:
        _momentum_d(a, start, stop, k, _ON)
    else:
        _momentum_d(a, start, stop, k, _OFF)


cdef void _momentum_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Momentum* a = <const _Momentum*>args
    if a.f64:
        _momentum_s(a, start, stop, <double>0)
    else:
        _momentum_s(a, start, stop, <float>0)


def momentum(floating[::1] param not None, const floating[::1] grad not None,
             floating[::1] velocity not None, double lr, double beta, double weight_decay,
             bint nesterov, bint maximize, double grad_scale):
    """``v = beta*v + (1-beta)*g; p = p - lr*v`` in place (Nesterov:
    ``p = p - lr*(beta*v + (1-beta)*g)`` with the new ``v``)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _Momentum a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if velocity.shape[0] != n:
        _length_error("velocity", velocity.shape[0], n)
    a.f64 = floating is double
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.velocity = <char*>_ptr(velocity)
    a.nesterov, a.decay = nesterov, weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta, a.weight_decay = lr, beta, weight_decay
    with nogil:
        _run(_momentum_range, &a, n, _MOMENTUM_THREADS_FROM)


# --- RMSProp, optionally centered and with a momentum buffer ---------------------------------

cdef struct _RMSProp:
    bint f64, scaled, decay, centered, buffered
    char* param
    const char* grad
    char* sq_avg
    char* grad_avg
    char* momentum_buffer
    double lr, beta, eps, weight_decay, momentum, scale


cdef void _rmsprop_loop(const _RMSProp* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                        scale_t sc, decay_t dc, centered_t ce, buffer_t bu) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* sq_avg = <floating*>a.sq_avg
    cdef floating* grad_avg = <floating*>a.grad_avg
    cdef floating* buf = <floating*>a.momentum_buffer
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, s = <floating>a.scale
    cdef floating b = <floating>a.beta, c = <floating>(1.0 - a.beta), e = <floating>a.eps
    cdef floating mu = <floating>a.momentum
    cdef floating gi, si, ai, denom, bi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * s
        if decay_t is _L2:
            gi = gi + wd * p[i]
        si = b * sq_avg[i] + c * (gi * gi)
        sq_avg[i] = si
        if centered_t is _On:
            ai = b * grad_avg[i] + c * gi
            grad_avg[i] = ai
            denom = _sqrt(si - ai * ai) + e
        else:
            denom = _sqrt(si) + e
        if buffer_t is _On:
            bi = mu * buf[i] + gi / denom
            buf[i] = bi
            p[i] = p[i] - lr * bi
        else:
            p[i] = p[i] - (lr * gi) / denom


cdef inline void _rmsprop_c(const _RMSProp* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                            scale_t sc, decay_t dc) noexcept nogil:
    if a.centered:
        if a.buffered:
            _rmsprop_loop(a, start, stop, k, sc, dc, _ON, _ON)
        else:
            _rmsprop_loop(a, start, stop, k, sc, dc, _ON, _OFF)
    elif a.buffered:
        _rmsprop_loop(a, start, stop, k, sc, dc, _OFF, _ON)
    else:
        _rmsprop_loop(a, start, stop, k, sc, dc, _OFF, _OFF)


cdef inline void _rmsprop_s(const _RMSProp* a, Py_ssize_t start, Py_ssize_t stop,
                            floating k) noexcept nogil:
    if a.scaled:
        if a.decay:
            _rmsprop_c(a, start, stop, k, _ON, _L2_DECAY)
        else:
            _rmsprop_c(a, start, stop, k, _ON, _OFF)
    elif a.decay:
        _rmsprop_c(a, start, stop, k, _OFF, _L2_DECAY)
    else:
        _rmsprop_c(a, start, stop, k, _OFF, _OFF)


cdef void _rmsprop_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _RMSProp* a = <const _RMSProp*>args
    if a.f64:
        _rmsprop_s(a, start, stop, <double>0)
    else:
        _rmsprop_s(a, start, stop, <float>0)


def rmsprop(floating[::1] param not None, const floating[::1] grad not None,
            floating[::1] sq_avg not None, floating[::1] grad_avg, floating[::1] momentum_buffer,
            double lr, double beta, double eps, double weight_decay, double momentum,
            bint maximize, double grad_scale):
    """``s = beta*s + (1-beta)*(g*g); p = p - lr*g / (sqrt(s) + eps)`` in place; centered when
    ``grad_avg`` is given, with a momentum buffer when ``momentum_buffer`` is."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _RMSProp a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if sq_avg.shape[0] != n:
        _length_error("sq_avg", sq_avg.shape[0], n)
    if grad_avg is not None and grad_avg.shape[0] != n:
        _length_error("grad_avg", grad_avg.shape[0], n)
    if momentum_buffer is not None and momentum_buffer.shape[0] != n:
        _length_error("momentum_buffer", momentum_buffer.shape[0], n)
    a.f64 = floating is double
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.sq_avg, a.grad_avg = <char*>_ptr(sq_avg), <char*>_ptr(grad_avg)
    a.momentum_buffer = <char*>_ptr(momentum_buffer)
    a.centered, a.buffered = grad_avg is not None, momentum_buffer is not None
    a.decay = weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta, a.eps, a.weight_decay, a.momentum = lr, beta, eps, weight_decay, momentum
    with nogil:
        _run(_rmsprop_range, &a, n, _RMSPROP_THREADS_FROM)


# --- Adam and AdamW, optionally AMSGrad ------------------------------------------------------

cdef struct _Adam:
    bint f64, scaled, amsgrad
    int decay                      # 0: none; 1: L2 (g + wd*p); 2: decoupled (p * (1 - lr*wd))
    int bias                       # bias divisions still done: 0 none, 1 the second, 2 both
    char* param
    const char* grad
    char* m
    char* v
    char* v_max
    double lr, beta1, beta2, eps, bias1, bias2, weight_decay, scale
    bint fast                      # divide by bias1/bias2 with _div_const (FMA variant, §10)
    _Recip r1, r2


cdef void _adam_loop(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                     scale_t sc, adam_decay_t dc, amsgrad_t am, bias_t bs,
                     floating* saved) noexcept nogil:
    # saved: with the FMA divisions (see _adam_fast_loop), where param[start:stop] is copied
    # before it is written; NULL otherwise.
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* m = <floating*>a.m
    cdef floating* v = <floating*>a.v
    cdef floating* v_max = <floating*>a.v_max
    cdef floating lr = <floating>a.lr, e = <floating>a.eps, s = <floating>a.scale
    cdef floating b1 = <floating>a.beta1, c1 = <floating>(1.0 - a.beta1)
    cdef floating b2 = <floating>a.beta2, c2 = <floating>(1.0 - a.beta2)
    cdef floating d1 = <floating>a.bias1, d2 = <floating>a.bias2
    cdef floating ns1 = <floating>a.r1.ns, ny1 = <floating>a.r1.ny, dk1 = <floating>a.r1.dk
    cdef floating ns2 = <floating>a.r2.ns, ny2 = <floating>a.r2.ny, dk2 = <floating>a.r2.dk
    cdef floating wd = <floating>a.weight_decay, keep = <floating>(1.0 - a.lr * a.weight_decay)
    cdef floating gi, pi, mi, vi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        pi = p[i]
        if bias_t is _SecondFMA or bias_t is _BothFMA:
            saved[i - start] = pi
        if scale_t is _On:
            gi = gi * s
        if adam_decay_t is _L2:
            gi = gi + wd * pi
        elif adam_decay_t is _Decoupled:
            pi = pi * keep
        mi = b1 * m[i] + c1 * gi
        m[i] = mi
        vi = b2 * v[i] + c2 * (gi * gi)
        v[i] = vi
        if amsgrad_t is _On:
            vi = _max_nan(v_max[i], vi)
            v_max[i] = vi
        # Divisions, not multiplications by a reciprocal: x / d and x * (1/d) differ in the last
        # bit for about a third of inputs, and the reference divides; or the FMA sequence, which
        # is proved to give the division's bits (§10). A correction that rounds to exactly 1 is
        # skipped (x / 1 == x bit for bit, NaN and -0.0 included).
        if bias_t is _Both:
            mi = mi / d1
        elif bias_t is _BothFMA:
            mi = _div_const(mi, ns1, ny1, dk1)
        if bias_t is _Second or bias_t is _Both:
            vi = vi / d2
        elif bias_t is _SecondFMA or bias_t is _BothFMA:
            vi = _div_const(vi, ns2, ny2, dk2)
        p[i] = pi - (lr * mi) / (_sqrt(vi) + e)


cdef void _adam_fast_loop(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                          scale_t sc, adam_decay_t dc, amsgrad_t am, bias_t bs) noexcept nogil:
    # _adam_loop with the FMA divisions (bias_t _SecondFMA or _BothFMA), chunk by chunk: each
    # chunk keeps a copy of param; when the chunk raised the overflow or invalid flag (an |m| or
    # v beyond MAX * 2**-K, an infinity, or anything else that overflowed or made a NaN), param
    # is recomputed from the copy with the divisions, from m, v and v_max, which are right
    # either way. Called with the flags clear; leaves them clear.
    cdef floating* p = <floating*>a.param
    cdef floating* m = <floating*>a.m
    cdef floating* v = <floating*>a.v
    cdef floating* v_max = <floating*>a.v_max
    cdef floating lr = <floating>a.lr, e = <floating>a.eps
    cdef floating d1 = <floating>a.bias1, d2 = <floating>a.bias2
    cdef floating keep = <floating>(1.0 - a.lr * a.weight_decay)
    cdef floating pi, mi, vi
    cdef _Saved store
    cdef floating* saved
    cdef Py_ssize_t c, i, n, chunk
    if floating is float:
        saved, chunk = &store.f[0], 4096
    else:
        saved, chunk = &store.d[0], 2048
    c = start
    while c < stop:
        n = min(stop - c, chunk)
        _adam_loop(a, c, c + n, kind, sc, dc, am, bs, saved)
        fastopt_count(0)
        if fastopt_csr() & _CSR_FAILED:
            fastopt_count(1)
            for i in range(c, c + n):
                pi = saved[i - c]
                if adam_decay_t is _Decoupled:
                    pi = pi * keep
                mi = m[i]
                vi = v_max[i] if amsgrad_t is _On else v[i]
                if bias_t is _BothFMA:
                    mi = mi / d1
                p[i] = pi - (lr * mi) / (_sqrt(vi / d2) + e)
            fastopt_set_csr(fastopt_csr() & ~_CSR_FLAGS)
        c += n


cdef inline void _adam_b(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                         bint fast, scale_t sc, adam_decay_t dc, amsgrad_t am) noexcept nogil:
    if fast and a.bias == 2:
        _adam_fast_loop(a, start, stop, k, sc, dc, am, _BOTH_FMA)
    elif fast and a.bias == 1:
        _adam_fast_loop(a, start, stop, k, sc, dc, am, _SECOND_FMA)
    elif a.bias == 2:
        _adam_loop(a, start, stop, k, sc, dc, am, _BOTH, <floating*>NULL)
    elif a.bias == 1:
        _adam_loop(a, start, stop, k, sc, dc, am, _SECOND, <floating*>NULL)
    else:
        _adam_loop(a, start, stop, k, sc, dc, am, _OFF, <floating*>NULL)


cdef inline void _adam_a(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                         bint fast, scale_t sc, adam_decay_t dc) noexcept nogil:
    if a.amsgrad:
        _adam_b(a, start, stop, k, fast, sc, dc, _ON)
    else:
        _adam_b(a, start, stop, k, fast, sc, dc, _OFF)


cdef inline void _adam_d(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                         bint fast, scale_t sc) noexcept nogil:
    if a.decay == 2:
        _adam_a(a, start, stop, k, fast, sc, _DECOUPLED)
    elif a.decay == 1:
        _adam_a(a, start, stop, k, fast, sc, _L2_DECAY)
    else:
        _adam_a(a, start, stop, k, fast, sc, _OFF)


cdef inline void _adam_s(const _Adam* a, Py_ssize_t start, Py_ssize_t stop,
                         floating k, bint fast) noexcept nogil:
    if a.scaled:
        _adam_d(a, start, stop, k, fast, _ON)
    else:
        _adam_d(a, start, stop, k, fast, _OFF)


cdef inline unsigned int _fast_divisions_begin(bint wanted) noexcept nogil:
    """Clear this thread's FP exception flags and return its MXCSR (never 0) when the divisions
    by a constant can run without the divider here (§10); return 0 to keep the divisions."""
    cdef unsigned int csr
    if not (FASTOPT_FMA and wanted):
        return 0
    csr = fastopt_csr()
    if (csr & _CSR_MODE) != _CSR_MODE_OK:
        return 0
    fastopt_set_csr(csr & ~_CSR_FLAGS)
    return csr


cdef void _adam_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Adam* a = <const _Adam*>args
    # Per thread (each has its own MXCSR); the caller's flags are put back afterwards.
    cdef unsigned int csr = _fast_divisions_begin(a.fast)
    if a.f64:
        _adam_s(a, start, stop, <double>0, csr != 0)
    else:
        _adam_s(a, start, stop, <float>0, csr != 0)
    if csr != 0:
        fastopt_set_csr(csr)


# The FMA divisions pay while the call's arrays stay in the last-level cache, where the loop
# is bound by arithmetic. Once they stream from memory, the sequence's extra work (the copy of
# param, the flag reads, more instructions in flight per item, so fewer loads outstanding) costs
# more than the divider: divider time / sequence time, one thread, t = 10, median of alternating
# calls on an AMD EPYC Zen 4 with a 32 MB L3 (above 1, the sequence is faster):
#   float32  5e5 1.27   1e6 1.20   2e6 0.83   1e7 0.85-0.95
#   float64  5e5 1.37   1e6 1.22   2e6 0.81
# so a call of more than 2**20 items divides. (glibc's figure for the L3 size is 320 MB in this
# virtual machine, so the limit is a count measured here, not one derived from the cache.)
cdef Py_ssize_t _FMA_DIVISIONS_UP_TO = 1 << 20
FMA_DIVISIONS_UP_TO = _FMA_DIVISIONS_UP_TO
"""Adam calls of at most this many items divide by the FMA sequence (where it is used at all)."""


cdef void _adam_scalars(_Adam* a, bint f64, double lr, double beta1, double beta2, double eps,
                        double bias1, double bias2, double weight_decay, bint decoupled,
                        bint maximize, double grad_scale, Py_ssize_t n) noexcept:
    """Fill everything of ``a`` but the array pointers (shared by :func:`adam` and
    :func:`adam_checked`); ``n`` is the number of items the call updates."""
    cdef float f1 = <float>bias1, f2 = <float>bias2
    a.f64 = f64
    a.decay = 0 if weight_decay == 0 else (2 if decoupled else 1)
    # A bias correction that rounds to exactly 1 makes its division a no-op: float32 with
    # beta1 = 0.9 from step 165, float64 from step 356 (float32, 1e6 items, AVX2: 521 us with
    # both divisions, 402 us without the first). A first correction of 1 with a second that is
    # not (beta1 < beta2 is the rule) keeps both divisions: dividing by 1 is exact anyway.
    if f64:
        a.bias = 0 if (bias1 == 1 and bias2 == 1) else (1 if bias1 == 1 else 2)
    else:
        a.bias = 0 if (f1 == 1 and f2 == 1) else (1 if f1 == 1 else 2)
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta1, a.beta2, a.eps = lr, beta1, beta2, eps
    a.bias1, a.bias2, a.weight_decay = bias1, bias2, weight_decay
    # The divisors as the loop rounds them: <float> for float32 arrays.
    if not f64:
        bias1, bias2 = <double>f1, <double>f2
    a.r1.ns = a.r1.ny = a.r1.dk = a.r2.ns = a.r2.ny = a.r2.dk = 0
    # The constants are rounded on this thread: its MXCSR must be the default too. With one
    # division left (from step 165 for float32 and beta1 = 0.9) the sequence saves too little
    # for float32 to pay for its copy and flag reads (t = 1000, one thread, median of
    # alternating calls: 1e5 0.88x, 1e6 0.89x of the divider's speed); float64's divider is
    # slower (1.22x at 1e5 with the sequence). Deciding it here also spares that loop the
    # MXCSR save and restore.
    a.fast = (FASTOPT_FMA and _fast_divisions_on and (a.bias == 2 or (f64 and a.bias == 1))
              and n <= _FMA_DIVISIONS_UP_TO
              and (fastopt_csr() & _CSR_MODE) == _CSR_MODE_OK
              and _recip(&a.r1, bias1, f64) and _recip(&a.r2, bias2, f64))


def div_const(const floating[::1] x not None, floating[::1] out not None, double d):
    """``out = x / d`` by the FMA sequence of the Adam loop (docs/contract.md §10), for tests:
    NaN where ``x`` is infinite or beyond MAX * 2**-K. Returns False, writing nothing, when this
    variant has no FMA, the MXCSR is not in its default mode, ``d`` is outside the range §10
    covers, or (float32) ``d`` is not a float32 value."""
    cdef _Recip r
    cdef Py_ssize_t i, n = x.shape[0]
    cdef unsigned int csr
    cdef floating ns, ny, dk
    if out.shape[0] != n:
        _length_error("out", out.shape[0], n)
    if floating is float:
        if <double><float>d != d:
            return False
    if not (FASTOPT_FMA and (fastopt_csr() & _CSR_MODE) == _CSR_MODE_OK
            and _recip(&r, d, floating is double)):
        return False
    ns, ny, dk = <floating>r.ns, <floating>r.ny, <floating>r.dk
    csr = fastopt_csr()
    with nogil:
        for i in range(n):
            out[i] = _div_const(x[i], ns, ny, dk)
    fastopt_set_csr(csr)   # the flags it raised do not leak to the caller
    return True


def adam(floating[::1] param not None, const floating[::1] grad not None,
         floating[::1] m not None, floating[::1] v not None, floating[::1] v_max,
         double lr, double beta1, double beta2, double eps, double bias1, double bias2,
         double weight_decay, bint decoupled, bint maximize, double grad_scale):
    """Adam step in place; ``bias1 = 1 - beta1**t`` and ``bias2 = 1 - beta2**t`` come from
    Python. AMSGrad when ``v_max`` is given; ``decoupled``: AdamW's weight decay."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _Adam a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if m.shape[0] != n:
        _length_error("m", m.shape[0], n)
    if v.shape[0] != n:
        _length_error("v", v.shape[0], n)
    if v_max is not None and v_max.shape[0] != n:
        _length_error("v_max", v_max.shape[0], n)
    _adam_scalars(&a, floating is double, lr, beta1, beta2, eps, bias1, bias2, weight_decay,
                  decoupled, maximize, grad_scale, n)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.m, a.v, a.v_max = <char*>_ptr(m), <char*>_ptr(v), <char*>_ptr(v_max)
    a.amsgrad = v_max is not None
    with nogil:
        _run(_adam_range, &a, n, _ADAM_THREADS_FROM)


# --- Adagrad -------------------------------------------------------------------------------------

cdef struct _Adagrad:
    bint f64, scaled, decay
    char* param
    const char* grad
    char* sum_sq
    double clr, eps, weight_decay, scale


cdef void _adagrad_loop(const _Adagrad* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                        scale_t sc, decay_t dc) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* sum_sq = <floating*>a.sum_sq
    cdef floating clr = <floating>a.clr, e = <floating>a.eps
    cdef floating wd = <floating>a.weight_decay, s = <floating>a.scale
    cdef floating gi, si
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * s
        if decay_t is _L2:
            gi = gi + wd * p[i]
        si = sum_sq[i] + gi * gi
        sum_sq[i] = si
        p[i] = p[i] - (clr * gi) / (_sqrt(si) + e)


cdef inline void _adagrad_s(const _Adagrad* a, Py_ssize_t start, Py_ssize_t stop,
                            floating k) noexcept nogil:
    if a.scaled:
        if a.decay:
            _adagrad_loop(a, start, stop, k, _ON, _L2_DECAY)
        else:
            _adagrad_loop(a, start, stop, k, _ON, _OFF)
    elif a.decay:
        _adagrad_loop(a, start, stop, k, _OFF, _L2_DECAY)
    else:
        _adagrad_loop(a, start, stop, k, _OFF, _OFF)


cdef void _adagrad_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Adagrad* a = <const _Adagrad*>args
    if a.f64:
        _adagrad_s(a, start, stop, <double>0)
    else:
        _adagrad_s(a, start, stop, <float>0)


def adagrad(floating[::1] param not None, const floating[::1] grad not None,
            floating[::1] sum_sq not None, double clr, double eps, double weight_decay,
            bint maximize, double grad_scale):
    """``s = s + g*g; p = p - clr*g / (sqrt(s) + eps)`` in place; ``clr`` is the step's
    decayed learning rate, computed in Python."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _Adagrad a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if sum_sq.shape[0] != n:
        _length_error("sum_sq", sum_sq.shape[0], n)
    a.f64 = floating is double
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.sum_sq = <char*>_ptr(sum_sq)
    a.decay = weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.clr, a.eps, a.weight_decay = clr, eps, weight_decay
    with nogil:
        _run(_adagrad_range, &a, n, _ADAGRAD_THREADS_FROM)


# --- the array-level fast path -----------------------------------------------------------------
#
# fastopt.adam_update & co. validate every call before anything is written, and
# fastopt/_validation.py stays the one source of every error message. On 1000 float32 items the
# Python checks took most of a 7.1 us call (issue 13). The functions below only answer "is this
# the common case?" from the ndarray C API: an exact ndarray, the canonical float32/float64 dtype
# object (identity, as _validation._fast_valid), equal ndim and dims, C-contiguous and aligned,
# writeable where written, and no written array's bytes overlapping any other array's (every
# array is C-contiguous, so its bytes are exactly [data, data + nbytes) and the interval test is
# exact; empty arrays overlap nothing, as np.may_share_memory says). Any False means "look
# closer": the caller runs the Python validation, which accepts or raises exactly as before. They
# never raise for a bad argument and never write.

cdef object _F32_DESCR = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT)
cdef object _F64_DESCR = cnp.PyArray_DescrFromType(cnp.NPY_DOUBLE)

cdef enum:
    _MAX_ARRAYS = 8
    _LAYOUT = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED


cdef bint _arrays_ok(PyObject** objs, int n_written, int n) noexcept:
    """``objs[0]`` (the parameter) fixes dtype and shape; the first ``n_written`` are written."""
    cdef cnp.ndarray ref, arr, other
    cdef int i, j, k, nd, flags, need
    cdef cnp.npy_intp* dims
    cdef char* start
    cdef char* other_start
    cdef cnp.npy_intp size, other_size
    if not cnp.PyArray_CheckExact(<object>objs[0]):
        return False
    ref = <cnp.ndarray>objs[0]
    # The canonical (native byte order) descriptors only: a '>f4' array has type number float32
    # too, and its own descriptor object.
    if (<void*>cnp.PyArray_DESCR(ref) != <void*>_F32_DESCR
            and <void*>cnp.PyArray_DESCR(ref) != <void*>_F64_DESCR):
        return False
    nd, dims = cnp.PyArray_NDIM(ref), cnp.PyArray_DIMS(ref)
    for i in range(n):
        if not cnp.PyArray_CheckExact(<object>objs[i]):
            return False
        arr = <cnp.ndarray>objs[i]
        # One descriptor object: the same dtype, native byte order (as ``dtype is`` in Python).
        if <void*>cnp.PyArray_DESCR(arr) != <void*>cnp.PyArray_DESCR(ref):
            return False
        if cnp.PyArray_NDIM(arr) != nd:
            return False
        for k in range(nd):
            if cnp.PyArray_DIMS(arr)[k] != dims[k]:
                return False
        flags = cnp.PyArray_FLAGS(arr)
        need = _LAYOUT | (cnp.NPY_ARRAY_WRITEABLE if i < n_written else 0)
        if (flags & need) != need:
            return False
    # Overlap: every written array against every later array (read ones may overlap each other).
    for i in range(n_written):
        arr = <cnp.ndarray>objs[i]
        size = cnp.PyArray_NBYTES(arr)
        if size == 0:
            continue
        start = <char*>cnp.PyArray_DATA(arr)
        for j in range(i + 1, n):
            other = <cnp.ndarray>objs[j]
            other_size = cnp.PyArray_NBYTES(other)
            other_start = <char*>cnp.PyArray_DATA(other)
            if other_size and start < other_start + other_size and other_start < start + size:
                return False
    return True


def update_arrays_ok(written, read):
    """True when the arrays of one update are the common valid case (see above); False means
    "validate in Python", never "invalid". ``written`` and ``read`` are sequences of
    ``(name, array)``, the parameter first, as ``fastopt._validation.check_update_arrays``
    takes them."""
    cdef PyObject* objs[_MAX_ARRAYS]
    cdef int n = 0, n_written
    cdef object item
    if type(written) is not tuple and type(written) is not list:
        return False
    if type(read) is not tuple and type(read) is not list:
        return False
    if len(written) == 0 or len(written) + len(read) > _MAX_ARRAYS:
        return False
    for item in written:
        if type(item) is not tuple or len(<tuple>item) != 2:
            return False
        objs[n] = <PyObject*>(<tuple>item)[1]
        n += 1
    n_written = n
    for item in read:
        if type(item) is not tuple or len(<tuple>item) != 2:
            return False
        objs[n] = <PyObject*>(<tuple>item)[1]
        n += 1
    return _arrays_ok(objs, n_written, n)


def all_writeable(list arrays):
    """True when every item of ``arrays`` is an ndarray whose WRITEABLE flag is set: an
    optimizer's per-step test that no parameter or state array was made read-only after it was
    built (~0.1 us for 18 arrays, against ~1.5 us for ``a.flags.writeable`` in Python). False
    means "find which one in Python", where the error is worded."""
    cdef object a
    for a in arrays:
        if not cnp.PyArray_Check(a) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
            return False
    return True


cdef bint _double_of(object x, double* out) except -1:
    # A Python float, or an int converted exactly (|x| <= 2**53, so float(x) is the same double):
    # what _validation's scalar checks return for them. Anything else: not the common case.
    cdef long long k
    cdef int overflow = 0
    if PyFloat_CheckExact(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return True
    if PyLong_CheckExact(x):
        k = PyLong_AsLongLongAndOverflow(x, &overflow)
        if overflow or k > _EXACT_INT or k < -_EXACT_INT:
            return False
        out[0] = <double>k
        return True
    return False


cdef long long _EXACT_INT = (<long long>1) << 53


def adam_checked(param, grad, m, v, v_max, t, lr, beta1, beta2, eps, weight_decay, decoupled,
                 maximize):
    """``fastopt.adam_update`` in the common case: validate in C and step, returning True; or
    return False with nothing written (anything unusual, valid or not), and the caller runs the
    Python validation. Accepted exactly when ``fastopt._validation.adam_args`` accepts, with the
    same values: ``t`` an int in [1, 2**53], the reals Python floats or exact small ints in
    range (``lr``, ``weight_decay`` finite >= 0; betas in [0, 1); ``eps`` finite > 0), the flags
    True or False. ``1 - beta**t`` is computed as ``float.__pow__`` computes it: C ``pow``
    (docs/contract.md §1 rule 7)."""
    cdef PyObject* objs[5]
    cdef int n
    cdef long long step
    cdef int overflow = 0
    cdef double d_lr, d_b1, d_b2, d_eps, d_wd
    cdef _Adam a
    cdef cnp.ndarray ref
    cdef Py_ssize_t size
    if v_max is None:
        objs[0], objs[1], objs[2], objs[3] = <PyObject*>param, <PyObject*>m, <PyObject*>v, <PyObject*>grad
        n = 4
        if not _arrays_ok(objs, 3, 4):
            return False
    else:
        objs[0], objs[1], objs[2] = <PyObject*>param, <PyObject*>m, <PyObject*>v
        objs[3], objs[4] = <PyObject*>v_max, <PyObject*>grad
        n = 5
        if not _arrays_ok(objs, 4, 5):
            return False
    if not PyLong_CheckExact(t):
        return False
    step = PyLong_AsLongLongAndOverflow(t, &overflow)
    if overflow or step < 1 or step > _EXACT_INT:
        return False
    if not (_double_of(lr, &d_lr) and _double_of(beta1, &d_b1) and _double_of(beta2, &d_b2)
            and _double_of(eps, &d_eps) and _double_of(weight_decay, &d_wd)):
        return False
    # NaN fails every comparison below, as in _validation.
    if not (isfinite(d_lr) and d_lr >= 0 and isfinite(d_wd) and d_wd >= 0
            and isfinite(d_eps) and d_eps > 0 and 0 <= d_b1 < 1 and 0 <= d_b2 < 1):
        return False
    if (decoupled is not True and decoupled is not False) or (
            maximize is not True and maximize is not False):
        return False
    ref = <cnp.ndarray>param
    size = cnp.PyArray_SIZE(ref)
    _adam_scalars(&a, <void*>cnp.PyArray_DESCR(ref) == <void*>_F64_DESCR, d_lr, d_b1, d_b2, d_eps,
                  1.0 - pow(d_b1, <double>step), 1.0 - pow(d_b2, <double>step), d_wd,
                  decoupled is True, maximize is True, 1.0, size)
    a.param, a.grad = <char*>cnp.PyArray_DATA(ref), <const char*>cnp.PyArray_DATA(<cnp.ndarray>grad)
    a.m, a.v = <char*>cnp.PyArray_DATA(<cnp.ndarray>m), <char*>cnp.PyArray_DATA(<cnp.ndarray>v)
    a.v_max = NULL if v_max is None else <char*>cnp.PyArray_DATA(<cnp.ndarray>v_max)
    a.amsgrad = v_max is not None
    if size < _NOGIL_FROM:
        _run(_adam_range, &a, size, _ADAM_THREADS_FROM)
    else:
        with nogil:
            _run(_adam_range, &a, size, _ADAM_THREADS_FROM)
    return True


# Below this many items the fast path keeps the GIL: a release and re-acquire costs ~0.1 us,
# more than another Python thread could gain in a call this short.
cdef Py_ssize_t _NOGIL_FROM = 4096


# --- global-norm clipping: a sum of squares in a fixed order, and a scaling -------------------
#
# docs/contract.md §8: the sum must not depend on the thread count or the SIMD width, so its
# order is fixed. An array is cut into blocks of SUMSQ_BLOCK items from its start; a block is
# summed in float64 by eight interleaved lanes (item k of the block goes to lane k % 8, lanes
# in item order), the lanes are combined as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), and the block
# sums are added in block order. Threads split the blocks, never a block; the reference
# (fastopt.reference._ops.sumsq) follows the same order with NumPy. A float32 square is exact
# in float64 (24-bit significands, 48-bit product).

SUMSQ_BLOCK = 1024
cdef Py_ssize_t _BLOCK = 1024


cdef double _block_sumsq(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef double l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0
    cdef double t[8]
    cdef Py_ssize_t k, n8 = n - n % 8
    for k in range(0, n8, 8):
        l0 += <double>x[k] * <double>x[k]
        l1 += <double>x[k + 1] * <double>x[k + 1]
        l2 += <double>x[k + 2] * <double>x[k + 2]
        l3 += <double>x[k + 3] * <double>x[k + 3]
        l4 += <double>x[k + 4] * <double>x[k + 4]
        l5 += <double>x[k + 5] * <double>x[k + 5]
        l6 += <double>x[k + 6] * <double>x[k + 6]
        l7 += <double>x[k + 7] * <double>x[k + 7]
    t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7] = l0, l1, l2, l3, l4, l5, l6, l7
    for k in range(n8, n):
        t[k - n8] += <double>x[k] * <double>x[k]
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))


cdef struct _SumSq:
    bint f64
    const char* x
    double* partial
    Py_ssize_t n


cdef void _sumsq_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    # [start, stop) counts blocks.
    cdef const _SumSq* a = <const _SumSq*>args
    cdef Py_ssize_t b, first, size
    for b in range(start, stop):
        first = b * _BLOCK
        size = _BLOCK if a.n - first > _BLOCK else a.n - first
        if a.f64:
            a.partial[b] = _block_sumsq((<const double*>a.x) + first, size)
        else:
            a.partial[b] = _block_sumsq((<const float*>a.x) + first, size)


def sumsq(const floating[::1] x not None):
    """The sum of ``x*x`` over ``x``, in float64, in the fixed order described above."""
    cdef Py_ssize_t n = x.shape[0], b, blocks = (x.shape[0] + _BLOCK - 1) // _BLOCK
    cdef double total = 0
    cdef _SumSq a
    if n == 0:
        return 0.0
    if blocks == 1:
        with nogil:
            total = _block_sumsq(&x[0], n)
        return total
    a.f64, a.x, a.n = floating is double, <const char*>&x[0], n
    a.partial = <double*>malloc(blocks * sizeof(double))
    if a.partial == NULL:
        raise MemoryError()
    try:
        with nogil:
            _run(_sumsq_range, &a, blocks, _SUMSQ_THREADS_FROM // _BLOCK)
            for b in range(blocks):
                total += a.partial[b]
    finally:
        free(a.partial)
    return total


def sumsq_blocks(const floating[::1] x not None, double[::1] out not None):
    """``out[b]`` = the sum of squares of block ``b`` of ``x`` (the terms of :func:`sumsq`, for
    callers that add blocks held by several processes, docs/contract.md §9)."""
    cdef Py_ssize_t n = x.shape[0], blocks = (x.shape[0] + _BLOCK - 1) // _BLOCK
    cdef _SumSq a
    if out.shape[0] != blocks:
        raise ValueError(f"out has {out.shape[0]} items; expected {blocks}, the number of "
                         f"{_BLOCK}-item blocks of x")
    if n == 0:
        return
    a.f64, a.x, a.n, a.partial = floating is double, <const char*>&x[0], n, &out[0]
    with nogil:
        _run(_sumsq_range, &a, blocks, _SUMSQ_THREADS_FROM // _BLOCK)


cdef struct _Scale:
    bint f64
    char* x
    double coef


cdef void _scale_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Scale* a = <const _Scale*>args
    cdef Py_ssize_t i
    cdef float* xf = <float*>a.x
    cdef double* xd = <double*>a.x
    cdef float cf = <float>a.coef
    if a.f64:
        for i in range(start, stop):
            xd[i] = xd[i] * a.coef
    else:
        for i in range(start, stop):
            xf[i] = xf[i] * cf


def scale(floating[::1] x not None, double coef):
    """``x = x * coef`` in place, ``coef`` rounded once to ``x``'s dtype."""
    cdef _Scale a
    a.f64, a.x, a.coef = floating is double, <char*>_ptr(x), coef
    with nogil:
        _run(_scale_range, &a, x.shape[0], _SGD_THREADS_FROM)


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


def ewa(const floating[:] x not None, floating[:] out not None, double beta,
        bint bias_correction):
    """out[k] = v_k (optionally / (1 - beta**(k+1))), v_k = beta*v_{k-1} + (1-beta)*x[k]."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out has {out.shape[0]} items; expected {x.shape[0]}, the length of x")
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


# The gathers check their arguments themselves (issue 10; docs/contract.md §5): the Python layer
# sizes every buffer, and this is the second line, so that no assignment and no direct call can
# make a gather write, or read, outside its arrays. The conditions are those of
# fastopt._validation.check_columns_into / check_take_rows, tested here in C: O(1) per array
# (ndim, shape, dtype, contiguity, writeability) plus one pass over the indices for their range.
# On a failure the kernel calls the Python check only to word the error, so both implementations
# raise the same ValueError; nothing has been written by then.

_INTP = _np.dtype(_np.intp)


cdef int _refuse(str check, tuple args) except -1:
    from fastopt import _validation
    getattr(_validation, check)(*args)
    # Unreachable while the two agree; refuse anyway rather than write.
    raise ValueError(f"{check[6:]}: arguments rejected by the kernel's own checks")


cdef inline bint _same_dtype(cnp.ndarray a, cnp.ndarray b):
    # Built-in dtypes are shared descriptor objects, so the pointer test is the common case;
    # otherwise the equality NumPy (and the Python check) applies.
    return cnp.PyArray_DESCR(a) == cnp.PyArray_DESCR(b) or (<object>a).dtype == (<object>b).dtype


cdef inline bint _is_index(object index):
    """A 1-D C-contiguous ndarray of intp."""
    if not isinstance(index, cnp.ndarray):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>index
    return (cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and (cnp.PyArray_TYPE(a) == cnp.NPY_INTP or (<object>a).dtype == _INTP))


cdef inline bint _is_out(object out, cnp.ndarray src, Py_ssize_t n_rows, Py_ssize_t n_cols):
    """A writeable C-contiguous ndarray of ``src``'s dtype and shape ``(n_rows, n_cols)``."""
    if not isinstance(out, cnp.ndarray):
        return False
    cdef cnp.ndarray o = <cnp.ndarray>out
    return (cnp.PyArray_NDIM(o) == 2 and o.shape[0] == n_rows and o.shape[1] == n_cols
            and cnp.PyArray_IS_C_CONTIGUOUS(o) and cnp.PyArray_ISWRITEABLE(o)
            and _same_dtype(o, src))


cdef bint _in_range(const intp_t* index, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """``0 <= index[j] < n`` for every j < k: one pass, the largest index seen as unsigned (a
    negative one becomes huge). k reads of 8 bytes, against the k rows (take_rows) or the
    n_rows * k items (columns_into) that the gather then moves."""
    cdef size_t high = 0, u
    cdef Py_ssize_t j
    for j in range(k):
        u = <size_t>index[j]
        if u > high:
            high = u
    return k == 0 or high < <size_t>n


# Rows split over threads from 2**18 items (1 MiB of float32): below, the serial gather takes
# under ~0.3 ms and a team wake-up is a visible share of it. On (784, 60000) float32, 2 threads
# took 34 ms against 66 ms for one (X.copy(): 18 ms).
cdef Py_ssize_t _GATHER_THREADS_FROM = 1 << 18


def columns_into(src, perm, batch, blocks):
    """Gather columns of 2-D ``src`` (any strides) batch by batch into ``blocks``.

    ``blocks[k]`` must be a writeable C-contiguous ndarray of ``src``'s dtype and shape
    ``(src.shape[0], bk)``, ``bk = min(batch, len(perm) - k*batch)``, one block per batch; it
    receives ``src[:, perm[k*batch : k*batch + bk]]``. ``perm`` is a 1-D C-contiguous intp array
    of column indices. All of it is checked first (O(1) per block plus one pass over ``perm``);
    a mismatch raises ValueError before anything is written.
    """
    cdef Py_ssize_t n_blocks, k, m, n_rows, b = 0, rs, cs, size
    cdef cnp.ndarray s_arr, p_arr
    cdef bint ok = (isinstance(src, cnp.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>src) == 2
                    and _is_index(perm) and isinstance(blocks, list)
                    and ((isinstance(batch, int) and not isinstance(batch, bool))
                         or isinstance(batch, _np.integer)))
    if ok:
        b = batch
        ok = b >= 1
    if not ok:
        _refuse("check_columns_into", (src, perm, batch, blocks))
    s_arr, p_arr = <cnp.ndarray>src, <cnp.ndarray>perm
    m, n_rows = p_arr.shape[0], s_arr.shape[0]
    n_blocks = len(<list>blocks)
    ok = n_blocks == m // b + (m % b != 0)  # ceil without overflow
    k = 0
    while ok and k < n_blocks:
        ok = _is_out((<list>blocks)[k], s_arr, n_rows, b if m - k * b > b else m - k * b)
        k += 1
    cdef const intp_t* p = <const intp_t*>cnp.PyArray_DATA(p_arr)
    if ok:
        with nogil:
            ok = _in_range(p, m, s_arr.shape[1])
    if not ok:
        _refuse("check_columns_into", (src, perm, batch, blocks))
    rs, cs, size = s_arr.strides[0], s_arr.strides[1], s_arr.itemsize
    cdef const char* s = <const char*>cnp.PyArray_DATA(s_arr)
    cdef int nt = _threads_for(n_rows * m, _GATHER_THREADS_FROM)
    cdef char** dst = <char**>malloc((n_blocks if n_blocks else 1) * sizeof(char*))
    if dst == NULL:
        raise MemoryError()
    try:
        for k in range(n_blocks):
            dst[k] = <char*>cnp.PyArray_DATA(<cnp.ndarray>(<list>blocks)[k])
        with nogil:
            _columns_into(s, n_rows, rs, cs, p, m, b, dst, size, nt)
    finally:
        free(dst)


# Whole rows are memcpy'd, so threads pay early: measured on rows of 784 float32 drawn from a
# (60000, 784) array, one epoch of batches of 4 / 16 / 64 rows took 42 / 26 / 23 ms on one thread
# and 35 / 17 / 12 ms on two; on 64-float rows, 4 KiB per call broke even and 8 KiB gained 10%.
cdef Py_ssize_t _TAKE_ROWS_THREADS_FROM_BYTES = 8192


def take_rows(src, rows, out):
    """out[j, :] = src[rows[j], :] for 2-D ``src`` (any strides) into C-contiguous ``out``.

    ``rows`` is a 1-D C-contiguous intp array of indices in ``[0, src.shape[0])``; ``out`` a
    writeable C-contiguous array of ``src``'s dtype and shape ``(len(rows), src.shape[1])``.
    All of it is checked first (O(1) plus one pass over ``rows``); a mismatch raises ValueError
    before anything is written.
    """
    cdef cnp.ndarray s_arr, r_arr
    cdef Py_ssize_t k = 0, n_cols = 0
    cdef bint ok = (isinstance(src, cnp.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>src) == 2
                    and _is_index(rows))
    if ok:
        s_arr, r_arr = <cnp.ndarray>src, <cnp.ndarray>rows
        k, n_cols = r_arr.shape[0], s_arr.shape[1]
        ok = _is_out(out, s_arr, k, n_cols)
    cdef const intp_t* r = NULL
    if ok:
        r = <const intp_t*>cnp.PyArray_DATA(r_arr)
        ok = _in_range(r, k, s_arr.shape[0])
    if not ok:
        _refuse("check_take_rows", (src, rows, out))
    cdef const char* s = <const char*>cnp.PyArray_DATA(s_arr)
    cdef char* o = <char*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef Py_ssize_t rs = s_arr.strides[0], cs = s_arr.strides[1], size = s_arr.itemsize
    cdef Py_ssize_t row_bytes = n_cols * size, j
    cdef int nt = _threads_for(k * row_bytes, _TAKE_ROWS_THREADS_FROM_BYTES)
    with nogil:
        if nt > 1:
            for j in prange(k, num_threads=nt, schedule="static"):
                _take_row(s + r[j] * rs, cs, n_cols, size, o + j * row_bytes)
        else:
            for j in range(k):
                _take_row(s + r[j] * rs, cs, n_cols, size, o + j * row_bytes)


cdef inline void _take_row(const char* row, Py_ssize_t col_stride, Py_ssize_t n_cols,
                           Py_ssize_t itemsize, char* dst) noexcept nogil:
    cdef Py_ssize_t c
    if col_stride == itemsize:  # a contiguous row: one memcpy
        memcpy(dst, row, n_cols * itemsize)
    else:
        for c in range(n_cols):
            memcpy(dst + c * itemsize, row + c * col_stride, itemsize)
