"""The Cython arithmetic, unchecked, with the signatures of ``fastopt.reference._ops``.

Callers validate first. ``reshape(-1)`` of a C-contiguous array is a view, never a copy, and gives
the kernels the 1-D contiguous buffers they take. Calls go to the SIMD variant chosen by
``fastopt._dispatch`` (looked up on every call, so that switching variants takes effect at once).
"""
from . import _dispatch


def sgd(param, grad, lr):
    _dispatch.kernels.sgd(param.reshape(-1), grad.reshape(-1), lr)


def momentum(param, grad, velocity, lr, beta):
    _dispatch.kernels.momentum(param.reshape(-1), grad.reshape(-1), velocity.reshape(-1), lr,
                               beta)


def rmsprop(param, grad, sq_avg, lr, beta, eps):
    _dispatch.kernels.rmsprop(param.reshape(-1), grad.reshape(-1), sq_avg.reshape(-1), lr, beta,
                              eps)


def adam(param, grad, m, v, lr, beta1, beta2, eps, bias1, bias2):
    _dispatch.kernels.adam(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                           lr, beta1, beta2, eps, bias1, bias2)


def ewa(x, out, beta, bias_correction):
    _dispatch.kernels.ewa(x, out, beta, bias_correction)


# Mini-batch gathers: the kernels take the arrays as they are (any strides; outputs contiguous).
def columns_into(src, perm, batch, blocks):
    _dispatch.kernels.columns_into(src, perm, batch, blocks)


def take_rows(src, rows, out):
    _dispatch.kernels.take_rows(src, rows, out)
