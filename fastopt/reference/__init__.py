"""fastopt.reference: the pure-NumPy oracle.

Every function here has the signature, the validation and the results of its twin in ``fastopt``
(the Cython path), which must write exactly the same bits. The code is boring on purpose: textbook
order, the papers' names, one NumPy expression per line of docs/contract.md §2. NumPy 2
rounds each Python-float hyperparameter once to the array dtype (NEP 50), which is the contract.

The arithmetic itself is in ``fastopt.reference._ops`` (unchecked, shared with the dictionary
functions of ``fastopt.reference.lab``); the functions here validate, then call it.
"""
from .. import _clip, _minibatch, _optim
from .. import _validation as _v
from .._scalars import adagrad_lr, bias_correction
from .._smoothing import EWA
from . import _ops

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "adagrad_update",
           "clip_grad_norm", "ewa", "EWA", "MiniBatches", "minibatches", "SGD", "Momentum",
           "RMSProp", "Adam", "AdamW", "Adagrad"]


def _over_reference(cls):
    """The subclass of a fastopt class that runs the reference arithmetic: same code, same
    behaviour, same errors; only ``_ops`` differs."""
    return type(cls.__name__, (cls,), {"__doc__": cls.__doc__, "_ops": _ops,
                                       "__module__": __name__})


SGD = _over_reference(_optim.SGD)
Momentum = _over_reference(_optim.Momentum)
RMSProp = _over_reference(_optim.RMSProp)
Adam = _over_reference(_optim.Adam)
AdamW = _over_reference(_optim.AdamW)
Adagrad = _over_reference(_optim.Adagrad)
MiniBatches = _over_reference(_minibatch.MiniBatches)


def minibatches(X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False, copy=False):
    return iter(MiniBatches(X, Y, batch_size, seed, axis, drop_last, copy))


minibatches.__doc__ = _minibatch.minibatches.__doc__


def sgd_update(param, grad, lr, weight_decay=0.0, maximize=False):
    """Gradient descent step, in place.

    .. math:: p \\leftarrow p - \\eta\\, g

    Per element, with the parentheses of docs/contract.md §2 (the kernels evaluate exactly
    this expression tree, and another order gives other bits)::

        p = p - lr*g

    With ``maximize`` the gradient is negated first, and with ``weight_decay`` it becomes
    ``g + weight_decay*p`` (L2, docs/contract.md §7). torch's heavy-ball momentum is the
    :class:`SGD` optimizer's ``momentum=``.

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient of the loss with respect to ``param``; same dtype and shape; only read (a
        read-only array is fine).
    lr : float
        Learning rate :math:`\\eta`, finite and >= 0.
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0.
    maximize : bool, default False
        Ascend instead of descend (the gradient array itself is not written).

    Returns
    -------
    None
        ``param`` is updated in place.

    Raises
    ------
    TypeError, ValueError
        For invalid input, before any array is written; the message names the argument.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.array([1.0, 2.0]); g = np.array([0.5, -0.5])
    >>> fastopt.sgd_update(p, g, lr=0.1)
    >>> p
    array([0.95, 2.05])
    """
    lr, weight_decay, maximize = _v.sgd_args(param, grad, lr, weight_decay, maximize)
    _ops.sgd(param, grad, None, lr, weight_decay, 0.0, 0.0, False, False, maximize, 1.0)


def momentum_update(param, grad, velocity, lr, beta=0.9, nesterov=False, weight_decay=0.0,
                    maximize=False):
    """Momentum step (exponentially weighted average of gradients), in place.

    .. math::

        \\mathrm{velocity} &\\leftarrow \\beta\\, \\mathrm{velocity} + (1 - \\beta)\\, g \\\\
        p &\\leftarrow p - \\eta\\, \\mathrm{velocity}

    Per element, in this order, with the parentheses of docs/contract.md §2 (the kernels
    evaluate exactly this expression tree, and another order gives other bits)::

        velocity = beta*velocity + (1-beta)*g
        p = p - lr*velocity               # the new velocity

    This is the form of the Deep Learning Specialization, not PyTorch's ``v = mu*v + g`` (that
    one is :class:`SGD`'s ``momentum=``). With ``nesterov`` the step looks ahead:
    ``p = p - lr*(beta*velocity + (1-beta)*g)`` with the new ``velocity`` (docs/contract.md §7).

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient, same dtype and shape as ``param``; only read.
    velocity : ndarray
        The average :math:`v`, same dtype and shape; updated in place. Start from zeros.
    lr : float
        Learning rate, finite and >= 0.
    beta : float, default 0.9
        Momentum, ``0 <= beta < 1``.
    nesterov : bool, default False
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0: ``g + weight_decay*p``.
    maximize : bool, default False

    Returns
    -------
    None
        ``param`` and ``velocity`` are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.ones(3); v = np.zeros(3)
    >>> fastopt.momentum_update(p, np.full(3, 2.0), v, lr=0.5, beta=0.9)
    >>> v, p
    (array([0.2, 0.2, 0.2]), array([0.9, 0.9, 0.9]))
    """
    lr, beta, nesterov, weight_decay, maximize = _v.momentum_args(
        param, grad, velocity, lr, beta, nesterov, weight_decay, maximize)
    _ops.momentum(param, grad, velocity, lr, beta, weight_decay, nesterov, maximize, 1.0)


def rmsprop_update(param, grad, sq_avg, lr, beta=0.9, eps=1e-8, grad_avg=None,
                   momentum_buffer=None, momentum=0.0, weight_decay=0.0, maximize=False):
    """RMSProp step, in place (Tieleman & Hinton 2012, lecture 6.5).

    .. math::

        \\mathrm{sq\\_avg} &\\leftarrow \\beta\\, \\mathrm{sq\\_avg} + (1 - \\beta)\\, g^2 \\\\
        p &\\leftarrow p - \\frac{\\eta\\, g}{\\sqrt{\\mathrm{sq\\_avg}} + \\epsilon}

    Per element, in this order, with the parentheses of docs/contract.md §2 (the kernels
    evaluate exactly this expression tree; ``(1-beta)*g*g``, which is ``((1-beta)*g)*g``,
    gives other bits)::

        sq_avg = beta*sq_avg + (1-beta)*(g*g)
        p = p - (lr*g) / (sqrt(sq_avg) + eps)

    ``eps`` is added outside the square root. Options (docs/contract.md §7): ``grad_avg``
    makes it centered (``grad_avg = beta*grad_avg + (1-beta)*g``, the denominator becomes
    ``sqrt(sq_avg - grad_avg*grad_avg) + eps``); ``momentum_buffer`` adds momentum
    (``momentum_buffer = momentum*momentum_buffer + g/denom; p = p - lr*momentum_buffer``).

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient, same dtype and shape as ``param``; only read.
    sq_avg : ndarray
        Running average :math:`s` of squared gradients, same dtype and shape; updated in place.
        Start from zeros.
    lr : float
        Learning rate, finite and >= 0.
    beta : float, default 0.9
        Decay of the average, ``0 <= beta < 1``.
    eps : float, default 1e-8
        Added to :math:`\\sqrt{s}`; finite and > 0.
    grad_avg : ndarray, optional
        Running average of gradients (centered RMSProp), like ``sq_avg``; updated in place.
    momentum_buffer : ndarray, optional
        Like ``sq_avg``; updated in place. Required when ``momentum > 0``.
    momentum : float, default 0.0
        Finite and >= 0.
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0.
    maximize : bool, default False

    Returns
    -------
    None
        ``param``, ``sq_avg`` and the given optional arrays are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.ones(2); s = np.zeros(2)
    >>> fastopt.rmsprop_update(p, np.array([1.0, -1.0]), s, lr=0.01)
    >>> s
    array([0.1, 0.1])
    """
    lr, beta, eps, momentum, weight_decay, maximize = _v.rmsprop_args(
        param, grad, sq_avg, lr, beta, eps, grad_avg, momentum_buffer, momentum, weight_decay,
        maximize)
    _ops.rmsprop(param, grad, sq_avg, grad_avg, momentum_buffer, lr, beta, eps, weight_decay,
                 momentum, maximize, 1.0)


def adam_update(param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                decoupled=False, v_max=None, maximize=False):
    """Adam step with bias correction, in place (Kingma & Ba 2015, Algorithm 1).

    .. math::

        m &\\leftarrow \\beta_1 m + (1 - \\beta_1)\\, g \\\\
        \\hat m &= m / (1 - \\beta_1^t) \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2)\\, g^2 \\\\
        \\hat v &= v / (1 - \\beta_2^t) \\\\
        p &\\leftarrow p - \\frac{\\eta\\, \\hat m}{\\sqrt{\\hat v} + \\epsilon}

    Per element, in this order, with the parentheses of docs/contract.md §2 (the kernels
    evaluate exactly this expression tree; ``(1-beta2)*g*g``, which is ``((1-beta2)*g)*g``,
    gives other bits), ``bias1 = 1 - beta1**t`` and ``bias2 = 1 - beta2**t`` computed in
    Python floats and, like every scalar, rounded once to the dtype::

        m     = beta1*m + (1-beta1)*g
        m_hat = m / bias1
        v     = beta2*v + (1-beta2)*(g*g)
        v_hat = v / bias2
        p     = p - (lr*m_hat) / (sqrt(v_hat) + eps)

    This is the assignment's form: ``eps`` outside the root, both moments divided by their bias
    correction (PyTorch instead divides by ``sqrt(1 - beta2**t)`` outside the root; Keras folds
    the corrections into the step size). ``beta**t`` is Python's ``float.__pow__``.

    Options (docs/contract.md §7): ``weight_decay`` adds ``weight_decay*p`` to the gradient, or,
    with ``decoupled=True`` (AdamW, Loshchilov & Hutter 2019), first shrinks the parameters,
    ``p = p*(1 - lr*weight_decay)``; ``v_max`` turns on AMSGrad (Reddi et al. 2018):
    ``v_max = max(v_max, v)`` (NaN wins) and ``v_hat = v_max / (1 - beta2**t)``. The factor
    ``1 - lr*weight_decay`` is rounded once to the dtype: in float32 a small ``lr*weight_decay``
    moves by up to 3e-8 (docs/contract.md §7 measures what that does).

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient, same dtype and shape as ``param``; only read.
    m, v : ndarray
        First and second moment estimates, same dtype and shape; updated in place. Start from
        zeros.
    t : int
        Number of Adam steps taken, counting this one: 1 on the first call.
    lr : float
        Learning rate :math:`\\eta`, finite and >= 0.
    beta1, beta2 : float, default 0.9, 0.999
        Moment decay rates, each ``0 <= beta < 1``.
    eps : float, default 1e-8
        Added to :math:`\\sqrt{\\hat v}`; finite and > 0.
    weight_decay : float, default 0.0
        Finite and >= 0.
    decoupled : bool, default False
        AdamW's decoupled weight decay instead of L2.
    v_max : ndarray, optional
        AMSGrad's running maximum of ``v``, like ``m``; updated in place. Start from zeros.
    maximize : bool, default False

    Returns
    -------
    None
        ``param``, ``m``, ``v`` (and ``v_max``) are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.zeros(2, dtype=np.float32); m = np.zeros_like(p); v = np.zeros_like(p)
    >>> g = np.array([1.0, -2.0], dtype=np.float32)
    >>> fastopt.adam_update(p, g, m, v, t=1, lr=0.1)
    >>> p
    array([-0.1,  0.1], dtype=float32)
    """
    t, lr, beta1, beta2, eps, weight_decay, decoupled, maximize = _v.adam_args(
        param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, v_max, maximize)
    _ops.adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias_correction(beta1, t),
              bias_correction(beta2, t), weight_decay, decoupled, maximize, 1.0)


def adagrad_update(param, grad, sum_sq, t, lr, lr_decay=0.0, eps=1e-10, weight_decay=0.0,
                   maximize=False):
    """Adagrad step, in place (Duchi, Hazan & Singer 2011; torch.optim's options).

    .. math::

        \\eta_t &= \\eta / (1 + (t - 1)\\, \\mathrm{lr\\_decay}) \\\\
        \\mathrm{sum\\_sq} &\\leftarrow \\mathrm{sum\\_sq} + g^2 \\\\
        p &\\leftarrow p - \\frac{\\eta_t\\, g}{\\sqrt{\\mathrm{sum\\_sq}} + \\epsilon}

    Per element, in this order, with the parentheses of docs/contract.md §7 (the kernels
    evaluate exactly this expression tree; ``clr`` is a scalar, computed in Python and rounded
    once to the dtype)::

        clr = lr / (1 + (t-1)*lr_decay)
        sum_sq = sum_sq + g*g
        p      = p - (clr*g) / (sqrt(sum_sq) + eps)

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient, same dtype and shape; only read.
    sum_sq : ndarray
        Sum of squared gradients, same dtype and shape; updated in place. Start from
        ``initial_accumulator_value`` (zeros by default).
    t : int
        Steps taken, counting this one: 1 on the first call.
    lr : float
        Finite and >= 0.
    lr_decay : float, default 0.0
        Finite and >= 0.
    eps : float, default 1e-10
        Finite and > 0, added outside the square root.
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0.
    maximize : bool, default False

    Returns
    -------
    None
        ``param`` and ``sum_sq`` are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.ones(2); s = np.zeros(2)
    >>> fastopt.adagrad_update(p, np.array([2.0, -2.0]), s, t=1, lr=0.1)
    >>> p, s
    (array([0.9, 1.1]), array([4., 4.]))
    """
    t, lr, lr_decay, eps, weight_decay, maximize = _v.adagrad_args(
        param, grad, sum_sq, t, lr, lr_decay, eps, weight_decay, maximize)
    _ops.adagrad(param, grad, sum_sq, adagrad_lr(lr, lr_decay, t), eps, weight_decay, maximize,
                 1.0)


def clip_grad_norm(grads, max_norm, error_if_nonfinite=False):
    return _clip.clip_grad_norm(_ops, grads, max_norm, error_if_nonfinite)


clip_grad_norm.__doc__ = _clip.clip_grad_norm.__doc__


def ewa(x, beta=0.9, bias_correction=False, out=None):
    """Exponentially weighted average of a 1-D series (docs/contract.md §3).

    .. math::

        v_0 = 0, \\quad v_k = \\beta v_{k-1} + (1 - \\beta)\\, x_k, \\qquad
        \\mathrm{out}_k = v_k \\;\\text{ or }\\; v_k / (1 - \\beta^k)

    Arithmetic is in ``x``'s dtype, each scalar rounded once (``1 - beta**k`` computed in double
    with ``float.__pow__``). The reference is a plain loop over :class:`fastopt.EWA`.

    Parameters
    ----------
    x : ndarray or sequence of float
        1-D float32/float64 array (any stride; only read), or a list/tuple of numbers (taken as
        float64).
    beta : float, default 0.9
        ``0 <= beta < 1``.
    bias_correction : bool, default False
        Divide the k-th average by ``1 - beta**k``.
    out : ndarray, optional
        Where to write: 1-D, ``x``'s dtype and length, writeable. ``out=x`` smooths in place.

    Returns
    -------
    ndarray
        ``out`` (a new array when ``out`` is None).

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> fastopt.ewa(np.array([1.0, 1.0, 1.0]), beta=0.5)
    array([0.5  , 0.75 , 0.875])
    >>> fastopt.ewa(np.array([1.0, 1.0, 1.0]), beta=0.5, bias_correction=True)
    array([1., 1., 1.])
    """
    x, beta, bias_correction, out = _v.ewa_args(x, beta, bias_correction, out)
    average = EWA(beta, bias_correction, x.dtype)
    for k in range(x.shape[0]):
        out[k] = average.update(x[k])
    return out
