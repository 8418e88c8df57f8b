"""The Cython path of the array-level updates and of clipping.

Each function validates with the same ``fastopt._validation`` call as its twin in
``fastopt.reference`` (which holds the documentation), then runs the unchecked fused kernel of
``fastopt._ops``.
"""
from . import _clip, _dispatch, _half, _ops
from . import _validation as _v
from . import reference as _ref
from ._scalars import adagrad_lr, bias_correction

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "adagrad_update",
           "clip_grad_norm", "ewa"]


def _twin_of(reference_function):
    """Give a fast function the docstring of its reference twin (one text, never two)."""
    def decorate(function):
        function.__doc__ = reference_function.__doc__
        return function
    return decorate


@_twin_of(_ref.sgd_update)
def sgd_update(param, grad, lr, weight_decay=0.0, maximize=False, master=None):
    lr, weight_decay, maximize = _v.sgd_args(param, grad, lr, weight_decay, maximize,
                                             master)
    ops = _ops if master is None else _half.MasterOps(_ops, master)
    ops.sgd(param, grad, None, lr, weight_decay, 0.0, 0.0, False, False, maximize, 1.0)


@_twin_of(_ref.momentum_update)
def momentum_update(param, grad, velocity, lr, beta=0.9, nesterov=False, weight_decay=0.0,
                    maximize=False, master=None):
    lr, beta, nesterov, weight_decay, maximize = _v.momentum_args(
        param, grad, velocity, lr, beta, nesterov, weight_decay, maximize, master)
    ops = _ops if master is None else _half.MasterOps(_ops, master)
    ops.momentum(param, grad, velocity, lr, beta, weight_decay, nesterov, maximize, 1.0)


@_twin_of(_ref.rmsprop_update)
def rmsprop_update(param, grad, sq_avg, lr, beta=0.9, eps=1e-8, grad_avg=None,
                   momentum_buffer=None, momentum=0.0, weight_decay=0.0, maximize=False,
                   master=None):
    lr, beta, eps, momentum, weight_decay, maximize = _v.rmsprop_args(
        param, grad, sq_avg, lr, beta, eps, grad_avg, momentum_buffer, momentum, weight_decay,
        maximize, master)
    ops = _ops if master is None else _half.MasterOps(_ops, master)
    ops.rmsprop(param, grad, sq_avg, grad_avg, momentum_buffer, lr, beta, eps, weight_decay,
                momentum, maximize, 1.0)


@_twin_of(_ref.adam_update)
def adam_update(param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                decoupled=False, v_max=None, maximize=False, master=None):
    # The common case validated and stepped in one compiled call (1000 float32 items: ~1.5 us a
    # call against 7.1 us through the Python checks); anything unusual, valid or not, returns
    # False with nothing written and takes the path below, whose checks raise every error.
    if master is None and _dispatch.kernels.adam_checked(
            param, grad, m, v, v_max, t, lr, beta1, beta2, eps, weight_decay, decoupled,
            maximize):
        return
    t, lr, beta1, beta2, eps, weight_decay, decoupled, maximize = _v.adam_args(
        param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, v_max, maximize,
        master)
    ops = _ops if master is None else _half.MasterOps(_ops, master)
    ops.adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias_correction(beta1, t),
             bias_correction(beta2, t), weight_decay, decoupled, maximize, 1.0)


@_twin_of(_ref.adagrad_update)
def adagrad_update(param, grad, sum_sq, t, lr, lr_decay=0.0, eps=1e-10, weight_decay=0.0,
                   maximize=False, master=None):
    t, lr, lr_decay, eps, weight_decay, maximize = _v.adagrad_args(
        param, grad, sum_sq, t, lr, lr_decay, eps, weight_decay, maximize, master)
    ops = _ops if master is None else _half.MasterOps(_ops, master)
    ops.adagrad(param, grad, sum_sq, adagrad_lr(lr, lr_decay, t), eps, weight_decay, maximize,
                1.0)


@_twin_of(_ref.clip_grad_norm)
def clip_grad_norm(grads, max_norm, error_if_nonfinite=False):
    return _clip.clip_grad_norm(_ops, grads, max_norm, error_if_nonfinite)


@_twin_of(_ref.ewa)
def ewa(x, beta=0.9, bias_correction=False, out=None):
    x, beta, bias_correction, out = _v.ewa_args(x, beta, bias_correction, out)
    _ops.ewa(x, out, beta, bias_correction)
    return out
