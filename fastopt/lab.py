"""fastopt.lab: drop-in replacements for the "Optimization Methods" assignment, on fused kernels.

Same names, signatures, defaults and return values as the assignment (Deep Learning
Specialization, course 2, week 2), plus RMSProp. One difference, by design: arrays are updated
**in place** (the assignment rebinds each dict entry to a new array). The twin
``fastopt.reference.lab`` is the same code over plain NumPy arithmetic.

The functions keep the course's names: momentum's velocities are the dict ``v``, RMSProp's
averages ``s``, and Adam's first and second moments ``v`` and ``s`` (elsewhere in fastopt:
``velocity``, ``sq_avg``, ``m`` and ``v``).
"""
import functools
import inspect

from . import _experiment, _lab, _ops
from .schedules import schedule_lr_decay, update_lr

# Functions that take an implementation's ``ops`` first, and those that need none.
_WITH_OPS = (_lab.update_parameters_with_gd, _lab.update_parameters_with_momentum,
             _lab.update_parameters_with_rmsprop, _lab.update_parameters_with_adam,
             _lab.random_mini_batches, _experiment.model)
_PLAIN = (update_lr, schedule_lr_decay, _lab.initialize_velocity, _lab.initialize_rmsprop,
          _lab.initialize_adam, _experiment.load_dataset, _experiment.initialize_parameters,
          _experiment.forward_propagation, _experiment.backward_propagation,
          _experiment.compute_cost, _experiment.predict, _experiment.predict_dec)


def make_lab(ops, module):
    """The assignment's functions over one implementation's unchecked ``ops``.

    Parameters
    ----------
    ops : module
        ``fastopt._ops`` or ``fastopt.reference._ops``.
    module : str
        The module the functions are published in (for ``help`` and pickling).

    Returns
    -------
    dict
        Function name to function: those of ``_WITH_OPS`` with ``ops`` bound (their signature
        shown without it), the others as they are.
    """
    def bind(function):
        @functools.wraps(function)
        def bound(*args, **kwargs):
            return function(ops, *args, **kwargs)

        signature = inspect.signature(function)
        bound.__signature__ = signature.replace(
            parameters=list(signature.parameters.values())[1:])
        bound.__module__, bound.__qualname__ = module, function.__name__
        return bound

    functions = {f.__name__: bind(f) for f in _WITH_OPS}
    functions.update((f.__name__, f) for f in _PLAIN)
    return functions


_functions = make_lab(_ops, __name__)
globals().update(_functions)
__all__ = sorted(_functions)
del _functions
