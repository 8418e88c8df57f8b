"""fastopt.reference: the pure-NumPy oracle.

Every function here has the signature, the validation and the results of its twin in ``fastopt``
(the Cython path), which must write exactly the same bits. The code is boring on purpose: textbook
order, the papers' names, one NumPy expression per line of docs/contract.md §2. NumPy 2
rounds each Python-float hyperparameter once to the array dtype (NEP 50), which is the contract.

The arithmetic itself is in ``fastopt.reference._ops`` (unchecked, shared with the dictionary
functions of ``fastopt.reference.lab``); the functions here validate, then call it.
"""
from .. import _minibatch, _optim
from .. import _validation as _v
from .._scalars import bias_correction
from .._smoothing import EWA
from . import _ops

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "ewa", "EWA",
           "MiniBatches", "minibatches", "SGD", "Momentum", "RMSProp", "Adam"]


def _over_reference(cls):
    """The subclass of a fastopt class that runs the reference arithmetic: same code, same
    behaviour, same errors; only ``_ops`` differs."""
    return type(cls.__name__, (cls,), {"__doc__": cls.__doc__, "_ops": _ops,
                                       "__module__": __name__})


SGD = _over_reference(_optim.SGD)
Momentum = _over_reference(_optim.Momentum)
RMSProp = _over_reference(_optim.RMSProp)
Adam = _over_reference(_optim.Adam)
MiniBatches = _over_reference(_minibatch.MiniBatches)


def minibatches(X, Y=None, batch_size=64, seed=None, axis=1, drop_last=False, copy=False):
    return iter(MiniBatches(X, Y, batch_size, seed, axis, drop_last, copy))


minibatches.__doc__ = _minibatch.minibatches.__doc__


def sgd_update(param, grad, lr):
    """Gradient descent step, in place.

    .. math:: p \\leftarrow p - \\eta\\, g

    Parameters
    ----------
    param : ndarray
        Parameters, float32 or float64, C-contiguous, any shape; updated in place.
    grad : ndarray
        Gradient of the loss with respect to ``param``; same dtype and shape; only read (a
        read-only array is fine).
    lr : float
        Learning rate :math:`\\eta`, finite and >= 0.

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
    lr = _v.sgd_args(param, grad, lr)
    _ops.sgd(param, grad, lr)


def momentum_update(param, grad, velocity, lr, beta=0.9):
    """Momentum step (exponentially weighted average of gradients), in place.

    .. math::

        v &\\leftarrow \\beta v + (1 - \\beta)\\, g \\\\
        p &\\leftarrow p - \\eta\\, v

    This is the form of the Deep Learning Specialization, not PyTorch's ``v = mu*v + g``.

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
    lr, beta = _v.momentum_args(param, grad, velocity, lr, beta)
    _ops.momentum(param, grad, velocity, lr, beta)


def rmsprop_update(param, grad, sq_avg, lr, beta=0.9, eps=1e-8):
    """RMSProp step, in place (Tieleman & Hinton 2012, lecture 6.5).

    .. math::

        s &\\leftarrow \\beta s + (1 - \\beta)\\, g^2 \\\\
        p &\\leftarrow p - \\frac{\\eta\\, g}{\\sqrt{s} + \\epsilon}

    ``eps`` is added outside the square root.

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

    Returns
    -------
    None
        ``param`` and ``sq_avg`` are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.ones(2); s = np.zeros(2)
    >>> fastopt.rmsprop_update(p, np.array([1.0, -1.0]), s, lr=0.01)
    >>> s
    array([0.1, 0.1])
    """
    lr, beta, eps = _v.rmsprop_args(param, grad, sq_avg, lr, beta, eps)
    _ops.rmsprop(param, grad, sq_avg, lr, beta, eps)


def adam_update(param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam step with bias correction, in place (Kingma & Ba 2015, Algorithm 1).

    .. math::

        m &\\leftarrow \\beta_1 m + (1 - \\beta_1)\\, g \\\\
        \\hat m &= m / (1 - \\beta_1^t) \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2)\\, g^2 \\\\
        \\hat v &= v / (1 - \\beta_2^t) \\\\
        p &\\leftarrow p - \\frac{\\eta\\, \\hat m}{\\sqrt{\\hat v} + \\epsilon}

    This is the assignment's form: ``eps`` outside the root, both moments divided by their bias
    correction (PyTorch instead divides by ``sqrt(1 - beta2**t)`` outside the root; Keras folds
    the corrections into the step size). ``beta**t`` is Python's ``float.__pow__``.

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

    Returns
    -------
    None
        ``param``, ``m`` and ``v`` are updated in place.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> p = np.zeros(2, dtype=np.float32); m = np.zeros_like(p); v = np.zeros_like(p)
    >>> g = np.array([1.0, -2.0], dtype=np.float32)
    >>> fastopt.adam_update(p, g, m, v, t=1, lr=0.1)
    >>> p
    array([-0.1,  0.1], dtype=float32)
    """
    t, lr, beta1, beta2, eps = _v.adam_args(param, grad, m, v, t, lr, beta1, beta2, eps)
    _ops.adam(param, grad, m, v, lr, beta1, beta2, eps, bias_correction(beta1, t),
              bias_correction(beta2, t))


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
