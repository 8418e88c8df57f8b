"""fastopt.reference.lab: the assignment's functions over the plain-NumPy reference arithmetic.

Same names, signatures, defaults and return values as the assignment (Deep Learning
Specialization, course 2, week 2), plus RMSProp, updating arrays in place like ``fastopt.lab``
(the assignment rebinds each entry to a new array; the values are the same). ``fastopt.lab`` is
the same code over the Cython kernels (both bound by :func:`fastopt.lab.make_lab`).
"""
from ..lab import make_lab
from . import _ops

_functions = make_lab(_ops, __name__)
globals().update(_functions)
__all__ = sorted(_functions)
del _functions
