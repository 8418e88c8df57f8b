"""The multilayer perceptron of ``python -m fastopt train``, forward and backward in NumPy with
no allocation per batch.

Network: ``Z_l = W_l @ A_{l-1} + b_l``, ReLU on the hidden layers, softmax cross-entropy on the
last; one example per column (the course's layout), float32 (float64 with float64 parameters
and data: ``train --dtype float64``). The gradients are written straight
into a packed buffer (:func:`fastopt.pack_like`), so that an optimizer step is one kernel call.

The arithmetic, in this order, is the one :mod:`fastopt._apps.course` writes the course's way, with a
fresh array per operation; both give the same bits on identically laid-out operands (the same
NumPy and BLAS calls; a strided batch may round differently, docs/contract.md §1), and
``tests/apps/test_train.py`` holds them to it:

* forward: ``Z = np.dot(W, A) + b``; hidden ``A = np.maximum(0, Z)``; output
  ``E = np.exp(Z - np.max(Z, axis=0, keepdims=True))``, ``P = E / np.sum(E, axis=0,
  keepdims=True)``;
* loss of a batch: ``-np.sum(np.log(p))`` over each example's probability of its label;
* backward (the assignment's form, docs/contract.md §6): ``dZ_L = (1/m) * (P - Y)``,
  ``dW = np.dot(dZ, A_prev.T)``, ``db = np.sum(dZ, axis=1, keepdims=True)``,
  ``dZ_prev = np.dot(W.T, dZ) * (A_prev > 0)``.

``out=`` arguments do not change a ufunc's or a reduction's arithmetic, only where the result
goes; ``np.dot`` is used on both sides (``np.matmul`` picks BLAS routines by other rules).
"""
import numpy as np

from .._packing import pack, pack_like


def parameter_count(layers):
    """Weights and biases of a network with these layer sizes."""
    return sum(n * (n_prev + 1) for n_prev, n in zip(layers[:-1], layers[1:]))


def init_params(layers, seed):
    """He initialisation in float32: ``W_l = N(0, 1) * sqrt(2 / n_{l-1})``, ``b_l = 0``.

    Parameters
    ----------
    layers : sequence of int
        Layer sizes, input first, e.g. ``[784, 256, 256, 10]``.
    seed : int
        Seed of ``np.random.default_rng`` (a stream of its own: the data use another).

    Returns
    -------
    dict of str to ndarray
        ``W1, b1, ..., WL, bL``: ``W_l`` is ``(n_l, n_{l-1})``, ``b_l`` is ``(n_l, 1)``.
    """
    rng = np.random.default_rng([seed, 0x1417])
    params = {}
    for l in range(1, len(layers)):
        params[f"W{l}"] = (rng.standard_normal((layers[l], layers[l - 1]))
                           * np.sqrt(2.0 / layers[l - 1])).astype(np.float32)
        params[f"b{l}"] = np.zeros((layers[l], 1), np.float32)
    return params


class _Workspace:
    """Every array one batch of ``bk`` examples needs, allocated once and reused."""

    def __init__(self, layers, bk, dtype=np.float32):
        self.Z = [None] + [np.empty((n, bk), dtype) for n in layers[1:]]  # Z_l, then A_l
        self.dA = [None] + [np.empty((n, bk), dtype) for n in layers[1:-1]]
        self.mask = [None] + [np.empty((n, bk), bool) for n in layers[1:-1]]
        self.col = np.empty((1, bk), dtype)
        self.cols = np.arange(bk)


class Network:
    """The MLP over packed parameters and packed gradients.

    Parameters
    ----------
    params : dict of str to ndarray
        ``W1, b1, ...`` as from :func:`init_params` (copied into a packed buffer).

    Attributes
    ----------
    params, grads : fastopt.PackedArrays
        The parameters (give these to the optimizer) and the gradients of the last
        :meth:`forward_backward`, in one layout.
    """

    def __init__(self, params):
        self.params = pack(params)
        self.grads = pack_like(self.params)
        self.L = len(params) // 2
        self.layers = [params["W1"].shape[1]] + [params[f"W{l}"].shape[0]
                                                 for l in range(1, self.L + 1)]
        self._workspaces = {}

    def forward_backward(self, X, y):
        """Forward and backward pass of one batch; the gradients go to :attr:`grads`.

        Parameters
        ----------
        X : ndarray, shape (n_0, bk), the parameters' dtype
            One example per column.
        y : ndarray, shape (bk,), int
            Class indices.

        Returns
        -------
        loss_sum : float
            Cross-entropy summed over the batch.
        correct : int
            Examples whose most probable class is their label (before this batch's step).

        Notes
        -----
        An empty batch (``bk == 0``: a data-parallel rank's part of a global batch that has
        fewer examples than ranks, docs/contract.md §9) has zero gradients, loss 0 and no
        correct example; there is no mean over no example to take.
        """
        bk = X.shape[1]
        if bk == 0:
            self.grads.buffer[:] = 0.0
            return 0.0, 0
        ws = self._workspaces.get(bk)
        if ws is None:
            ws = self._workspaces[bk] = _Workspace(self.layers, bk, self.params.buffer.dtype)
        P, L, p, g = ws.Z[self.L], self.L, self.params, self.grads
        A = X
        for l in range(1, L + 1):
            Z = ws.Z[l]
            np.dot(p[f"W{l}"], A, out=Z)
            np.add(Z, p[f"b{l}"], out=Z)
            if l < L:
                np.maximum(0, Z, out=Z)
            A = Z
        # Softmax over each column, in place in P.
        np.max(P, axis=0, keepdims=True, out=ws.col)
        np.subtract(P, ws.col, out=P)
        np.exp(P, out=P)
        np.sum(P, axis=0, keepdims=True, out=ws.col)
        np.divide(P, ws.col, out=P)
        picked = P[y, ws.cols]
        loss_sum = float(-np.sum(np.log(picked)))
        correct = int(np.count_nonzero(np.argmax(P, axis=0) == y))
        # dZ_L = (1/m) * (P - Y): subtracting the one-hot Y only changes each label's entry.
        P[y, ws.cols] = picked - 1
        dZ = np.multiply(P, 1.0 / bk, out=P)
        for l in range(L, 0, -1):
            A_prev = ws.Z[l - 1] if l > 1 else X
            np.dot(dZ, A_prev.T, out=g[f"W{l}"])
            np.sum(dZ, axis=1, keepdims=True, out=g[f"b{l}"])
            if l > 1:
                dA, mask = ws.dA[l - 1], ws.mask[l - 1]
                np.dot(p[f"W{l}"].T, dZ, out=dA)
                np.greater(A_prev, 0, out=mask)
                dZ = np.multiply(dA, mask, out=dA)
        return loss_sum, correct


def accuracy(params, X, y, chunk=2000):
    """Fraction of the columns of ``X`` whose largest logit is at their label ``y``.

    Evaluated ``chunk`` examples at a time to bound the memory (10,000 x 256 float32 hidden
    activations would be 10 MB per layer at once).
    """
    L = len(params) // 2
    correct = 0
    for k0 in range(0, X.shape[1], chunk):
        A = X[:, k0:k0 + chunk]
        for l in range(1, L + 1):
            A = np.dot(params[f"W{l}"], A) + params[f"b{l}"]
            if l < L:
                np.maximum(0, A, out=A)
        correct += int(np.count_nonzero(np.argmax(A, axis=0) == y[k0:k0 + chunk]))
    return correct / max(1, X.shape[1])
