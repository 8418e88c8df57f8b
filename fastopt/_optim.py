"""Optimizer objects: hyperparameters, state and step count in a small Python object; the
arithmetic is the stateless update of ``ops`` (``fastopt._ops`` here, ``fastopt.reference._ops``
in the reference's subclasses), so the two implementations behave identically.

Cost model. Parameters are validated once, at construction; a step validates only the gradients
(type, dtype, shape, contiguity and overlap, ~1 us an array) and then runs one kernel per array,
or a single kernel over the whole buffer when parameters and gradients are packed
(:func:`fastopt.pack`).
"""
import math
import os
import tempfile
import zipfile

import numpy as np

from . import _ops as _fast_ops
from . import _validation as _v
from ._packing import PackedArrays, pack_like
from .schedules import Schedule, as_schedule

NONFINITE = ("propagate", "raise", "skip")
FORMAT_VERSION = 1


class NonFiniteGradientError(ValueError):
    """A gradient holds inf or NaN and the optimizer was built with ``nonfinite="raise"``."""


class Optimizer:
    """Base class: see :class:`SGD`, :class:`Momentum`, :class:`RMSProp`, :class:`Adam`.

    Parameters common to every optimizer
    ------------------------------------
    params : dict of str to ndarray, or list/tuple of ndarray
        The arrays to update in place: float32 or float64, C-contiguous, writeable, not sharing
        memory with each other. A :class:`fastopt.PackedArrays` (from :func:`fastopt.pack`)
        makes a step with packed gradients a single kernel call.
    lr : float or fastopt.schedules.Schedule
        A float, or a schedule evaluated at the step count: step k (counting from 0) uses
        ``lr(k)``. You may also assign ``opt.lr`` between steps (e.g. once an epoch).
    nonfinite : {"propagate", "raise", "skip"}, default "propagate"
        What to do with a gradient holding inf or NaN. "propagate" updates anyway, as the
        reference arithmetic does (NaN and inf spread into the parameters). "raise" raises
        :class:`NonFiniteGradientError` and "skip" skips the step; both decide before anything
        is written, and neither advances the step count. ``step`` returns False for a skipped
        step, and ``skipped`` counts them.
    """

    _ops = _fast_ops
    _rule = None          # name of the ops function
    _state_names = ()     # state arrays per parameter
    _hyper_names = ()     # hyperparameters besides lr, in kernel order

    def __init__(self, params, lr, nonfinite="propagate", **hyper):
        self._keys, arrays = _normalize_params(params)
        self._dict_params = isinstance(params, dict)
        self._names = [f"params[{k!r}]" for k in self._keys]
        for name, arr in zip(self._names, arrays):
            _v.check_float_array(arr, name, writeable=True)
        _v.check_no_overlap(list(zip(self._names, arrays)))
        self.lr = lr
        if nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {', '.join(map(repr, NONFINITE))}, got "
                             f"{nonfinite!r}")
        self.nonfinite = nonfinite
        self._hyper = self._check_hyper(**hyper)
        self.t = 0
        self.skipped = 0
        self._table = self._calls = self._packed_call = None
        self._params = arrays
        self._packed = params if isinstance(params, PackedArrays) else None
        if self._packed is not None:
            packed_state = {s: pack_like(self._packed) for s in self._state_names}
            self._state = {s: [packed_state[s][k] for k in self._keys]
                           for s in self._state_names}
            self._packed_state_buffers = [packed_state[s].buffer for s in self._state_names]
        else:
            self._state = {s: [np.zeros_like(a) for a in arrays] for s in self._state_names}
        self._flat = [a.reshape(-1) for a in arrays]
        self._flat_states = [[self._state[s][i].reshape(-1) for s in self._state_names]
                             for i in range(len(arrays))]
        # Overlap of a gradient with our arrays: when every one of them owns its memory (no
        # view of a user buffer), a gradient that owns its memory overlaps one only by being it.
        ours = list(arrays) + [a for s in self._state_names for a in self._state[s]]
        self._ours_owned = all(a.flags.owndata for a in ours)
        self._our_ids = {id(a) for a in ours}
        if self._packed is not None:
            self._our_ids.add(id(self._packed.buffer))
        self._ours_named = (list(zip(self._names, arrays))
                            + [(f"{s}[{i}]", a) for s in self._state_names
                               for i, a in enumerate(self._state[s])])

    # -- hyperparameters ---------------------------------------------------------------------

    @property
    def lr(self):
        """Learning rate: a float, or a schedule evaluated at the step count."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = value if isinstance(value, Schedule) else as_schedule(value).lr

    def _lr_now(self):
        if isinstance(self._lr, Schedule):
            # A schedule's value is checked like a given lr: ExponentialDecay with a rate above
            # 1 can reach inf, and a kernel would spread it silently.
            value = self._lr(self.t)
            if not 0.0 <= value < math.inf:  # NaN fails too
                raise ValueError(f"lr (from {self._lr!r} at step {self.t}) must be finite and "
                                 f">= 0, got {value!r}")
            return value
        return self._lr

    def _check_hyper(self, **hyper):
        raise NotImplementedError

    @property
    def hyperparameters(self):
        """All hyperparameters as a dict (``lr`` as given: a float or a schedule)."""
        return {"lr": self._lr, **dict(zip(self._hyper_names, self._hyper))}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({len(self._params)} arrays, {args}, step {self.t})"

    # -- stepping ----------------------------------------------------------------------------

    def step(self, grads):
        """Update every parameter in place with ``grads``.

        Parameters
        ----------
        grads : dict or list/tuple of ndarray
            Same structure as the parameters (the same keys, or the same length), each of its
            parameter's dtype and shape, C-contiguous; only read.

        Returns
        -------
        bool
            True if the parameters were updated, False if ``nonfinite="skip"`` skipped it.
        """
        packed = self._packed
        if (packed is not None and type(grads) is PackedArrays
                and (grads.layout is packed.layout or grads.layout == packed.layout)
                and grads.buffer.dtype is packed.buffer.dtype
                and grads.buffer.flags.owndata  # then it overlaps ours only by being ours
                and id(grads.buffer) not in self._our_ids):
            flat_grads = None  # one kernel call over the whole buffer
            checks = (grads.buffer,)
        else:
            flat_grads = self._check_grads(grads)
            checks = flat_grads
        if self.nonfinite != "propagate" and not all(self._ops.all_finite(g) for g in checks):
            if self.nonfinite == "raise":
                raise NonFiniteGradientError(
                    f"a gradient holds inf or NaN at step {self.t + 1}; nothing was updated "
                    f"(nonfinite='raise')")
            self.skipped += 1
            return False
        lr = self._lr_now()
        self.t += 1
        scalars = self._scalars(lr)
        if self._ops.kernel_table() is not self._table:  # first step, or a new SIMD variant
            self._bind_kernels()
        if flat_grads is None:
            kernel, p, states = self._packed_call
            kernel(p, grads.buffer, *states, *scalars)
        else:
            for (kernel, p, states), g in zip(self._calls, flat_grads):
                kernel(p, g, *states, *scalars)
        return True

    def _bind_kernels(self):
        """Resolve each array's kernel, and hold our own arrays as the kernel module's
        memoryviews (a kernel takes those without a new buffer request)."""
        table = self._table = self._ops.kernel_table()

        def call(p, states):
            view = table["as_view", p.dtype]
            return table[self._rule, p.dtype], view(p), [view(s) for s in states]

        self._calls = [call(p, states) for p, states in zip(self._flat, self._flat_states)]
        if self._packed is not None:
            self._packed_call = call(self._packed.buffer, self._packed_state_buffers)

    def _scalars(self, lr):
        return (lr, *self._hyper)

    def _check_grads(self, grads):
        """Validate the gradients against the parameters; return them flat, in order."""
        if self._dict_params:
            if not hasattr(grads, "keys"):
                raise TypeError(f"grads must be a dict with the keys of the parameters, got "
                                f"{type(grads).__name__}")
            if len(grads) != len(self._keys) or any(k not in grads for k in self._keys):
                missing = [k for k in self._keys if k not in grads]
                extra = [k for k in grads if k not in set(self._keys)]
                raise _v.MissingKeyError(f"grads must have the keys of the parameters; missing "
                                         f"{missing}, unexpected {extra}")
            arrays = [grads[k] for k in self._keys]
        else:
            if not isinstance(grads, (list, tuple)):
                raise TypeError(f"grads must be a list or tuple of arrays, like the parameters, "
                                f"got {type(grads).__name__}")
            if len(grads) != len(self._keys):
                raise ValueError(f"grads has {len(grads)} arrays; expected {len(self._keys)}, "
                                 f"one per parameter")
            arrays = grads
        # One pass, the common case first: a C-contiguous ndarray of the parameter's dtype
        # object and shape. Anything else goes through the detailed checks for the message.
        flat = []
        owned = self._ours_owned
        our_ids = self._our_ids
        for key, p, g in zip(self._keys, self._params, arrays):
            if not (type(g) is np.ndarray and g.dtype is p.dtype and g.shape == p.shape
                    and g.flags.c_contiguous):
                name = f"grads[{key!r}]"
                _v.check_float_array(g, name, writeable=False)
                _v.check_same_layout(g, name, p, f"params[{key!r}]")
            if owned:
                if not g.flags.owndata:
                    owned = False
                elif id(g) in our_ids:
                    raise ValueError(f"grads[{key!r}] is one of the optimizer's own arrays (a "
                                     f"parameter or its state); pass a separate gradient array")
            flat.append(g if g.ndim == 1 else g.reshape(-1))
        if not owned:
            named = [(f"grads[{k!r}]", g) for k, g in zip(self._keys, arrays)]
            _v.check_no_overlap(self._ours_named, named)
        return flat

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self):
        """Everything needed to resume: copies of the parameters and state, the step count,
        and the hyperparameters.

        Returns
        -------
        dict
            ``{"optimizer", "version", "keys", "step", "skipped", "hyperparameters", "params",
            "state"}``; ``params`` is a list of arrays in parameter order, ``state`` a dict of
            such lists.
        """
        return self._state_dict(copy=True)

    def _state_dict(self, copy):
        """:meth:`state_dict`, with the arrays themselves when ``copy`` is False (for ``save``,
        which only writes them)."""
        take = np.copy if copy else (lambda a: a)
        return {
            "optimizer": type(self).__name__,
            "version": FORMAT_VERSION,
            "keys": list(self._keys),
            "step": self.t,
            "skipped": self.skipped,
            "hyperparameters": self._saved_hyperparameters(),
            "params": [take(p) for p in self._params],
            "state": {s: [take(a) for a in self._state[s]] for s in self._state_names},
        }

    def _saved_hyperparameters(self):
        """The hyperparameters as a checkpoint stores them (a schedule by its ``repr``)."""
        return {k: (repr(v) if isinstance(v, Schedule) else v)
                for k, v in self.hyperparameters.items()}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`: parameters and state are copied into the existing
        arrays (packing and views are kept), then the step count is set.

        Everything is validated first (optimizer type, keys, hyperparameters, shapes, dtypes);
        on any mismatch a ``ValueError``/``TypeError`` names it and nothing changes.
        """
        params, states, step, skipped = self._validate_state(state)
        for dst, src in zip(self._params, params):
            dst[...] = src
        for s in self._state_names:
            for dst, src in zip(self._state[s], states[s]):
                dst[...] = src
        self.t, self.skipped = step, skipped

    def _validate_state(self, state):
        _v.check_mapping(state, "state")
        required = ("optimizer", "version", "keys", "step", "skipped", "hyperparameters",
                    "params", "state")
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}; it is not a fastopt optimizer "
                             f"state_dict")
        if state["optimizer"] != type(self).__name__:
            raise ValueError(f"state is for an optimizer of type {state['optimizer']}; this one "
                             f"is {type(self).__name__}")
        if state["version"] != FORMAT_VERSION:
            raise ValueError(f"state has format version {state['version']!r}; this fastopt "
                             f"reads version {FORMAT_VERSION}")
        if [str(k) for k in state["keys"]] != [str(k) for k in self._keys]:
            raise ValueError(f"state holds parameters {list(state['keys'])}; this optimizer has "
                             f"{list(self._keys)}")
        ours = self._saved_hyperparameters()
        theirs = dict(state["hyperparameters"])
        if theirs != ours:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ValueError(f"state has different hyperparameters {diff}: saved "
                             f"{ {k: theirs.get(k) for k in diff} }, this optimizer "
                             f"{ {k: ours.get(k) for k in diff} }")
        step = _v.check_count(state["step"], "state['step']", 0)
        skipped = _v.check_count(state["skipped"], "state['skipped']", 0)
        params = self._check_arrays(state["params"], "state['params']")
        _v.check_mapping(state["state"], "state['state']")
        if set(state["state"]) != set(self._state_names):
            raise ValueError(f"state['state'] holds {sorted(state['state'])}; expected "
                             f"{sorted(self._state_names)}")
        states = {s: self._check_arrays(state["state"][s], f"state['state'][{s!r}]")
                  for s in self._state_names}
        return params, states, step, skipped

    def _check_arrays(self, arrays, what):
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(self._params):
            raise ValueError(f"{what} must be a list of {len(self._params)} arrays")
        for key, ref, arr in zip(self._keys, self._params, arrays):
            name = f"{what}[{key!r}]"
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{name} must be an ndarray, got {type(arr).__name__}")
            _v.check_same_layout(arr, name, ref, f"params[{key!r}]")
        return arrays

    def save(self, path):
        """Write :meth:`state_dict` to a ``.npz`` file, atomically.

        The file is written next to ``path`` under a temporary name, flushed to disk, then
        renamed over ``path``: a crash leaves either the old file or the new one, never half of
        one. Only plain arrays are stored (no pickles).
        """
        state = self._state_dict(copy=False)
        arrays = {
            "meta.optimizer": np.array(state["optimizer"]),
            "meta.version": np.array(state["version"]),
            "meta.keys": np.array([str(k) for k in state["keys"]]),
            "meta.step": np.array(state["step"], dtype=np.int64),
            "meta.skipped": np.array(state["skipped"], dtype=np.int64),
        }
        for k, v in state["hyperparameters"].items():
            arrays[f"hyper.{k}"] = np.array(v)
        for i, p in enumerate(state["params"]):
            arrays[f"param.{i}"] = p
        for s, lst in state["state"].items():
            for i, a in enumerate(lst):
                arrays[f"state.{s}.{i}"] = a
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".fastopt-", suffix=".npz.tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path):
        """Restore a checkpoint written by :meth:`save` (see :meth:`load_state_dict`).

        The file is read with ``allow_pickle=False``: a file holding pickled objects is
        rejected, never unpickled. A truncated or corrupted file raises ``ValueError``; in
        every failure the optimizer and its parameters are unchanged.
        """
        with open(path, "rb") as f:  # ours to close, even when np.load fails half-way
            if f.read(4) != b"PK\x03\x04":
                # Without this, NumPy would try the file as a pickle and suggest
                # allow_pickle=True: the wrong advice for a file that should be an .npz.
                raise ValueError(f"{os.fspath(path)!r} is not a fastopt checkpoint: not an .npz "
                                 f"(zip) file")
            f.seek(0)
            try:
                with np.load(f, allow_pickle=False) as npz:
                    data = {k: npz[k] for k in npz.files}
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                raise ValueError(f"{os.fspath(path)!r} is not a readable fastopt checkpoint: "
                                 f"{exc}") from None
        self.load_state_dict(self._state_from_arrays(data, os.fspath(path)))

    def _state_from_arrays(self, data, path):
        def scalar(key, kind):
            if key not in data:
                raise ValueError(f"{path!r} has no {key!r}: not a fastopt checkpoint")
            arr = data[key]
            if arr.shape != () or arr.dtype.kind not in kind:
                raise ValueError(f"{path!r}: {key!r} has the wrong type ({arr.dtype}, shape "
                                 f"{arr.shape})")
            return arr.item()

        keys = data.get("meta.keys")
        if keys is None or keys.ndim != 1 or keys.dtype.kind != "U":
            raise ValueError(f"{path!r} has no valid 'meta.keys': not a fastopt checkpoint")
        n = keys.shape[0]
        hyper = {}
        for name in data:
            if name.startswith("hyper."):
                hyper[name[6:]] = scalar(name, "fiU")
        expected = {f"param.{i}" for i in range(n)} | {
            f"state.{s}.{i}" for s in self._state_names for i in range(n)}
        arrays = {k for k in data if k.startswith(("param.", "state."))}
        if arrays != expected:
            raise ValueError(f"{path!r} holds arrays {sorted(arrays)}; expected "
                             f"{sorted(expected)}")
        return {
            "optimizer": scalar("meta.optimizer", "U"),
            "version": scalar("meta.version", "iu"),
            "keys": [str(k) for k in keys],
            "step": scalar("meta.step", "iu"),
            "skipped": scalar("meta.skipped", "iu"),
            "hyperparameters": hyper,
            "params": [data[f"param.{i}"] for i in range(n)],
            "state": {s: [data[f"state.{s}.{i}"] for i in range(n)] for s in self._state_names},
        }

    # -- access ------------------------------------------------------------------------------

    @property
    def params(self):
        """The parameters (the arrays given, updated in place), as given: dict or list."""
        if self._dict_params:
            return dict(zip(self._keys, self._params))
        return list(self._params)

    def state(self, name):
        """The state arrays ``name`` (e.g. ``"m"``), in the structure of the parameters.

        They are the optimizer's own arrays, updated in place by each step: read them, copy
        them, but do not pass them to :meth:`step`.
        """
        if name not in self._state_names:
            raise KeyError(f"{type(self).__name__} has no state {name!r}; it has "
                           f"{list(self._state_names)}")
        arrays = self._state[name]
        return dict(zip(self._keys, arrays)) if self._dict_params else list(arrays)


def _normalize_params(params):
    if isinstance(params, dict):
        if not params:
            raise ValueError("params is empty: give at least one array")
        return list(params.keys()), list(params.values())
    if isinstance(params, (list, tuple)):
        if not params:
            raise ValueError("params is empty: give at least one array")
        return list(range(len(params))), list(params)
    raise TypeError(f"params must be a dict of arrays or a list of arrays, got "
                    f"{type(params).__name__}")


class SGD(Optimizer):
    """Gradient descent: ``p = p - lr*g`` for every parameter.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> w = np.ones(3)
    >>> opt = fastopt.SGD([w], lr=0.5)
    >>> opt.step([np.full(3, 0.2)])
    True
    >>> w
    array([0.9, 0.9, 0.9])
    """

    _rule = "sgd"

    def __init__(self, params, lr=0.01, nonfinite="propagate"):
        super().__init__(params, lr, nonfinite)

    def _check_hyper(self):
        return ()


class Momentum(Optimizer):
    """Momentum (exponentially weighted average of gradients, the course's form):
    ``v = beta*v + (1-beta)*g; p = p - lr*v``. State: ``"velocity"``."""

    _rule = "momentum"
    _state_names = ("velocity",)
    _hyper_names = ("beta",)

    def __init__(self, params, lr=0.01, beta=0.9, nonfinite="propagate"):
        super().__init__(params, lr, nonfinite, beta=beta)

    def _check_hyper(self, beta):
        return (_v.check_beta(beta, "beta"),)


class RMSProp(Optimizer):
    """RMSProp: ``s = beta*s + (1-beta)*g*g; p = p - lr*g / (sqrt(s) + eps)``.
    State: ``"sq_avg"``."""

    _rule = "rmsprop"
    _state_names = ("sq_avg",)
    _hyper_names = ("beta", "eps")

    def __init__(self, params, lr=0.001, beta=0.9, eps=1e-8, nonfinite="propagate"):
        super().__init__(params, lr, nonfinite, beta=beta, eps=eps)

    def _check_hyper(self, beta, eps):
        return _v.check_beta(beta, "beta"), _v.check_eps(eps, "eps")


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015), in the assignment's form (eps outside the
    root, both moments divided by their corrections). State: ``"m"`` and ``"v"``; ``t`` counts
    the steps taken.

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> params = fastopt.pack({"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))})
    >>> grads = fastopt.pack_like(params)          # same layout: one kernel call per step
    >>> opt = fastopt.Adam(params, lr=0.1)
    >>> grads["W1"] = np.full((2, 2), 0.5)
    >>> opt.step(grads), opt.t
    (True, 1)
    >>> params["W1"]
    array([[0.9, 0.9],
           [0.9, 0.9]])
    """

    _rule = "adam"
    _state_names = ("m", "v")
    _hyper_names = ("beta1", "beta2", "eps")

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                 nonfinite="propagate"):
        super().__init__(params, lr, nonfinite, beta1=beta1, beta2=beta2, eps=eps)

    def _check_hyper(self, beta1, beta2, eps):
        return (_v.check_beta(beta1, "beta1"), _v.check_beta(beta2, "beta2"),
                _v.check_eps(eps, "eps"))

    def _scalars(self, lr):
        beta1, beta2, eps = self._hyper
        # float.__pow__ on doubles, with t a Python int, as in adam_update.
        return lr, beta1, beta2, eps, 1 - beta1 ** self.t, 1 - beta2 ** self.t
