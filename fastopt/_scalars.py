"""Per-step scalars, computed once in Python doubles (docs/contract.md §1).

A kernel receives every hyperparameter-derived scalar as a C double and rounds it once to the
array dtype; the reference hands the same Python float to NumPy, which rounds it the same way
(NEP 50). So each such scalar must be computed by one Python expression that both implementations
call: this module.
"""


def bias_correction(beta, t):
    """``1 - beta**t``: the divisor of a bias-corrected moment after ``t`` steps.

    ``beta`` is a Python float and ``t`` a Python int, so ``beta ** t`` is ``float.__pow__``
    (C ``pow`` on doubles) in every caller; ``float ** numpy.int64`` would go through NumPy's
    power instead, which need not give the same bits.

    Examples
    --------
    >>> bias_correction(0.9, 1), bias_correction(0.5, 2)
    (0.09999999999999998, 0.75)
    """
    return 1 - beta ** t
