# --- global-norm clipping: a sum of squares in a fixed order, and a scaling -------------------
#
# docs/contract.md §8: the sum must not depend on the thread count or the SIMD width, so its
# order is fixed. An array is cut into blocks of SUMSQ_BLOCK items from its start; a block is
# summed in float64 by eight interleaved lanes (item k of the block goes to lane k % 8, lanes
# in item order), the lanes are combined as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), and the block
# sums are added in block order. Threads split the blocks, never a block; the reference
# (fastopt.reference._ops.sumsq) follows the same order with NumPy. A float32 square is exact
# in float64 (24-bit significands, 48-bit product). The 16-bit entries (mixed.pxi) widen each
# block to float32 first, so their sums are the float32 kernel's on the widened values.

cdef enum:
    _BLOCK = 1024
SUMSQ_BLOCK = _BLOCK   # the reference's own constant must equal it (tests/kernels/test_build.py)


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


cdef double _block_sumsq_of(int fmt, const char* x, Py_ssize_t first,
                            Py_ssize_t size) noexcept nogil:
    # Block [first, first + size) of ``x`` in format ``fmt`` (half.pxi's _FMT_ constants).
    cdef float wide[_BLOCK]
    if fmt == _FMT_F64:
        return _block_sumsq((<const double*>x) + first, size)
    if fmt == _FMT_F32:
        return _block_sumsq((<const float*>x) + first, size)
    _widen((<const uint16_t*>x) + first, &wide[0], size, fmt == _FMT_F16)
    return _block_sumsq(&wide[0], size)


cdef struct _SumSq:
    int fmt
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
        a.partial[b] = _block_sumsq_of(a.fmt, a.x, first, size)


cdef object _sumsq(int fmt, const char* x, Py_ssize_t n):
    """The sum of squares of the ``n`` items at ``x`` (format ``fmt``): :func:`sumsq`."""
    cdef Py_ssize_t b, blocks = (n + _BLOCK - 1) // _BLOCK
    cdef double total = 0
    cdef _SumSq a
    if n == 0:
        return 0.0
    if blocks == 1:
        with nogil:
            total = _block_sumsq_of(fmt, x, 0, n)
        return total
    a.fmt, a.x, a.n = fmt, x, n
    a.partial = <double*>malloc(blocks * sizeof(double))
    if a.partial == NULL:
        raise MemoryError()
    try:
        with nogil:
            _run(_sumsq_range, &a, blocks, _threads_from[_T_SUMSQ] // _BLOCK)
            for b in range(blocks):
                total += a.partial[b]
    finally:
        free(a.partial)
    return total


cdef object _sumsq_blocks(int fmt, const char* x, Py_ssize_t n, double[::1] out):
    """:func:`sumsq_blocks` of the ``n`` items at ``x`` (format ``fmt``)."""
    cdef Py_ssize_t blocks = (n + _BLOCK - 1) // _BLOCK
    cdef _SumSq a
    if out.shape[0] != blocks:
        raise ValueError(f"out has {out.shape[0]} items; expected {blocks}, the number of "
                         f"{_BLOCK}-item blocks of x")
    if n == 0:
        return
    a.fmt, a.x, a.n, a.partial = fmt, x, n, &out[0]
    with nogil:
        _run(_sumsq_range, &a, blocks, _threads_from[_T_SUMSQ] // _BLOCK)


def sumsq(const floating[::1] x not None):
    """The sum of ``x*x`` over ``x``, in float64, in the fixed order described above."""
    return _sumsq(_FMT_F64 if floating is double else _FMT_F32, <const char*>_cptr(x),
                  x.shape[0])


def sumsq_blocks(const floating[::1] x not None, double[::1] out not None):
    """``out[b]`` = the sum of squares of block ``b`` of ``x`` (the terms of :func:`sumsq`, for
    callers that add blocks held by several processes, docs/contract.md §9)."""
    _sumsq_blocks(_FMT_F64 if floating is double else _FMT_F32, <const char*>_cptr(x),
                  x.shape[0], out)


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
        _run(_scale_range, &a, x.shape[0], _threads_from[_T_SGD])
