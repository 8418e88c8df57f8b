"""Per-step scalars, computed once in Python doubles (docs/contract.md §1).

A kernel receives every hyperparameter-derived scalar as a C double and rounds it once to the
array dtype; the reference hands the same Python float to NumPy, which rounds it the same way
(NEP 50). So each such scalar must be computed by one Python expression that both implementations
call: this module.
"""


def bias_divisor(beta, t):
    """``1 - beta**t``: the divisor of a bias-corrected moment after ``t`` steps.

    ``beta`` is a Python float and ``t`` a Python int, so ``beta ** t`` is ``float.__pow__``
    (C ``pow`` on doubles) in every caller; ``float ** numpy.int64`` would go through NumPy's
    power instead, which need not give the same bits.

    Examples
    --------
    >>> bias_divisor(0.9, 1), bias_divisor(0.5, 2)
    (0.09999999999999998, 0.75)
    """
    return 1 - beta ** t


def adagrad_lr(lr, lr_decay, t):
    """Adagrad's learning rate at step ``t`` (1 on the first): ``lr / (1 + (t-1)*lr_decay)``.

    Examples
    --------
    >>> adagrad_lr(0.1, 0.5, 1), adagrad_lr(0.1, 0.5, 3)
    (0.1, 0.05)
    """
    return lr / (1 + (t - 1) * lr_decay)


def clip_coefficient(total_norm, max_norm):
    """The scale of every gradient for a global norm ``total_norm`` (docs/contract.md §8):
    ``max_norm / (total_norm + 1e-6)`` when that is below 1, else 1 (nothing is scaled; a NaN
    norm scales nothing either).

    Examples
    --------
    >>> clip_coefficient(10.0, 1.0) < 1, clip_coefficient(0.5, 1.0)
    (True, 1.0)
    """
    coef = max_norm / (total_norm + 1e-6)
    return coef if coef < 1 else 1.0
