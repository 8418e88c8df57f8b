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
