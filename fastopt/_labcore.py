"""The assignment's dictionary-level functions, written once for both implementations.

``make_lab(ops, module)`` returns the functions of ``fastopt.lab`` when ``ops`` is
``fastopt._ops`` (Cython kernels) and those of ``fastopt.reference.lab`` when it is
``fastopt.reference._ops`` (plain NumPy). Everything but the arithmetic — key handling, validation,
return values — is this one code, so the two cannot drift apart.

Semantics shared by both (and documented in each function):

* Parameters are keyed ``W1, b1, ..., WL, bL``; gradients and optimizer state ``dW1, db1, ...``.
  ``grads`` may hold other entries (the assignment's backward pass returns ``dz1``, ``da1``, ...).
* Every entry is validated before any array is written: a bad ``grads['db3']`` leaves
  ``parameters['W1']`` untouched.
* Arrays are updated **in place** and the same dicts are returned. The assignment instead rebinds
  each entry to a new array; the values are identical, but here an array you hold a reference to
  changes too.
"""
import math

import numpy as np

from . import _validation as _v
from ._minibatch import column_batches


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


def update_lr(learning_rate0, epoch_num, decay_rate):
    """Learning rate decayed every epoch: ``learning_rate0 / (1 + decay_rate * epoch_num)``.

    Always computed from the initial rate, never compounded. Equal, bit for bit, to
    ``fastopt.schedules.InverseTimeDecay(learning_rate0, decay_rate)(epoch_num)``.

    Parameters
    ----------
    learning_rate0 : float
        Initial learning rate, finite and >= 0.
    epoch_num : int or float
        Epoch (or any step count), finite and >= 0.
    decay_rate : float
        Finite and >= 0.

    Returns
    -------
    float

    Examples
    --------
    >>> from fastopt.lab import update_lr
    >>> update_lr(0.5, 2, 1)
    0.16666666666666666
    """
    learning_rate0 = _v.check_lr(learning_rate0, "learning_rate0")
    epoch_num = _v.check_nonnegative(epoch_num, "epoch_num")
    decay_rate = _v.check_nonnegative(decay_rate, "decay_rate")
    return learning_rate0 / (1 + decay_rate * epoch_num)


def schedule_lr_decay(learning_rate0, epoch_num, decay_rate, time_interval=1000):
    """Learning rate decayed at fixed intervals ("staircase"):
    ``learning_rate0 / (1 + decay_rate * floor(epoch_num / time_interval))``.

    Always computed from the initial rate, never compounded. Returns a Python float (the
    assignment's ``np.floor`` returns a NumPy float64 of the same value). Equal, bit for bit, to
    ``InverseTimeDecay(learning_rate0, decay_rate, time_interval, staircase=True)(epoch_num)``.

    Parameters
    ----------
    learning_rate0 : float
        Initial learning rate, finite and >= 0.
    epoch_num : int or float
        Epoch, finite and >= 0.
    decay_rate : float
        Finite and >= 0.
    time_interval : int or float, default 1000
        Epochs between drops; finite and > 0.

    Returns
    -------
    float

    Examples
    --------
    >>> from fastopt.lab import schedule_lr_decay
    >>> schedule_lr_decay(0.5, 100, 1, time_interval=10)
    0.045454545454545456
    """
    learning_rate0 = _v.check_lr(learning_rate0, "learning_rate0")
    epoch_num = _v.check_nonnegative(epoch_num, "epoch_num")
    decay_rate = _v.check_nonnegative(decay_rate, "decay_rate")
    time_interval = _v.check_positive(time_interval, "time_interval")
    return learning_rate0 / (1 + decay_rate * math.floor(epoch_num / time_interval))


# --- the assignment's experiment (../shared/SPEC.md section 6): plain NumPy, shared ------------

def load_dataset():
    """The assignment's training set: 300 points of "two moons" with noise 0.2.

    Built exactly as ``sklearn.datasets.make_moons(n_samples=300, noise=0.2)`` after
    ``np.random.seed(3)`` (no scikit-learn needed). Like the assignment, it reseeds NumPy's
    **global** generator and draws from it.

    Returns
    -------
    train_X : ndarray of float64, shape (2, 300)
        One example per column.
    train_Y : ndarray of int, shape (1, 300)
        Labels 0 (outer moon) and 1 (inner moon), 150 of each.

    Examples
    --------
    >>> from fastopt.lab import load_dataset
    >>> X, Y = load_dataset()
    >>> X.shape, Y.shape, int(Y.sum())
    ((2, 300), (1, 300), 150)
    """
    np.random.seed(3)
    n_out = n_in = 150
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)),
                   np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    idx = np.arange(n_out + n_in)
    np.random.shuffle(idx)  # scikit-learn's shuffle: indices, then reorder
    X, y = X[idx], y[idx]
    X += np.random.normal(scale=0.2, size=X.shape)
    return X.T, y.reshape((1, y.shape[0]))


def initialize_parameters(layers_dims):
    """He initialisation, as the assignment: ``np.random.seed(3)``, then for each layer
    ``W_l = randn(n_l, n_{l-1}) * sqrt(2 / n_{l-1})`` and ``b_l = zeros((n_l, 1))``.

    Parameters
    ----------
    layers_dims : sequence of int
        Sizes of the layers, input first, e.g. ``[2, 5, 2, 1]``.

    Returns
    -------
    parameters : dict
        ``W1, b1, ..., WL, bL`` as float64 arrays.
    """
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = (np.random.randn(layers_dims[l], layers_dims[l - 1])
                                    * np.sqrt(2 / layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def _relu(x):
    return np.maximum(0, x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward_propagation(X, parameters):
    """LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID (the assignment's 3-layer net).

    Returns
    -------
    a3 : ndarray, shape (1, m)
        Output probabilities.
    cache : tuple
        ``(z1, a1, W1, b1, z2, a2, W2, b2, z3, a3, W3, b3)`` for the backward pass.
    """
    W1, b1 = parameters["W1"], parameters["b1"]
    W2, b2 = parameters["W2"], parameters["b2"]
    W3, b3 = parameters["W3"], parameters["b3"]
    z1 = np.dot(W1, X) + b1
    a1 = _relu(z1)
    z2 = np.dot(W2, a1) + b2
    a2 = _relu(z2)
    z3 = np.dot(W3, a2) + b3
    a3 = _sigmoid(z3)
    return a3, (z1, a1, W1, b1, z2, a2, W2, b2, z3, a3, W3, b3)


def backward_propagation(X, Y, cache):
    """Gradients of the mean cross-entropy of a batch, as the assignment computes them.

    ``dz3 = (1/m) * (a3 - Y)``, ``dW = dz @ a_prev.T``, ``db = dz.sum(axis=1, keepdims=True)``,
    ReLU derivative ``(a > 0)`` as integers.

    Returns
    -------
    gradients : dict
        ``dz3, dW3, db3, da2, dz2, dW2, db2, da1, dz1, dW1, db1``.
    """
    m = X.shape[1]
    (z1, a1, W1, b1, z2, a2, W2, b2, z3, a3, W3, b3) = cache
    dz3 = 1. / m * (a3 - Y)
    dW3 = np.dot(dz3, a2.T)
    db3 = np.sum(dz3, axis=1, keepdims=True)
    da2 = np.dot(W3.T, dz3)
    dz2 = np.multiply(da2, np.int64(a2 > 0))
    dW2 = np.dot(dz2, a1.T)
    db2 = np.sum(dz2, axis=1, keepdims=True)
    da1 = np.dot(W2.T, dz2)
    dz1 = np.multiply(da1, np.int64(a1 > 0))
    dW1 = np.dot(dz1, X.T)
    db1 = np.sum(dz1, axis=1, keepdims=True)
    return {"dz3": dz3, "dW3": dW3, "db3": db3, "da2": da2, "dz2": dz2, "dW2": dW2,
            "db2": db2, "da1": da1, "dz1": dz1, "dW1": dW1, "db1": db1}


def compute_cost(a3, Y):
    """Cross-entropy **summed** over the batch: ``sum(-(y log a3 + (1-y) log(1-a3)))``.

    The model divides the epoch's total by m, as the assignment does.
    """
    logprobs = np.multiply(-np.log(a3), Y) + np.multiply(-np.log(1 - a3), 1 - Y)
    return np.sum(logprobs)


def predict_dec(parameters, X):
    """Predicted labels (``a3 > 0.5``, boolean, shape (1, m)); the assignment's helper for
    plotting decision boundaries."""
    a3, _ = forward_propagation(X, parameters)
    return a3 > 0.5


def predict(X, y, parameters):
    """Print and return the accuracy of the network on ``(X, y)``.

    Predictions are ``a3 > 0.5``; the accuracy is the mean of ``prediction == y``. The
    assignment's ``predict`` returns the predictions instead (get them from
    :func:`predict_dec`).

    Returns
    -------
    float
    """
    p = predict_dec(parameters, X).astype(int)
    accuracy = float(np.mean(p[0, :] == y[0, :]))
    print("Accuracy: " + str(accuracy))
    return accuracy


OPTIMIZERS = ("gd", "momentum", "adam", "rmsprop")


def _random_mini_batches(ops, X, Y, mini_batch_size, seed):
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


def make_lab(ops, module):
    """Build the dictionary-level functions over one implementation's unchecked ``ops``.

    Parameters
    ----------
    ops : module
        ``fastopt._ops`` or ``fastopt.reference._ops``: ``sgd``, ``momentum``, ``rmsprop``,
        ``adam`` with identical signatures.
    module : str
        The name of the module the functions are published in (for ``help`` and pickling).

    Returns
    -------
    dict
        Function name to function.
    """

    def update_parameters_with_gd(parameters, grads, learning_rate):
        """One step of gradient descent on every parameter, in place.

        ``W_l = W_l - learning_rate * dW_l`` and ``b_l = b_l - learning_rate * db_l``.

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
            ops.sgd(param, grad, learning_rate)
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

    def update_parameters_with_momentum(parameters, grads, v, beta, learning_rate):
        """One momentum step on every parameter, in place.

        ``v = beta*v + (1-beta)*dW; W = W - learning_rate*v`` for each ``W_l`` and ``b_l``.

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
            ops.momentum(param, grad, velocity, learning_rate, beta)
        return parameters, v

    def initialize_rmsprop(parameters):
        """Zero squared-gradient averages for RMSProp, keyed ``dW1, db1, ...`` (our addition).

        Returns
        -------
        s : dict
            Zeros of each parameter's shape and dtype.
        """
        return _zeros_like_entries(parameters)

    def update_parameters_with_rmsprop(parameters, grads, s, beta, learning_rate, epsilon=1e-8):
        """One RMSProp step on every parameter, in place (our addition to the assignment).

        ``s = beta*s + (1-beta)*dW**2; W = W - learning_rate*dW / (sqrt(s) + epsilon)``.

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
            ops.rmsprop(param, grad, sq_avg, learning_rate, beta, epsilon)
        return parameters, s

    def initialize_adam(parameters):
        """Zero first and second moments for Adam, keyed ``dW1, db1, ...``.

        Returns
        -------
        v, s : dict
            Zeros of each parameter's shape and dtype (two separate sets of arrays).
        """
        return _zeros_like_entries(parameters), _zeros_like_entries(parameters)

    def update_parameters_with_adam(parameters, grads, v, s, t, learning_rate=0.01,
                                    beta1=0.9, beta2=0.999, epsilon=1e-8):
        """One Adam step on every parameter, in place (Kingma & Ba 2015).

        ``v = beta1*v + (1-beta1)*dW``, ``v_corrected = v / (1-beta1**t)``,
        ``s = beta2*s + (1-beta2)*dW**2``, ``s_corrected = s / (1-beta2**t)``,
        ``W = W - learning_rate*v_corrected / (sqrt(s_corrected) + epsilon)``.

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
        bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
        v_corrected, s_corrected = {}, {}
        for gkey, param, grad, (m, sq) in entries:
            ops.adam(param, grad, m, sq, learning_rate, beta1, beta2, epsilon, bias1, bias2)
            # The corrected moments are the kernel's m_hat and v_hat; recomputing them with
            # NumPy gives the same bits (the same division, rounded once) without widening the
            # kernel's signature for a result only this function returns.
            v_corrected[gkey] = m / bias1
            s_corrected[gkey] = sq / bias2
        return parameters, v, s, v_corrected, s_corrected

    def random_mini_batches(X, Y, mini_batch_size=64, seed=0):
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
        return _random_mini_batches(ops, X, Y, mini_batch_size, seed)

    def model(X, Y, layers_dims, optimizer, learning_rate=0.0007, mini_batch_size=64, beta=0.9,
              beta1=0.9, beta2=0.999, epsilon=1e-8, num_epochs=5000, print_cost=True,
              decay=None, decay_rate=1, *, return_costs=False, on_epoch=None):
        """Train the assignment's 3-layer network with mini-batches, as the assignment does.

        ``seed = 10`` and ``t = 0``; each epoch ``i`` first sets ``seed += 1`` and draws
        ``random_mini_batches(X, Y, mini_batch_size, seed)``; each batch runs forward, adds its
        summed cost, runs backward and updates the parameters (for Adam ``t += 1`` before each
        update). After the epoch: ``cost_avg = cost_total / m``; with ``decay``,
        ``learning_rate = decay(learning_rate0, i, decay_rate)``; every 1000 epochs, if
        ``print_cost``, it prints ``Cost after epoch %i: %f`` (and, with decay,
        ``learning rate after epoch %i: %f``); every 100 epochs it records the cost.

        Parameters
        ----------
        X : ndarray, shape (n_x, m)
        Y : ndarray, shape (1, m)
        layers_dims : sequence of int
            ``[n_x, n_1, n_2, 1]``: three layers.
        optimizer : {"gd", "momentum", "adam", "rmsprop"}
            ``"rmsprop"`` (our addition) uses ``beta`` and ``epsilon``.
        learning_rate, mini_batch_size, beta, beta1, beta2, epsilon, num_epochs, print_cost
            As in the assignment.
        decay : callable, optional
            ``decay(learning_rate0, epoch, decay_rate)``, e.g. :func:`update_lr` or
            :func:`schedule_lr_decay`.
        decay_rate : float, default 1
        return_costs : bool, default False, keyword only
            Also return the costs recorded every 100 epochs (the assignment plots them).
        on_epoch : callable, optional, keyword only
            ``on_epoch(epoch, cost_avg, learning_rate)`` after every epoch (progress display).

        Returns
        -------
        parameters : dict
            The trained parameters; ``(parameters, costs)`` with ``return_costs=True``.
        """
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, "
                             f"got {optimizer!r}")
        if decay is not None and not callable(decay):
            raise TypeError(f"decay must be None or a function (learning_rate0, epoch_num, "
                            f"decay_rate) -> float, got {type(decay).__name__}")
        num_epochs = _v.check_count(num_epochs, "num_epochs", 0)
        costs = []
        t = 0
        seed = 10
        m = X.shape[1]
        learning_rate0 = learning_rate
        parameters = initialize_parameters(layers_dims)
        if optimizer == "momentum":
            v = initialize_velocity(parameters)
        elif optimizer == "adam":
            v, s = initialize_adam(parameters)
        elif optimizer == "rmsprop":
            s = initialize_rmsprop(parameters)
        for i in range(num_epochs):
            seed = seed + 1
            minibatches = random_mini_batches(X, Y, mini_batch_size, seed)
            cost_total = 0
            for minibatch_X, minibatch_Y in minibatches:
                a3, caches = forward_propagation(minibatch_X, parameters)
                cost_total += compute_cost(a3, minibatch_Y)
                grads = backward_propagation(minibatch_X, minibatch_Y, caches)
                if optimizer == "gd":
                    parameters = update_parameters_with_gd(parameters, grads, learning_rate)
                elif optimizer == "momentum":
                    parameters, v = update_parameters_with_momentum(parameters, grads, v, beta,
                                                                    learning_rate)
                elif optimizer == "adam":
                    t = t + 1
                    parameters, v, s, _, _ = update_parameters_with_adam(
                        parameters, grads, v, s, t, learning_rate, beta1, beta2, epsilon)
                else:
                    parameters, s = update_parameters_with_rmsprop(parameters, grads, s, beta,
                                                                   learning_rate, epsilon)
            cost_avg = cost_total / m
            if decay:
                learning_rate = decay(learning_rate0, i, decay_rate)
            if print_cost and i % 1000 == 0:
                print("Cost after epoch %i: %f" % (i, cost_avg))
                if decay:
                    print("learning rate after epoch %i: %f" % (i, learning_rate))
            if i % 100 == 0:
                costs.append(cost_avg)
            if on_epoch is not None:
                on_epoch(i, cost_avg, learning_rate)
        return (parameters, costs) if return_costs else parameters

    functions = {
        f.__name__: f for f in (update_lr, schedule_lr_decay, random_mini_batches, model,
                                load_dataset, initialize_parameters, forward_propagation,
                                backward_propagation, compute_cost, predict, predict_dec,
            update_parameters_with_gd, initialize_velocity, update_parameters_with_momentum,
            initialize_rmsprop, update_parameters_with_rmsprop, initialize_adam,
            update_parameters_with_adam)
    }
    for name, f in functions.items():
        if f.__module__ == __name__ and f.__qualname__.startswith("make_lab."):
            f.__module__ = module
            f.__qualname__ = name
    return functions
