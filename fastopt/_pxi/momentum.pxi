# --- momentum, the course's form -------------------------------------------------------------

cdef struct _Momentum:
    bint f64, scaled, decay, nesterov
    char* param
    const char* grad
    char* velocity
    double lr, beta, weight_decay, scale


cdef void _momentum_loop(const _Momentum* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                         scale_t sc, decay_t dc, nesterov_t nest) noexcept nogil:
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* velocity = <floating*>a.velocity
    cdef floating lr = <floating>a.lr, wd = <floating>a.weight_decay, gs = <floating>a.scale
    cdef floating b = <floating>a.beta, c = <floating>(1.0 - a.beta)
    cdef floating gi, vi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        if scale_t is _On:
            gi = gi * gs
        if decay_t is _L2:
            gi = gi + wd * p[i]
        vi = b * velocity[i] + c * gi
        velocity[i] = vi
        if nesterov_t is _On:
            p[i] = p[i] - lr * (b * vi + c * gi)
        else:
            p[i] = p[i] - lr * vi


cdef inline void _momentum_pick_decay_nesterov(const _Momentum* a, Py_ssize_t start,
                                               Py_ssize_t stop, floating k,
                                               scale_t sc) noexcept nogil:
    if a.decay:
        if a.nesterov:
            _momentum_loop(a, start, stop, k, sc, _L2_DECAY, _ON)
        else:
            _momentum_loop(a, start, stop, k, sc, _L2_DECAY, _OFF)
    elif a.nesterov:
        _momentum_loop(a, start, stop, k, sc, _OFF, _ON)
    else:
        _momentum_loop(a, start, stop, k, sc, _OFF, _OFF)


cdef inline void _momentum_pick_scale(const _Momentum* a, Py_ssize_t start, Py_ssize_t stop,
                                      floating k) noexcept nogil:
    if a.scaled:
        _momentum_pick_decay_nesterov(a, start, stop, k, _ON)
    else:
        _momentum_pick_decay_nesterov(a, start, stop, k, _OFF)


cdef void _momentum_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Momentum* a = <const _Momentum*>args
    if a.f64:
        _momentum_pick_scale(a, start, stop, <double>0)
    else:
        _momentum_pick_scale(a, start, stop, <float>0)


cdef void _momentum_scalars(_Momentum* a, bint f64, double lr, double beta, double weight_decay,
                            bint nesterov, bint maximize, double grad_scale) noexcept:
    """Fill everything of ``a`` but the array pointers (shared with :func:`momentum_half`)."""
    a.f64 = f64
    a.nesterov, a.decay = nesterov, weight_decay != 0
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta, a.weight_decay = lr, beta, weight_decay


cdef void _momentum_at(void* args, Py_ssize_t start, const float* grad) noexcept nogil:
    # mixed.pxi: a float32 struct's arrays from item ``start``, the gradient from ``grad``.
    cdef _Momentum* a = <_Momentum*>args
    a.param, a.grad = _shift(a.param, start), <const char*>grad
    a.velocity = _shift(a.velocity, start)


def momentum(floating[::1] param not None, const floating[::1] grad not None,
             floating[::1] velocity not None, double lr, double beta, double weight_decay,
             bint nesterov, bint maximize, double grad_scale):
    """``v = beta*v + (1-beta)*g; p = p - lr*v`` in place (Nesterov:
    ``p = p - lr*(beta*v + (1-beta)*g)`` with the new ``v``)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _Momentum a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if velocity.shape[0] != n:
        _length_error("velocity", velocity.shape[0], n)
    _momentum_scalars(&a, floating is double, lr, beta, weight_decay, nesterov, maximize,
                      grad_scale)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.velocity = <char*>_ptr(velocity)
    with nogil:
        _run(_momentum_range, &a, n, _threads_from[_T_MOMENTUM])
