"""The reference arithmetic, unchecked: ../shared/SPEC.md section 2, one NumPy line per formula.

Callers validate first (``fastopt._validation``); only the two mini-batch gathers check their
sizes again, as the Cython ones do (the second line). Every hyperparameter arrives as a Python
float (``bias1 = 1 - beta1**t`` and ``bias2 = 1 - beta2**t`` already computed with
``float.__pow__``), so NumPy 2 rounds it once to the array dtype (NEP 50). Updates are in place
(``x[...] = ...``) like the fast path, so the two are interchangeable; the temporaries NumPy
allocates here are what the fused kernels save.

Non-finite values propagate silently in both implementations: the kernels do not test the FPU
flags after every loop, so the reference suppresses NumPy's overflow/invalid warnings to behave the
same (``np.errstate`` as a decorator). Checking for non-finite gradients is the caller's choice.
"""
import numpy as np

from .. import _validation as _v

_quiet = np.errstate(all="ignore")


@_quiet
def sgd(param, grad, lr):
    param[...] = param - lr * grad


@_quiet
def momentum(param, grad, velocity, lr, beta):
    velocity[...] = beta * velocity + (1 - beta) * grad
    param[...] = param - lr * velocity


@_quiet
def rmsprop(param, grad, sq_avg, lr, beta, eps):
    sq_avg[...] = beta * sq_avg + (1 - beta) * (grad * grad)
    param[...] = param - lr * grad / (np.sqrt(sq_avg) + eps)


@_quiet
def adam(param, grad, m, v, lr, beta1, beta2, eps, bias1, bias2):
    m[...] = beta1 * m + (1 - beta1) * grad
    m_hat = m / bias1
    v[...] = beta2 * v + (1 - beta2) * (grad * grad)
    v_hat = v / bias2
    param[...] = param - lr * m_hat / (np.sqrt(v_hat) + eps)


def all_finite(x):
    return bool(np.isfinite(x).all())


def columns_into(src, perm, batch, blocks):
    """``blocks[k][...] = src[:, perm[k*batch : (k+1)*batch]]`` for every batch k.

    Checked like the Cython gather (``fastopt._validation.check_columns_into``): a size that
    does not fit raises the same ValueError instead of writing.
    """
    _v.check_columns_into(src, perm, batch, blocks)
    for k, block in enumerate(blocks):
        block[...] = src[:, perm[k * batch:(k + 1) * batch]]


def take_rows(src, rows, out):
    """``out[j] = src[rows[j]]`` for 2-D ``src``; checked like the Cython gather."""
    _v.check_take_rows(src, rows, out)
    out[...] = src[rows]


def as_view(x):
    return x


_TABLE = {(rule, np.dtype(dt)): globals()[rule]
          for rule in ("sgd", "momentum", "rmsprop", "adam", "as_view")
          for dt in (np.float32, np.float64)}


def kernel_table():
    """(rule, dtype) -> update function (the reference's take any shape, 1-D included)."""
    return _TABLE
