# --- exponentially weighted average (a serial recurrence: one thread, no SIMD) -----------------

cdef void _ewa(const floating[:] x, floating[:] out, double beta, bint bias_correction) noexcept nogil:
    cdef Py_ssize_t k, n = x.shape[0]
    cdef floating b = <floating>beta
    cdef floating c = <floating>(1.0 - beta)
    cdef floating v = 0
    cdef floating d
    for k in range(n):
        v = b * v + c * x[k]
        if bias_correction:
            # 1 - beta**(k+1) in double with C pow, as Python's float.__pow__ computes it, then
            # rounded once. Once it rounds to exactly 1 it stays 1 (beta**k only shrinks), and
            # v / 1 == v bit for bit, so the remaining pow calls (~20 ns each) can be skipped:
            # for beta = 0.9 in float32 that is after 165 values.
            d = <floating>(1.0 - pow(beta, <double>(k + 1)))
            if d == 1:
                bias_correction = False
            out[k] = v / d
        else:
            out[k] = v


def ewa(const floating[:] x not None, floating[:] out not None, double beta,
        bint bias_correction):
    """out[k] = v_k (optionally / (1 - beta**(k+1))), v_k = beta*v_{k-1} + (1-beta)*x[k]."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out has {out.shape[0]} items; expected {x.shape[0]}, the length of x")
    with nogil:
        _ewa(x, out, beta, bias_correction)
