# --- 16-bit formats: widening to float32 and rounding back, in integers ------------------------
#
# docs/contract.md §14. The same bits as fastopt/_half.py (the reference), item for item:
#
# * widening is exact. bfloat16 is the top half of a float32: ``bits << 16``. float16: a normal
#   number is rebiased (exponent + 112), infinity and NaN keep their payload shifted into the top
#   of float32's significand (a signalling NaN stays signalling, as in NumPy's software
#   conversion; the F16C instruction ``vcvtph2ps`` would quiet it, so it is not used), and a
#   subnormal or zero is ``sig * 2**-24``: an int-to-float conversion of sig < 2**10 and a
#   multiplication by a power of two, both exact, so neither the rounding mode nor FTZ/DAZ (the
#   result is at least 2**-24, a normal float32) can change it;
# * rounding is to nearest, ties to even, by adding half an ULP minus one plus the lowest kept
#   bit and truncating (a carry into the exponent is the right result, up to infinity), integer
#   operations only: no CPU conversion instruction (``vcvtps2ph`` quiets a signalling NaN's
#   payload differently from the reference) and no dependence on the MXCSR. NaN: bfloat16 gives
#   the quiet NaN 0x7fc0 with its sign (ml_dtypes); float16 keeps the sign and the top 10
#   payload bits, 0x7c01 when those are zero (NumPy).
#
# The bits move between float and uint32 through memcpy (the compiler makes it a register move):
# Python's CFLAGS do not include -fno-strict-aliasing.

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>

    /* mask ? a : b for a mask of all ones or zeros: written with masks, not branches or ?:
       chains, so that GCC 12 vectorises both float16 loops (-fopt-info-vec: with if/else it
       reported "control flow in loop" and vectorised neither; now both on AVX2, the widening
       on SSE2 too, where the rounding's variable shift has no vector instruction). The times
       measured on the loaded 2-core machine were too noisy to quote (avx2, per 2048 items:
       bfloat16 round 0.8 us, widen 0.5 us; float16 round 2.7-6 us, widen 1.2-2.3 us). */
    #define FASTOPT_SEL(mask, a, b) (((a) & (mask)) | ((b) & ~(mask)))
    #define FASTOPT_MASK(cond) (0u - (uint32_t)(cond))

    static inline float fastopt_f16_widen1(uint16_t h) {
        uint32_t x = h;
        uint32_t sign = (x & 0x8000u) << 16, e = x & 0x7C00u, s = x & 0x03FFu;
        uint32_t normal = ((x & 0x7FFFu) + 0x1C000u) << 13;      /* exponent + 112 */
        uint32_t special = 0x7F800000u | (s << 13);              /* inf, NaN with its payload */
        float tiny_f = (float)(int32_t)s * 5.9604644775390625e-08f;   /* s * 2**-24, exact */
        uint32_t tiny, r;
        float out;
        memcpy(&tiny, &tiny_f, 4);
        r = FASTOPT_SEL(FASTOPT_MASK(e == 0), tiny,
                        FASTOPT_SEL(FASTOPT_MASK(e == 0x7C00u), special, normal)) | sign;
        memcpy(&out, &r, 4);
        return out;
    }

    static inline uint16_t fastopt_f16_narrow1(float f) {
        uint32_t u, a, sign, r, k, s, m, nan, normal, sub;
        memcpy(&u, &f, 4);
        sign = (u >> 16) & 0x8000u;
        a = u & 0x7FFFFFFFu;
        /* NaN: the top 10 payload bits, 0x7c01 when they are all zero */
        nan = 0x7C00u + ((a & 0x7FFFFFu) >> 13);
        nan += (uint32_t)(nan == 0x7C00u);
        /* normal (float32 exponent 113-142): rebias, round at bit 13; 65520 carries to 0x7c00 */
        normal = (a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u)) >> 13;
        /* subnormal (exponent 102-112): the significand with its hidden bit shifted right by
           126 - exponent (14-24; clamped so that the unused lanes shift by a valid count) */
        k = a >> 23;
        s = 126u - (k > 112u ? 112u : (k < 102u ? 102u : k));
        m = (a & 0x7FFFFFu) | 0x800000u;
        sub = (m + (1u << (s - 1)) - 1u + ((m >> s) & 1u)) >> s;
        r = FASTOPT_SEL(FASTOPT_MASK(a >= 0x38800000u), normal, sub);
        r &= FASTOPT_MASK(a >= 0x33000000u);                     /* under 2**-25: zero */
        r = FASTOPT_SEL(FASTOPT_MASK(a >= 0x47800000u), 0x7C00u, r);   /* >= 2**16: inf */
        r = FASTOPT_SEL(FASTOPT_MASK(a > 0x7F800000u), nan, r);
        return (uint16_t)(r | sign);
    }

    static inline uint16_t fastopt_bf16_narrow1(float x) {
        uint32_t u;
        memcpy(&u, &x, 4);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u)
            return (uint16_t)(((u >> 16) & 0x8000u) | 0x7FC0u);
        return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    static void fastopt_widen(const uint16_t* restrict h, float* restrict out, Py_ssize_t n,
                              int f16) {
        Py_ssize_t i;
        if (f16) {
            for (i = 0; i < n; i++) out[i] = fastopt_f16_widen1(h[i]);
        } else {
            for (i = 0; i < n; i++) {
                uint32_t r = (uint32_t)h[i] << 16;
                memcpy(&out[i], &r, 4);
            }
        }
    }

    static void fastopt_narrow(const float* restrict x, uint16_t* restrict out, Py_ssize_t n,
                               int f16) {
        Py_ssize_t i;
        if (f16) {
            for (i = 0; i < n; i++) out[i] = fastopt_f16_narrow1(x[i]);
        } else {
            for (i = 0; i < n; i++) out[i] = fastopt_bf16_narrow1(x[i]);
        }
    }
    """
    void _widen "fastopt_widen"(const uint16_t* h, float* out, Py_ssize_t n, bint f16) noexcept nogil
    void _narrow "fastopt_narrow"(const float* x, uint16_t* out, Py_ssize_t n, bint f16) noexcept nogil


cdef enum:
    # What a sum of squares reads (clipping.pxi): float32, float64, or 16-bit bits widened first.
    _FMT_F32, _FMT_F64, _FMT_BF16, _FMT_F16


def widen_half(bint f16, const uint16_t[::1] bits not None, float[::1] out not None):
    """``out`` = the float32 values of the 16-bit patterns ``bits`` (float16 when ``f16``, else
    bfloat16), exactly ``fastopt._half.widen``; for tests."""
    if out.shape[0] != bits.shape[0]:
        _length_error("out", out.shape[0], bits.shape[0], "bits")
    if bits.shape[0]:
        with nogil:
            _widen(&bits[0], &out[0], bits.shape[0], f16)


def narrow_half(bint f16, const float[::1] x not None, uint16_t[::1] out not None):
    """``out`` = the 16-bit patterns of ``x`` rounded to nearest even, exactly
    ``fastopt._half.narrow``; for tests."""
    if out.shape[0] != x.shape[0]:
        _length_error("out", out.shape[0], x.shape[0], "x")
    if x.shape[0]:
        with nogil:
            _narrow(&x[0], &out[0], x.shape[0], f16)
