# --- gradient descent, plain or with torch's heavy-ball momentum -------------------------------

cdef struct _SGD:
    bint f64, scaled, decay, nesterov
    int heavy                      # 0: no buffer; 1: its first step (buf = g); 2: later steps
    char* param
    const char* grad
    char* momentum_buffer
    double lr, weight_decay, momentum, dampening, scale


cdef void _sgd_loop(const _SGD* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                    scale_t sc, decay_t dc, heavy_t hv, nesterov_t nest) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* buf = <floating*>a.momentum_buffer
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, gs = <floating>a.scale
    cdef floating mu = <floating>a.momentum, cd = <floating>(1.0 - a.dampening)
    cdef floating gi, bi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * gs
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


cdef inline void _sgd_pick_buffer_nesterov(const _SGD* a, Py_ssize_t start, Py_ssize_t stop,
                                           floating k, scale_t sc, decay_t dc) noexcept nogil:
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


cdef inline void _sgd_pick_decay(const _SGD* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                                 scale_t sc) noexcept nogil:
    if a.decay:
        _sgd_pick_buffer_nesterov(a, start, stop, k, sc, _L2_DECAY)
    else:
        _sgd_pick_buffer_nesterov(a, start, stop, k, sc, _OFF)


cdef inline void _sgd_pick_scale(const _SGD* a, Py_ssize_t start, Py_ssize_t stop,
                                 floating k) noexcept nogil:
    if a.scaled:
        _sgd_pick_decay(a, start, stop, k, _ON)
    else:
        _sgd_pick_decay(a, start, stop, k, _OFF)


cdef void _sgd_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _SGD* a = <const _SGD*>args
    if a.f64:
        _sgd_pick_scale(a, start, stop, <double>0)
    else:
        _sgd_pick_scale(a, start, stop, <float>0)


cdef void _sgd_scalars(_SGD* a, bint f64, bint buffered, double lr, double weight_decay,
                       double momentum, double dampening, bint nesterov, bint first,
                       bint maximize, double grad_scale) noexcept:
    """Fill everything of ``a`` but the array pointers (shared with :func:`sgd_half`)."""
    a.f64 = f64
    a.heavy = 0 if not buffered else (1 if first else 2)
    a.nesterov, a.decay = nesterov, weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.weight_decay, a.momentum, a.dampening = lr, weight_decay, momentum, dampening


cdef void _sgd_at(void* args, Py_ssize_t start, const float* grad) noexcept nogil:
    # mixed.pxi: a float32 struct's arrays from item ``start``, the gradient from ``grad``.
    cdef _SGD* a = <_SGD*>args
    a.param, a.grad = _shift(a.param, start), <const char*>grad
    a.momentum_buffer = _shift(a.momentum_buffer, start)


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
    _sgd_scalars(&a, floating is double, momentum_buffer is not None, lr, weight_decay,
                 momentum, dampening, nesterov, first, maximize, grad_scale)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.momentum_buffer = <char*>_ptr(momentum_buffer)
    with nogil:
        _run(_sgd_range, &a, n, _threads_from[_T_SGD])
