"""Global-norm gradient clipping (docs/contract.md §8), written once over an implementation's
``ops`` (``sumsq`` and ``scale``): ``fastopt.clip_grad_norm`` and its reference twin.

The norm is summed in a fixed order (each array's ``ops.sumsq``, then the arrays in order), so
the Cython path and the reference return the same float for any thread count or SIMD width.
"""
import math

from . import _validation as _v
from ._scalars import clip_coefficient


class NonFiniteNormError(ValueError):
    """The gradients' global norm is inf or NaN and ``error_if_nonfinite=True``."""


def global_norm(ops, arrays):
    """``sqrt`` of the sum of every element's square over ``arrays``, in the fixed order."""
    total = 0.0
    for g in arrays:
        total += ops.sumsq(g)
    return math.sqrt(total)


def clip_grad_norm(ops, grads, max_norm, error_if_nonfinite=False):
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``.

    torch's ``clip_grad_norm_``: ``total = sqrt(sum of g*g over every element of every
    gradient)``, ``coef = max_norm / (total + 1e-6)``; if ``coef < 1`` every gradient is
    multiplied by ``coef`` (rounded once to its dtype). The sum is taken in a fixed order
    (docs/contract.md §8), so the result does not depend on threads or SIMD width.

    Parameters
    ----------
    grads : ndarray, dict of ndarray, list of ndarray or PackedArrays
        Writeable C-contiguous float32/float64 arrays (dtypes may differ), sharing no memory.
    max_norm : float
        Finite and >= 0.
    error_if_nonfinite : bool, default False
        Raise :class:`NonFiniteNormError` (a ``ValueError``) before anything is written when the
        norm is inf or NaN. Otherwise an inf norm scales every gradient by 0 (inf becomes NaN)
        and a NaN norm scales nothing, as ``coef < 1`` is false (torch would write NaN
        everywhere: the one place fastopt differs).

    Returns
    -------
    float
        The global norm before clipping.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> grads = {"W": np.array([3.0, 0.0]), "b": np.array([4.0])}
    >>> fastopt.clip_grad_norm(grads, max_norm=1.0)
    5.0
    >>> grads["W"], grads["b"]
    (array([0.59999988, 0.        ]), array([0.79999984]))
    """
    items, max_norm, error_if_nonfinite = _v.clip_args(grads, max_norm, error_if_nonfinite)
    arrays = [g for _, g in items]
    total = global_norm(ops, arrays)
    if error_if_nonfinite and not math.isfinite(total):
        raise NonFiniteNormError(f"the gradients' global norm is {total}; nothing was scaled "
                                 f"(error_if_nonfinite=True)")
    coef = clip_coefficient(total, max_norm)
    if coef < 1:
        for g in arrays:
            ops.scale(g, coef)
    return total
