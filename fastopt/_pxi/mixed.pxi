# --- 16-bit parameters: float32 master and state, a 16-bit gradient and copy ------------------
#
# docs/contract.md §14. ``<rule>_half(f16, master, grad_bits, *states, *scalars, param_bits)``
# steps the float32 ``master`` and float32 state with the float32 kernel's own arithmetic, the
# gradient being the 16-bit ``grad_bits`` widened to float32, and writes ``param_bits`` (uint16)
# as the new master rounded to nearest even (half.pxi). ``f16``: float16, else bfloat16.
#
# The rule arithmetic is not written again: a chunk of MIXED_CHUNK items at a time, the
# gradient's bits are widened into a float32 buffer on the stack, the rule's own float32 range
# function runs on that chunk (a copy of its struct pointed at the chunk by ``_<rule>_at``, the
# gradient at the buffer), and the chunk of the master, still in cache, is rounded into the
# 16-bit copy. Every item is computed by the same loop as in the float32 kernel, so the chunking
# cannot change a bit (the rule loops compute each item independently).
#
# The alternative, design (a): an option flag in every ``_<rule>_loop`` for the gradient's
# format and the copy, one loop doing everything. Measured on this 2-core Intel Xeon VM (AVX2,
# GCC 12), shared with other jobs (load average 5-9, so +-20%):
# * this design: ``pip install -e .`` (both variants) 80 s before, 113-118 s after (mostly the
#   load: no rule loop got a new specialisation); .so sizes: baseline 617472 -> 674968 bytes
#   (+9%), avx2 837616 -> 891344 (+6%). (a) would add two float32 specialisations (bfloat16,
#   float16) to each of the float32 one of every option combination of every rule.
# * speed, in a C prototype of the two with the same loop bodies (Adam, bfloat16, t = 1000, one
#   thread, three runs): time of this design / time of (a) at 1e5 items 1.00-1.14, 1e6
#   1.11-1.30, 1e7 1.19-1.33; (a) / float32 Adam at 1e7 1.02-1.10
#   (benchmarks/tools/ab_mixed_design.c). So (a) would be ~20% faster
#   where the step streams from memory (probably because the chunk loop restarts the prefetch
#   streams three times a chunk; not investigated). Not built: besides the specialisations, Adam's FMA fallback rewrites a
#   chunk's params after the loop, so (a) would need the copy rounded in that path too.
# * the chunk: 1024, 2048 and 4096 items took the same time within the noise (prototype, 1e6:
#   3348, 3294, 3489 us; this kernel, 1e5: 207, 211, 222 us; 512: 241 us); 2048 keeps the
#   chunk's arrays (Adam: 5 x 8 KiB + 2 x 4 KiB) in L2 with room to spare.

cdef enum:
    _MIXED_MAX_CHUNK = 4096

cdef Py_ssize_t _mixed_chunk = 2048
MIXED_CHUNK = _mixed_chunk
"""Items per chunk of the 16-bit parameter kernels (the float32 gradient buffer's length)."""


def _set_mixed_chunk(Py_ssize_t n):
    # For the measurement above only (benchmarks/tools/mixed_precision.py --chunks); the bits do not
    # depend on it.
    global _mixed_chunk
    if not 32 <= n <= _MIXED_MAX_CHUNK or n % 32:
        raise ValueError(f"chunk must be a multiple of 32 from 32 to {_MIXED_MAX_CHUNK}")
    _mixed_chunk = n


ctypedef void (*_at_fn)(void* args, Py_ssize_t start, const float* grad) noexcept nogil

cdef union _AnyRule:
    _SGD sgd
    _Momentum momentum
    _RMSProp rmsprop
    _Adam adam
    _Adagrad adagrad


cdef struct _Mixed:
    _range_fn fn               # the rule's float32 range function
    _at_fn at                  # points a copy of the rule's struct at one chunk
    const _AnyRule* rule       # the rule's struct, over the whole master and state
    bint f16
    const uint16_t* grad
    const float* master
    uint16_t* param


cdef void _mixed_range(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef const _Mixed* x = <const _Mixed*>args
    cdef _AnyRule local
    cdef float wide[_MIXED_MAX_CHUNK]
    cdef Py_ssize_t c = start, n, chunk = _mixed_chunk
    while c < stop:
        n = min(stop - c, chunk)
        _widen(x.grad + c, &wide[0], n, x.f16)
        local = x.rule[0]
        x.at(&local, c, &wide[0])
        x.fn(&local, 0, n)
        _narrow(x.master + c, x.param + c, n, x.f16)
        c += n


cdef int _mixed_check(Py_ssize_t n, const uint16_t[::1] grad, uint16_t[::1] param) except -1:
    if grad.shape[0] != n:
        _length_error("grad", grad.shape[0], n, "master")
    if param.shape[0] != n:
        _length_error("param", param.shape[0], n, "master")
    return 0


cdef void _mixed_run(_range_fn fn, _at_fn at, const _AnyRule* rule, bint f16,
                     const uint16_t[::1] grad, float[::1] master, uint16_t[::1] param,
                     Py_ssize_t threshold):
    # Thread chunks are multiples of 32 items: 64 bytes of the uint16 copy, so two threads never
    # write one cache line of it (nor of the float32 arrays, 128 bytes).
    cdef _Mixed x
    cdef Py_ssize_t n = master.shape[0]
    if n == 0:
        return
    x.fn, x.at, x.rule, x.f16 = fn, at, rule, f16
    x.grad, x.master, x.param = &grad[0], &master[0], &param[0]
    with nogil:
        _run_in(_mixed_range, &x, n, threshold, 32)


def sgd_half(bint f16, float[::1] master not None, const uint16_t[::1] grad not None,
             float[::1] momentum_buffer, double lr, double weight_decay, double momentum,
             double dampening, bint nesterov, bint first, bint maximize, double grad_scale,
             uint16_t[::1] param not None):
    """:func:`sgd` on the float32 ``master`` with the 16-bit gradient ``grad`` (float16 bits when
    ``f16``, else bfloat16), then ``param`` = the master rounded to that format."""
    cdef Py_ssize_t n = master.shape[0]
    cdef _AnyRule a
    _mixed_check(n, grad, param)
    if momentum_buffer is not None and momentum_buffer.shape[0] != n:
        _length_error("momentum_buffer", momentum_buffer.shape[0], n, "master")
    _sgd_scalars(&a.sgd, False, momentum_buffer is not None, lr, weight_decay, momentum,
                 dampening, nesterov, first, maximize, grad_scale)
    a.sgd.param, a.sgd.grad = <char*>_ptr(master), NULL
    a.sgd.momentum_buffer = <char*>_ptr(momentum_buffer)
    _mixed_run(_sgd_range, _sgd_at, &a, f16, grad, master, param, _threads_from[_T_SGD])


def momentum_half(bint f16, float[::1] master not None, const uint16_t[::1] grad not None,
                  float[::1] velocity not None, double lr, double beta, double weight_decay,
                  bint nesterov, bint maximize, double grad_scale, uint16_t[::1] param not None):
    """:func:`momentum` on the float32 ``master`` with a 16-bit gradient; see :func:`sgd_half`."""
    cdef Py_ssize_t n = master.shape[0]
    cdef _AnyRule a
    _mixed_check(n, grad, param)
    if velocity.shape[0] != n:
        _length_error("velocity", velocity.shape[0], n, "master")
    _momentum_scalars(&a.momentum, False, lr, beta, weight_decay, nesterov, maximize,
                      grad_scale)
    a.momentum.param, a.momentum.grad = <char*>_ptr(master), NULL
    a.momentum.velocity = <char*>_ptr(velocity)
    _mixed_run(_momentum_range, _momentum_at, &a, f16, grad, master, param,
               _threads_from[_T_MOMENTUM])


def rmsprop_half(bint f16, float[::1] master not None, const uint16_t[::1] grad not None,
                 float[::1] sq_avg not None, float[::1] grad_avg, float[::1] momentum_buffer,
                 double lr, double beta, double eps, double weight_decay, double momentum,
                 bint maximize, double grad_scale, uint16_t[::1] param not None):
    """:func:`rmsprop` on the float32 ``master`` with a 16-bit gradient; see :func:`sgd_half`."""
    cdef Py_ssize_t n = master.shape[0]
    cdef _AnyRule a
    _mixed_check(n, grad, param)
    if sq_avg.shape[0] != n:
        _length_error("sq_avg", sq_avg.shape[0], n, "master")
    if grad_avg is not None and grad_avg.shape[0] != n:
        _length_error("grad_avg", grad_avg.shape[0], n, "master")
    if momentum_buffer is not None and momentum_buffer.shape[0] != n:
        _length_error("momentum_buffer", momentum_buffer.shape[0], n, "master")
    _rmsprop_scalars(&a.rmsprop, False, grad_avg is not None, momentum_buffer is not None, lr,
                     beta, eps, weight_decay, momentum, maximize, grad_scale)
    a.rmsprop.param, a.rmsprop.grad = <char*>_ptr(master), NULL
    a.rmsprop.sq_avg, a.rmsprop.grad_avg = <char*>_ptr(sq_avg), <char*>_ptr(grad_avg)
    a.rmsprop.momentum_buffer = <char*>_ptr(momentum_buffer)
    _mixed_run(_rmsprop_range, _rmsprop_at, &a, f16, grad, master, param,
               _threads_from[_T_RMSPROP])


def adam_half(bint f16, float[::1] master not None, const uint16_t[::1] grad not None,
              float[::1] m not None, float[::1] v not None, float[::1] v_max, double lr,
              double beta1, double beta2, double eps, double bias1, double bias2,
              double weight_decay, bint decoupled, bint maximize, double grad_scale,
              uint16_t[::1] param not None):
    """:func:`adam` on the float32 ``master`` with a 16-bit gradient; see :func:`sgd_half`."""
    cdef Py_ssize_t n = master.shape[0]
    cdef _AnyRule a
    _mixed_check(n, grad, param)
    if m.shape[0] != n:
        _length_error("m", m.shape[0], n, "master")
    if v.shape[0] != n:
        _length_error("v", v.shape[0], n, "master")
    if v_max is not None and v_max.shape[0] != n:
        _length_error("v_max", v_max.shape[0], n, "master")
    _adam_scalars(&a.adam, False, lr, beta1, beta2, eps, bias1, bias2, weight_decay, decoupled,
                  maximize, grad_scale, n)
    a.adam.param, a.adam.grad = <char*>_ptr(master), NULL
    a.adam.m, a.adam.v, a.adam.v_max = <char*>_ptr(m), <char*>_ptr(v), <char*>_ptr(v_max)
    a.adam.amsgrad = v_max is not None
    _mixed_run(_adam_range, _adam_at, &a, f16, grad, master, param, _threads_from[_T_ADAM])


def adagrad_half(bint f16, float[::1] master not None, const uint16_t[::1] grad not None,
                 float[::1] sum_sq not None, double clr, double eps, double weight_decay,
                 bint maximize, double grad_scale, uint16_t[::1] param not None):
    """:func:`adagrad` on the float32 ``master`` with a 16-bit gradient; see :func:`sgd_half`."""
    cdef Py_ssize_t n = master.shape[0]
    cdef _AnyRule a
    _mixed_check(n, grad, param)
    if sum_sq.shape[0] != n:
        _length_error("sum_sq", sum_sq.shape[0], n, "master")
    _adagrad_scalars(&a.adagrad, False, clr, eps, weight_decay, maximize, grad_scale)
    a.adagrad.param, a.adagrad.grad = <char*>_ptr(master), NULL
    a.adagrad.sum_sq = <char*>_ptr(sum_sq)
    _mixed_run(_adagrad_range, _adagrad_at, &a, f16, grad, master, param,
               _threads_from[_T_ADAGRAD])


def all_finite_half(bint f16, const uint16_t[::1] bits not None):
    """True when no 16-bit value of ``bits`` is inf or NaN (its exponent bits all ones)."""
    cdef uint16_t mask = 0x7C00 if f16 else 0x7F80
    cdef uint16_t bad = 0
    cdef Py_ssize_t i, start = 0, stop, n = bits.shape[0]
    with nogil:
        # 4096 items at a time, so that a non-finite value near the start returns early.
        while start < n and not bad:
            stop = min(start + 4096, n)
            for i in range(start, stop):
                bad |= <uint16_t>((bits[i] & mask) == mask)
            start = stop
    return not bad


cdef inline const char* _bytes(const uint16_t[::1] bits) noexcept:
    return NULL if bits.shape[0] == 0 else <const char*>&bits[0]


def sumsq_half(bint f16, const uint16_t[::1] bits not None):
    """:func:`sumsq` of the widened values of ``bits`` (the float32 kernel's sum on them)."""
    return _sumsq(_FMT_F16 if f16 else _FMT_BF16, _bytes(bits), bits.shape[0])


def sumsq_blocks_half(bint f16, const uint16_t[::1] bits not None, double[::1] out not None):
    """:func:`sumsq_blocks` of the widened values of ``bits``."""
    _sumsq_blocks(_FMT_F16 if f16 else _FMT_BF16, _bytes(bits), bits.shape[0], out)


def as_view_half(uint16_t[::1] bits):
    """``bits`` as this module's typed ``uint16`` memoryview (see :func:`as_view`)."""
    return bits
