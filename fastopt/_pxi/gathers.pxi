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
# On a failure the kernel returns False with nothing written, and fastopt._ops runs the Python
# check to word the error, so both implementations raise the same ValueError (the kernels never
# import fastopt's Python modules: no import cycle).

_INTP = _np.dtype(_np.intp)


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


def columns_into(src, perm, batch, blocks):
    """Gather columns of 2-D ``src`` (any strides) batch by batch into ``blocks``.

    ``blocks[k]`` must be a writeable C-contiguous ndarray of ``src``'s dtype and shape
    ``(src.shape[0], bk)``, ``bk = min(batch, len(perm) - k*batch)``, one block per batch; it
    receives ``src[:, perm[k*batch : k*batch + bk]]``. ``perm`` is a 1-D C-contiguous intp array
    of column indices. All of it is checked first (O(1) per block plus one pass over ``perm``):
    True when done; False, with nothing written, on any mismatch (``fastopt._ops`` then has
    ``fastopt._validation`` word the error).
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
        return False
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
        return False
    rs, cs, size = s_arr.strides[0], s_arr.strides[1], s_arr.itemsize
    cdef const char* s = <const char*>cnp.PyArray_DATA(s_arr)
    cdef int nt = _threads_for(n_rows * m, _threads_from[_T_COLUMNS_INTO])
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
    return True


cdef inline void _take_row(const char* row, Py_ssize_t col_stride, Py_ssize_t n_cols,
                           Py_ssize_t itemsize, char* dst) noexcept nogil:
    cdef Py_ssize_t c
    if col_stride == itemsize:  # a contiguous row: one memcpy
        memcpy(dst, row, n_cols * itemsize)
    else:
        for c in range(n_cols):
            memcpy(dst + c * itemsize, row + c * col_stride, itemsize)


def take_rows(src, rows, out):
    """out[j, :] = src[rows[j], :] for 2-D ``src`` (any strides) into C-contiguous ``out``.

    ``rows`` is a 1-D C-contiguous intp array of indices in ``[0, src.shape[0])``; ``out`` a
    writeable C-contiguous array of ``src``'s dtype and shape ``(len(rows), src.shape[1])``.
    All of it is checked first (O(1) plus one pass over ``rows``): True when done; False, with
    nothing written, on any mismatch.
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
        return False
    cdef const char* s = <const char*>cnp.PyArray_DATA(s_arr)
    cdef char* o = <char*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef Py_ssize_t rs = s_arr.strides[0], cs = s_arr.strides[1], size = s_arr.itemsize
    cdef Py_ssize_t row_bytes = n_cols * size, j
    cdef int nt = _threads_for(k * row_bytes, _threads_from[_T_TAKE_ROWS])
    with nogil:
        if nt > 1:
            for j in prange(k, num_threads=nt, schedule="static"):
                _take_row(s + r[j] * rs, cs, n_cols, size, o + j * row_bytes)
        else:
            for j in range(k):
                _take_row(s + r[j] * rs, cs, n_cols, size, o + j * row_bytes)
    return True
