"""fastopt.lab: drop-in replacements for the "Optimization Methods" assignment, on fused kernels.

Same names, signatures, defaults and return values as the assignment (Deep Learning
Specialization, course 2, week 2), plus RMSProp. One difference, by design: arrays are updated
**in place** (the assignment rebinds each dict entry to a new array). The twin
``fastopt.reference.lab`` is the same code over plain NumPy arithmetic.
"""
from . import _ops
from ._labcore import make_lab

# One code for both implementations (fastopt/_labcore.py); only the arithmetic differs.
_functions = make_lab(_ops, __name__)
globals().update(_functions)
__all__ = sorted(_functions)
del _functions
