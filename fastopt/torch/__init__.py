"""fastopt.torch: drop-in ``torch.optim`` optimizers for CPU training, with fastopt's arithmetic.

``Adam``, ``AdamW``, ``SGD``, ``RMSprop`` and ``Adagrad`` are ``torch.optim.Optimizer``
subclasses with torch's constructor signatures, defaults, ``param_groups`` and state-dict
format. A step writes exactly the bits that ``fastopt.reference`` writes for the same rule on the
same values (docs/contract.md §1, §7), for every thread count, in one kernel call per parameter
group and dtype: the parameters are packed into one contiguous buffer per dtype when the
optimizer is built (each ``p.data`` becomes a view of it), and so are the gradients and the state.
bfloat16/float16 parameters stay 16-bit, stepped through a float32 master kept in the optimizer
(``state[p]["master"]``); ``torch.amp.GradScaler`` hands the step its loss scale and inf check.
See docs/contract.md §13 for the gradient policy, 16-bit parameters, loss scaling and what is
refused.

torch is an optional dependency: only this package imports it.
"""
try:
    import torch as _torch  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in an environment without torch
    raise ImportError(
        "fastopt.torch needs PyTorch, which is not installed: pip install torch "
        "(fastopt itself runs without it)") from error

from ._optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from ._base import PackedOptimizer

__all__ = ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "PackedOptimizer"]
