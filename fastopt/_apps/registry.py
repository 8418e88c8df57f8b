"""The applications' one registry of optimizers: for every optimizer class fastopt exports, its
command-line name, its default hyperparameters, its ``fastopt.reference`` twin and its
``torch.optim`` counterpart.

The subcommands (``train``, ``surfaces``, ``bench``, ``python -m fastopt.distributed``) offer
"every optimizer fastopt has": they read this registry, which is derived from
``fastopt.__all__``, so a class added there (and subclassing :class:`fastopt.Optimizer`) appears
in all of them without an edit here. The torch counterpart of a rule (class and keywords) is
the library's one mapping, :data:`fastopt.testing._conform_adapters.TORCH_CLASSES` and
:func:`~fastopt.testing._conform_adapters.torch_counterpart` (``conform torch`` uses it too);
what is the applications' own here is which flags make each torch class fastest.
"""
import functools
import inspect

import fastopt
from fastopt.testing import _conform_adapters


def optimizers():
    """Optimizer classes exported by ``fastopt``, keyed by lower-cased class name.

    Returns
    -------
    dict of str to type
        E.g. ``{"sgd": fastopt.SGD, "momentum": fastopt.Momentum, ...}``, in ``__all__`` order.
    """
    found = {}
    for name in fastopt.__all__:
        obj = getattr(fastopt, name, None)
        if (isinstance(obj, type) and issubclass(obj, fastopt.Optimizer)
                and obj is not fastopt.Optimizer):
            found[name.lower()] = obj
    return found


def default_hyperparameters(cls):
    """Every keyword of the class but ``params``, with its default (``lr`` too, when it has
    one)."""
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if k != "params" and p.default is not inspect.Parameter.empty}


def default_lr(cls):
    """The class's default learning rate (its ``lr`` keyword default).

    Raises
    ------
    ValueError
        When the class has no default ``lr``: then ``--lr`` must be given.
    """
    default = default_hyperparameters(cls).get("lr")
    if default is None:
        raise ValueError(f"{cls.__name__} has no default learning rate; pass --lr")
    return float(default)


def reference_twin(cls):
    """The ``fastopt.reference`` class of the same name (the NumPy arithmetic), or None."""
    return getattr(fastopt.reference, cls.__name__, None)


# torch.optim class name -> the flags of its fastest CPU implementation. torch 2.13's RMSprop
# has no fused implementation; foreach=True is its fastest.
TORCH_FASTEST = {"SGD": dict(fused=True), "RMSprop": dict(foreach=True),
                 "Adam": dict(fused=True), "AdamW": dict(fused=True),
                 "Adagrad": dict(fused=True)}


def torch_counterpart(cls, hyperparameters=None):
    """The torch.optim optimizer that computes ``cls``'s rule: ``(torch class name, keyword
    arguments, flags of its fastest implementation)``, or None when fastopt has no torch
    counterpart for the class.

    Parameters
    ----------
    cls : type
        A fastopt optimizer class.
    hyperparameters : dict, optional
        Its hyperparameters in fastopt's names (``opt.hyperparameters``); default: the class's
        defaults.
    """
    if cls.__name__ not in _conform_adapters.TORCH_CLASSES:
        return None
    hyper = default_hyperparameters(cls) if hyperparameters is None else hyperparameters
    name, kwargs = _conform_adapters.torch_counterpart(cls.__name__, hyper)
    return name, kwargs, TORCH_FASTEST[name]


def _torch_kwargs(rule, hyperparameters):
    return _conform_adapters.torch_counterpart(rule, hyperparameters)[1]


# fastopt class name -> (torch.optim class name, its keyword arguments from fastopt's
# hyperparameters, its fastest implementation's flags): torch_counterpart as the training loops
# (fastopt/_apps/loops.py) look it up. torch's SGD with momentum = dampening = beta is the
# course's momentum after the first step (torch starts the buffer at g, the course at
# (1 - beta) g).
TORCH = {rule: (torch_name, functools.partial(_torch_kwargs, rule), TORCH_FASTEST[torch_name])
         for rule, torch_name in _conform_adapters.TORCH_CLASSES.items()}
