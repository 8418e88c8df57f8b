"""The Cython path of the array-level updates.

Each function validates with the same ``fastopt._validation`` call as its twin in
``fastopt.reference`` (which holds the documentation), then runs the unchecked fused kernel of
``fastopt._ops``.
"""
from . import _ops
from . import _validation as _v
from . import reference as _ref
from ._scalars import bias_correction

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "ewa"]


def _twin_of(reference_function):
    """Give a fast function the docstring of its reference twin (one text, never two)."""
    def decorate(function):
        function.__doc__ = reference_function.__doc__
        return function
    return decorate


@_twin_of(_ref.sgd_update)
def sgd_update(param, grad, lr):
    lr = _v.sgd_args(param, grad, lr)
    _ops.sgd(param, grad, lr)


@_twin_of(_ref.momentum_update)
def momentum_update(param, grad, velocity, lr, beta=0.9):
    lr, beta = _v.momentum_args(param, grad, velocity, lr, beta)
    _ops.momentum(param, grad, velocity, lr, beta)


@_twin_of(_ref.rmsprop_update)
def rmsprop_update(param, grad, sq_avg, lr, beta=0.9, eps=1e-8):
    lr, beta, eps = _v.rmsprop_args(param, grad, sq_avg, lr, beta, eps)
    _ops.rmsprop(param, grad, sq_avg, lr, beta, eps)


@_twin_of(_ref.adam_update)
def adam_update(param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    t, lr, beta1, beta2, eps = _v.adam_args(param, grad, m, v, t, lr, beta1, beta2, eps)
    _ops.adam(param, grad, m, v, lr, beta1, beta2, eps, bias_correction(beta1, t),
              bias_correction(beta2, t))


@_twin_of(_ref.ewa)
def ewa(x, beta=0.9, bias_correction=False, out=None):
    x, beta, bias_correction, out = _v.ewa_args(x, beta, bias_correction, out)
    _ops.ewa(x, out, beta, bias_correction)
    return out
