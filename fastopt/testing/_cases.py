"""Golden trajectories: deterministic known-answer cases for every optimizer rule and option.

A :class:`Case` holds everything a test of another implementation needs, in plain arrays: the
initial parameter and state, one gradient per step, the hyperparameters, the step count and
learning rate of each step (a schedule evaluated), and what ``fastopt.reference``'s optimizer
objects hold after every step. :func:`trajectory` builds one case from a seed;
:func:`cases` is the catalogue (every rule x option set x dtype x vector tail x alignment x
window); ``python -m fastopt vectors`` writes them as language-neutral files
(``fastopt.testing._vectors``, docs/contract.md "Known-answer vectors").

Why the data come from raw PCG64 words and not from ``Generator.normal``: NumPy promises a
stable stream for its bit generators (NEP 19) but not for the distributions built on them.
Every value here is ``sign * (1 + k/2**53) * 2**e`` built exactly in float64 from the raw
64-bit words of ``np.random.PCG64(seed)``, then rounded once to the dtype, so a committed
vector set regenerates to the same bits on any NumPy version.

Examples
--------
>>> import numpy as np
>>> from fastopt.testing import trajectory
>>> case = trajectory("Adam", np.float32, size=9, steps=3, offset=1, amsgrad=True)
>>> case.name, case.state_names, case.expected_param.shape
('adam-amsgrad-float32-n9-off1-t1-3', ('m', 'v', 'v_max'), (3, 9))
>>> params, state = case.replay()          # fastopt.reference again: the same bits
>>> bool((params == case.expected_param).all())
True
"""
import dataclasses
import numbers

import numpy as np

from .. import _optim
from .. import reference as _reference
from ..schedules import InverseTimeDecay, LinearWarmup, PiecewiseConstant, Schedule

__all__ = ["Case", "trajectory", "cases", "RULES", "OPTION_SETS", "EDGE_CLASSES"]

# The rules: the names of fastopt's optimizer classes (fastopt._optim.OPTIMIZERS), in its order.
RULES = tuple(cls.__name__ for cls in _optim.OPTIMIZERS)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
EDGE_CLASSES = ("pos_zero", "neg_zero", "subnormal", "max_finite", "overflow", "inf_grad",
                "nan_grad")

# The byte boundary that "aligned" means here: an AVX-512 vector and a cache line.
ALIGN = 64

# Learning rate of a case built without ``schedule``: large enough that every step moves
# every parameter by many ULPs, and that a parameter at the largest finite value pushed
# outward by a gradient of the largest finite value overflows (lr*g is 1.8e306 in float64,
# far above half the spacing at the top, 2**970).
DEFAULT_LR = 0.01

# Every option each rule has (docs/contract.md §7), one set per case: the empty set is the
# rule's defaults. Values chosen so that the option changes the bits of every step.
OPTION_SETS = {
    "SGD": ({}, {"weight_decay": 0.01}, {"maximize": True}, {"momentum": 0.9},
            {"momentum": 0.9, "dampening": 0.5}, {"momentum": 0.9, "nesterov": True},
            {"max_grad_norm": 1.0},
            {"momentum": 0.9, "weight_decay": 0.01, "maximize": True, "max_grad_norm": 1.0}),
    "Momentum": ({}, {"beta": 0.5}, {"nesterov": True}, {"weight_decay": 0.01},
                 {"maximize": True}, {"max_grad_norm": 1.0}),
    "RMSProp": ({}, {"centered": True}, {"momentum": 0.9}, {"centered": True, "momentum": 0.9},
                {"weight_decay": 0.01}, {"maximize": True}, {"eps": 1e-4},
                {"max_grad_norm": 1.0}),
    "Adam": ({}, {"amsgrad": True}, {"weight_decay": 0.01}, {"maximize": True},
             {"beta1": 0.5, "beta2": 0.9, "eps": 1e-6}, {"max_grad_norm": 1.0},
             {"amsgrad": True, "weight_decay": 0.01, "maximize": True, "max_grad_norm": 1.0}),
    "AdamW": ({}, {"weight_decay": 0.1}, {"amsgrad": True}, {"maximize": True},
              {"max_grad_norm": 1.0}),
    "Adagrad": ({}, {"lr_decay": 0.01}, {"initial_accumulator_value": 0.1},
                {"weight_decay": 0.01}, {"eps": 1e-6}, {"maximize": True},
                {"max_grad_norm": 1.0}),
}

# Short names for case names (file-safe: letters, digits, '.', '-', '_').
_ABBREV = {"weight_decay": "wd", "max_grad_norm": "clip", "nonfinite": "nf", "maximize": "max",
           "momentum": "mom", "dampening": "damp", "lr_decay": "lrdecay", "beta": "b",
           "beta1": "b1", "beta2": "b2", "initial_accumulator_value": "init"}


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """One known-answer trajectory: ``len(steps)`` steps of one optimizer over one array.

    Every array is read-only (the golden data cannot be stepped by mistake): copy
    :attr:`param` and :attr:`state` before giving them to an optimizer, as :meth:`replay`
    does.

    Attributes
    ----------
    name : str
        Unique and file-safe, e.g. ``"adam-amsgrad-float32-n17-off1-t1-10"``: rule, options
        (``default`` for none), dtype, size, offset in elements from a 64-byte boundary, the
        step counts of the window, then ``-sched`` (a learning-rate schedule) or ``-lrX`` (a
        constant rate other than 0.01), ``-edges`` (edge values mixed in) and ``-seedN`` (a
        seed other than 0) when they apply.
    rule : str
        fastopt's optimizer class: "SGD", "Momentum", "RMSProp", "Adam", "AdamW", "Adagrad".
    dtype : numpy.dtype
        float32 or float64.
    hyper : dict
        Every keyword of ``fastopt.reference.<rule>(...)`` other than ``params`` and ``lr``, the
        defaults included (``nonfinite``, ``max_grad_norm`` too), as the optimizer holds them.
    steps : ndarray of int64, shape (k,)
        The step count ``t`` after each step: the ``t`` the step used (1 on the first step of a
        run). A step skipped for a non-finite gradient (``nonfinite="skip"`` or ``"raise"``)
        does not count: its entry repeats the previous count.
    lr : ndarray of float64, shape (k,)
        The learning rate each step used: ``schedule(t - 1)`` (fastopt evaluates a schedule at
        the count of steps taken before it), or the constant rate.
    param : ndarray, shape (n,)
        The initial parameter, in ``dtype``; a view that starts ``offset`` elements after a
        64-byte boundary.
    state : dict of str to ndarray
        The initial state arrays, (n,) each, named as ``optimizer.state_names``.
    grads : ndarray, shape (k, n)
        The gradient of each step.
    expected_param : ndarray, shape (k, n)
        The parameter after each step.
    expected_state : dict of str to ndarray
        Each state array after each step, (k, n).
    edges : dict of str to ndarray of int64
        Edge class -> indices of the elements carrying it (see :func:`trajectory`); classes
        absent from the case are omitted.
    schedule : fastopt.schedules.Schedule or None
        The schedule that produced ``lr``, None for a constant rate.
    offset : int
        Elements between the 64-byte boundary and the start of ``param`` (a field, not read
        off the address: NumPy does not advance the data pointer of an empty slice).
    """

    name: str
    rule: str
    dtype: np.dtype
    hyper: dict
    steps: np.ndarray
    lr: np.ndarray
    param: np.ndarray
    state: dict
    grads: np.ndarray
    expected_param: np.ndarray
    expected_state: dict
    edges: dict
    schedule: object = None
    offset: int = 0

    @property
    def size(self):
        """n, the number of elements."""
        return self.param.shape[0]

    @property
    def state_names(self):
        """The state arrays, in the optimizer's order."""
        return tuple(self.state)

    @property
    def skipped(self):
        """bool (k,): the steps that were not taken (a non-finite gradient under
        ``nonfinite="skip"``, which returns False, or ``"raise"``, which raises
        ``fastopt.NonFiniteGradientError``); nothing is written on such a step."""
        if self.hyper.get("nonfinite", "propagate") == "propagate":
            return np.zeros(len(self.steps), dtype=bool)
        return ~np.isfinite(self.grads).all(axis=1)

    @property
    def start_step(self):
        """The step count of the first step, as given to :func:`trajectory` (1 for a run from
        the start); the optimizer has taken ``start_step - 1`` steps before it."""
        return int(self.steps[0]) + (1 if self.skipped[0] else 0)

    def replay(self, impl=None):
        """Run this case through ``impl``'s optimizer objects and return what they hold.

        The parameter and every gradient are copied into arrays starting :attr:`offset`
        elements after a 64-byte boundary, as in the case; the step count and the initial
        state are set before the first step; ``lr`` is assigned before each step.

        Parameters
        ----------
        impl : module, optional
            ``fastopt`` (the compiled kernels) or ``fastopt.reference`` (the default), or
            anything with the same optimizer classes.

        Returns
        -------
        params : ndarray, shape (k, n)
            The parameter after each step.
        state : dict of str to ndarray
            Each state array after each step, (k, n).
        """
        impl = _reference if impl is None else impl
        params, state, _, _ = _run(getattr(impl, self.rule), self.dtype, self.hyper,
                                   [float(x) for x in self.lr], self.start_step - 1, self.param,
                                   self.state, self.grads, self.offset)
        return params, state


def aligned_empty(n, dtype, offset=0):
    """An uninitialised (n,) array of ``dtype`` starting ``offset`` elements after a 64-byte
    boundary (a view into a slightly larger buffer)."""
    dtype = np.dtype(dtype)
    buf = np.empty(n + offset + ALIGN // dtype.itemsize, dtype)
    shift = (-buf.ctypes.data % ALIGN) // dtype.itemsize
    return buf[shift + offset:shift + offset + n]


def _run(cls, dtype, hyper, lr, t0, param0, state0, grads, offset):
    """Step an optimizer of class ``cls`` through ``grads``; ``lr`` is a Schedule or float
    given to the constructor, or a list of per-step floats assigned before each step.
    Returns (params (k,n), state {name: (k,n)}, steps (k,), lrs (k,))."""
    k, n = grads.shape
    p = aligned_empty(n, dtype, offset)
    p[...] = param0
    per_step = isinstance(lr, list)
    opt = cls([p], lr=(lr[0] if lr else DEFAULT_LR) if per_step else lr, **hyper)
    opt.t = t0
    for name in opt.state_names:
        opt.state(name)[0][...] = state0[name]
    g = aligned_empty(n, dtype, offset)
    out_p = np.empty((k, n), dtype)
    out_s = {name: np.empty((k, n), dtype) for name in opt.state_names}
    steps = np.empty(k, np.int64)
    lrs = np.empty(k, np.float64)
    schedule = opt.lr if isinstance(opt.lr, Schedule) else None
    for i in range(k):
        if per_step:
            opt.lr = lr[i]
        lrs[i] = schedule(opt.t) if schedule is not None else opt.lr
        g[...] = grads[i]
        try:
            opt.step([g])
        except _optim.NonFiniteGradientError:
            if opt.nonfinite != "raise":
                raise
        steps[i] = opt.t
        out_p[i] = p
        for name in opt.state_names:
            out_s[name][i] = opt.state(name)[0]
    return out_p, out_s, steps, lrs


# -- data ------------------------------------------------------------------------------------

class _Source:
    """Deterministic values from the raw words of PCG64 (see the module docstring)."""

    def __init__(self, seed):
        self._bits = np.random.PCG64(seed)

    def raw(self, count):
        return self._bits.random_raw(count) if count else np.zeros(0, np.uint64)

    def values(self, shape, lo, hi, signed=True):
        """float64 ``±(1 + f) * 2**e``, e uniform in [lo, hi], f a multiple of 2**-53."""
        count = int(np.prod(shape))
        raw = self.raw(count)
        frac = (raw >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        exponent = lo + (raw & np.uint64(0xFF)).astype(np.int64) % (hi - lo + 1)
        x = np.ldexp(1.0 + frac, exponent)
        if signed:
            x = np.where((raw >> np.uint64(8)) & np.uint64(1), -x, x)
        return x.reshape(shape)

    def permutation(self, n):
        """A permutation of range(n) (a sort of raw words: no distribution involved)."""
        return np.argsort(self.raw(n), kind="stable").astype(np.int64)


def _initial_state(name, n, dtype, hyper, src, late):
    """The state before the first step: the optimizer's own initial values for a run from the
    start; for a late window, plausible values of the right signs."""
    if not late:
        init = hyper.get("initial_accumulator_value", 0.0) if name == "sum_sq" else 0.0
        return np.full(n, init, dtype)
    if name in ("v", "sq_avg"):
        return src.values(n, -24, 0, signed=False).astype(dtype)
    if name == "v_max":
        return src.values(n, -20, 0, signed=False).astype(dtype)  # raised to >= v below
    if name == "sum_sq":
        return src.values(n, -2, 8, signed=False).astype(dtype)
    return src.values(n, -12, 0).astype(dtype)  # m, velocity, momentum_buffer, grad_avg


def _mix_edges(param, grads, state, src, late):
    """Overwrite elements of ``param``/``grads`` (and the late state) with edge values; return
    {class: indices}. Each class takes ``n // 8`` elements (at least one while elements are
    left), at positions drawn from ``src``."""
    n = param.shape[0]
    k = grads.shape[0]
    dtype = param.dtype
    info = np.finfo(dtype)
    tiny = np.array(info.smallest_subnormal, dtype)
    big = np.array(info.max, dtype)
    order = src.permutation(n)
    each = max(1, n // 8)
    edges = {}
    for j, cls in enumerate(EDGE_CLASSES):
        idx = np.sort(order[j * each:(j + 1) * each])
        if idx.size == 0:
            break
        edges[cls] = idx
        sign = np.where(np.arange(idx.size) % 2 == 0, 1, -1).astype(dtype)
        if cls == "pos_zero":
            param[idx] = 0.0
            grads[:, idx] = 0.0
            for s in state.values():
                if late:
                    s[idx] = 0.0
        elif cls == "neg_zero":
            param[idx] = -0.0
            grads[:, idx] = -0.0
            for s in state.values():
                if late:
                    s[idx] = 0.0
        elif cls == "subnormal":
            # the smallest subnormal and a few of its multiples, both signs
            mult = (1 + np.arange(idx.size) % 4).astype(dtype)
            param[idx] = sign * tiny * mult
            grads[:, idx] = -sign * tiny * mult
        elif cls == "max_finite":
            param[idx] = sign * big
        elif cls == "overflow":
            # pushed outward by the largest gradient: g*g overflows, and so does lr*g added
            # to the parameter in the rules without a denominator
            param[idx] = sign * big
            grads[:, idx] = -sign * big
        elif cls == "inf_grad":
            grads[min(1, k - 1), idx] = sign * np.inf
        elif cls == "nan_grad":
            grads[min(2, k - 1), idx] = np.nan
    return edges


def _rule_name(rule):
    for r in RULES:
        if isinstance(rule, str) and rule.lower() == r.lower():
            return r
    raise ValueError(f"rule must be one of {', '.join(RULES)} (any letter case), got {rule!r}")


def _dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _tag(value):
    """An option's value in a case name, by value only: a number as the ``repr`` of its
    float64 value, so that ``0.1`` and ``np.float64(0.1)`` (whose own ``repr`` is
    ``np.float64(0.1)``, not file-safe), ``1`` and ``1.0`` name one case alike."""
    if isinstance(value, (bool, np.bool_)):
        return "" if value else "-off"
    if isinstance(value, numbers.Real):  # int, float, NumPy's, Fraction
        return repr(float(value))
    return str(value)


def case_name(rule, dtype, size, steps, start_step, offset, options, schedule, edges, seed):
    """The file-safe name of a case (see :class:`Case`)."""
    opts = "-".join(_ABBREV.get(k, k) + _tag(v) for k, v in options.items()) or "default"
    name = (f"{rule.lower()}-{opts}-{np.dtype(dtype).name}-n{size}-off{offset}-"
            f"t{start_step}-{start_step + steps - 1}")
    if isinstance(schedule, Schedule):
        name += "-sched"
    elif schedule is not None and float(schedule) != DEFAULT_LR:
        # by value: lr=0.01 given explicitly is the default's case, one name for one case
        name += f"-lr{_tag(schedule)}"
    if edges:
        name += "-edges"
    if seed:
        name += f"-seed{seed}"
    return name.replace("+", "")


def trajectory(rule, dtype, size=17, steps=10, *, start_step=1, seed=0, offset=0, edges=False,
               schedule=None, **hyper):
    """A deterministic known-answer case, computed by ``fastopt.reference``'s optimizer.

    Parameters
    ----------
    rule : str
        "SGD", "Momentum", "RMSProp", "Adam", "AdamW" or "Adagrad" (any letter case).
    dtype : dtype-like
        float32 or float64.
    size : int, default 17
        Elements of the parameter (0 and tails of every vector width are fine).
    steps : int, default 10
        Steps to take (k).
    start_step : int, default 1
        The step count of the first step. Above 1 it is a late window: the optimizer's count is
        set to ``start_step - 1`` and its state to values of plausible sign and size before the
        first step (e.g. 10000 for steps 10000..10000+k-1, where ``1 - beta1**t`` rounds to 1).
    seed : int, default 0
        Seed of the data (parameter, gradients, late state, edge positions).
    offset : int, default 0
        Elements between a 64-byte boundary and the start of the parameter (and of each
        gradient when replayed): 1 starts every array off every vector boundary.
    edges : bool, default False
        Mix edge values into the data, each class on ``size // 8`` elements (at least one,
        while elements are left): ``pos_zero``/``neg_zero`` (parameter and every gradient
        ±0), ``subnormal`` (the smallest subnormals and small multiples, both signs),
        ``max_finite`` (parameter ±largest finite), ``overflow`` (parameter ±largest finite and
        gradient the opposite largest finite, so that ``g*g`` and, without a denominator, the
        update overflow), ``inf_grad`` (±inf gradient at the second step) and ``nan_grad`` (NaN
        gradient at the third). Under ``nonfinite="skip"``/``"raise"`` those steps are not
        taken (:attr:`Case.skipped`).
    schedule : fastopt.schedules.Schedule or float, optional
        The learning rate: a schedule (evaluated at the count of steps taken before each step)
        or a constant; :data:`DEFAULT_LR` (0.01) when omitted. ``lr=`` is accepted too.
    **hyper
        Any other keyword of the optimizer class (``amsgrad=True``, ``nonfinite="skip"``,
        ``max_grad_norm=1.0``, ...).

    Returns
    -------
    Case
    """
    rule = _rule_name(rule)
    dtype = _dtype(dtype)
    if "lr" in hyper:
        if schedule is not None:
            raise TypeError("give the learning rate as schedule= or lr=, not both")
        schedule = hyper.pop("lr")
    for name, value, low in (("size", size, 0), ("steps", steps, 1),
                             ("start_step", start_step, 1), ("offset", offset, 0),
                             ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    size, steps, start_step, offset, seed = map(int, (size, steps, start_step, offset, seed))
    cls = getattr(_reference, rule)
    lr = DEFAULT_LR if schedule is None else schedule
    probe = cls([np.zeros(1, dtype)], lr=lr, **hyper)  # validates the hyperparameters
    full_hyper = {k: v for k, v in probe.hyperparameters.items() if k != "lr"}
    late = start_step > 1
    src = _Source(seed)
    param = aligned_empty(size, dtype, offset)
    param[...] = src.values(size, -6, 1).astype(dtype)
    grads = src.values((steps, size), -12, 2).astype(dtype)
    state = {name: _initial_state(name, size, dtype, full_hyper, src, late)
             for name in probe.state_names}
    if "v_max" in state and late:
        state["v_max"] = np.maximum(state["v_max"], state["v"])
    if "grad_avg" in state and late:
        # |grad_avg| below sqrt(sq_avg): s - g_avg*g_avg stays positive, as in a real run
        root = np.sqrt(state["sq_avg"].astype(np.float64))
        state["grad_avg"] = (root * src.values(size, -3, -1)).astype(dtype)
    edge_idx = _mix_edges(param, grads, state, src, late) if edges else {}
    exp_p, exp_s, step_counts, lrs = _run(cls, dtype, full_hyper, lr, start_step - 1, param,
                                          state, grads, offset)
    name = case_name(rule, dtype, size, steps, start_step, offset, hyper, schedule, edges, seed)
    for arr in [grads, exp_p, step_counts, lrs, *state.values(), *exp_s.values()]:
        arr.flags.writeable = False
    param.flags.writeable = False
    for idx in edge_idx.values():
        idx.flags.writeable = False
    return Case(name=name, rule=rule, dtype=dtype, hyper=full_hyper, steps=step_counts,
                lr=lrs, param=param, state=state, grads=grads, expected_param=exp_p,
                expected_state=exp_s, edges=edge_idx,
                schedule=schedule if isinstance(schedule, Schedule) else None, offset=offset)


# -- the catalogue ---------------------------------------------------------------------------

TAIL_SIZES = (0, 1, 7, 8, 9, 15, 16, 17, 1000)
LARGE_SIZE = 100_003
LATE_WINDOWS = (10_000, 100_000)  # beta1**t rounds away at 1e4; beta2**t (0.999) too at 1e5
LONG_STEPS = 1000


def long_schedule():
    """The long runs' schedule: a 20-step warmup from 0.001 to 0.01, then an inverse-time
    staircase halving the rate at step 100 (free of libm calls, so the same on every
    platform)."""
    return LinearWarmup(InverseTimeDecay(0.01, 1.0, 100, staircase=True), 20, start_lr=0.001)


def late_schedule():
    """The late windows' schedule: the rate changes inside each window."""
    return PiecewiseConstant([10_004, 100_004], [0.01, 0.005, 0.0025])


def _small_specs(rule):
    """(dtype, keyword arguments of trajectory) of the quick subset of one rule: the defaults
    in both dtypes, every other option set and each non-finite policy once, the dtypes taking
    turns (the committed set stays a few hundred KB: each case costs ~1.3 KB of manifest)."""
    f32, f64 = DTYPES
    turn = [f32, f64]
    out = [(f32, dict(size=9, steps=3, offset=1)), (f64, dict(size=9, steps=3, offset=1))]
    for i, opts in enumerate(OPTION_SETS[rule][1:]):
        out.append((turn[i % 2], dict(size=9, steps=3, offset=1, **opts)))
    for i, nf in enumerate(("propagate", "skip", "raise")):
        out.append((turn[i % 2], dict(size=16, steps=5, offset=1, edges=True, nonfinite=nf)))
    out.append((f32, dict(size=9, steps=4, start_step=LATE_WINDOWS[0],
                          schedule=late_schedule())))
    if rule == "Adam":
        out += [(f32, dict(size=0, steps=2)), (f64, dict(size=1, steps=2)),
                (f64, dict(size=9, steps=4, start_step=LATE_WINDOWS[1],
                           schedule=late_schedule())),
                (f64, dict(size=16, steps=5, offset=1, edges=True, nonfinite="skip",
                           max_grad_norm=1.0, amsgrad=True)),
                (f32, dict(size=1, steps=LONG_STEPS, schedule=long_schedule()))]
    return out


def _specs(rule, dtype, small):
    """(keyword arguments of trajectory) for the catalogue of one rule and dtype."""
    if small:
        return [spec for dt, spec in _small_specs(rule) if dt == dtype]
    sets = OPTION_SETS[rule]
    out = []
    for opts in sets:
        for n in TAIL_SIZES:
            out.append(dict(size=n, steps=4, **opts))
        for n, off in ((7, 1), (17, 1), (1000, 1), (17, 3)):
            out.append(dict(size=n, steps=4, offset=off, **opts))
        out.append(dict(size=17, steps=LONG_STEPS, offset=1, schedule=long_schedule(), **opts))
        for start in LATE_WINDOWS:
            out.append(dict(size=17, steps=11, start_step=start, schedule=late_schedule(),
                            **opts))
        out.append(dict(size=64, steps=5, offset=1, edges=True, **opts))
    out.append(dict(size=LARGE_SIZE, steps=2, offset=1))
    for nf in ("skip", "raise"):
        out.append(dict(size=64, steps=5, offset=1, edges=True, nonfinite=nf))
    out.append(dict(size=64, steps=5, offset=1, edges=True, nonfinite="skip",
                    max_grad_norm=1.0))
    return out


def cases(rule=None, dtype=None, *, small=False):
    """The catalogue of known-answer cases, in a fixed order.

    Every rule x option set (:data:`OPTION_SETS`) x dtype, each at every tail size
    (0, 1, 7, 8, 9, 15, 16, 17, 1000; 4 steps), off the 64-byte boundary (offsets 1 and 3),
    a long run (steps 1..1000 with a warmup-and-decay schedule), two late windows (steps
    10000..10010 and 100000..100010, with a schedule that changes inside them) and edge
    values; per rule and dtype also 100003 elements, and edge values under each non-finite
    policy and with clipping.

    Parameters
    ----------
    rule : str, optional
        Only this rule (any letter case).
    dtype : dtype-like, optional
        Only this dtype.
    small : bool, default False
        A quick subset, the committed vectors of ``tests/conformance/vectors``: per rule its defaults in
        both dtypes and every other option set once (9 elements, off the boundary), edge
        values under each non-finite policy, a late window; for Adam also 0 and 1 elements,
        the second late window, clipping with edge values, and a 1000-step run.

    Returns
    -------
    list of Case
    """
    rules = RULES if rule is None else (_rule_name(rule),)
    dtypes = DTYPES if dtype is None else (_dtype(dtype),)
    out = []
    for r in rules:
        for dt in dtypes:
            for spec in _specs(r, dt, small):
                out.append(trajectory(r, dt, **spec))
    names = [c.name for c in out]
    if len(set(names)) != len(names):  # a catalogue bug, not a user error
        dup = sorted({n for n in names if names.count(n) > 1})
        raise RuntimeError(f"duplicate case names {dup[:5]}")
    return out
