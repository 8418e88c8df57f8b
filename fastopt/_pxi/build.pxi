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
