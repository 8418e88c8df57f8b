"""The assignment's own functions, as the course gives them (rebinding new arrays each step).

The oracle for ``fastopt.lab`` and ``fastopt.reference.lab``: written the textbook way, with the
assignment's float64 ``np.zeros`` state, so it is only compared on float64 parameters.

A copy kept on purpose. The package has these functions too (``fastopt._lab``, the assignment's
``model`` in ``fastopt._experiment``, the course's ``random_mini_batches`` in
``fastopt._apps.course``), and the tests hold them up to this file: an oracle that imported the
code under test would check nothing. ``fastopt._apps.course.random_mini_batches`` is held to
this one in tests/apps/test_train.py; benchmarks/test_minibatch_epoch.py times that one.
"""

import numpy as np

def update_parameters_with_gd(parameters, grads, learning_rate):
    L = len(parameters) // 2
    for l in range(1, L + 1):
        parameters["W" + str(l)] = parameters["W" + str(l)] - learning_rate * grads["dW" + str(l)]
        parameters["b" + str(l)] = parameters["b" + str(l)] - learning_rate * grads["db" + str(l)]
    return parameters


def initialize_velocity(parameters):
    L = len(parameters) // 2
    v = {}
    for l in range(1, L + 1):
        v["dW" + str(l)] = np.zeros(parameters["W" + str(l)].shape)
        v["db" + str(l)] = np.zeros(parameters["b" + str(l)].shape)
    return v


def update_parameters_with_momentum(parameters, grads, v, beta, learning_rate):
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for p, d in (("W", "dW"), ("b", "db")):
            v[d + str(l)] = beta * v[d + str(l)] + (1 - beta) * grads[d + str(l)]
            parameters[p + str(l)] = parameters[p + str(l)] - learning_rate * v[d + str(l)]
    return parameters, v


def initialize_adam(parameters):
    return initialize_velocity(parameters), initialize_velocity(parameters)


def update_parameters_with_adam(parameters, grads, v, s, t, learning_rate=0.01, beta1=0.9,
                                beta2=0.999, epsilon=1e-8):
    L = len(parameters) // 2
    v_corrected, s_corrected = {}, {}
    for l in range(1, L + 1):
        for p, d in (("W", "dW"), ("b", "db")):
            k = d + str(l)
            v[k] = beta1 * v[k] + (1 - beta1) * grads[k]
            v_corrected[k] = v[k] / (1 - beta1 ** t)
            s[k] = beta2 * s[k] + (1 - beta2) * np.power(grads[k], 2)
            s_corrected[k] = s[k] / (1 - beta2 ** t)
            parameters[p + str(l)] = parameters[p + str(l)] - learning_rate * v_corrected[k] / (
                np.sqrt(s_corrected[k]) + epsilon)
    return parameters, v, s, v_corrected, s_corrected


def update_parameters_with_rmsprop(parameters, grads, s, beta, learning_rate, epsilon=1e-8):
    """Not in the assignment: RMSProp in the same style, from docs/contract.md §2."""
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for p, d in (("W", "dW"), ("b", "db")):
            k = d + str(l)
            s[k] = beta * s[k] + (1 - beta) * grads[k] ** 2
            parameters[p + str(l)] = parameters[p + str(l)] - learning_rate * grads[k] / (
                np.sqrt(s[k]) + epsilon)
    return parameters, s




def random_mini_batches(X, Y, mini_batch_size=64, seed=0):
    """The assignment's function, verbatim (the oracle of every other copy; module docstring)."""
    import math
    np.random.seed(seed)
    m = X.shape[1]
    mini_batches = []
    permutation = list(np.random.permutation(m))
    shuffled_X = X[:, permutation]
    shuffled_Y = Y[:, permutation].reshape((1, m))
    inc = mini_batch_size
    num_complete_minibatches = math.floor(m / mini_batch_size)
    for k in range(0, num_complete_minibatches):
        mini_batch_X = shuffled_X[:, k * inc:(k + 1) * inc]
        mini_batch_Y = shuffled_Y[:, k * inc:(k + 1) * inc]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    if m % mini_batch_size != 0:
        mini_batch_X = shuffled_X[:, num_complete_minibatches * inc:]
        mini_batch_Y = shuffled_Y[:, num_complete_minibatches * inc:]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    return mini_batches


def update_lr(learning_rate0, epoch_num, decay_rate):
    return learning_rate0 / (1 + decay_rate * epoch_num)


def schedule_lr_decay(learning_rate0, epoch_num, decay_rate, time_interval=1000):
    return learning_rate0 / (1 + decay_rate * np.floor(epoch_num / time_interval))


def model(X, Y, layers_dims, optimizer, learning_rate=0.0007, mini_batch_size=64, beta=0.9,
          beta1=0.9, beta2=0.999, epsilon=1e-8, num_epochs=5000, print_cost=True, decay=None,
          decay_rate=1, *, net):
    """The assignment's training loop (docs/contract.md §6) over the assignment's updates and
    batches; ``net`` supplies initialize_parameters/forward/backward/compute_cost."""
    costs = []
    t = 0
    seed = 10
    m = X.shape[1]
    learning_rate0 = learning_rate
    parameters = net.initialize_parameters(layers_dims)
    if optimizer == "momentum":
        v = initialize_velocity(parameters)
    elif optimizer == "adam":
        v, s = initialize_adam(parameters)
    elif optimizer == "rmsprop":
        s = initialize_velocity(parameters)
    for i in range(num_epochs):
        seed = seed + 1
        minibatches = random_mini_batches(X, Y, mini_batch_size, seed)
        cost_total = 0
        for minibatch_X, minibatch_Y in minibatches:
            # The assignment's batch is a strided view of the shuffled copy; fastopt.lab's is a
            # C-contiguous block with the same values. BLAS may round a product of the two
            # layouts differently (docs/contract.md §1), so the oracle hands BLAS the layout
            # the code under test hands it; the values, and so the comparison, are unchanged.
            minibatch_X = np.ascontiguousarray(minibatch_X)
            a3, caches = net.forward_propagation(minibatch_X, parameters)
            cost_total += net.compute_cost(a3, minibatch_Y)
            grads = net.backward_propagation(minibatch_X, minibatch_Y, caches)
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
    return parameters, costs
