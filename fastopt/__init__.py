"""fastopt: fused, in-place, bit-identical optimizer kernels for NumPy arrays on the CPU.

``fastopt`` (Cython) and ``fastopt.reference`` (pure NumPy) share one API and write the same bits.

Array level (in place, float32/float64, C-contiguous, any shape):
``sgd_update``, ``momentum_update``, ``rmsprop_update``, ``adam_update``.

Exponentially weighted averages: ``ewa`` (an array at once) and ``EWA`` (streaming).
Learning-rate schedules: ``fastopt.schedules``.
Dictionary level, the Deep Learning Specialization's functions: ``fastopt.lab``.
Comparison helpers (ULP distance, bitwise assertions): ``fastopt.testing``.
"""
from . import lab, reference, schedules, testing
from ._smoothing import EWA
from ._updates import adam_update, ewa, momentum_update, rmsprop_update, sgd_update

__version__ = "0.1.0"

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "ewa", "EWA",
           "schedules"]
