"""Exponentially weighted averages (docs/contract.md §3): the streaming ``EWA`` object.

``EWA.update`` is the one Python statement of the arithmetic; ``fastopt.reference.ewa`` is a
plain loop over it and ``fastopt.ewa`` a Cython kernel that must agree with it bit for bit.
"""
import numpy as np

from . import _validation as _v
from ._scalars import bias_correction


class EWA:
    """Streaming exponentially weighted average, for smoothing values as they arrive.

    .. math::

        v_0 = 0, \\quad v_k = \\beta v_{k-1} + (1 - \\beta)\\, x_k, \\quad
        \\text{corrected: } v_k / (1 - \\beta^k)

    Arithmetic is in ``dtype``: each value and the scalars ``beta`` and ``1 - beta`` (computed
    in double) are rounded once to it, so ``EWA`` agrees value for value with
    :func:`fastopt.ewa` on an array of that dtype.

    Parameters
    ----------
    beta : float, default 0.9
        ``0 <= beta < 1``; the average spans roughly ``1 / (1 - beta)`` values.
    bias_correction : bool, default False
        Divide by ``1 - beta**k`` so that early values are not biased towards 0.
    dtype : float32 or float64, default float64

    Attributes
    ----------
    value : float or None
        The latest smoothed value (``None`` before the first update).
    count : int
        Number of values seen since construction or :meth:`reset`.

    Examples
    --------
    >>> from fastopt import EWA
    >>> avg = EWA(beta=0.5, bias_correction=True)
    >>> avg.update(4.0), avg.update(8.0)
    (4.0, 6.666666666666667)
    >>> avg.count, avg.value
    (2, 6.666666666666667)
    """

    def __init__(self, beta=0.9, bias_correction=False, dtype=np.float64):
        self.beta = _v.check_beta(beta, "beta")
        self.bias_correction = _v.check_bool(bias_correction, "bias_correction")
        self.dtype = _v.check_float_dtype(dtype)
        scalar = self.dtype.type
        self._b, self._c = scalar(self.beta), scalar(1 - self.beta)
        self.reset()

    def reset(self):
        """Forget every value seen: back to ``v_0 = 0``."""
        self._v = self.dtype.type(0)
        self.count = 0
        self.value = None

    @np.errstate(all="ignore")  # NaN/inf propagate silently, as in the kernel
    def update(self, value):
        """Add one value; return the new smoothed value as a Python float.

        Parameters
        ----------
        value : float
            A real number (NaN and inf propagate, as in :func:`fastopt.ewa`).
        """
        x = self.dtype.type(_v._real_or_nonfinite(value, "value"))
        self.count += 1
        self._v = self._b * self._v + self._c * x
        v = self._v
        if self.bias_correction:
            v = v / self.dtype.type(bias_correction(self.beta, self.count))
        self.value = float(v)
        return self.value

    def __repr__(self):
        return (f"EWA(beta={self.beta!r}, bias_correction={self.bias_correction!r}, "
                f"dtype={self.dtype.name}) after {self.count} values")
