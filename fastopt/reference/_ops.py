"""The reference arithmetic, unchecked: docs/contract.md §2, one NumPy line per formula.

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

from .. import _half
from .. import _validation as _v
from .._smoothing import EWA

_quiet = np.errstate(all="ignore")


def _gradient(grad, param, grad_scale, maximize, weight_decay):
    """The gradient as a rule uses it (docs/contract.md §7, §8): scaled by the clipping
    coefficient, negated to maximize, then with L2 weight decay. The array ``grad`` itself is
    never written."""
    g = grad
    if grad_scale != 1:
        g = g * grad_scale
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * param
    return g


@_quiet
def sgd(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, first,
        maximize, grad_scale):
    g = _gradient(grad, param, grad_scale, maximize, weight_decay)
    if momentum_buffer is None:
        param[...] = param - lr * g
        return
    if first:
        momentum_buffer[...] = g
    else:
        momentum_buffer[...] = momentum * momentum_buffer + (1 - dampening) * g
    if nesterov:
        param[...] = param - lr * (g + momentum * momentum_buffer)
    else:
        param[...] = param - lr * momentum_buffer


@_quiet
def momentum(param, grad, velocity, lr, beta, weight_decay, nesterov, maximize, grad_scale):
    g = _gradient(grad, param, grad_scale, maximize, weight_decay)
    velocity[...] = beta * velocity + (1 - beta) * g
    if nesterov:
        param[...] = param - lr * (beta * velocity + (1 - beta) * g)
    else:
        param[...] = param - lr * velocity


@_quiet
def rmsprop(param, grad, sq_avg, grad_avg, momentum_buffer, lr, beta, eps, weight_decay,
            momentum, maximize, grad_scale):
    g = _gradient(grad, param, grad_scale, maximize, weight_decay)
    sq_avg[...] = beta * sq_avg + (1 - beta) * (g * g)
    if grad_avg is not None:
        grad_avg[...] = beta * grad_avg + (1 - beta) * g
        denom = np.sqrt(sq_avg - grad_avg * grad_avg) + eps
    else:
        denom = np.sqrt(sq_avg) + eps
    if momentum_buffer is not None:
        momentum_buffer[...] = momentum * momentum_buffer + g / denom
        param[...] = param - lr * momentum_buffer
    else:
        param[...] = param - lr * g / denom


@_quiet
def adam(param, grad, m, v, v_max, lr, beta1, beta2, eps, bias1, bias2, weight_decay, decoupled,
         maximize, grad_scale):
    g = _gradient(grad, param, grad_scale, maximize, 0.0 if decoupled else weight_decay)
    if decoupled and weight_decay != 0:
        param[...] = param * (1 - lr * weight_decay)
    m[...] = beta1 * m + (1 - beta1) * g
    m_hat = m / bias1
    v[...] = beta2 * v + (1 - beta2) * (g * g)
    if v_max is not None:
        # np.maximum's rule, written out so that a tie keeps v_max whatever NumPy's SIMD does:
        # the larger, and NaN wins.
        v_max[...] = np.where((v > v_max) | np.isnan(v), v, v_max)
        v_hat = v_max / bias2
    else:
        v_hat = v / bias2
    param[...] = param - lr * m_hat / (np.sqrt(v_hat) + eps)


@_quiet
def adagrad(param, grad, sum_sq, clr, eps, weight_decay, maximize, grad_scale):
    g = _gradient(grad, param, grad_scale, maximize, weight_decay)
    sum_sq[...] = sum_sq + g * g
    param[...] = param - clr * g / (np.sqrt(sum_sq) + eps)


# The clipping sum's block, in items. Python code (fastopt.distributed's slices) reads it here;
# the compiled kernels (fastopt/_pxi/clipping.pxi) and the C known-answer reader
# (tests/conformance/c/kat_rules.h) cannot import it and hold their own, which
# tests/kernels/test_build.py keeps equal to this one.
SUMSQ_BLOCK = 1024


def sumsq(x):
    """The sum of ``x*x`` in float64 in the kernels' fixed order (docs/contract.md §8): blocks of
    1024 items, each summed by eight interleaved lanes combined pairwise, blocks in order."""
    if x.size == 0:
        return 0.0
    return float(np.cumsum(_block_sums(x))[-1])  # the blocks in order, one after the other


def sumsq_blocks(x, out):
    """``out[b]``: the sum of squares of block ``b`` of ``x`` (the terms of :func:`sumsq`)."""
    out[...] = _block_sums(x)


def _block_sums(x):
    """Each block's sum by eight interleaved lanes combined pairwise. Padding the last block
    with zeros changes no lane (``s + 0.0 == s`` for the non-negative sums here)."""
    flat = x.reshape(-1)
    if flat.size == 0:
        return np.zeros(0)
    blocks = -(-flat.size // SUMSQ_BLOCK)
    sq = np.zeros(blocks * SUMSQ_BLOCK)
    with np.errstate(all="ignore"):   # a signalling NaN raises "invalid" as it widens
        wide = flat.astype(np.float64)
        sq[:flat.size] = wide * wide
        rows = sq.reshape(blocks, SUMSQ_BLOCK // 8, 8)
        lanes = rows[:, 0, :].copy()
        for k in range(1, SUMSQ_BLOCK // 8):  # each lane in item order
            lanes += rows[:, k, :]
        l = [lanes[:, j] for j in range(8)]
        return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))


@_quiet
def scale(x, coef):
    x[...] = x * coef


def all_finite(x):
    return bool(np.isfinite(x).all())


def ewa(x, out, beta, bias_correction):
    """``out[k]``: the average of ``x[:k+1]``, a plain loop over :class:`fastopt.EWA`."""
    average = EWA(beta, bias_correction, x.dtype)
    for k in range(x.shape[0]):
        out[k] = average.update(x[k])


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


RULES = ("sgd", "momentum", "rmsprop", "adam", "adagrad")


def mixed(rule, kind):
    """The update of a 16-bit parameter through its float32 master (docs/contract.md §14):
    ``step(master, grad_bits, *states, *scalars, param_bits)``. The gradient's 16-bit patterns
    are widened to float32 (exact), ``rule`` steps the master and the state in float32, and
    ``param_bits`` (``uint16``) receives the master rounded to nearest even."""
    update = globals()[rule]

    def step(master, grad_bits, *rest):
        *args, param_bits = rest
        # The second line behind the callers' validation, as the kernels check before writing:
        # every array has the master's length (an absent state array is None).
        for name, a in (("grad_bits", grad_bits), ("param_bits", param_bits),
                        *((f"state {i}", a) for i, a in enumerate(args)
                          if isinstance(a, np.ndarray))):
            if a.size != master.size:
                raise ValueError(f"{name} has {a.size} items; expected {master.size}, the "
                                 f"length of master")
        update(master, _half.widen(grad_bits, kind).reshape(master.shape), *args)
        _half.narrow(master, kind, out=param_bits)

    step.__name__ = step.__qualname__ = f"{rule}_{kind}"
    return step


def all_finite_half(grad_bits, kind):
    """True when no 16-bit value of ``grad_bits`` is inf or NaN."""
    return bool(_half.finite(grad_bits, kind).all())


def sumsq_half(grad_bits, kind):
    """:func:`sumsq` of the widened values (each exact in float32, then in float64)."""
    return sumsq(_half.widen(grad_bits, kind))


def sumsq_blocks_half(grad_bits, kind, out):
    sumsq_blocks(_half.widen(grad_bits, kind), out)


_TABLE = {(rule, np.dtype(dt)): globals()[rule]
          for rule in RULES + ("as_view",)
          for dt in (np.float32, np.float64)}
_TABLE.update(((rule, kind), mixed(rule, kind)) for rule in RULES for kind in _half.KINDS)
_TABLE.update((("as_view", kind), as_view) for kind in _half.KINDS)


dispatch = None
"""The compiled ops' fast paths (``fastopt._ops.dispatch``); the reference has none."""


def kernel_table():
    """(rule, dtype) -> update function (the reference's take any shape, 1-D included);
    (rule, "bfloat16"/"float16") -> :func:`mixed`'s step."""
    return _TABLE
