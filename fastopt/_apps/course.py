"""The course-style training loop that ``python -m fastopt train --compare`` measures fastopt
against: the Deep Learning Specialization's code, generalised from its 3-layer network to L
layers and a softmax output, run in float32.

What makes it the course's: a new array for every operation (``parameters["W1"] =
parameters["W1"] - learning_rate * v_corrected / (np.sqrt(s_corrected) + epsilon)`` allocates
five temporaries the size of W1), dictionaries of per-layer arrays, and ``random_mini_batches``,
which copies X in a shuffled order by fancy indexing and slices the copy.

One change, so that both loops see the same batches: the course reseeds NumPy's global
generator every epoch (``np.random.seed(seed)``, ``seed += 1``); here ``random_mini_batches``
takes a ``numpy.random.Generator`` and draws ``rng.permutation(m)`` from it, which is exactly
what :class:`fastopt.MiniBatches` does with a generator seeded alike. Epoch k of both loops uses
the k-th permutation of one seed, so the batches hold the same examples in the same order.

Bit-identical to fastopt by construction of the arithmetic, not by accident: every
hyperparameter is a Python float that NumPy 2 rounds once to float32 (NEP 50), ``1 - beta1**t``
is Python's ``float.__pow__``, and each update has the expression order of the kernels
(docs/contract.md §1 and §2). The forward and backward passes are :mod:`fastopt._apps.mlp`'s
arithmetic in the same order, written the course's way (a new array per operation); they give
the same bits only on operands laid out alike, since BLAS may round a product of a strided view
differently (docs/contract.md §1), so the training loop that compares them
(:class:`fastopt._apps.train.CourseLoop`) copies each of this module's strided batches C-contiguous.
"""
import math

import numpy as np

from .. import _optim


def random_mini_batches(X, Y, mini_batch_size, rng):
    """The course's ``random_mini_batches``, drawing its permutation from ``rng``.

    Parameters
    ----------
    X : ndarray, shape (n_x, m)
    Y : ndarray, shape (n_y, m)
        One-hot labels (the course's ``Y`` for softmax).
    mini_batch_size : int
    rng : numpy.random.Generator
        Anything with ``permutation(m)``: ``np.random`` after ``np.random.seed(seed)`` gives
        the assignment's function exactly (tests/apps/test_train.py holds the two equal).

    Returns
    -------
    list of (ndarray, ndarray)
        Views of one shuffled copy of X and Y (the course's strided slices).
    """
    m = X.shape[1]
    mini_batches = []
    permutation = list(rng.permutation(m))
    shuffled_X = X[:, permutation]
    shuffled_Y = Y[:, permutation].reshape((Y.shape[0], m))
    num_complete_minibatches = math.floor(m / mini_batch_size)
    for k in range(0, num_complete_minibatches):
        mini_batch_X = shuffled_X[:, k * mini_batch_size:(k + 1) * mini_batch_size]
        mini_batch_Y = shuffled_Y[:, k * mini_batch_size:(k + 1) * mini_batch_size]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    if m % mini_batch_size != 0:
        mini_batch_X = shuffled_X[:, num_complete_minibatches * mini_batch_size:]
        mini_batch_Y = shuffled_Y[:, num_complete_minibatches * mini_batch_size:]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    return mini_batches


def one_hot(y, n_classes):
    """``(n_classes, m)`` float32 one-hot labels, the course's ``Y`` for a softmax output."""
    Y = np.zeros((n_classes, y.shape[0]), np.float32)
    Y[y, np.arange(y.shape[0])] = 1
    return Y


def forward_propagation(X, parameters):
    """LINEAR -> RELU, L-1 times, then LINEAR -> SOFTMAX; returns ``AL`` and the caches."""
    L = len(parameters) // 2
    caches = []
    A = X
    for l in range(1, L):
        A_prev = A
        Z = np.dot(parameters["W" + str(l)], A_prev) + parameters["b" + str(l)]
        A = np.maximum(0, Z)
        caches.append((A_prev, parameters["W" + str(l)]))
    ZL = np.dot(parameters["W" + str(L)], A) + parameters["b" + str(L)]
    caches.append((A, parameters["W" + str(L)]))
    expZ = np.exp(ZL - np.max(ZL, axis=0, keepdims=True))
    AL = expZ / np.sum(expZ, axis=0, keepdims=True)
    return AL, caches


def compute_cost(AL, Y):
    """Cross-entropy **summed** over the batch (the loop divides the epoch's total by m)."""
    return float(-np.sum(np.log(np.sum(AL * Y, axis=0))))


def backward_propagation(AL, Y, caches):
    """Gradients ``dW1, db1, ...`` of the batch's mean cross-entropy (the assignment's form:
    ``dZ_L = 1/m * (AL - Y)``, ``dW = dZ . A_prev^T``, ReLU derivative ``(A > 0)``)."""
    grads = {}
    L = len(caches)
    m = AL.shape[1]
    dZ = 1. / m * (AL - Y)
    for l in reversed(range(1, L + 1)):
        A_prev, W = caches[l - 1]
        grads["dW" + str(l)] = np.dot(dZ, A_prev.T)
        grads["db" + str(l)] = np.sum(dZ, axis=1, keepdims=True)
        if l > 1:
            dA_prev = np.dot(W.T, dZ)
            dZ = dA_prev * (A_prev > 0)
    return grads


# -- the course's updates (docs/contract.md §2 in the course's words) -----------------------
# ``np.power(g, 2)`` is the assignment's spelling of g**2. In float32 it gives the bits of
# ``g * g`` (checked on every mantissa at 34 exponents, subnormal and overflowing results
# included: 0 mismatches), at about 3.7 times the time (a powf call per element: 1.65 ms
# against 0.44 ms on 200,704 values).

def update_parameters_with_gd(parameters, grads, state, t, learning_rate):
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for p in ("W", "b"):
            parameters[p + str(l)] = parameters[p + str(l)] - learning_rate * grads["d" + p + str(l)]


def update_parameters_with_momentum(parameters, grads, v, t, learning_rate, beta):
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for p in ("W", "b"):
            d = "d" + p + str(l)
            v[d] = beta * v[d] + (1 - beta) * grads[d]
            parameters[p + str(l)] = parameters[p + str(l)] - learning_rate * v[d]


def update_parameters_with_rmsprop(parameters, grads, s, t, learning_rate, beta, epsilon):
    L = len(parameters) // 2
    for l in range(1, L + 1):
        for p in ("W", "b"):
            d = "d" + p + str(l)
            s[d] = beta * s[d] + (1 - beta) * np.power(grads[d], 2)
            parameters[p + str(l)] = (parameters[p + str(l)]
                                      - learning_rate * grads[d] / (np.sqrt(s[d]) + epsilon))


def update_parameters_with_adam(parameters, grads, state, t, learning_rate, beta1, beta2,
                                epsilon):
    v, s = state
    L = len(parameters) // 2
    v_corrected, s_corrected = {}, {}
    for l in range(1, L + 1):
        for p in ("W", "b"):
            d = "d" + p + str(l)
            v[d] = beta1 * v[d] + (1 - beta1) * grads[d]
            v_corrected[d] = v[d] / (1 - beta1 ** t)
            s[d] = beta2 * s[d] + (1 - beta2) * np.power(grads[d], 2)
            s_corrected[d] = s[d] / (1 - beta2 ** t)
            parameters[p + str(l)] = (parameters[p + str(l)] - learning_rate * v_corrected[d]
                                      / (np.sqrt(s_corrected[d]) + epsilon))


def _zeros(parameters):
    return {"d" + k: np.zeros_like(a) for k, a in parameters.items()}


# fastopt class -> (state maker, course update, hyperparameter names in the update's order).
COURSE_FORMS = {
    _optim.SGD: (lambda params: None, update_parameters_with_gd, ()),
    _optim.Momentum: (_zeros, update_parameters_with_momentum, ("beta",)),
    _optim.RMSProp: (_zeros, update_parameters_with_rmsprop, ("beta", "eps")),
    _optim.Adam: (lambda params: (_zeros(params), _zeros(params)), update_parameters_with_adam,
                  ("beta1", "beta2", "eps")),
}


class CourseUpdater:
    """One optimizer step in the course's form, with the hyperparameters of a fastopt optimizer.

    For a class without a course form (one added to fastopt beyond the course's four), the
    step is the ``fastopt.reference`` class of the same name over the dictionary of separate
    arrays: NumPy's arithmetic with its temporaries, one call per array.

    Parameters
    ----------
    cls : type
        The fastopt optimizer class.
    hyperparameters : dict
        ``opt.hyperparameters`` of the fastopt optimizer (``lr`` a float).
    parameters : dict
        The course loop's parameters ``W1, b1, ...`` (rebound by the course's updates).
    """

    def __init__(self, cls, hyperparameters, parameters):
        from . import registry as _registry
        self.hyper = dict(hyperparameters)
        self.t = 0
        form = next((f for c, f in COURSE_FORMS.items() if cls is c), None)
        if form is not None:
            make_state, self._update, names = form
            self.state = make_state(parameters)
            self._args = [self.hyper[n] for n in names]
            self.reference = None
            self.description = f"the course's {self._update.__name__}"
        else:
            ref = _registry.reference_twin(cls)
            if ref is None:
                raise ValueError(f"{cls.__name__} has neither a course form nor a "
                                 f"fastopt.reference twin to compare with")
            self.reference = ref(parameters, lr=self.hyper["lr"])  # and the class defaults
            self.description = (f"fastopt.reference.{cls.__name__} (no course form: NumPy "
                                f"arithmetic over separate arrays)")

    def step(self, parameters, grads):
        """Update ``parameters`` (a dict, rebound entry by entry) with ``grads`` (``dW1``...)."""
        self.t += 1
        if self.reference is not None:
            self.reference.step({k: grads["d" + k] for k in parameters})
        else:
            self._update(parameters, grads, self.state, self.t, self.hyper["lr"], *self._args)
