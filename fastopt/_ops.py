"""The Cython arithmetic, unchecked, with the signatures of ``fastopt.reference._ops``.

Callers validate first. ``reshape(-1)`` of a C-contiguous array is a view, never a copy, and gives
the kernels the 1-D contiguous buffers they take.
"""
from . import _kernels as _k


def sgd(param, grad, lr):
    _k.sgd(param.reshape(-1), grad.reshape(-1), lr)


def momentum(param, grad, velocity, lr, beta):
    _k.momentum(param.reshape(-1), grad.reshape(-1), velocity.reshape(-1), lr, beta)


def rmsprop(param, grad, sq_avg, lr, beta, eps):
    _k.rmsprop(param.reshape(-1), grad.reshape(-1), sq_avg.reshape(-1), lr, beta, eps)


def adam(param, grad, m, v, lr, beta1, beta2, eps, bias1, bias2):
    _k.adam(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
            lr, beta1, beta2, eps, bias1, bias2)


# Mini-batch gathers: the kernels take the arrays as they are (any strides; outputs contiguous).
columns_into = _k.columns_into
take_rows = _k.take_rows
