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
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, gs = <floating>a.scale
    cdef floating b = <floating>a.beta, c = <floating>(1.0 - a.beta), e = <floating>a.eps
    cdef floating mu = <floating>a.momentum
    cdef floating gi, si, ai, denom, bi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * gs
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


cdef inline void _rmsprop_pick_centered_buffer(const _RMSProp* a, Py_ssize_t start, Py_ssize_t stop,
                                               floating k, scale_t sc, decay_t dc) noexcept nogil:
    if a.centered:
        if a.buffered:
            _rmsprop_loop(a, start, stop, k, sc, dc, _ON, _ON)
        else:
            _rmsprop_loop(a, start, stop, k, sc, dc, _ON, _OFF)
    elif a.buffered:
        _rmsprop_loop(a, start, stop, k, sc, dc, _OFF, _ON)
    else:
        _rmsprop_loop(a, start, stop, k, sc, dc, _OFF, _OFF)


cdef inline void _rmsprop_pick_scale_decay(const _RMSProp* a, Py_ssize_t start, Py_ssize_t stop,
                                           floating k) noexcept nogil:
    if a.scaled:
        if a.decay:
            _rmsprop_pick_centered_buffer(a, start, stop, k, _ON, _L2_DECAY)
        else:
            _rmsprop_pick_centered_buffer(a, start, stop, k, _ON, _OFF)
    elif a.decay:
        _rmsprop_pick_centered_buffer(a, start, stop, k, _OFF, _L2_DECAY)
    else:
        _rmsprop_pick_centered_buffer(a, start, stop, k, _OFF, _OFF)


cdef void _rmsprop_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _RMSProp* a = <const _RMSProp*>args
    if a.f64:
        _rmsprop_pick_scale_decay(a, start, stop, <double>0)
    else:
        _rmsprop_pick_scale_decay(a, start, stop, <float>0)


cdef void _rmsprop_scalars(_RMSProp* a, bint f64, bint centered, bint buffered, double lr,
                           double beta, double eps, double weight_decay, double momentum,
                           bint maximize, double grad_scale) noexcept:
    """Fill everything of ``a`` but the array pointers (shared with :func:`rmsprop_half`)."""
    a.f64 = f64
    a.centered, a.buffered = centered, buffered
    a.decay = weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta, a.eps, a.weight_decay, a.momentum = lr, beta, eps, weight_decay, momentum


cdef void _rmsprop_at(void* args, Py_ssize_t start, const float* grad) noexcept nogil:
    # mixed.pxi: a float32 struct's arrays from item ``start``, the gradient from ``grad``.
    cdef _RMSProp* a = <_RMSProp*>args
    a.param, a.grad = _shift(a.param, start), <const char*>grad
    a.sq_avg, a.grad_avg = _shift(a.sq_avg, start), _shift(a.grad_avg, start)
    a.momentum_buffer = _shift(a.momentum_buffer, start)


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
    _rmsprop_scalars(&a, floating is double, grad_avg is not None, momentum_buffer is not None,
                     lr, beta, eps, weight_decay, momentum, maximize, grad_scale)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.sq_avg, a.grad_avg = <char*>_ptr(sq_avg), <char*>_ptr(grad_avg)
    a.momentum_buffer = <char*>_ptr(momentum_buffer)
    with nogil:
        _run(_rmsprop_range, &a, n, _threads_from[_T_RMSPROP])
