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
    # value is exact in a double): m2k = -2**K, ny = -RN(1/d) * 2**-K, dk = d * 2**K.
    double m2k, ny, dk


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
    r.m2k = -ldexp(1.0, e)
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


cdef inline floating _div_const(floating x, floating m2k, floating ny, floating dk) noexcept nogil:
    # RN(x / d) for finite |x| <= MAX * 2**-K; NaN (with the overflow or invalid flag) otherwise.
    # Written without a negation: GCC folds -fma(a, b, c) into one negated FMA (vfnmadd or
    # vfnmsub), whose exact zero has the other sign, and x = -0.0 would give +0.0.
    cdef floating xn = x * m2k       # -x * 2**K, exact (the remainder below is then exact)
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
