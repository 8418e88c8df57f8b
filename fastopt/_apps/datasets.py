"""Data for ``python -m fastopt train``: a synthetic teacher problem (numpy only) and
scikit-learn's bundled handwritten digits.

Layout: one example per **column**, as in the course: ``X`` is ``(features, m)`` float32 and
``y`` is ``(m,)`` int64 class indices.
"""
import numpy as np

DATASETS = ("synthetic", "digits")

# The synthetic problem. Inputs lie near a LATENT-dimensional subspace of the 784 features (as
# images do: a few factors, many pixels), with isotropic noise of scale NOISE on top; a random
# one-hidden-layer ReLU teacher on the latent factors gives logits, and the label is drawn from
# their softmax (Gumbel-max), so labels are noisy the way real ones are and the best possible
# accuracy is below 100%: with these numbers the teacher itself scores about 0.91 on its own
# labels. Without the subspace a 784-256-256-10 student memorises 60,000 points (train accuracy
# 0.87, test 0.49 after 5 epochs).
LATENT = 16
NOISE = 0.5
TEACHER_HIDDEN = 64
TEACHER_SCALE = 16.0


def synthetic(seed, n_train=60_000, n_test=10_000, n_features=784, n_classes=10):
    """A learnable, not trivial, classification problem generated from ``seed``.

    Inputs are a random linear image of ``LATENT`` (16) standard normal factors plus noise;
    labels are sampled through the softmax of a random teacher network on those factors (16 ->
    64 ReLU -> 10 by default), so they are noisy the way real ones are: the teacher itself
    scores about 0.91. The same seed gives the same arrays (``numpy.random.Generator``, PCG64);
    on another machine the BLAS may round the mixing products in the last bit differently.

    Parameters
    ----------
    seed : int
        >= 0.
    n_train, n_test : int
        Examples in the training and the test set.
    n_features, n_classes : int
        Input size and number of classes (>= 2).

    Returns
    -------
    X_train : ndarray, shape (n_features, n_train), float32
    y_train : ndarray, shape (n_train,), int64
    X_test : ndarray, shape (n_features, n_test), float32
    y_test : ndarray, shape (n_test,), int64
    """
    rng = np.random.default_rng([seed, 0x5EED])  # not the stream the weights are drawn from
    m = n_train + n_test
    latent = min(LATENT, n_features)
    Z = rng.standard_normal((latent, m), dtype=np.float32)
    mixing = (rng.standard_normal((n_features, latent)) / np.sqrt(latent)).astype(np.float32)
    X = mixing @ Z
    X += NOISE * rng.standard_normal((n_features, m), dtype=np.float32)
    W1 = rng.standard_normal((TEACHER_HIDDEN, latent)) * np.sqrt(2.0 / latent)
    W2 = rng.standard_normal((n_classes, TEACHER_HIDDEN)) * np.sqrt(1.0 / TEACHER_HIDDEN)
    hidden = np.maximum(W1.astype(np.float32) @ Z, 0)
    hidden -= hidden.mean(axis=1, keepdims=True)  # centred: no class wins by its bias alone
    logits = TEACHER_SCALE * (W2.astype(np.float32) @ hidden)
    y = np.argmax(logits + rng.gumbel(size=logits.shape).astype(np.float32), axis=0)
    return X[:, :n_train].copy(), y[:n_train].astype(np.int64), X[:, n_train:].copy(), \
        y[n_train:].astype(np.int64)


def digits(seed, test_fraction=0.2):
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, no download), split in a
    training and a held-out test set by a permutation drawn from ``seed``.

    Pixels (0..16) are divided by 16.

    Returns
    -------
    X_train, y_train, X_test, y_test
        As :func:`synthetic`, with 64 features and 10 classes.

    Raises
    ------
    ImportError
        When scikit-learn is not installed, saying how to install it.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("--data digits needs scikit-learn, which is optional: "
                          "pip install scikit-learn (or use the default --data synthetic, "
                          "which needs nothing but numpy)") from None
    data = load_digits()
    X = (data.data / 16.0).astype(np.float32).T
    y = data.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(y.shape[0])
    n_test = int(round(test_fraction * y.shape[0]))
    test, train = perm[:n_test], perm[n_test:]
    return (np.ascontiguousarray(X[:, train]), y[train], np.ascontiguousarray(X[:, test]),
            y[test])


def load(name, seed, n_train=60_000, n_test=10_000, n_features=784, n_classes=10):
    """The data set ``name`` (see :data:`DATASETS`); the sizes apply to ``synthetic`` only."""
    if name == "synthetic":
        return synthetic(seed, n_train, n_test, n_features, n_classes)
    if name == "digits":
        return digits(seed)
    raise ValueError(f"data must be one of {', '.join(DATASETS)}, got {name!r}")
