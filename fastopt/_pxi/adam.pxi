# --- Adam and AdamW, optionally AMSGrad ------------------------------------------------------

cdef struct _Adam:
    bint f64, scaled, amsgrad
    int decay                      # 0: none; 1: L2 (g + wd*p); 2: decoupled (p * (1 - lr*wd))
    int bias                       # bias divisions still done: 0 none, 1 the second, 2 both
    char* param
    const char* grad
    char* m
    char* v
    char* v_max
    double lr, beta1, beta2, eps, bias1, bias2, weight_decay, scale
    bint fast                      # divide by bias1/bias2 with _div_const (FMA variant, §10)
    _Recip r1, r2


cdef void _adam_loop(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                     scale_t sc, adam_decay_t dc, amsgrad_t am, bias_t bs,
                     floating* saved) noexcept nogil:
    # saved: with the FMA divisions (see _adam_fast_loop), where param[start:stop] is copied
    # before it is written; NULL otherwise.
    cdef floating* p = <floating*>a.param
    cdef const floating* g = <const floating*>a.grad
    cdef floating* m = <floating*>a.m
    cdef floating* v = <floating*>a.v
    cdef floating* v_max = <floating*>a.v_max
    cdef floating lr = <floating>a.lr, e = <floating>a.eps, gs = <floating>a.scale
    cdef floating b1 = <floating>a.beta1, c1 = <floating>(1.0 - a.beta1)
    cdef floating b2 = <floating>a.beta2, c2 = <floating>(1.0 - a.beta2)
    cdef floating d1 = <floating>a.bias1, d2 = <floating>a.bias2
    cdef floating m2k1 = <floating>a.r1.m2k, ny1 = <floating>a.r1.ny, dk1 = <floating>a.r1.dk
    cdef floating m2k2 = <floating>a.r2.m2k, ny2 = <floating>a.r2.ny, dk2 = <floating>a.r2.dk
    cdef floating wd = <floating>a.weight_decay, keep = <floating>(1.0 - a.lr * a.weight_decay)
    cdef floating gi, pi, mi, vi
    cdef Py_ssize_t i
    for i in range(start, stop):
        gi = g[i]
        pi = p[i]
        if bias_t is _SecondFMA or bias_t is _BothFMA:
            saved[i - start] = pi
        if scale_t is _On:
            gi = gi * gs
        if adam_decay_t is _L2:
            gi = gi + wd * pi
        elif adam_decay_t is _Decoupled:
            pi = pi * keep
        mi = b1 * m[i] + c1 * gi
        m[i] = mi
        vi = b2 * v[i] + c2 * (gi * gi)
        v[i] = vi
        if amsgrad_t is _On:
            vi = _max_nan(v_max[i], vi)
            v_max[i] = vi
        # Divisions, not multiplications by a reciprocal: x / d and x * (1/d) differ in the last
        # bit for about a third of inputs, and the reference divides; or the FMA sequence, which
        # is proved to give the division's bits (§10). A correction that rounds to exactly 1 is
        # skipped (x / 1 == x bit for bit, NaN and -0.0 included).
        if bias_t is _Both:
            mi = mi / d1
        elif bias_t is _BothFMA:
            mi = _div_const(mi, m2k1, ny1, dk1)
        if bias_t is _Second or bias_t is _Both:
            vi = vi / d2
        elif bias_t is _SecondFMA or bias_t is _BothFMA:
            vi = _div_const(vi, m2k2, ny2, dk2)
        p[i] = pi - (lr * mi) / (_sqrt(vi) + e)


cdef void _adam_fast_loop(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating kind,
                          scale_t sc, adam_decay_t dc, amsgrad_t am, bias_t bs) noexcept nogil:
    # _adam_loop with the FMA divisions (bias_t _SecondFMA or _BothFMA), chunk by chunk: each
    # chunk keeps a copy of param; when the chunk raised the overflow or invalid flag (an |m| or
    # v beyond MAX * 2**-K, an infinity, or anything else that overflowed or made a NaN), param
    # is recomputed from the copy with the divisions, from m, v and v_max, which are right
    # either way. Called with the flags clear; leaves them clear.
    cdef floating* p = <floating*>a.param
    cdef floating* m = <floating*>a.m
    cdef floating* v = <floating*>a.v
    cdef floating* v_max = <floating*>a.v_max
    cdef floating lr = <floating>a.lr, e = <floating>a.eps
    cdef floating d1 = <floating>a.bias1, d2 = <floating>a.bias2
    cdef floating keep = <floating>(1.0 - a.lr * a.weight_decay)
    cdef floating pi, mi, vi
    cdef _Saved store
    cdef floating* saved
    cdef Py_ssize_t c, i, n, chunk
    if floating is float:
        saved, chunk = &store.f[0], 4096
    else:
        saved, chunk = &store.d[0], 2048
    c = start
    while c < stop:
        n = min(stop - c, chunk)
        _adam_loop(a, c, c + n, kind, sc, dc, am, bs, saved)
        fastopt_count(0)
        if fastopt_csr() & _CSR_FAILED:
            fastopt_count(1)
            for i in range(c, c + n):
                pi = saved[i - c]
                if adam_decay_t is _Decoupled:
                    pi = pi * keep
                mi = m[i]
                vi = v_max[i] if amsgrad_t is _On else v[i]
                if bias_t is _BothFMA:
                    mi = mi / d1
                p[i] = pi - (lr * mi) / (_sqrt(vi / d2) + e)
            fastopt_set_csr(fastopt_csr() & ~_CSR_FLAGS)
        c += n


cdef inline void _adam_pick_bias_divisions(const _Adam* a, Py_ssize_t start, Py_ssize_t stop,
                                           floating k, bint fast, scale_t sc, adam_decay_t dc,
                                           amsgrad_t am) noexcept nogil:
    if fast and a.bias == 2:
        _adam_fast_loop(a, start, stop, k, sc, dc, am, _BOTH_FMA)
    elif fast and a.bias == 1:
        _adam_fast_loop(a, start, stop, k, sc, dc, am, _SECOND_FMA)
    elif a.bias == 2:
        _adam_loop(a, start, stop, k, sc, dc, am, _BOTH, <floating*>NULL)
    elif a.bias == 1:
        _adam_loop(a, start, stop, k, sc, dc, am, _SECOND, <floating*>NULL)
    else:
        _adam_loop(a, start, stop, k, sc, dc, am, _OFF, <floating*>NULL)


cdef inline void _adam_pick_amsgrad(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                                    bint fast, scale_t sc, adam_decay_t dc) noexcept nogil:
    if a.amsgrad:
        _adam_pick_bias_divisions(a, start, stop, k, fast, sc, dc, _ON)
    else:
        _adam_pick_bias_divisions(a, start, stop, k, fast, sc, dc, _OFF)


cdef inline void _adam_pick_decay(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                                  bint fast, scale_t sc) noexcept nogil:
    if a.decay == 2:
        _adam_pick_amsgrad(a, start, stop, k, fast, sc, _DECOUPLED)
    elif a.decay == 1:
        _adam_pick_amsgrad(a, start, stop, k, fast, sc, _L2_DECAY)
    else:
        _adam_pick_amsgrad(a, start, stop, k, fast, sc, _OFF)


cdef inline void _adam_pick_scale(const _Adam* a, Py_ssize_t start, Py_ssize_t stop, floating k,
                                  bint fast) noexcept nogil:
    if a.scaled:
        _adam_pick_decay(a, start, stop, k, fast, _ON)
    else:
        _adam_pick_decay(a, start, stop, k, fast, _OFF)


cdef inline unsigned int _fast_divisions_begin(bint wanted) noexcept nogil:
    """Clear this thread's FP exception flags and return its MXCSR (never 0) when the divisions
    by a constant can run without the divider here (§10); return 0 to keep the divisions."""
    cdef unsigned int csr
    if not (FASTOPT_FMA and wanted):
        return 0
    csr = fastopt_csr()
    if (csr & _CSR_MODE) != _CSR_MODE_OK:
        return 0
    fastopt_set_csr(csr & ~_CSR_FLAGS)
    return csr


cdef void _adam_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Adam* a = <const _Adam*>args
    # Per thread (each has its own MXCSR); the caller's flags are put back afterwards.
    cdef unsigned int csr = _fast_divisions_begin(a.fast)
    if a.f64:
        _adam_pick_scale(a, start, stop, <double>0, csr != 0)
    else:
        _adam_pick_scale(a, start, stop, <float>0, csr != 0)
    if csr != 0:
        fastopt_set_csr(csr)


# The FMA divisions pay while the call's arrays stay in the last-level cache, where the loop
# is bound by arithmetic. Once they stream from memory, the sequence's extra work (the copy of
# param, the flag reads, more instructions in flight per item, so fewer loads outstanding) costs
# more than the divider: divider time / sequence time, one thread, t = 10, median of alternating
# calls on an AMD EPYC Zen 4 with a 32 MB L3 (above 1, the sequence is faster):
#   float32  5e5 1.27   1e6 1.20   2e6 0.83   1e7 0.85-0.95
#   float64  5e5 1.37   1e6 1.22   2e6 0.81
# so a call of more than 2**20 items divides. (glibc's figure for the L3 size is 320 MB in this
# virtual machine, so the limit is a count measured here, not one derived from the cache.)
cdef Py_ssize_t _FMA_DIVISIONS_UP_TO = 1 << 20
FMA_DIVISIONS_UP_TO = _FMA_DIVISIONS_UP_TO
"""Adam calls of at most this many items divide by the FMA sequence (where it is used at all)."""


cdef void _adam_scalars(_Adam* a, bint f64, double lr, double beta1, double beta2, double eps,
                        double bias1, double bias2, double weight_decay, bint decoupled,
                        bint maximize, double grad_scale, Py_ssize_t n) noexcept:
    """Fill everything of ``a`` but the array pointers (shared by :func:`adam` and
    :func:`adam_checked`); ``n`` is the number of items the call updates."""
    cdef float f1 = <float>bias1, f2 = <float>bias2
    a.f64 = f64
    a.decay = 0 if weight_decay == 0 else (2 if decoupled else 1)
    # A bias correction that rounds to exactly 1 makes its division a no-op: float32 with
    # beta1 = 0.9 from step 165, float64 from step 356 (float32, 1e6 items, AVX2: 521 us with
    # both divisions, 402 us without the first). A first correction of 1 with a second that is
    # not (beta1 < beta2 is the rule) keeps both divisions: dividing by 1 is exact anyway.
    if f64:
        a.bias = 0 if (bias1 == 1 and bias2 == 1) else (1 if bias1 == 1 else 2)
    else:
        a.bias = 0 if (f1 == 1 and f2 == 1) else (1 if f1 == 1 else 2)
    a.scaled, a.scale = maximize or grad_scale != 1, -grad_scale if maximize else grad_scale
    a.lr, a.beta1, a.beta2, a.eps = lr, beta1, beta2, eps
    a.bias1, a.bias2, a.weight_decay = bias1, bias2, weight_decay
    # The divisors as the loop rounds them: <float> for float32 arrays.
    if not f64:
        bias1, bias2 = <double>f1, <double>f2
    a.r1.m2k = a.r1.ny = a.r1.dk = a.r2.m2k = a.r2.ny = a.r2.dk = 0
    # The constants are rounded on this thread: its MXCSR must be the default too. With one
    # division left (from step 165 for float32 and beta1 = 0.9) the sequence saves too little
    # for float32 to pay for its copy and flag reads (t = 1000, one thread, median of
    # alternating calls: 1e5 0.88x, 1e6 0.89x of the divider's speed); float64's divider is
    # slower (1.22x at 1e5 with the sequence). Deciding it here also spares that loop the
    # MXCSR save and restore.
    a.fast = (FASTOPT_FMA and _fast_divisions_on and (a.bias == 2 or (f64 and a.bias == 1))
              and n <= _FMA_DIVISIONS_UP_TO
              and (fastopt_csr() & _CSR_MODE) == _CSR_MODE_OK
              and _recip(&a.r1, bias1, f64) and _recip(&a.r2, bias2, f64))


cdef void _adam_at(void* args, Py_ssize_t start, const float* grad) noexcept nogil:
    # mixed.pxi: a float32 struct's arrays from item ``start``, the gradient from ``grad``.
    cdef _Adam* a = <_Adam*>args
    a.param, a.grad = _shift(a.param, start), <const char*>grad
    a.m, a.v, a.v_max = _shift(a.m, start), _shift(a.v, start), _shift(a.v_max, start)


def div_const(const floating[::1] x not None, floating[::1] out not None, double d):
    """``out = x / d`` by the FMA sequence of the Adam loop (docs/contract.md §10), for tests:
    NaN where ``x`` is infinite or beyond MAX * 2**-K. Returns False, writing nothing, when this
    variant has no FMA, the MXCSR is not in its default mode, ``d`` is outside the range §10
    covers, or (float32) ``d`` is not a float32 value."""
    cdef _Recip r
    cdef Py_ssize_t i, n = x.shape[0]
    cdef unsigned int csr
    cdef floating m2k, ny, dk
    if out.shape[0] != n:
        _length_error("out", out.shape[0], n)
    if floating is float:
        if <double><float>d != d:
            return False
    if not (FASTOPT_FMA and (fastopt_csr() & _CSR_MODE) == _CSR_MODE_OK
            and _recip(&r, d, floating is double)):
        return False
    m2k, ny, dk = <floating>r.m2k, <floating>r.ny, <floating>r.dk
    csr = fastopt_csr()
    with nogil:
        for i in range(n):
            out[i] = _div_const(x[i], m2k, ny, dk)
    fastopt_set_csr(csr)   # the flags it raised do not leak to the caller
    return True


def adam(floating[::1] param not None, const floating[::1] grad not None,
         floating[::1] m not None, floating[::1] v not None, floating[::1] v_max,
         double lr, double beta1, double beta2, double eps, double bias1, double bias2,
         double weight_decay, bint decoupled, bint maximize, double grad_scale):
    """Adam step in place; ``bias1 = 1 - beta1**t`` and ``bias2 = 1 - beta2**t`` come from
    Python. AMSGrad when ``v_max`` is given; ``decoupled``: AdamW's weight decay."""
    cdef Py_ssize_t n = param.shape[0]
    cdef _Adam a
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n)
    if m.shape[0] != n:
        _length_error("m", m.shape[0], n)
    if v.shape[0] != n:
        _length_error("v", v.shape[0], n)
    if v_max is not None and v_max.shape[0] != n:
        _length_error("v_max", v_max.shape[0], n)
    _adam_scalars(&a, floating is double, lr, beta1, beta2, eps, bias1, bias2, weight_decay,
                  decoupled, maximize, grad_scale, n)
    a.param, a.grad = <char*>_ptr(param), <const char*>_cptr(grad)
    a.m, a.v, a.v_max = <char*>_ptr(m), <char*>_ptr(v), <char*>_ptr(v_max)
    a.amsgrad = v_max is not None
    with nogil:
        _run(_adam_range, &a, n, _threads_from[_T_ADAM])
