"""The Cython arithmetic, unchecked, with the signatures of ``fastopt.reference._ops``.

Callers validate first. ``reshape(-1)`` of a C-contiguous array is a view, never a copy, and gives
the kernels the 1-D contiguous buffers they take (an absent option's state array stays None).
Calls go to the SIMD variant chosen by ``fastopt._dispatch`` (looked up on every call, so that
switching variants takes effect at once).
"""
from . import _dispatch
from . import _validation as _v


dispatch = _dispatch
"""Where the compiled fast paths are: ``dispatch.kernels`` is the SIMD variant in use, whose
``adam_checked`` validates and steps the common case of ``adam_update`` in one call (the
reference's ``dispatch`` is None: it has no such path)."""


def kernel_table():
    """(rule, dtype) -> kernel for 1-D arrays, in the SIMD variant in use. The dict is replaced
    (not changed) when the variant changes, so a caller may cache by its identity."""
    return _dispatch.table


def _flat(x):
    return None if x is None else x.reshape(-1)


def sgd(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, first,
        maximize, grad_scale):
    _dispatch.table["sgd", param.dtype](param.reshape(-1), grad.reshape(-1),
                                        _flat(momentum_buffer), lr, weight_decay, momentum,
                                        dampening, nesterov, first, maximize, grad_scale)


def momentum(param, grad, velocity, lr, beta, weight_decay, nesterov, maximize, grad_scale):
    _dispatch.table["momentum", param.dtype](param.reshape(-1), grad.reshape(-1),
                                             velocity.reshape(-1), lr, beta, weight_decay,
                                             nesterov, maximize, grad_scale)


def rmsprop(param, grad, sq_avg, grad_avg, momentum_buffer, lr, beta, eps, weight_decay,
            momentum, maximize, grad_scale):
    _dispatch.table["rmsprop", param.dtype](param.reshape(-1), grad.reshape(-1),
                                            sq_avg.reshape(-1), _flat(grad_avg),
                                            _flat(momentum_buffer), lr, beta, eps, weight_decay,
                                            momentum, maximize, grad_scale)


def adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias1, bias2, weight_decay, decoupled,
         maximize, grad_scale):
    _dispatch.table["adam", param.dtype](param.reshape(-1), grad.reshape(-1), m.reshape(-1),
                                         v.reshape(-1), _flat(v_max), lr, beta1, beta2, eps,
                                         bias1, bias2, weight_decay, decoupled, maximize,
                                         grad_scale)


def adagrad(param, grad, sum_sq, clr, eps, weight_decay, maximize, grad_scale):
    _dispatch.table["adagrad", param.dtype](param.reshape(-1), grad.reshape(-1),
                                            sum_sq.reshape(-1), clr, eps, weight_decay, maximize,
                                            grad_scale)


def sumsq(x):
    return _dispatch.table["sumsq", x.dtype](x.reshape(-1))


def sumsq_blocks(x, out):
    _dispatch.table["sumsq_blocks", x.dtype](x.reshape(-1), out)


def scale(x, coef):
    _dispatch.table["scale", x.dtype](x.reshape(-1), coef)


def all_finite(x):
    return _dispatch.table["all_finite", x.dtype](x.reshape(-1))


def all_finite_half(grad_bits, kind):
    return _dispatch.table["all_finite", kind](grad_bits.reshape(-1))


def sumsq_half(grad_bits, kind):
    return _dispatch.table["sumsq", kind](grad_bits.reshape(-1))


def sumsq_blocks_half(grad_bits, kind, out):
    _dispatch.table["sumsq_blocks", kind](grad_bits.reshape(-1), out)


def ewa(x, out, beta, bias_correction):
    _dispatch.table["ewa", x.dtype](x, out, beta, bias_correction)


# Mini-batch gathers: the kernels take the arrays as they are (any strides; outputs contiguous).
def columns_into(src, perm, batch, blocks):
    if not _dispatch.kernels.columns_into(src, perm, batch, blocks):
        _refused("check_columns_into", src, perm, batch, blocks)


def take_rows(src, rows, out):
    if not _dispatch.kernels.take_rows(src, rows, out):
        _refused("check_take_rows", src, rows, out)


def _refused(check, *args):
    """A gather refused its arguments (nothing written): ``fastopt._validation.<check>`` words
    the error."""
    getattr(_v, check)(*args)
    # Unreachable while the two agree; refuse anyway rather than go on as if written.
    raise ValueError(f"{check[6:]}: arguments rejected by the kernel's own checks")
