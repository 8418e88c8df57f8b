"""The assignment's dictionary-level functions, written once for both implementations.

Each function that does arithmetic takes the implementation's unchecked ``ops`` module as its
first argument (``fastopt._ops``: the Cython kernels; ``fastopt.reference._ops``: plain NumPy);
``fastopt._backend.bind`` binds it, so ``fastopt.lab`` and ``fastopt.reference.lab`` are this
one code and cannot drift apart. The experiment that uses these functions (data, network,
``model``) is ``fastopt._experiment``.

Names. The functions keep the course's names: gradients and optimizer state are keyed
``dW1, db1, ...``; momentum's velocities are the dict ``v``; RMSProp's squared-gradient averages
are ``s``; and Adam's first moment is ``v`` and its second ``s``. Everywhere else in fastopt,
Adam's moments are ``m`` and ``v`` (Kingma & Ba), momentum's state is ``velocity`` and RMSProp's
``sq_avg``: the course's ``v``/``s`` dicts are passed to the kernels as exactly those.

Semantics shared by both implementations:

* Parameters are keyed ``W1, b1, ..., WL, bL``; ``grads`` may hold other entries (the
  assignment's backward pass returns ``dz1``, ``da1``, ...).
* Every entry is validated before any array is written: a bad ``grads['db3']`` leaves
  ``parameters['W1']`` untouched.
* Arrays are updated **in place** and the same dicts are returned. The assignment instead rebinds
  each entry to a new array; the values are identical, but here an array you hold a reference to
  changes too.
"""
import numpy as np

from . import _validation as _v
from ._minibatch import column_batches
from ._scalars import bias_divisor


def _layer_keys(parameters):
    """Return ``[("W1", "dW1"), ("b1", "db1"), ...]`` after checking the keys of ``parameters``."""
    _v.check_mapping(parameters, "parameters")
    # The assignment counts len(parameters) // 2 layers; a W3 without its b3 should be reported as
    # "missing b3", not as an unexpected W3, so the highest layer number present counts too.
    numbered = [int(k[1:]) for k in parameters.keys()
                if isinstance(k, str) and k[:1] in ("W", "b") and k[1:].isdigit()]
    n_layers = max([len(parameters) // 2] + numbered)
    keys = []
    for layer in range(1, n_layers + 1):
        keys.append((f"W{layer}", f"dW{layer}"))
        keys.append((f"b{layer}", f"db{layer}"))
    expected = {key for key, _ in keys}
    if set(parameters.keys()) != expected:
        unexpected = sorted(set(parameters.keys()) - expected, key=str)
        missing = sorted(expected - set(parameters.keys()))
        raise _v.MissingKeyError(
            f"parameters must hold exactly W1, b1, ..., W{n_layers}, b{n_layers} "
            f"({len(parameters)} entries); missing {missing}, unexpected {unexpected}")
    return keys


def _entry(mapping, mapping_name, key, owner):
    try:
        return mapping[key]
    except KeyError:
        raise _v.MissingKeyError(
            f"{mapping_name} has no entry {key!r} (the one for parameters[{owner!r}])") from None


def _check_entries(parameters, grads, states):
    """Validate every entry; return ``[(gkey, param, grad, (state, ...)), ...]`` in layer order.

    ``states`` is a sequence of ``(dict, name)``; each dict is keyed like ``grads``.
    """
    keys = _layer_keys(parameters)
    _v.check_mapping(grads, "grads")
    for state, state_name in states:
        _v.check_mapping(state, state_name)
    entries, written, read = [], [], []
    for pkey, gkey in keys:
        param = parameters[pkey]
        grad = _entry(grads, "grads", gkey, pkey)
        state_arrays = tuple(_entry(state, name, gkey, pkey) for state, name in states)
        w = [(f"parameters[{pkey!r}]", param)]
        w += [(f"{name}[{gkey!r}]", arr) for (_, name), arr in zip(states, state_arrays)]
        r = [(f"grads[{gkey!r}]", grad)]
        _v.check_update_layout(w, r)
        written += w
        read += r
        entries.append((gkey, param, grad, state_arrays))
    # One overlap check over every entry: within an entry (a gradient that is a view of its
    # parameter) and across entries (W1 passed again as W2, one state array shared by two
    # parameters, which would be updated twice).
    _v.check_no_overlap(written, read)
    return entries


def _zeros_like_entries(parameters):
    """Zeros for every parameter, keyed ``dW1, db1, ...``, in each parameter's dtype."""
    state = {}
    for pkey, gkey in _layer_keys(parameters):
        param = parameters[pkey]
        _v.check_float_array(param, f"parameters[{pkey!r}]", writeable=False)
        # The assignment uses np.zeros(shape): float64 whatever the parameters. Matching the
        # parameter's dtype keeps float32 models in float32 (and float64 ones unchanged).
        state[gkey] = np.zeros(param.shape, dtype=param.dtype)
    return state


def update_parameters_with_gd(ops, parameters, grads, learning_rate):
    """One step of gradient descent on every parameter, in place.

    ``W_l = W_l - learning_rate * dW_l`` and ``b_l = b_l - learning_rate * db_l``
    (docs/contract.md §2).

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``: float32/float64 C-contiguous arrays, updated in place.
    grads : dict
        ``dW1, db1, ...`` of the same shapes and dtypes; other entries are ignored.
    learning_rate : float
        Finite and >= 0.

    Returns
    -------
    parameters : dict
        The same dict, its arrays updated in place (the assignment rebinds new arrays
        instead; the values are the same).

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt import lab
    >>> params = {"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))}
    >>> grads = {"dW1": np.ones((2, 2)), "db1": np.ones((2, 1))}
    >>> lab.update_parameters_with_gd(params, grads, 0.5)["b1"]
    array([[-0.5],
           [-0.5]])
    """
    entries = _check_entries(parameters, grads, ())
    learning_rate = _v.check_lr(learning_rate, "learning_rate")
    for _, param, grad, _ in entries:
        ops.sgd(param, grad, None, learning_rate, 0.0, 0.0, 0.0, False, False, False, 1.0)
    return parameters

def initialize_velocity(parameters):
    """Zero velocities for momentum, keyed ``dW1, db1, ...``.

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``.

    Returns
    -------
    v : dict
        ``v['dW1']`` is ``np.zeros`` of ``parameters['W1']``'s shape, and so on, in the
        parameter's dtype (the assignment always uses float64).
    """
    return _zeros_like_entries(parameters)

def update_parameters_with_momentum(ops, parameters, grads, v, beta, learning_rate):
    """One momentum step on every parameter, in place.

    ``v = beta*v + (1-beta)*dW; W = W - learning_rate*v`` for each ``W_l`` and ``b_l``, in that
    order (docs/contract.md §2).

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``, updated in place.
    grads : dict
        ``dW1, db1, ...``; other entries are ignored.
    v : dict
        Velocities from :func:`initialize_velocity`, updated in place.
    beta : float
        Momentum, ``0 <= beta < 1``.
    learning_rate : float
        Finite and >= 0.

    Returns
    -------
    parameters, v : dict
        The same dicts, updated in place.
    """
    entries = _check_entries(parameters, grads, ((v, "v"),))
    beta = _v.check_beta(beta, "beta")
    learning_rate = _v.check_lr(learning_rate, "learning_rate")
    for _, param, grad, (velocity,) in entries:
        ops.momentum(param, grad, velocity, learning_rate, beta, 0.0, False, False, 1.0)
    return parameters, v

def initialize_rmsprop(parameters):
    """Zero squared-gradient averages for RMSProp, keyed ``dW1, db1, ...`` (our addition).

    Returns
    -------
    s : dict
        Zeros of each parameter's shape and dtype.
    """
    return _zeros_like_entries(parameters)

def update_parameters_with_rmsprop(ops, parameters, grads, s, beta, learning_rate,
                                    epsilon=1e-8):
    """One RMSProp step on every parameter, in place (our addition to the assignment).

    ``s = beta*s + (1-beta)*(dW*dW); W = W - (learning_rate*dW) / (sqrt(s) + epsilon)``, with
    these parentheses (docs/contract.md §2).

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``, updated in place.
    grads : dict
        ``dW1, db1, ...``; other entries are ignored.
    s : dict
        Averages from :func:`initialize_rmsprop`, updated in place.
    beta : float
        Decay, ``0 <= beta < 1``.
    learning_rate : float
        Finite and >= 0.
    epsilon : float, default 1e-8
        Finite and > 0, added outside the square root.

    Returns
    -------
    parameters, s : dict
        The same dicts, updated in place.
    """
    entries = _check_entries(parameters, grads, ((s, "s"),))
    beta = _v.check_beta(beta, "beta")
    learning_rate = _v.check_lr(learning_rate, "learning_rate")
    epsilon = _v.check_eps(epsilon, "epsilon")
    for _, param, grad, (sq_avg,) in entries:
        ops.rmsprop(param, grad, sq_avg, None, None, learning_rate, beta, epsilon, 0.0, 0.0,
                     False, 1.0)
    return parameters, s

def initialize_adam(parameters):
    """Zero first and second moments for Adam, keyed ``dW1, db1, ...``.

    Returns
    -------
    v, s : dict
        Zeros of each parameter's shape and dtype (two separate sets of arrays).
    """
    return _zeros_like_entries(parameters), _zeros_like_entries(parameters)

def update_parameters_with_adam(ops, parameters, grads, v, s, t, learning_rate=0.01,
                                beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One Adam step on every parameter, in place (Kingma & Ba 2015).

    ``v = beta1*v + (1-beta1)*dW``, ``v_corrected = v / (1-beta1**t)``,
    ``s = beta2*s + (1-beta2)*(dW*dW)``, ``s_corrected = s / (1-beta2**t)``,
    ``W = W - (learning_rate*v_corrected) / (sqrt(s_corrected) + epsilon)``, in that order and
    with these parentheses (docs/contract.md §2; the course's ``np.power(dW, 2)`` is
    ``dW*dW``).

    Parameters
    ----------
    parameters : dict
        ``W1, b1, ..., WL, bL``, updated in place.
    grads : dict
        ``dW1, db1, ...``; other entries are ignored.
    v, s : dict
        First and second moments from :func:`initialize_adam`, updated in place.
    t : int
        Adam steps taken, counting this one (1 on the first call).
    learning_rate : float, default 0.01
        Finite and >= 0.
    beta1, beta2 : float, default 0.9, 0.999
        Each ``0 <= beta < 1``.
    epsilon : float, default 1e-8
        Finite and > 0, added outside the square root.

    Returns
    -------
    parameters, v, s : dict
        The same dicts, updated in place.
    v_corrected, s_corrected : dict
        New arrays: the bias-corrected moments, as the assignment returns them.
    """
    entries = _check_entries(parameters, grads, ((v, "v"), (s, "s")))
    t = _v.check_step(t, "t")
    learning_rate = _v.check_lr(learning_rate, "learning_rate")
    beta1 = _v.check_beta(beta1, "beta1")
    beta2 = _v.check_beta(beta2, "beta2")
    epsilon = _v.check_eps(epsilon, "epsilon")
    bias1, bias2 = bias_divisor(beta1, t), bias_divisor(beta2, t)
    v_corrected, s_corrected = {}, {}
    for gkey, param, grad, (m, v_) in entries:  # the course's v and s are Adam's m and v
        ops.adam(param, grad, m, v_, None, learning_rate, beta1, beta2, epsilon, bias1, bias2,
                 0.0, False, False, 1.0)
        # The corrected moments are the kernel's m_hat and v_hat; recomputing them with
        # NumPy gives the same bits (the same division, rounded once) without widening the
        # kernel's signature for a result only this function returns.
        v_corrected[gkey] = m / bias1
        s_corrected[gkey] = v_ / bias2
    return parameters, v, s, v_corrected, s_corrected


def random_mini_batches(ops, X, Y, mini_batch_size=64, seed=0):
    """Shuffle ``(X, Y)`` and split it into mini-batches, exactly as the assignment does.

    1. ``np.random.seed(seed)`` -- NumPy's **global** legacy generator is reseeded, as in the
       assignment (code that relies on that side effect keeps working);
    2. ``permutation = np.random.permutation(m)``;
    3. ``floor(m / mini_batch_size)`` full batches of the permuted columns, in order, then
       one batch with the remaining ``m % mini_batch_size`` columns if there are any.

    The batches hold the same values, bit for bit, as the assignment's for the same seed.
    They differ in form only: each is a C-contiguous ``(n_x, bk)`` block of one new buffer
    the size of X (keeping any batch keeps that buffer), where the assignment's are strided
    views of one shuffled copy of X.

    Parameters
    ----------
    X : ndarray
        ``(n_x, m)``: one example per column. Any dtype but object, any strides.
    Y : ndarray
        ``(1, m)`` labels of any dtype (bool, int, float), or 1-D ``(m,)``, taken as
        ``(1, m)``. A ``(c, m)`` array (one-hot labels) gives ``(c, bk)`` batches; the
        assignment's ``reshape((1, m))`` would reject it.
    mini_batch_size : int, default 64
        >= 1.
    seed : int, default 0
        Seed for ``np.random.seed``, in [0, 2**32).

    Returns
    -------
    list of (ndarray, ndarray)
        ``(mini_batch_X, mini_batch_Y)`` pairs.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt import lab
    >>> X = np.arange(10.0).reshape(2, 5); Y = np.array([[0, 1, 0, 1, 1]])
    >>> [(x.shape, y.tolist()) for x, y in lab.random_mini_batches(X, Y, 2, seed=0)]
    [((2, 2), [[0, 0]]), ((2, 2), [[1, 1]]), ((2, 1), [[1]])]
    """
    if Y is None:
        raise TypeError("Y must be a numpy.ndarray of labels, got None")
    m = _v.minibatch_data(X, Y, 1)
    mini_batch_size = _v.check_count(mini_batch_size, "mini_batch_size")
    seed = _v.check_legacy_seed(seed)
    np.random.seed(seed)  # the assignment's side effect on NumPy's global generator, kept
    permutation = np.random.permutation(m)
    x_blocks = column_batches(ops, X, permutation, mini_batch_size)
    y2 = Y[np.newaxis, :] if Y.ndim == 1 else Y
    y_blocks = column_batches(ops, y2, permutation, mini_batch_size)
    return list(zip(x_blocks, y_blocks))



