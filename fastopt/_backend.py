"""The public API written once over an implementation's arithmetic, and :func:`bind`, which
publishes it once per implementation.

``fastopt`` and ``fastopt.lab`` run the compiled kernels (``fastopt._ops``); ``fastopt.reference``
and ``fastopt.reference.lab`` run plain NumPy (``fastopt.reference._ops``). The two ``ops``
modules have the same unchecked functions; everything above them is here (or in the modules
:data:`API` and :data:`LAB` name) and is written once: each of the four public modules is
``bind(its ops, its name, API or LAB)``. A function, its docstring or an option therefore exists
in one place and both implementations publish it (tests/package/test_backends.py checks that
every public name of both comes from :func:`bind`).

What :func:`bind` makes of each entry of a catalogue:

* a function whose first parameter is ``ops`` (the array-level updates below,
  ``_clip.clip_grad_norm``, ``_minibatch.minibatches``, the course's updates in ``_lab``,
  ``_experiment.model``): a function of the same name, signature without ``ops``, defaults and
  docstring, published in the module (``__module__`` and ``__qualname__``, for ``help``,
  pickling by reference and Sphinx), that calls it with the implementation's ``ops``;
* a class whose arithmetic goes through its class attribute ``_ops`` (the optimizers and
  ``MiniBatches``, written over ``fastopt._ops``): the class itself where ``_ops`` is already
  that module, otherwise a subclass of it, published in the module, that differs only in
  ``_ops``;
* anything else (``EWA``, the course's initialisations and learning-rate decays): as it is.

Every function validates with the same ``fastopt._validation`` call whatever the
implementation, so both raise the same errors before anything is written.
"""
import ast
import functools
import inspect
import linecache
import textwrap
import types

from . import _clip, _experiment, _half, _lab, _minibatch, _optim
from . import _validation as _v
from ._scalars import adagrad_lr, bias_divisor
from ._smoothing import EWA
from .schedules import schedule_lr_decay, update_lr

__all__ = ["bind", "API", "LAB"]


# --- the array-level functions ----------------------------------------------------------------

def sgd_update(ops, param, grad, lr, weight_decay=0.0, maximize=False, master=None):
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
        Parameters, float32 or float64 (16-bit with ``master``), C-contiguous, any shape;
        updated in place.
    grad : ndarray
        Gradient of the loss with respect to ``param``; same dtype and shape; only read (a
        read-only array is fine).
    lr : float
        Learning rate :math:`\\eta`, finite and >= 0.
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0.
    maximize : bool, default False
        Ascend instead of descend (the gradient array itself is not written).
    master : ndarray, optional
        Required for a 16-bit ``param`` (``np.float16``, ``ml_dtypes.bfloat16``, or ``uint16``
        bfloat16 bits): its float32 master copy, same shape, C-contiguous, made once
        (``param.astype(np.float32)``; for ``uint16`` bits
        ``(param.astype(np.uint32) << 16).view(np.float32)``) and kept between steps. The
        update then steps ``master`` and the state arrays, which are float32, with ``grad`` in
        ``param``'s format (widened exactly), and writes ``param`` as ``master`` rounded to
        nearest even (docs/contract.md §14).

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
    lr, weight_decay, maximize = _v.sgd_args(param, grad, lr, weight_decay, maximize,
                                             master)
    arithmetic = ops if master is None else _half.MasterOps(ops, master)
    arithmetic.sgd(param, grad, None, lr, weight_decay, 0.0, 0.0, False, False, maximize, 1.0)


def momentum_update(ops, param, grad, velocity, lr, beta=0.9, nesterov=False,
                    weight_decay=0.0, maximize=False, master=None):
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
        Parameters, float32 or float64 (16-bit with ``master``), C-contiguous, any shape;
        updated in place.
    grad : ndarray
        Gradient, same dtype and shape as ``param``; only read.
    velocity : ndarray
        The velocity (the average of the gradients), same dtype and shape; updated in place.
        Start from zeros.
    lr : float
        Learning rate, finite and >= 0.
    beta : float, default 0.9
        Momentum, ``0 <= beta < 1``.
    nesterov : bool, default False
    weight_decay : float, default 0.0
        L2 penalty, finite and >= 0: ``g + weight_decay*p``.
    maximize : bool, default False
    master : ndarray, optional
        Required for a 16-bit ``param`` (``np.float16``, ``ml_dtypes.bfloat16``, or ``uint16``
        bfloat16 bits): its float32 master copy, same shape, C-contiguous, made once
        (``param.astype(np.float32)``; for ``uint16`` bits
        ``(param.astype(np.uint32) << 16).view(np.float32)``) and kept between steps. The
        update then steps ``master`` and the state arrays, which are float32, with ``grad`` in
        ``param``'s format (widened exactly), and writes ``param`` as ``master`` rounded to
        nearest even (docs/contract.md §14).

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
        param, grad, velocity, lr, beta, nesterov, weight_decay, maximize, master)
    arithmetic = ops if master is None else _half.MasterOps(ops, master)
    arithmetic.momentum(param, grad, velocity, lr, beta, weight_decay, nesterov, maximize, 1.0)


def rmsprop_update(ops, param, grad, sq_avg, lr, beta=0.9, eps=1e-8, grad_avg=None,
                   momentum_buffer=None, momentum=0.0, weight_decay=0.0, maximize=False,
                   master=None):
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
        Parameters, float32 or float64 (16-bit with ``master``), C-contiguous, any shape;
        updated in place.
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
    master : ndarray, optional
        Required for a 16-bit ``param`` (``np.float16``, ``ml_dtypes.bfloat16``, or ``uint16``
        bfloat16 bits): its float32 master copy, same shape, C-contiguous, made once
        (``param.astype(np.float32)``; for ``uint16`` bits
        ``(param.astype(np.uint32) << 16).view(np.float32)``) and kept between steps. The
        update then steps ``master`` and the state arrays, which are float32, with ``grad`` in
        ``param``'s format (widened exactly), and writes ``param`` as ``master`` rounded to
        nearest even (docs/contract.md §14).

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
        maximize, master)
    arithmetic = ops if master is None else _half.MasterOps(ops, master)
    arithmetic.rmsprop(param, grad, sq_avg, grad_avg, momentum_buffer, lr, beta, eps,
                       weight_decay, momentum, maximize, 1.0)


def adam_update(ops, param, grad, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, decoupled=False, v_max=None, maximize=False, master=None):
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
        Parameters, float32 or float64 (16-bit with ``master``), C-contiguous, any shape;
        updated in place.
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
    master : ndarray, optional
        Required for a 16-bit ``param`` (``np.float16``, ``ml_dtypes.bfloat16``, or ``uint16``
        bfloat16 bits): its float32 master copy, same shape, C-contiguous, made once
        (``param.astype(np.float32)``; for ``uint16`` bits
        ``(param.astype(np.uint32) << 16).view(np.float32)``) and kept between steps. The
        update then steps ``master`` and the state arrays, which are float32, with ``grad`` in
        ``param``'s format (widened exactly), and writes ``param`` as ``master`` rounded to
        nearest even (docs/contract.md §14).

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
    # The compiled ops validate and step the common case in one call (1000 float32 items:
    # ~1.5 us a call against 7.1 us through the Python checks); anything unusual, valid or not,
    # returns False with nothing written and takes the path below, whose checks raise every
    # error. The reference has no such path (its ``dispatch`` is None).
    dispatch = ops.dispatch
    if master is None and dispatch is not None and dispatch.kernels.adam_checked(
            param, grad, m, v, v_max, t, lr, beta1, beta2, eps, weight_decay, decoupled,
            maximize):
        return
    t, lr, beta1, beta2, eps, weight_decay, decoupled, maximize = _v.adam_args(
        param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, v_max, maximize,
        master)
    arithmetic = ops if master is None else _half.MasterOps(ops, master)
    arithmetic.adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias_divisor(beta1, t),
                    bias_divisor(beta2, t), weight_decay, decoupled, maximize, 1.0)


def adagrad_update(ops, param, grad, sum_sq, t, lr, lr_decay=0.0, eps=1e-10,
                   weight_decay=0.0, maximize=False, master=None):
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
        Parameters, float32 or float64 (16-bit with ``master``), C-contiguous, any shape;
        updated in place.
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
    master : ndarray, optional
        Required for a 16-bit ``param`` (``np.float16``, ``ml_dtypes.bfloat16``, or ``uint16``
        bfloat16 bits): its float32 master copy, same shape, C-contiguous, made once
        (``param.astype(np.float32)``; for ``uint16`` bits
        ``(param.astype(np.uint32) << 16).view(np.float32)``) and kept between steps. The
        update then steps ``master`` and the state arrays, which are float32, with ``grad`` in
        ``param``'s format (widened exactly), and writes ``param`` as ``master`` rounded to
        nearest even (docs/contract.md §14).

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
        param, grad, sum_sq, t, lr, lr_decay, eps, weight_decay, maximize, master)
    arithmetic = ops if master is None else _half.MasterOps(ops, master)
    arithmetic.adagrad(param, grad, sum_sq, adagrad_lr(lr, lr_decay, t), eps, weight_decay,
                       maximize, 1.0)


def ewa(ops, x, beta=0.9, bias_correction=False, out=None):
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
    ops.ewa(x, out, beta, bias_correction)
    return out


# --- the catalogues ---------------------------------------------------------------------------

API = (sgd_update, momentum_update, rmsprop_update, adam_update, adagrad_update,
       _clip.clip_grad_norm, ewa, EWA, _minibatch.MiniBatches, _minibatch.minibatches,
       _optim.SGD, _optim.Momentum, _optim.RMSProp, _optim.Adam, _optim.AdamW, _optim.Adagrad)
"""What ``fastopt`` and ``fastopt.reference`` publish over their ``ops`` (``fastopt`` also has
names of its own that need no ``ops``: threads, ``pack``, ``show_config``, ...)."""

LAB = (_lab.update_parameters_with_gd, _lab.update_parameters_with_momentum,
       _lab.update_parameters_with_rmsprop, _lab.update_parameters_with_adam,
       _lab.random_mini_batches, _experiment.model,
       update_lr, schedule_lr_decay, _lab.initialize_velocity, _lab.initialize_rmsprop,
       _lab.initialize_adam, _experiment.load_dataset, _experiment.initialize_parameters,
       _experiment.forward_propagation, _experiment.backward_propagation,
       _experiment.compute_cost, _experiment.predict, _experiment.predict_dec)
"""What ``fastopt.lab`` and ``fastopt.reference.lab`` publish: the assignment's functions."""


# --- the binding ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def bind(ops, module, catalogue):
    """The names of ``catalogue`` over one implementation's ``ops``, as module ``module``
    publishes them.

    Made once per ``(ops, module, catalogue)``: a second call returns the same objects (so
    ``bind(fastopt._ops, "fastopt", API)["adam_update"] is fastopt.adam_update``).

    Parameters
    ----------
    ops : module
        The unchecked arithmetic: ``fastopt._ops`` or ``fastopt.reference._ops``.
    module : str
        The module the names are published in (``fastopt``, ``fastopt.reference``, ...).
    catalogue : tuple
        :data:`API` or :data:`LAB`.

    Returns
    -------
    mappingproxy
        Name to object, in the catalogue's order: functions taking ``ops`` first get it bound
        (:func:`_bound_function`), classes with ``_ops`` are over ``ops`` (:func:`_bound_class`),
        the rest are the entries themselves.
    """
    names = {}
    for entry in catalogue:
        if isinstance(entry, type) and hasattr(entry, "_ops"):
            names[entry.__name__] = _bound_class(entry, ops, module)
        elif inspect.isfunction(entry) and _takes_ops(entry):
            names[entry.__name__] = _bound_function(entry, ops, module)
        else:
            names[entry.__name__] = entry
    return types.MappingProxyType(names)


def _takes_ops(function):
    first = next(iter(inspect.signature(function).parameters.values()), None)
    return first is not None and first.name == "ops"


def _bound_class(cls, ops, module):
    """``cls`` over ``ops``: itself when its ``_ops`` is ``ops`` already, else a subclass that
    differs only in ``_ops``: same code, behaviour and errors (whose messages name the class,
    and the subclass keeps its name)."""
    if cls._ops is ops:
        return cls
    return type(cls)(cls.__name__, (cls,), {"__doc__": cls.__doc__, "_ops": ops,
                                            "__module__": module,
                                            "__qualname__": cls.__name__})


_KINDS = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "{}", inspect.Parameter.VAR_POSITIONAL: "*{}",
          inspect.Parameter.KEYWORD_ONLY: "{0}={0}", inspect.Parameter.VAR_KEYWORD: "**{}"}


def _bound_function(function, ops, module):
    """``function`` with ``ops`` bound as its first argument, as a function of its own.

    The function's own source is compiled again inside a maker that takes ``ops``: the same
    body, with ``ops`` a closure variable instead of its first parameter, with the globals of
    the module that defines it, and with that file's name and line numbers (tracebacks and
    ``inspect.getsource`` show the one written function). A call costs what a call of the
    written function costs: no second Python call. Calling the written function from a
    generated wrapper cost +0.05-0.09 us a call (``fastopt.adam_update``, 1000 float32 items,
    ~0.6-0.8 us a call through the compiled fast path; ``benchmarks/tools/ab_binding.py``),
    3-12% of the array-level functions' time at 1000 items; a ``*args, **kwargs`` closure cost
    +0.2-0.4 us. A function whose source cannot be had, or that closes over variables of its
    own, gets such a wrapper (:func:`_calling_function`).

    The result has ``function``'s defaults (the same objects), docstring and name, and
    ``__module__`` and ``__qualname__`` that find it in ``module``. ``__signature__`` is
    ``function``'s without ``ops``; ``__wrapped__`` is ``function``.
    """
    signature = _signature_without_ops(function)
    bound = None
    if function.__closure__ is None:
        try:
            bound = _recompiled(function, ops)
        except (OSError, TypeError, SyntaxError):  # no source (an interactive definition)
            bound = None
    if bound is None:
        bound = _calling_function(function, ops, module)
    bound.__defaults__ = function.__defaults__
    bound.__kwdefaults__ = function.__kwdefaults__
    bound.__doc__ = function.__doc__
    bound.__module__, bound.__qualname__ = module, function.__name__
    bound.__annotations__ = {k: v for k, v in function.__annotations__.items() if k != "ops"}
    bound.__signature__ = signature
    bound.__wrapped__ = function
    return bound


def _signature_without_ops(function):
    name = function.__name__
    signature = inspect.signature(function)
    ops_parameter, *parameters = signature.parameters.values()
    if ops_parameter.default is not ops_parameter.empty or ops_parameter.kind not in (
            ops_parameter.POSITIONAL_OR_KEYWORD,):
        raise TypeError(f"{name}: ops must be the first parameter, positional, no default")
    if {p.name for p in parameters} & {"_function", "_ops"} or any(
            p.kind not in _KINDS for p in parameters):
        raise TypeError(f"{name}: a parameter the binding cannot pass on ({signature})")
    return signature.replace(parameters=parameters)


def _recompiled(function, ops):
    """``function``'s source compiled as ``def _make(ops): def <name>(<the rest>): ...``."""
    lines, first_line = inspect.getsourcelines(function)
    filename = inspect.getsourcefile(function)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    ast.increment_lineno(tree, first_line - 1)
    definition = tree.body[0]
    if (not isinstance(definition, ast.FunctionDef) or definition.decorator_list
            or definition.name != function.__name__ or not definition.args.args
            or definition.args.args[0].arg != "ops"):
        raise TypeError(f"{function.__name__}: not a plain function taking ops first")
    # The source must be the code that was imported (a file edited since, or a .pyc whose
    # source changed, would otherwise bind other code): compiled alone, it must have the same
    # first line, constants (nested code objects included, with their lines), names and local
    # variables. (Not the bytecode itself: CPython 3.11 compiles a method call in a module
    # differently from the same call compiled alone, LOAD_ATTR against LOAD_METHOD.)
    alone = compile(tree, filename, "exec")
    code = next((c for c in alone.co_consts if isinstance(c, types.CodeType)
                 and c.co_name == function.__name__), None)
    imported = function.__code__
    if code is None or any(getattr(code, k) != getattr(imported, k) for k in (
            "co_firstlineno", "co_consts", "co_names", "co_varnames", "co_argcount",
            "co_kwonlyargcount")):
        raise TypeError(f"{function.__name__}: its source is not the code that was imported")
    for node in ast.walk(definition):
        if isinstance(node, ast.Name) and (
                (node.id == "ops" and not isinstance(node.ctx, ast.Load))
                or node.id == definition.name):
            # ops assigned (a closure variable once bound), or the function naming itself
            # (it would find the bound function, which takes no ops)
            raise TypeError(f"{function.__name__}: assigns to ops or names itself")
    del definition.args.args[0]
    maker = ast.FunctionDef(
        name="_make", args=ast.arguments(posonlyargs=[], args=[ast.arg(arg="ops")],
                                         vararg=None, kwonlyargs=[], kw_defaults=[],
                                         kwarg=None, defaults=[]),
        body=[definition, ast.Return(value=ast.Name(id=definition.name, ctx=ast.Load()))],
        decorator_list=[], returns=None, type_comment=None)
    module_tree = ast.Module(body=[maker], type_ignores=[])
    ast.copy_location(maker, definition)
    ast.fix_missing_locations(module_tree)
    namespace = {}
    exec(compile(module_tree, filename, "exec"), function.__globals__, namespace)
    return namespace["_make"](ops)


def _calling_function(function, ops, module):
    """A generated function with ``function``'s parameters after ``ops`` that calls it with
    ``ops`` first (one more Python call)."""
    name = function.__name__
    parameters = list(_signature_without_ops(function).parameters.values())
    heads, calls, starred = [], [], False
    for p in parameters:
        if p.kind is p.KEYWORD_ONLY and not starred:
            heads.append("*")
        starred = starred or p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY)
        heads.append(_KINDS[p.kind].format(p.name) if p.kind is not p.KEYWORD_ONLY else p.name)
        calls.append(_KINDS[p.kind].format(p.name))
    filename = f"<fastopt._backend.bind: {module}.{name}>"
    source = (f"def _make(_function, _ops):\n"
              f"    def {name}({', '.join(heads)}):\n"
              f"        return _function(_ops, {', '.join(calls)})\n"
              f"    return {name}\n")
    namespace = {}
    exec(compile(source, filename, "exec"), namespace)
    # Tracebacks through the generated function show its line.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace["_make"](function, ops)
