"""Every optimizer class fastopt exports, by command-line name.

The subcommands ``train`` and ``surfaces`` offer "every optimizer fastopt has": they read this
registry, which is derived from ``fastopt.__all__``, so a class added there (and subclassing
:class:`fastopt.Optimizer`) appears in both without an edit here.
"""
import inspect

import fastopt


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


def default_lr(cls):
    """The class's default learning rate (its ``lr`` keyword default).

    Raises
    ------
    ValueError
        When the class has no default ``lr``: then ``--lr`` must be given.
    """
    default = inspect.signature(cls).parameters.get("lr")
    if default is None or default.default is inspect.Parameter.empty:
        raise ValueError(f"{cls.__name__} has no default learning rate; pass --lr")
    return float(default.default)


def reference_twin(cls):
    """The ``fastopt.reference`` class of the same name (the NumPy arithmetic), or None."""
    return getattr(fastopt.reference, cls.__name__, None)
