"""fastopt: fused, in-place, bit-identical optimizer kernels for NumPy arrays on the CPU.

``fastopt`` (Cython) and ``fastopt.reference`` (pure NumPy) share one API and write the same bits.

Array level (in place, float32/float64, C-contiguous, any shape):
``sgd_update``, ``momentum_update``, ``rmsprop_update``, ``adam_update``, ``adagrad_update``;
``clip_grad_norm`` (global-norm clipping, summed in a fixed order).
Optimizer objects owning state and step count: ``SGD``, ``Momentum``, ``RMSProp``, ``Adam``,
``AdamW``, ``Adagrad`` (torch.optim's options in the course's arithmetic, ``max_grad_norm``);
``pack``/``pack_like`` put many arrays in one buffer so that a step is one kernel call.
16-bit parameters (float16, bfloat16) step through float32 masters: ``master_dtype=np.float32``;
loss scaling: ``step(grads, grad_scale=S, found_inf=...)``.
Build and runtime configuration (SIMD path, threads, flags): ``show_config()``.

Exponentially weighted averages: ``ewa`` (an array at once) and ``EWA`` (streaming).
Learning-rate schedules: ``fastopt.schedules``.
Shuffled mini-batches over reused buffers: ``MiniBatches``, ``minibatches``.
Threads: ``set_num_threads``, ``get_num_threads``, ``num_threads`` (``FASTOPT_NUM_THREADS``).
Dictionary level, the Deep Learning Specialization's functions: ``fastopt.lab``.
Comparison helpers (ULP distance, bitwise assertions): ``fastopt.testing``.
"""
from . import _backend, _ops, lab, reference, schedules, testing
from ._clip import NonFiniteNormError
from ._config import show_config
from ._optim import NonFiniteGradientError, Optimizer
from ._packing import PackedArrays, pack, pack_like
from ._threads import get_num_threads, num_threads, set_num_threads
from ._version import __version__

# The API written once in fastopt._backend, over the compiled kernels (fastopt.reference binds
# the same catalogue over NumPy). The classes are the ones of fastopt._optim/_minibatch.
_api = _backend.bind(_ops, __name__, _backend.API)
sgd_update = _api["sgd_update"]
momentum_update = _api["momentum_update"]
rmsprop_update = _api["rmsprop_update"]
adam_update = _api["adam_update"]
adagrad_update = _api["adagrad_update"]
clip_grad_norm = _api["clip_grad_norm"]
ewa = _api["ewa"]
EWA = _api["EWA"]
MiniBatches = _api["MiniBatches"]
minibatches = _api["minibatches"]
SGD = _api["SGD"]
Momentum = _api["Momentum"]
RMSProp = _api["RMSProp"]
Adam = _api["Adam"]
AdamW = _api["AdamW"]
Adagrad = _api["Adagrad"]
del _api

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "adagrad_update",
           "clip_grad_norm", "ewa", "EWA", "MiniBatches", "minibatches", "schedules",
           "set_num_threads", "get_num_threads", "num_threads", "SGD", "Momentum", "RMSProp",
           "Adam", "AdamW", "Adagrad", "Optimizer", "NonFiniteGradientError",
           "NonFiniteNormError", "pack", "pack_like", "PackedArrays", "show_config"]
