"""The assignment's experiment (docs/contract.md §6): data, network, cost, ``model``, ``predict``.

Plain NumPy, the same for both implementations; only ``model``'s optimizer steps and mini-batches
go through an implementation's ``ops`` (the first argument of :func:`model`, bound by
``fastopt._backend.bind``), via the dictionary functions of ``fastopt._lab``.
"""
import numpy as np

from . import _lab
from . import _validation as _v

OPTIMIZERS = ("gd", "momentum", "adam", "rmsprop")


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
    """Print the accuracy of the network on ``(X, y)`` and return its predictions, as the
    assignment's ``predict`` does (``predictions = predict(train_X, train_Y, parameters)``).

    Predictions are ``a3 > 0.5`` as 0/1 integers; the printed accuracy is the mean of
    ``predictions == y``: ``Accuracy: 0.94``. For the accuracy as a number, compute
    ``np.mean(predictions == y)``.

    Parameters
    ----------
    X : ndarray, shape (n_x, m)
    y : ndarray, shape (1, m)
        The labels, 0 or 1.
    parameters : dict
        ``W1, b1, ..., W3, b3``.

    Returns
    -------
    predictions : ndarray of int, shape (1, m)

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt import lab
    >>> X, Y = lab.load_dataset()
    >>> p = lab.predict(X, Y, lab.initialize_parameters([2, 5, 2, 1]))  # doctest: +ELLIPSIS
    Accuracy: 0...
    >>> p.shape, p.dtype == int
    ((1, 300), True)
    """
    # The assignment fills np.zeros((1, m), dtype=np.int) element by element; np.int was the
    # builtin int, NumPy's default integer, which astype(int) gives here in one operation.
    predictions = predict_dec(parameters, X).astype(int)
    print("Accuracy: " + str(np.mean(predictions[0, :] == y[0, :])))
    return predictions


def model(ops, X, Y, layers_dims, optimizer, learning_rate=0.0007, mini_batch_size=64,
          beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8, num_epochs=5000, print_cost=True,
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
        ``[n_x, n_1, n_2, 1]``: three layers, ``n_x`` the rows of ``X`` (checked before
        anything is built; ``forward_propagation`` uses ``W1`` to ``W3``).
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
    layers_dims = _v.check_layers_dims(layers_dims, X)
    costs = []
    t = 0
    seed = 10
    m = X.shape[1]
    learning_rate0 = learning_rate
    parameters = initialize_parameters(layers_dims)
    if optimizer == "momentum":
        v = _lab.initialize_velocity(parameters)
    elif optimizer == "adam":
        v, s = _lab.initialize_adam(parameters)
    elif optimizer == "rmsprop":
        s = _lab.initialize_rmsprop(parameters)
    for i in range(num_epochs):
        seed = seed + 1
        minibatches = _lab.random_mini_batches(ops, X, Y, mini_batch_size, seed)
        cost_total = 0
        for minibatch_X, minibatch_Y in minibatches:
            a3, caches = forward_propagation(minibatch_X, parameters)
            cost_total += compute_cost(a3, minibatch_Y)
            grads = backward_propagation(minibatch_X, minibatch_Y, caches)
            if optimizer == "gd":
                parameters = _lab.update_parameters_with_gd(ops, parameters, grads,
                                                            learning_rate)
            elif optimizer == "momentum":
                parameters, v = _lab.update_parameters_with_momentum(
                    ops, parameters, grads, v, beta, learning_rate)
            elif optimizer == "adam":
                t = t + 1
                parameters, v, s, _, _ = _lab.update_parameters_with_adam(
                    ops, parameters, grads, v, s, t, learning_rate, beta1, beta2, epsilon)
            else:
                parameters, s = _lab.update_parameters_with_rmsprop(
                    ops, parameters, grads, s, beta, learning_rate, epsilon)
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

