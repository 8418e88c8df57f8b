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
    cdef floating wd = <floating>a.weight_decay, gs = <floating>a.scale
    cdef floating gi, si
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * gs
        if decay_t is _L2:
            gi = gi + wd * p[i]
        si = sum_sq[i] + gi * gi
        sum_sq[i] = si
        p[i] = p[i] - (clr * gi) / (_sqrt(si) + e)


cdef inline void _adagrad_pick_scale_decay(const _Adagrad* a, Py_ssize_t start, Py_ssize_t stop,
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
        _adagrad_pick_scale_decay(a, start, stop, <double>0)
    else:
        _adagrad_pick_scale_decay(a, start, stop, <float>0)


cdef void _adagrad_scalars(_Adagrad* a, bint f64, double clr, double eps, double weight_decay,
                           bint maximize, double grad_scale) noexcept:
    """Fill everything of ``a`` but the array pointers (shared with :func:`adagrad_half`)."""
    a.f64 = f64
    a.decay = weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.clr, a.eps, a.weight_decay = clr, eps, weight_decay


cdef void _adagrad_at(void* args, Py_ssize_t start, const float* grad) noexcept nogil:
    # mixed.pxi: a float32 struct's arrays from item ``start``, the gradient from ``grad``.
    cdef _Adagrad* a = <_Adagrad*>args
    a.param, a.grad = _shift(a.param, start), <const char*>grad
    a.sum_sq = _shift(a.sum_sq, start)


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
    _adagrad_scalars(&a, floating is double, clr, eps, weight_decay, maximize, grad_scale)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.sum_sq = <char*>_ptr(sum_sq)
    with nogil:
        _run(_adagrad_range, &a, n, _threads_from[_T_ADAGRAD])
