"""fastopt.reference: the pure-NumPy oracle.

The same API as ``fastopt`` (the Cython path), which must write exactly the same bits: the same
functions and classes, written once in ``fastopt._backend``, bound here over the arithmetic of
``fastopt.reference._ops`` (unchecked, shared with the dictionary functions of
``fastopt.reference.lab``), so that the signatures, the validation, the errors and the documents
are those of ``fastopt``. That arithmetic is boring on purpose: textbook order, the papers'
names, one NumPy expression per line of docs/contract.md §2. NumPy 2 rounds each Python-float
hyperparameter once to the array dtype (NEP 50), which is the contract.

The classes are subclasses of fastopt's that differ only in their ``_ops``.
"""
from .. import _backend
from . import _ops

__all__ = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update", "adagrad_update",
           "clip_grad_norm", "ewa", "EWA", "MiniBatches", "minibatches", "SGD", "Momentum",
           "RMSProp", "Adam", "AdamW", "Adagrad"]

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
