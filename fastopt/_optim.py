"""Optimizer objects: hyperparameters, state and step count in a small Python object; the
arithmetic is the stateless update of ``ops`` (``fastopt._ops`` here, ``fastopt.reference._ops``
in the reference's subclasses), so the two implementations behave identically.

Invariants. Every public attribute validates on assignment with the constructor's message;
options that size the state (``amsgrad``, ``centered``, whether ``momentum`` is zero) cannot
change after construction. Checkpoints are in ``fastopt._checkpoint``.

Cost model. Parameters are validated once, at construction; a step validates only the gradients
(type, dtype, shape, contiguity and overlap, ~1 us an array) and then runs one kernel per array,
or a single kernel over the whole buffer when parameters and gradients are packed
(:func:`fastopt.pack`). ``max_grad_norm`` adds one read of the gradients (their norm); the
scaling itself is fused into the update. A step also takes and releases a lock without waiting
(~0.15 us: a second thread inside ``step`` raises instead of losing updates).
"""
import copy
import math
import threading

import numpy as np

from . import _checkpoint
from . import _half
from . import _ops as _fast_ops
from . import _validation as _v
from ._clip import global_norm
from ._packing import PackedArrays, _views, pack_like
from ._scalars import adagrad_lr, bias_divisor, clip_coefficient
from .schedules import Schedule, as_schedule

NONFINITE = ("propagate", "raise", "skip")
_all_writeable = _v.all_writeable
_setattr = object.__setattr__  # a step's own private writes, past StrictAttributes


class NonFiniteGradientError(ValueError):
    """A gradient holds inf or NaN and the optimizer was built with ``nonfinite="raise"``."""


def _check_nonfinite(value, name):
    if not isinstance(value, str) or value not in NONFINITE:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, NONFINITE))}, got "
                         f"{value!r}")
    return value


def _check_max_grad_norm(value, name):
    if value is None:
        return None
    return _v.check_positive(value, name)


def _check_lr(value, name):
    return value if isinstance(value, Schedule) else as_schedule(value, name).lr


class Hyper:
    """A hyperparameter attribute: assigning it runs the constructor's check (and the class's
    combination rules) before anything changes. ``fixed``: it sizes the state, so it is
    read-only after construction."""

    def __init__(self, check, fixed=False):
        self.check, self.fixed = check, fixed

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else obj._hyper[self.name]

    def __set__(self, obj, value):
        if self.fixed:
            raise AttributeError(f"{self.name} sizes the optimizer's state and is fixed when it "
                                 f"is built; build a new {type(obj).__name__} to change it")
        hyper = dict(obj._hyper)
        hyper[self.name] = self.check(value, self.name)
        obj._check_combination(hyper, obj._hyper)
        obj._hyper = hyper


class Optimizer(_v.StrictAttributes):
    """Base class: see :class:`SGD`, :class:`Momentum`, :class:`RMSProp`, :class:`Adam`,
    :class:`AdamW`, :class:`Adagrad`.

    Parameters common to every optimizer
    ------------------------------------
    params : dict of str to ndarray, or list/tuple of ndarray
        The arrays to update in place: float32 or float64 (16-bit with ``master_dtype``),
        C-contiguous, writeable, not sharing memory with each other. A :class:`fastopt.PackedArrays` (from :func:`fastopt.pack`)
        makes a step with packed gradients a single kernel call. The optimizer updates these
        arrays in place; rebinding a dict entry to a new array (the course's
        ``params["W1"] = params["W1"] - ...``) or removing it raises ``ValueError`` at the
        next step, before anything is written (write into the array instead).
    lr : float or fastopt.schedules.Schedule
        A float, or a schedule evaluated at the step count: step k (counting from 0) uses
        ``lr(k)``. You may also assign ``opt.lr`` between steps (e.g. once an epoch).
    nonfinite : {"propagate", "raise", "skip"}, default "propagate"
        What to do with a gradient holding inf or NaN. "propagate" updates anyway, as the
        reference arithmetic does (NaN and inf spread into the parameters). "raise" raises
        :class:`NonFiniteGradientError` and "skip" skips the step; both decide before anything
        is written, and neither advances the step count. ``step`` returns False for a skipped
        step, and ``skipped`` counts them.
    max_grad_norm : float, optional
        Clip the gradients' global L2 norm to this value inside :meth:`step`, as
        :func:`fastopt.clip_grad_norm` would (docs/contract.md §8), without writing the
        gradients: the scaling is fused into the update. ``last_grad_norm`` holds the norm.
    master_dtype : None or np.float32, default None
        ``np.float32`` for 16-bit parameters (``np.float16``, ``ml_dtypes.bfloat16``, or
        ``uint16`` arrays holding bfloat16 bits; formats may differ between arrays): the
        optimizer keeps a float32 *master* copy of each (widened exactly) and float32 state,
        and each step updates the master with the 16-bit gradients (widened exactly) and
        rewrites the 16-bit arrays, in place through ``uint16`` views, as the master rounded to
        nearest even (docs/contract.md §14). 16-bit parameters without it are refused (16-bit
        state cannot hold small updates: ``bfloat16(256) + bfloat16(1) == 256``), and so are
        float32/float64 parameters with it (they are their own masters: build a separate
        optimizer for them). Packed 16-bit parameters (``fastopt.pack(..., dtype=np.float16)``)
        get one packed master buffer and packed state: one kernel call a step. The masters are
        :attr:`master`; checkpoints, copies and pickles hold them. Read-only once built.

    Every hyperparameter is an attribute, validated when assigned (a fixed one, which sizes
    the state, cannot be assigned); so are ``lr``, ``nonfinite``, ``max_grad_norm``, ``t`` (steps
    taken) and ``skipped``. Any other public name raises ``AttributeError`` when assigned
    (``opt.learning_rate = 0.5`` would otherwise change nothing), with the closest name; no
    public attribute can be deleted.

    The parameters are checked once, when the optimizer is built; each step checks again only
    that none of them (nor a state array) has been made read-only since, and raises
    ``ValueError`` naming it before anything, the step count included, changes.

    Threads. One optimizer steps from one thread at a time: a second thread calling
    :meth:`step` (or :meth:`state_dict`, :meth:`load_state_dict`, :meth:`save`, :meth:`load`,
    or copying it) while another is inside :meth:`step` raises ``RuntimeError`` naming the
    optimizer, before anything is written, rather than lose updates. Different optimizers step
    from different threads at once (the kernels release the GIL).

    Copies. ``copy.deepcopy(opt)`` and ``pickle`` give an independent working optimizer, before
    or after the first step: its own copies of the parameters and state (dict, list or
    :class:`fastopt.PackedArrays`, as given), the same step count, hyperparameters (a schedule
    copied too), ``skipped`` and ``last_grad_norm``, so that from then on it computes the same
    bits as the original for the same gradients. Parameters copied in the same ``deepcopy`` or
    pickled in the same ``pickle.dumps`` call stay its parameters (``params2, opt2 =
    copy.deepcopy((params, opt))``). ``copy.copy(opt)`` raises ``TypeError``: a shallow copy
    would step the original's arrays a second time.

    Internal seams (for fastopt's own layers, not for users)
    --------------------------------------------------------
    :mod:`fastopt._checkpoint` and :mod:`fastopt.distributed` use an optimizer only through its
    public attributes and the names in :data:`Optimizer._SEAMS` (issue 21): they keep a leading
    underscore so that no user mistakes them for API (they are not in the documentation, and
    may change with any release), and they are listed in one place so that
    tests/package/test_seams.py can check that no other module reads anything else private.

    * ``_param_keys()``, ``_param_arrays()``, ``_master_arrays()`` (None without
      ``master_dtype``), ``_state_arrays(name)``: lists in parameter order, the optimizer's own
      arrays (read them; write only through ``_restore_state``).
    * ``_hyper_now()``: the hyperparameter dict itself (not a copy; never mutate it). Each
      assignment replaces it, so its identity tells a caller that caches a fingerprint when
      to recompute. ``_hyper_attributes()`` (name -> :class:`Hyper`) and ``_checked_hyper(d)``
      (a full set validated with the constructor's checks).
    * ``_busy`` (the step lock: acquire it without blocking) and ``_busy_error()`` (the
      ``RuntimeError`` to raise when another thread holds it); ``_exclusive()`` holds it.
    * ``_check_can_step()``: the checks a step makes before anything is written that do not
      depend on the gradients (arrays still writeable, the schedule's value in range, room
      for a step); ``_check_writeable()`` alone for a checkpoint load.
    * ``_step_held(grads, ...)``: :meth:`step` with the lock held by the caller.
      ``_decide(norm, finite, ...)``: the clipping and non-finite decision, written once
      (``_step_held`` and ``DistributedOptimizer`` both call it). ``_apply(grads, scale, norm)``:
      the update once decided, lock held.
    * ``_restore_state(...)``: a checkpoint's validated contents written, all at once.
    * ``_ops`` (a class attribute): the kernels' module the class steps with
      (``fastopt._ops``, or ``fastopt.reference._ops`` for the reference's classes).
    """

    _SEAMS = ("_param_keys", "_param_arrays", "_master_arrays", "_state_arrays", "_hyper_now",
              "_hyper_attributes", "_checked_hyper", "_busy", "_busy_error", "_exclusive",
              "_check_can_step", "_check_writeable", "_step_held", "_decide", "_apply",
              "_restore_state", "_ops")
    """The private names other fastopt layers may use (see "Internal seams" above)."""

    _ops = _fast_ops
    _attribute_hints = {"learning_rate": "the learning rate is lr",
                        "step_count": "the step count is t", "steps": "the step count is t"}
    _rule = None              # name of the ops function
    _kernel_states = ()       # every state array the kernel takes, in its order

    lr = Hyper(_check_lr)
    nonfinite = Hyper(_check_nonfinite)
    max_grad_norm = Hyper(_check_max_grad_norm)

    def __init__(self, params, lr, nonfinite="propagate", max_grad_norm=None, master_dtype=None,
                 **hyper):
        # Held by step (non-blocking: a second thread raises instead of waiting).
        self._busy = threading.Lock()
        self._keys, arrays = _normalize_params(params)
        self._dict_params = isinstance(params, dict)
        # The user's dict, to notice at each step an entry rebound to a new array (the course's
        # params["W1"] = params["W1"] - ...), whose later steps would go unseen. A PackedArrays
        # copies every assignment into its buffer, so its entries cannot be rebound.
        self._user_dict = (params if self._dict_params and not isinstance(params, PackedArrays)
                           else None)
        self._names = [f"params[{k!r}]" for k in self._keys]
        self._master_dtype = master = _v.check_master_dtype(master_dtype)
        # The 16-bit format of each parameter (docs/contract.md §14), None without a master.
        self._kinds = [_v.check_param_array(arr, name, master)
                       for name, arr in zip(self._names, arrays)]
        _v.check_no_overlap(list(zip(self._names, arrays)))
        self._hyper = self._checked_hyper(dict(lr=lr, nonfinite=nonfinite,
                                               max_grad_norm=max_grad_norm, **hyper))
        self._t = self._skipped = 0
        self._last_grad_norm = None
        self._table = self._calls = self._packed_call = None
        self._params = arrays
        self._packed = params if isinstance(params, PackedArrays) else None
        # What the rule steps: the parameters themselves, or (16-bit parameters) their float32
        # masters, widened exactly; a packed dict gets one packed master buffer, same layout.
        self._master_packed = None
        if master is None:
            stepped, packed_stepped = arrays, self._packed
            self._masters = None
        else:
            if self._packed is not None:
                kind = self._kinds[0]
                buffer = np.empty(self._packed.buffer.size, np.float32)
                buffer[...] = _half.widen(_half.bits(self._packed.buffer), kind)
                packed_stepped = self._master_packed = _views(
                    buffer, [(k, shape) for k, shape, _ in self._packed.layout], None)
                stepped = [packed_stepped[k] for k in self._keys]
            else:
                packed_stepped = None
                stepped = []
                for arr, kind in zip(arrays, self._kinds):
                    m = np.empty(arr.shape, np.float32)
                    m[...] = _half.widen(_half.bits(arr), kind).reshape(arr.shape)
                    stepped.append(m)
            self._masters = stepped
            # The user's arrays as uint16 (views, no copy): the kernels write the rounded master.
            self._flat_bits = [_half.bits(a).reshape(-1) for a in arrays]
        self._state_names = tuple(s for s in self._kernel_states if self._has_state(s))
        if packed_stepped is not None:
            packed_state = {s: pack_like(packed_stepped) for s in self._state_names}
            self._state = {s: [packed_state[s][k] for k in self._keys]
                           for s in self._state_names}
            self._packed_state_buffers = [
                packed_state[s].buffer if s in packed_state else None
                for s in self._kernel_states]
        else:
            self._state = {s: [np.zeros_like(a) for a in stepped] for s in self._state_names}
        for s in self._state_names:
            for a in self._state[s]:
                a[...] = self._initial_state(s)
        self._flat = [a.reshape(-1) for a in stepped]
        self._flat_states = [[self._state[s][i].reshape(-1) if s in self._state else None
                              for s in self._kernel_states] for i in range(len(arrays))]
        masters = [] if self._masters is None else self._masters
        master_names = [f"master[{k!r}]" for k in self._keys] if masters else []
        # Overlap of a gradient with our arrays: when every one of them owns its memory (no
        # view of a user buffer), a gradient that owns its memory overlaps one only by being it.
        ours = (list(arrays) + masters
                + [a for s in self._state_names for a in self._state[s]])
        self._ours_owned = all(a.flags.owndata for a in ours)
        self._our_ids = {id(a) for a in ours}
        if self._packed is not None:
            self._our_ids.add(id(self._packed.buffer))
        if self._master_packed is not None:
            self._our_ids.add(id(self._master_packed.buffer))
        self._ours_named = (list(zip(self._names, arrays)) + list(zip(master_names, masters))
                            + [(f"{s}[{i}]", a) for s in self._state_names
                               for i, a in enumerate(self._state[s])])
        # Every array a step writes, for the per-step read-only test (in _flat_grads).
        self._written = (list(arrays) + masters
                         + [a for s in self._state_names for a in self._state[s]])
        self._written_names = self._names + master_names + [
            f"state({s!r})[{k!r}]" for s in self._state_names for k in self._keys]
        if self._packed is not None:
            self._written.append(self._packed.buffer)
            self._written_names.append("params.buffer")
            if self._master_packed is not None:
                self._written.append(self._master_packed.buffer)
                self._written_names.append("the buffer of the masters")
            for s, buf in zip(self._kernel_states, self._packed_state_buffers):
                if buf is not None:
                    self._written.append(buf)
                    self._written_names.append(f"the buffer of state({s!r})")

    # -- hyperparameters ---------------------------------------------------------------------

    @classmethod
    def _hyper_attributes(cls):
        """Name -> Hyper descriptor, lr first, then the class's own in definition order."""
        found = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Hyper):
                    found[name] = value
        order = ["lr"] + [n for n in found if n not in ("lr", "nonfinite", "max_grad_norm")]
        return {n: found[n] for n in order + ["nonfinite", "max_grad_norm"]}

    def _checked_hyper(self, values):
        """Validate a full set of hyperparameters (construction and checkpoints)."""
        hyper = {name: spec.check(values[name], name)
                 for name, spec in self._hyper_attributes().items()}
        self._check_combination(hyper, None)
        return hyper

    def _check_combination(self, hyper, old):
        """Rules across hyperparameters; ``old`` is the current set (None at construction)."""

    def _has_state(self, name):
        return True

    def _initial_state(self, name):
        return 0.0

    @property
    def hyperparameters(self):
        """Every hyperparameter as a dict (``lr`` as given: a float or a schedule)."""
        return dict(self._hyper)

    @property
    def t(self):
        """Steps taken (skipped steps excluded); assign an integer in ``[0, 2**63 - 1]`` to move
        the count (a checkpoint stores it as int64)."""
        return self._t

    @t.setter
    def t(self, value):
        self._t = _v.check_step_count(value, "t")

    @property
    def skipped(self):
        """Steps skipped for non-finite gradients (``nonfinite="skip"``); assignable like
        ``t``."""
        return self._skipped

    @skipped.setter
    def skipped(self, value):
        self._skipped = _v.check_step_count(value, "skipped")

    @property
    def last_grad_norm(self):
        """The gradients' global norm at the last step that clipped (``max_grad_norm``), before
        clipping; None before such a step. Read-only."""
        return self._last_grad_norm

    def _lr_now(self):
        lr = self._hyper["lr"]
        if isinstance(lr, Schedule):
            # A schedule's value is checked like a given lr: ExponentialDecay with a rate above
            # 1 can reach inf, and a kernel would spread it silently.
            value = lr(self._t)
            if not 0.0 <= value < math.inf:  # NaN fails too
                raise ValueError(f"lr (from {lr!r} at step {self._t}) must be finite and "
                                 f">= 0, got {value!r}")
            return value
        return lr

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        if self._master_dtype is not None:
            args += ", master_dtype=float32"
        return f"{type(self).__name__}({len(self._params)} arrays, {args}, step {self._t})"

    # -- threads and copies ------------------------------------------------------------------

    def _busy_error(self):
        return RuntimeError(
            f"another thread is inside {type(self).__name__}.step on this optimizer (step "
            f"{self._t}); one optimizer steps from one thread at a time: give each thread its "
            f"own optimizer, or hold a lock around step. Nothing was done")

    def _exclusive(self):
        """Hold the step lock for something that reads or writes the arrays; raise if a step
        runs in another thread."""
        return _v.held(self._busy, self._busy_error)

    def __copy__(self):
        raise TypeError(f"copy.copy of a {type(self).__name__} is refused: a shallow copy would "
                        f"step the same parameter and state arrays as the original. Use "
                        f"copy.deepcopy (or pickle) for an independent optimizer with its own "
                        f"arrays")

    def __reduce_ex__(self, protocol):
        # Rebuilt by _restore through __init__ (never from our attributes: the kernels' bound
        # memoryviews and the lock are per object), from the parameters as given and copies of
        # everything a step reads; deepcopy and pickle copy the arrays.
        with self._exclusive():
            return self._reduce()

    def __deepcopy__(self, memo):
        # As pickle does, but holding the step lock until the arrays are copied.
        with self._exclusive():
            restore, args = self._reduce()
            return restore(*copy.deepcopy(args, memo))

    def _reduce(self):
        if self._packed is not None:
            params = self._packed
        elif self._dict_params:
            params = dict(zip(self._keys, self._params))
        else:
            params = list(self._params)
        state = {s: list(self._state[s]) for s in self._state_names}
        masters = None if self._masters is None else list(self._masters)
        # The user's dict too, so that the copy checks it for rebound entries as the original
        # does (deepcopy's and pickle's memo make it the dict copied beside the optimizer, as
        # in params2, opt2 = copy.deepcopy((params, opt))). The masters are copied too: they
        # hold more than the 16-bit parameters (a copy rebuilt from those would step elsewhere).
        return _restore, (type(self), params, dict(self._hyper), self._t, self._skipped,
                          self._last_grad_norm, state, self._user_dict, self._master_dtype,
                          masters)

    # -- stepping ----------------------------------------------------------------------------

    def step(self, grads, grad_scale=None, found_inf=None):
        """Update every parameter in place with ``grads``.

        Parameters
        ----------
        grads : dict or list/tuple of ndarray
            Same structure as the parameters (the same keys, or the same length), each of its
            parameter's dtype and shape, C-contiguous; only read. The course's gradient dicts
            (``dW1, db1, ...``) go to :mod:`fastopt.lab`'s functions instead. For 16-bit
            parameters (``master_dtype=np.float32``) each gradient is in its parameter's
            16-bit format (bfloat16: ``ml_dtypes.bfloat16`` or ``uint16`` bits).
        grad_scale : float, optional
            Loss scaling, as torch's ``GradScaler`` does it: the factor ``S`` (finite, > 0)
            the loss was multiplied by, so that ``grads`` are ``S`` times the true gradients.
            The step uses ``g * c`` with ``c = 1/S`` computed in Python float64 (times the
            clipping coefficient when ``max_grad_norm`` clips; the clipping norm, and
            ``last_grad_norm``, are the unscaled gradients' norm, ``norm(grads) / S``), rounded
            once to the compute dtype by the kernel (docs/contract.md §14). ``grads`` are not
            written. For a power of two ``S`` (GradScaler's ``2**16``, halved and doubled) this
            is ``g / S`` bit for bit; for another ``S`` it may differ from a division by one
            unit in the last place.
        found_inf : bool, number or 0-d/one-element ndarray, optional
            Non-zero (a loss scaler's verdict that a gradient overflowed): the whole step is
            skipped before anything is written, as ``nonfinite="skip"`` skips: ``step``
            returns False, ``t`` is not advanced and ``skipped`` counts it. The gradients are
            still validated first (a malformed one raises).

        Returns
        -------
        bool
            True if the parameters were updated, False if the step was skipped
            (``found_inf``, or ``nonfinite="skip"``).

        Raises
        ------
        RuntimeError
            Another thread is inside ``step`` on this optimizer (nothing is done).
        """
        # A second thread raises instead of waiting: a non-blocking acquire, a release and a
        # try, ~0.15 us. Best of 21 x 3 runs of 5000 steps over two float32 arrays of 100 and 10
        # items, before -> after: SGD 3.51 -> 3.70 us (dict), 1.80 -> 1.98 us (packed); Adam
        # 4.07 -> 4.24 us, 2.25 -> 2.40 us. The medians of those runs moved by more than that
        # from one run to the next on this shared machine (packed SGD: 2.8-3.6 us).
        busy = self._busy
        if not busy.acquire(False):
            raise self._busy_error()
        try:
            return self._step_held(grads, grad_scale, found_inf)
        finally:
            busy.release()

    def _step_held(self, grads, grad_scale=None, found_inf=None):
        """:meth:`step` with the step lock already held by the caller (:meth:`step`, or
        :mod:`fastopt.distributed`, which takes it before the ranks agree to step)."""
        if self._user_dict is not None:
            self._check_still_bound()
        if self._t >= _v.MAX_COUNT or self._skipped >= _v.MAX_COUNT:
            _v.check_room_for_a_step(self._t, self._skipped)
        flat_grads = self._flat_grads(grads)
        scale = 1.0
        if grad_scale is not None:
            grad_scale = _v.check_loss_scale(grad_scale, "grad_scale")
            scale = 1.0 / grad_scale  # Python float64, rounded once by the kernel (as _decide)
        if found_inf is not None and _v.check_found_inf(found_inf, "found_inf"):
            self._skipped += 1  # decided before anything is written; t does not move
            return False
        hyper = self._hyper
        norm = None
        if hyper["max_grad_norm"] is not None or hyper["nonfinite"] != "propagate":
            if hyper["max_grad_norm"] is not None:
                # The norm of each array in parameter order (a packed buffer by its entries), so
                # that dict, list and packed gradients give the same norm (docs/contract.md §8).
                norm = self._grad_norm(grads, flat_grads)
            decided = self._decide(norm, None, grad_scale, grads, flat_grads)
            if decided is None:
                return False
            scale, norm = decided
        self._apply(grads, scale, norm, flat_grads)
        return True

    def _decide(self, norm, finite, grad_scale=None, grads=None, flat_grads=None,
                subject="a gradient", scope=""):
        """The clipping and non-finite decision of a step, written once: :meth:`_step_held`
        and :mod:`fastopt.distributed` (whose norm and finiteness span the ranks) call it, with
        the step lock held, before anything is written.

        Parameters
        ----------
        norm : float or None
            The global norm of the gradients as given (before unscaling by ``grad_scale``),
            when ``max_grad_norm`` is set; None otherwise.
        finite : bool or None
            Whether every gradient element is finite; None: not known yet, then read from
            ``grads``/``flat_grads`` (as :meth:`_step_held` has them) only when needed, with
            ``nonfinite != "propagate"`` and a norm that does not settle it.
        grad_scale : float, optional
            The loss scale, already checked (:func:`fastopt._validation.check_loss_scale`).
        grads, flat_grads
            The gradients and :meth:`_flat_grads`'s answer, when ``finite`` is None.
        subject, scope : str
            The error's wording: "``subject`` holds inf or NaN at step k; nothing was
            updated``scope`` (nonfinite='raise')".

        Returns
        -------
        (scale, norm) or None
            The factor the kernel multiplies the gradients by (``1/grad_scale`` times the
            clipping coefficient, a Python float) and the unscaled norm for
            ``last_grad_norm`` (None without clipping); None when the step is skipped
            (``skipped`` counted, ``t`` not moved).

        Raises
        ------
        NonFiniteGradientError
            ``nonfinite="raise"`` and a non-finite gradient.
        """
        hyper = self._hyper
        # Python float64, rounded once to the compute dtype by the kernel.
        scale = 1.0 if grad_scale is None else 1.0 / grad_scale
        if norm is not None:
            # A finite sum of squares means finite values; a non-finite one may still be an
            # overflow of finite values, which the finiteness check below settles.
            if math.isfinite(norm):
                finite = True
            if grad_scale is not None:
                norm = norm / grad_scale  # the unscaled gradients' norm
            scale = scale * clip_coefficient(norm, hyper["max_grad_norm"])
        if hyper["nonfinite"] != "propagate" and not (
                finite if finite is not None else self._all_finite(grads, flat_grads)):
            if hyper["nonfinite"] == "raise":
                raise NonFiniteGradientError(
                    f"{subject} holds inf or NaN at step {self._t + 1}; nothing was "
                    f"updated{scope} (nonfinite='raise')")
            self._skipped += 1
            return None
        return scale, norm

    def _grad_norm(self, grads, flat_grads):
        """The global L2 norm of the gradients as given, each array in parameter order (16-bit
        ones widened exactly: the gradient as the rule uses it, before any scaling)."""
        entries = [grads[k] for k in self._keys] if flat_grads is None else flat_grads
        if self._masters is None:
            return global_norm(self._ops, entries)
        total = 0.0
        for g, kind in zip(entries, self._kinds):
            total += self._ops.sumsq_half(_half.bits(g), kind)
        return math.sqrt(total)

    def _all_finite(self, grads, flat_grads):
        """Whether no gradient element is inf or NaN (a packed buffer in one pass)."""
        ops = self._ops
        if self._masters is None:
            checks = (grads.buffer,) if flat_grads is None else flat_grads
            return all(ops.all_finite(g) for g in checks)
        if flat_grads is None:
            return ops.all_finite_half(_half.bits(grads.buffer), self._kinds[0])
        return all(ops.all_finite_half(g, kind) for g, kind in zip(flat_grads, self._kinds))

    def _check_still_bound(self):
        """Raise if an entry of the parameter dict no longer holds the array we update: one
        dict lookup and identity test per array (0.8 us for six arrays on the busy 2-core
        test machine, against 14-18 us for the whole step of six small arrays; a packed
        step has nothing to check)."""
        user = self._user_dict
        for key, param in zip(self._keys, self._params):
            if user.get(key) is not param:
                _v.rebound_entry(key, type(self).__name__)

    def _flat_grads(self, grads):
        """Validate ``grads`` (and that our arrays are still writeable); return them flat in
        parameter order, or None for packed gradients that can go to the kernel as one
        buffer."""
        if not _all_writeable(self._written):
            _v.check_still_writeable(self._written, self._written_names)
        packed = self._packed
        if (packed is not None and type(grads) is PackedArrays
                and (grads.layout is packed.layout or grads.layout == packed.layout)
                and grads.buffer.dtype is packed.buffer.dtype
                and grads.buffer.flags.owndata  # then it overlaps ours only by being ours
                and id(grads.buffer) not in self._our_ids):
            return None  # one kernel call over the whole buffer
        return self._check_grads(grads)

    def _apply(self, grads, scale, norm, flat_grads=False):
        """Step with the gradients scaled by ``scale``, the clipping norm and the non-finite
        check decided by the caller, who holds the step lock (:meth:`_step_held`, or
        :mod:`fastopt.distributed`, whose norm and decision span processes, docs/contract.md
        §9). ``norm`` (None: no clipping) becomes ``last_grad_norm``; ``flat_grads`` is
        :meth:`_flat_grads`'s answer when the caller has it."""
        if flat_grads is False:
            flat_grads = self._flat_grads(grads)
        lr = self._lr_now()
        # _setattr, not self._t += 1: StrictAttributes.__setattr__ is a Python call, 0.2-0.4 us
        # a time, 10-15% of a packed step of the course's model. Private names pass it anyway.
        if norm is not None:
            _setattr(self, "_last_grad_norm", norm)
        _setattr(self, "_t", self._t + 1)
        scalars = self._scalars(lr, scale)
        if self._ops.kernel_table() is not self._table:  # first step, or a new SIMD variant
            self._bind_kernels()
        if self._masters is not None:
            # 16-bit parameters: the rule steps the float32 master and state; the kernel's
            # last argument, the parameter's uint16 bits, receives the master rounded.
            if flat_grads is None:
                kernel, m, states, bits = self._packed_call
                kernel(m, _half.bits(grads.buffer), *states, *scalars, bits)
            else:
                for (kernel, m, states, bits), g in zip(self._calls, flat_grads):
                    kernel(m, g, *states, *scalars, bits)
        elif flat_grads is None:
            kernel, p, states = self._packed_call
            kernel(p, grads.buffer, *states, *scalars)
        else:
            for (kernel, p, states), g in zip(self._calls, flat_grads):
                kernel(p, g, *states, *scalars)

    def _bind_kernels(self):
        """Resolve each array's kernel, and hold our own arrays as the kernel module's
        memoryviews (a kernel takes those without a new buffer request)."""
        table = self._table = self._ops.kernel_table()

        def call(p, states, bits=None, kind=None):
            view = table["as_view", p.dtype]
            views = [None if s is None else view(s) for s in states]
            if kind is None:
                return table[self._rule, p.dtype], view(p), views
            return table[self._rule, kind], view(p), views, table["as_view", kind](bits)

        if self._masters is None:
            self._calls = [call(p, states) for p, states in zip(self._flat, self._flat_states)]
            if self._packed is not None:
                self._packed_call = call(self._packed.buffer, self._packed_state_buffers)
            return
        self._calls = [call(m, states, bits, kind) for m, states, bits, kind in
                       zip(self._flat, self._flat_states, self._flat_bits, self._kinds)]
        if self._packed is not None:
            self._packed_call = call(self._master_packed.buffer, self._packed_state_buffers,
                                     _half.bits(self._packed.buffer), self._kinds[0])

    def _scalars(self, lr, scale):
        """The kernel's arguments after the arrays, for a step with ``lr`` whose gradients are
        scaled by ``scale`` (1: not clipped)."""
        raise NotImplementedError

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
                                         f"{missing}, unexpected {extra}"
                                         + _v.course_grads_hint(self._keys, grads))
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
        half = self._masters is not None
        for key, p, g in zip(self._keys, self._params, arrays):
            if not (type(g) is np.ndarray and g.dtype is p.dtype and g.shape == p.shape
                    and g.flags.c_contiguous):
                name = f"grads[{key!r}]"
                if half:
                    _v.check_half_grad(g, name, p, f"params[{key!r}]")
                else:
                    _v.check_float_array(g, name, writeable=False)
                    _v.check_same_layout(g, name, p, f"params[{key!r}]")
            if owned:
                if not g.flags.owndata:
                    owned = False
                elif id(g) in our_ids:
                    raise ValueError(f"grads[{key!r}] is one of the optimizer's own arrays (a "
                                     f"parameter or its state); pass a separate gradient array")
            if half:
                g = _half.bits(g)
            flat.append(g if g.ndim == 1 else g.reshape(-1))
        if not owned:
            named = [(f"grads[{k!r}]", g) for k, g in zip(self._keys, arrays)]
            _v.check_no_overlap(self._ours_named, named)
        return flat

    # -- checkpoints (fastopt._checkpoint) ---------------------------------------------------

    def state_dict(self):
        """Everything needed to resume: copies of the parameters and state, the step count,
        and the hyperparameters.

        Returns
        -------
        dict
            ``{"optimizer", "version", "keys", "t", "skipped", "last_grad_norm",
            "hyperparameters", "params", "state"}``; ``params`` is a list of arrays in
            parameter order, ``state`` a dict of such lists.
        """
        with self._exclusive():
            return _checkpoint.state_dict(self, copy=True)

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`: parameters and state are copied into the existing
        arrays (packing and views are kept); the step counts, ``last_grad_norm`` and the
        hyperparameters (``lr`` and its schedule included) are taken from ``state``, as torch
        does.

        Everything is validated first: optimizer type, format version, keys, shapes, dtypes,
        the state arrays present, and every hyperparameter with the constructor's checks (those
        that size the state must equal this optimizer's). On any mismatch a
        ``ValueError``/``TypeError`` names it and nothing changes.
        """
        with self._exclusive():
            _checkpoint.load_state_dict(self, state)

    def save(self, path, batches=None):
        """Write :meth:`state_dict` to a ``.npz`` file, atomically.

        The file is written next to ``path`` under a temporary name, flushed to disk, then
        renamed over ``path``: a crash leaves either the old file or the new one, never half of
        one. It is created as ``open()`` creates files (0666 less the umask). Only plain arrays
        and plain data are stored (a schedule as its class name and arguments, no pickles), so
        a schedule that is not one of ``fastopt.schedules``' classes (a subclass of
        ``Schedule`` of your own) is refused with a ``TypeError`` before anything is written:
        the file could not be loaded.

        Parameters
        ----------
        path : str or os.PathLike
        batches : fastopt.MiniBatches, optional
            Also store its :meth:`~fastopt.MiniBatches.state_dict` (generator state and
            position within the epoch): ``load(path, batches=loader)`` then resumes the
            optimizer and the loader together, bit for bit, mid-epoch included.
        """
        with self._exclusive():
            _checkpoint.save(self, path, batches)

    def load(self, path, batches=None):
        """Restore a checkpoint written by :meth:`save` (see :meth:`load_state_dict`).

        The file is read with ``allow_pickle=False``: a file holding pickled objects is
        rejected, never unpickled. A truncated or corrupted file raises ``ValueError``; in
        every failure the optimizer and its parameters (and ``batches``) are unchanged.

        Parameters
        ----------
        path : str or os.PathLike
        batches : fastopt.MiniBatches, optional
            Restore the loader state saved with ``save(path, batches=...)`` into it (the file
            must hold one), validated with the rest before anything changes.
        """
        with self._exclusive():
            _checkpoint.load(self, path, batches)

    # -- internal seams (see "Internal seams" in the class docstring) ------------------------

    def _param_keys(self):
        """The parameters' keys (a dict's keys, or 0..n-1), in order."""
        return list(self._keys)

    def _param_arrays(self):
        """The parameter arrays (the user's, updated in place), in key order."""
        return list(self._params)

    def _master_arrays(self):
        """The float32 masters of 16-bit parameters, in key order; None without."""
        return None if self._masters is None else list(self._masters)

    def _state_arrays(self, name):
        """The state arrays ``name``, in key order (``name`` one of :attr:`state_names`)."""
        return list(self._state[name])

    def _hyper_now(self):
        """The hyperparameter dict itself: read it, never mutate it (every assignment replaces
        it with a new dict, so its identity changes exactly when a hyperparameter may have)."""
        return self._hyper

    def _check_writeable(self):
        """Raise (the step's message) if one of our arrays was made read-only since built."""
        if not _all_writeable(self._written):
            _v.check_still_writeable(self._written, self._written_names)

    def _check_can_step(self):
        """The checks of a step that do not read the gradients, each with the step's message:
        our arrays still writeable, the learning rate (a schedule's value) in range at this
        step, room in the counts for one more step. :meth:`_step_held` makes the same checks
        inline (the hot path); :mod:`fastopt.distributed` calls this before the ranks agree."""
        self._check_writeable()
        self._lr_now()
        _v.check_room_for_a_step(self._t, self._skipped)

    def _restore_state(self, hyper, t, skipped, last_grad_norm, params, masters, states):
        """Write a checkpoint's contents, already validated against this optimizer
        (:mod:`fastopt._checkpoint`), the caller holding the step lock: ``params`` (ignored
        with masters: the 16-bit parameters become the masters rounded), ``masters`` (None
        without ``master_dtype``), ``states`` (name -> list in key order), the validated
        hyperparameter dict, the counts and ``last_grad_norm``. Our arrays' writeability is
        checked first, so a read-only one refuses before anything is written."""
        self._check_writeable()
        if masters is None:
            for dst, src in zip(self._params, params):
                dst[...] = src
        else:
            # The masters are what a step reads; the 16-bit parameters are their rounding.
            for dst, src, param, kind in zip(self._masters, masters, self._params, self._kinds):
                dst[...] = src
                _half.narrow(dst, kind, out=_half.bits(param))
        for s in self._state_names:
            for dst, src in zip(self._state[s], states[s]):
                dst[...] = src
        self._hyper = hyper
        self.t, self.skipped = t, skipped
        self._last_grad_norm = last_grad_norm

    # -- access ------------------------------------------------------------------------------

    @property
    def params(self):
        """The parameters (the arrays given, updated in place), as given: dict or list."""
        if self._dict_params:
            return dict(zip(self._keys, self._params))
        return list(self._params)

    master_dtype = property(
        lambda self: self._master_dtype,
        _v.read_only_setter("master_dtype", "it sizes the master and state buffers, fixed when "
                            "the optimizer is built; build a new optimizer to change it"),
        doc="""None, or ``np.dtype("float32")``: the dtype of the master copies of 16-bit
        parameters (see :class:`Optimizer`). Read-only: it sizes the optimizer's buffers.""")

    @property
    def master(self):
        """The weights the rule steps at full precision, in the structure of the parameters
        (dict or list).

        With ``master_dtype=np.float32``: the float32 master copies (for packed parameters,
        views into one packed float32 buffer), the optimizer's own arrays, updated in place by
        each step. Read them (evaluate, export or average the float32 model), copy them; a
        write into them changes what the next step starts from, and the 16-bit parameters are
        rewritten from them at that step (or at once by :meth:`load_state_dict`). The 16-bit
        parameters are only ever written, never read back: a value written into one directly
        is overwritten at the next step. Do not pass these arrays to :meth:`step`.

        Without ``master_dtype``: the parameters themselves (float32/float64 parameters are
        their own masters), so that code reading ``opt.master`` works for both.
        """
        arrays = self._params if self._masters is None else self._masters
        return dict(zip(self._keys, arrays)) if self._dict_params else list(arrays)

    @property
    def state_names(self):
        """The state arrays this optimizer keeps, e.g. ``("m", "v")``."""
        return self._state_names

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


def _restore(cls, params, hyper, t, skipped, last_grad_norm, state, user_dict=None,
             master_dtype=None, masters=None):
    """An optimizer of class ``cls`` over ``params`` (already copied by deepcopy or pickle),
    with the step count, counters and state arrays of the one copied (Optimizer.__reduce_ex__).
    Built through the constructor's checks; the state arrays must match the new ones.
    ``user_dict``: the copy of the dict the original was built on, checked at each step for
    entries rebound to other arrays. ``master_dtype`` and ``masters``: the 16-bit parameters'
    float32 masters (None without)."""
    opt = cls.__new__(cls)
    Optimizer.__init__(opt, params, master_dtype=master_dtype, **hyper)
    if (masters is None) != (opt._masters is None) or (
            masters is not None and len(masters) != len(opt._masters)):
        raise ValueError(f"the copied {cls.__name__}'s master weights do not match its "
                         f"parameters")
    for i, (dst, src) in enumerate(zip(opt._masters or (), masters or ())):
        if not (isinstance(src, np.ndarray) and src.dtype == dst.dtype
                and src.shape == dst.shape):
            raise ValueError(f"the copied {cls.__name__}'s master[{i}] does not match its "
                             f"parameter's shape")
        dst[...] = src
    if set(state) != set(opt._state_names):
        raise ValueError(f"the copied {cls.__name__} has state {sorted(state)}; expected "
                         f"{sorted(opt._state_names)}")
    for name in opt._state_names:
        if len(state[name]) != len(opt._state[name]):
            raise ValueError(f"the copied {cls.__name__} has {len(state[name])} {name!r} "
                             f"arrays; expected {len(opt._state[name])}")
        for i, (dst, src) in enumerate(zip(opt._state[name], state[name])):
            if not (isinstance(src, np.ndarray) and src.dtype == dst.dtype
                    and src.shape == dst.shape):
                raise ValueError(f"the copied {cls.__name__}'s {name}[{i}] does not match its "
                                 f"parameter's dtype and shape")
            dst[...] = src
    opt._t = _v.check_step_count(t, "t")
    opt._skipped = _v.check_step_count(skipped, "skipped")
    opt._last_grad_norm = last_grad_norm
    if user_dict is not None:
        opt._user_dict = user_dict
    return opt


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


def _check_momentum_kept(hyper, old, cls_name):
    """A momentum of 0 has no buffer: it cannot become > 0 later, nor the reverse."""
    if old is not None and (hyper["momentum"] > 0) != (old["momentum"] > 0):
        raise ValueError(f"momentum={hyper['momentum']!r}: this {cls_name} was built with "
                         f"momentum={old['momentum']!r}, and whether momentum is 0 decides its "
                         f"state; build a new {cls_name} to switch")


class SGD(Optimizer):
    """Gradient descent: ``p = p - lr*g``; with ``momentum > 0``, torch's heavy ball
    (docs/contract.md §7): ``momentum_buffer = g`` on the first step, then
    ``momentum_buffer = momentum*momentum_buffer + (1-dampening)*g``, and
    ``p = p - lr*momentum_buffer`` (Nesterov: ``p = p - lr*(g + momentum*momentum_buffer)``). State: ``"momentum_buffer"`` when ``momentum > 0``.

    ``weight_decay`` adds ``weight_decay*p`` to the gradient; ``maximize`` negates it first.
    ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``, as in torch.

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
    _kernel_states = ("momentum_buffer",)
    momentum = Hyper(_v.check_nonnegative)
    dampening = Hyper(_v.check_nonnegative)
    nesterov = Hyper(_v.check_bool)
    weight_decay = Hyper(_v.check_nonnegative)
    maximize = Hyper(_v.check_bool)

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, maximize=False, nonfinite="propagate", max_grad_norm=None,
                 master_dtype=None):
        super().__init__(params, lr, nonfinite, max_grad_norm, master_dtype, momentum=momentum,
                         dampening=dampening, nesterov=nesterov, weight_decay=weight_decay,
                         maximize=maximize)

    def _check_combination(self, hyper, old):
        _v.check_sgd_momentum(hyper["momentum"], hyper["dampening"], hyper["nesterov"])
        _check_momentum_kept(hyper, old, type(self).__name__)

    def _has_state(self, name):
        return self._hyper["momentum"] > 0

    def _scalars(self, lr, scale):
        h = self._hyper
        return (lr, h["weight_decay"], h["momentum"], h["dampening"], h["nesterov"],
                self._t == 1, h["maximize"], scale)


class Momentum(Optimizer):
    """Momentum in the course's form (an exponentially weighted average of gradients):
    ``velocity = beta*velocity + (1-beta)*g; p = p - lr*velocity``; with ``nesterov``,
    ``p = p - lr*(beta*velocity + (1-beta)*g)``. State: ``"velocity"``.
    ``weight_decay`` and ``maximize`` as in :class:`SGD`."""

    _rule = "momentum"
    _kernel_states = ("velocity",)
    beta = Hyper(_v.check_beta)
    nesterov = Hyper(_v.check_bool)
    weight_decay = Hyper(_v.check_nonnegative)
    maximize = Hyper(_v.check_bool)

    def __init__(self, params, lr=0.01, beta=0.9, nesterov=False, weight_decay=0.0,
                 maximize=False, nonfinite="propagate", max_grad_norm=None, master_dtype=None):
        super().__init__(params, lr, nonfinite, max_grad_norm, master_dtype, beta=beta,
                         nesterov=nesterov,
                         weight_decay=weight_decay, maximize=maximize)

    def _scalars(self, lr, scale):
        h = self._hyper
        return lr, h["beta"], h["weight_decay"], h["nesterov"], h["maximize"], scale


class RMSProp(Optimizer):
    """RMSProp: ``sq_avg = beta*sq_avg + (1-beta)*(g*g)``,
    ``p = p - (lr*g) / (sqrt(sq_avg) + eps)``.

    ``centered`` keeps ``grad_avg = beta*grad_avg + (1-beta)*g`` and divides by
    ``sqrt(sq_avg - grad_avg*grad_avg) + eps``; ``momentum > 0`` keeps
    ``momentum_buffer = momentum*momentum_buffer + g/denom`` and steps
    ``p = p - lr*momentum_buffer`` (docs/contract.md §7). State: ``"sq_avg"``, plus
    ``"grad_avg"`` when centered and ``"momentum_buffer"`` with momentum. ``centered`` is fixed
    once built.
    """

    _rule = "rmsprop"
    _kernel_states = ("sq_avg", "grad_avg", "momentum_buffer")
    beta = Hyper(_v.check_beta)
    eps = Hyper(_v.check_eps)
    centered = Hyper(_v.check_bool, fixed=True)
    momentum = Hyper(_v.check_nonnegative)
    weight_decay = Hyper(_v.check_nonnegative)
    maximize = Hyper(_v.check_bool)

    def __init__(self, params, lr=0.001, beta=0.9, eps=1e-8, centered=False, momentum=0.0,
                 weight_decay=0.0, maximize=False, nonfinite="propagate", max_grad_norm=None,
                 master_dtype=None):
        super().__init__(params, lr, nonfinite, max_grad_norm, master_dtype, beta=beta, eps=eps,
                         centered=centered, momentum=momentum, weight_decay=weight_decay,
                         maximize=maximize)

    def _check_combination(self, hyper, old):
        _check_momentum_kept(hyper, old, type(self).__name__)

    def _has_state(self, name):
        if name == "grad_avg":
            return self._hyper["centered"]
        if name == "momentum_buffer":
            return self._hyper["momentum"] > 0
        return True

    def _scalars(self, lr, scale):
        h = self._hyper
        return (lr, h["beta"], h["eps"], h["weight_decay"], h["momentum"], h["maximize"],
                scale)


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015), in the assignment's form (eps outside the
    root, both moments divided by their corrections). State: ``"m"`` and ``"v"``, plus
    ``"v_max"`` with ``amsgrad`` (fixed once built); ``t`` counts the steps taken.

    ``weight_decay`` adds ``weight_decay*p`` to the gradient (L2; :class:`AdamW` decouples it);
    ``amsgrad`` divides by the running maximum of ``v``; ``maximize`` negates the gradient
    (docs/contract.md §7).

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
    _attribute_hints = {"betas": "the betas are beta1 and beta2 (assign each)"}
    _kernel_states = ("m", "v", "v_max")
    _decoupled = False
    beta1 = Hyper(_v.check_beta)
    beta2 = Hyper(_v.check_beta)
    eps = Hyper(_v.check_eps)
    weight_decay = Hyper(_v.check_nonnegative)
    amsgrad = Hyper(_v.check_bool, fixed=True)
    maximize = Hyper(_v.check_bool)

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False, nonfinite="propagate", max_grad_norm=None,
                 master_dtype=None):
        super().__init__(params, lr, nonfinite, max_grad_norm, master_dtype, beta1=beta1,
                         beta2=beta2,
                         eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)

    def _has_state(self, name):
        return name != "v_max" or self._hyper["amsgrad"]

    def _scalars(self, lr, scale):
        h = self._hyper
        # float.__pow__ on doubles, with t a Python int, as in adam_update.
        return (lr, h["beta1"], h["beta2"], h["eps"], bias_divisor(h["beta1"], self._t),
                bias_divisor(h["beta2"], self._t), h["weight_decay"], self._decoupled,
                h["maximize"], scale)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): before the moments,
    ``p = p*(1 - lr*weight_decay)``; the gradient itself is not decayed. Everything else as in
    :class:`Adam`, whose arithmetic it shares (one kernel).

    Examples
    --------
    >>> import numpy as np, fastopt
    >>> w = np.ones(2)
    >>> opt = fastopt.AdamW([w], lr=0.1, weight_decay=0.5, max_grad_norm=1.0)
    >>> opt.step([np.array([3.0, 4.0])]), opt.last_grad_norm
    (True, 5.0)
    >>> w
    array([0.85, 0.85])
    """

    _decoupled = True

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 amsgrad=False, maximize=False, nonfinite="propagate", max_grad_norm=None,
                 master_dtype=None):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                         nonfinite, max_grad_norm, master_dtype)


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer 2011) with torch's options: at step t,
    ``clr = lr / (1 + (t-1)*lr_decay)``, ``sum_sq = sum_sq + g*g``,
    ``p = p - (clr*g) / (sqrt(sum_sq) + eps)``.
    State: ``"sum_sq"``, starting at ``initial_accumulator_value`` (fixed once built).
    ``weight_decay`` and ``maximize`` as in :class:`SGD`."""

    _rule = "adagrad"
    _kernel_states = ("sum_sq",)
    lr_decay = Hyper(_v.check_nonnegative)
    weight_decay = Hyper(_v.check_nonnegative)
    initial_accumulator_value = Hyper(_v.check_nonnegative, fixed=True)
    eps = Hyper(_v.check_eps)
    maximize = Hyper(_v.check_bool)

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, maximize=False,
                 nonfinite="propagate", max_grad_norm=None, master_dtype=None):
        super().__init__(params, lr, nonfinite, max_grad_norm, master_dtype, lr_decay=lr_decay,
                         weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps,
                         maximize=maximize)

    def _initial_state(self, name):
        return self._hyper["initial_accumulator_value"]

    def _scalars(self, lr, scale):
        h = self._hyper
        return (adagrad_lr(lr, h["lr_decay"], self._t), h["eps"], h["weight_decay"],
                h["maximize"], scale)


OPTIMIZERS = (SGD, Momentum, RMSProp, Adam, AdamW, Adagrad)
"""Every optimizer class, for code that offers a choice of them (the demos, the tests)."""
