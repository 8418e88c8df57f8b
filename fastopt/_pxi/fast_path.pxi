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

# Integers up to 2**53 convert to a double exactly.
cdef long long _EXACT_INT = (<long long>1) << 53


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


# Below this many items the fast path keeps the GIL: a release and re-acquire costs ~0.1 us,
# more than another Python thread could gain in a call this short.
cdef Py_ssize_t _NOGIL_FROM = 4096

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
        _run(_adam_range, &a, size, _threads_from[_T_ADAM])
    else:
        with nogil:
            _run(_adam_range, &a, size, _threads_from[_T_ADAM])
    return True
