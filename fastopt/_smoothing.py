"""Exponentially weighted averages (docs/contract.md §3): the streaming ``EWA`` object.

``EWA.update`` is the one Python statement of the arithmetic; ``fastopt.reference.ewa`` is a
plain loop over it and ``fastopt.ewa`` a Cython kernel that must agree with it bit for bit.
"""
import numpy as np

from . import _validation as _v
from ._scalars import bias_divisor


class EWA(_v.StrictAttributes):
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
    beta : float
        Validated on assignment (``0 <= beta < 1``), which re-derives the rounded scalars: the
        average goes on from its current value with the new ``beta`` (and bias correction then
        divides by ``1 - beta**count`` with the new one, as if the series had used it all
        along; call :meth:`reset` to start afresh).
    bias_correction : bool
        Validated on assignment (True or False); applies from the next :meth:`update`.
    dtype : numpy.dtype
        Read-only: the running average is held in it (make a new ``EWA`` for another).
    value : float or None
        Read-only: the latest smoothed value (``None`` before the first update).
    count : int
        Read-only: number of values seen since construction or :meth:`reset`.

    Any other name raises ``AttributeError`` when assigned (``avg.betta = 0.1``: did you mean
    ``beta``?), and no attribute can be deleted.

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
        beta = _v.check_beta(beta, "beta")  # checked in the order of the arguments
        self._bias_correction = _v.check_bool(bias_correction, "bias_correction")
        self._dtype = _v.check_float_dtype(dtype)
        self.beta = beta
        self.reset()

    @property
    def beta(self):
        """The decay, ``0 <= beta < 1``; assigning validates it and re-derives the scalars."""
        return self._beta

    @beta.setter
    def beta(self, value):
        beta = _v.check_beta(value, "beta")
        scalar = self._dtype.type
        # beta and 1 - beta (in double) rounded once to dtype: derived here, never stale.
        self._beta, self._b, self._c = beta, scalar(beta), scalar(1 - beta)

    @property
    def bias_correction(self):
        """Whether values are divided by ``1 - beta**count``; assigning validates it."""
        return self._bias_correction

    @bias_correction.setter
    def bias_correction(self, value):
        self._bias_correction = _v.check_bool(value, "bias_correction")

    dtype = property(lambda self: self._dtype,
                     _v.read_only_setter("dtype", "the running average is held in it; "
                                                  "make a new EWA"),
                     doc="The dtype of the arithmetic (read-only).")
    count = property(lambda self: self._count,
                     _v.read_only_setter("count", "it counts the updates; reset() starts "
                                                  "again from 0"),
                     doc="Values seen since construction or reset() (read-only).")
    value = property(lambda self: self._value,
                     _v.read_only_setter("value", "it is the latest smoothed value; "
                                                  "reset() forgets it"),
                     doc="The latest smoothed value, None before the first (read-only).")

    def reset(self):
        """Forget every value seen: back to ``v_0 = 0``."""
        self._v = self._dtype.type(0)
        self._count = 0
        self._value = None

    @np.errstate(all="ignore")  # NaN/inf propagate silently, as in the kernel
    def update(self, value):
        """Add one value; return the new smoothed value as a Python float.

        Parameters
        ----------
        value : float
            A real number (NaN and inf propagate, as in :func:`fastopt.ewa`).
        """
        scalar = self._dtype.type
        x = scalar(_v._real_or_nonfinite(value, "value"))
        self._count += 1
        self._v = self._b * self._v + self._c * x
        v = self._v
        if self._bias_correction:
            v = v / scalar(bias_divisor(self._beta, self._count))
        self._value = float(v)
        return self._value

    def __repr__(self):
        return (f"EWA(beta={self.beta!r}, bias_correction={self.bias_correction!r}, "
                f"dtype={self.dtype.name}) after {self.count} values")
