"""fastopt.lab: drop-in replacements for the "Optimization Methods" assignment, on fused kernels.

Same names, signatures, defaults and return values as the assignment (Deep Learning
Specialization, course 2, week 2), plus RMSProp. One difference, by design: arrays are updated
**in place** (the assignment rebinds each dict entry to a new array). The twin
``fastopt.reference.lab`` is the same code over plain NumPy arithmetic (both are
``fastopt._backend.bind`` of the functions of ``fastopt._lab`` and ``fastopt._experiment``).

The functions keep the course's names: momentum's velocities are the dict ``v``, RMSProp's
averages ``s``, and Adam's first and second moments ``v`` and ``s`` (elsewhere in fastopt:
``velocity``, ``sq_avg``, ``m`` and ``v``).
"""
from . import _backend, _ops

__all__ = ["backward_propagation", "compute_cost", "forward_propagation", "initialize_adam",
           "initialize_parameters", "initialize_rmsprop", "initialize_velocity", "load_dataset",
           "model", "predict", "predict_dec", "random_mini_batches", "schedule_lr_decay",
           "update_lr", "update_parameters_with_adam", "update_parameters_with_gd",
           "update_parameters_with_momentum", "update_parameters_with_rmsprop"]

_lab = _backend.bind(_ops, __name__, _backend.LAB)
update_parameters_with_gd = _lab["update_parameters_with_gd"]
update_parameters_with_momentum = _lab["update_parameters_with_momentum"]
update_parameters_with_rmsprop = _lab["update_parameters_with_rmsprop"]
update_parameters_with_adam = _lab["update_parameters_with_adam"]
random_mini_batches = _lab["random_mini_batches"]
model = _lab["model"]
update_lr = _lab["update_lr"]
schedule_lr_decay = _lab["schedule_lr_decay"]
initialize_velocity = _lab["initialize_velocity"]
initialize_rmsprop = _lab["initialize_rmsprop"]
initialize_adam = _lab["initialize_adam"]
load_dataset = _lab["load_dataset"]
initialize_parameters = _lab["initialize_parameters"]
forward_propagation = _lab["forward_propagation"]
backward_propagation = _lab["backward_propagation"]
compute_cost = _lab["compute_cost"]
predict = _lab["predict"]
predict_dec = _lab["predict_dec"]
del _lab
