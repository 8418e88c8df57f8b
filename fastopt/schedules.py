"""Learning-rate schedules: objects called as ``schedule(step) -> float``.

``step`` counts whatever the caller decides (epochs in the assignment, updates elsewhere); it is a
non-negative integer. Calling a schedule on an integer array returns a float64 array of the same
shape, equal element for element to the scalar calls (evaluated one by one in Python, so NumPy's
vectorised ``pow``/``cos``, which may differ from the C library's in the last bit, never enter),
which is what plotting a schedule needs.

The assignment's two decays are special cases of :class:`InverseTimeDecay`::

    update_lr(lr0, epoch, rate)                   == InverseTimeDecay(lr0, rate)(epoch)
    schedule_lr_decay(lr0, epoch, rate, interval) == InverseTimeDecay(lr0, rate, interval,
                                                                      staircase=True)(epoch)

Every schedule decays from its initial rate (never compounded from the current one), as
docs/contract.md §4 requires.

Examples
--------
>>> from fastopt.schedules import InverseTimeDecay, LinearWarmup, CosineDecay
>>> sched = InverseTimeDecay(0.1, decay_rate=1.0, decay_steps=1000, staircase=True)
>>> sched(999), sched(1000), sched(2500)
(0.1, 0.05, 0.03333333333333333)
>>> warm = LinearWarmup(CosineDecay(1.0, decay_steps=100), warmup_steps=10)
>>> warm(0), warm(5), warm(10), warm(60), warm(110)
(0.0, 0.5, 1.0, 0.5, 0.0)
"""
import bisect
import math

import numpy as np

from . import _validation as _v

__all__ = ["Schedule", "Constant", "InverseTimeDecay", "ExponentialDecay", "PiecewiseConstant",
           "CosineDecay", "LinearWarmup"]


class _Built(type):
    """The metaclass of :class:`Schedule`: once the constructor returns, the instance is marked
    built, and from then on no public attribute can be assigned or deleted. A subclass's
    ``__init__`` (however deep its ``super().__init__`` calls go) sets its fields freely."""

    def __call__(cls, *args, **kwargs):
        schedule = super().__call__(*args, **kwargs)
        object.__setattr__(schedule, "_built", True)
        return schedule


class Schedule(metaclass=_Built):
    """Base class: subclasses define ``_at(step)`` for a Python int ``step >= 0``.

    A schedule is immutable: each field is validated once, in the constructor, and cannot be
    assigned again (an optimizer or a checkpoint holding it can rely on its values); build a new
    schedule to change one. Once built, assigning any public name raises ``AttributeError``
    (a misspelled one with the closest name), and no public attribute can be deleted (``del``
    then assigning again would bypass the constructor's checks).

    Checkpoints (``Optimizer.save``) store a schedule as its class name and fields, plain data,
    and rebuild only the classes of this module. A subclass of your own can drive an optimizer,
    but saving one that holds it raises ``TypeError`` before anything is written, rather than
    write a file that cannot be loaded when training resumes: compose this module's schedules
    (``LinearWarmup``, ``PiecewiseConstant``, ...) for a run you want to checkpoint.
    """

    _fields = ()

    def __setattr__(self, name, value):
        if name[:1] != "_" and self.__dict__.get("_built"):
            if name in self._fields:
                raise AttributeError(f"{type(self).__name__}.{name} cannot be assigned: "
                                     f"schedules are immutable; build a new "
                                     f"{type(self).__name__}")
            _v.refuse_attribute(self, name, where=f"schedules are immutable: build a new "
                                                  f"{type(self).__name__}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name[:1] != "_":
            raise AttributeError(f"{type(self).__name__}.{name} cannot be deleted: schedules are "
                                 f"immutable; build a new {type(self).__name__}")
        object.__delattr__(self, name)

    def __call__(self, step):
        """The learning rate at ``step`` (an int >= 0), or at each step of an integer array.

        Returns
        -------
        float or ndarray of float64
        """
        if isinstance(step, np.ndarray):
            if step.dtype.kind not in "iu":
                raise TypeError(f"step array must have an integer dtype, got {step.dtype}")
            if step.size and step.min() < 0:
                raise ValueError("step must be >= 0, got a negative entry")
            flat = [self._at(int(s)) for s in step.reshape(-1)]
            return np.array(flat, dtype=np.float64).reshape(step.shape)
        return self._at(_v.check_count(step, "step", 0))

    def __repr__(self):
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None


class Constant(Schedule):
    """The same rate at every step.

    Parameters
    ----------
    lr : float
        Finite and >= 0.
    """

    _fields = ("lr",)

    def __init__(self, lr):
        self.lr = _v.check_lr(lr, "lr")

    def _at(self, step):
        return self.lr


class _Decay(Schedule):
    """``initial_lr`` decayed by ``decay_rate`` as a function of ``s = step / decay_steps``,
    floored when ``staircase``."""

    _fields = ("initial_lr", "decay_rate", "decay_steps", "staircase")

    def __init__(self, initial_lr, decay_rate, decay_steps=1, staircase=False):
        self.initial_lr = _v.check_lr(initial_lr, "initial_lr")
        self.decay_rate = self._check_rate(decay_rate)
        self.decay_steps = _v.check_count(decay_steps, "decay_steps", 1)
        self.staircase = _v.check_bool(staircase, "staircase")

    def _s(self, step):
        s = step / self.decay_steps
        return math.floor(s) if self.staircase else s


class InverseTimeDecay(_Decay):
    """``initial_lr / (1 + decay_rate * s)`` with ``s = step / decay_steps``.

    With ``staircase=True``, ``s`` is floored: the rate drops at multiples of ``decay_steps``.

    Parameters
    ----------
    initial_lr : float
        Finite and >= 0.
    decay_rate : float
        Finite and >= 0.
    decay_steps : int, default 1
        >= 1.
    staircase : bool, default False
    """

    @staticmethod
    def _check_rate(decay_rate):
        return _v.check_nonnegative(decay_rate, "decay_rate")

    def _at(self, step):
        return self.initial_lr / (1 + self.decay_rate * self._s(step))


class ExponentialDecay(_Decay):
    """``initial_lr * decay_rate ** s`` with ``s = step / decay_steps`` (floored if staircase).

    Parameters
    ----------
    initial_lr : float
        Finite and >= 0.
    decay_rate : float
        Finite and > 0 (below 1 to decay).
    decay_steps : int, default 1
        >= 1.
    staircase : bool, default False
    """

    @staticmethod
    def _check_rate(decay_rate):
        return _v.check_positive(decay_rate, "decay_rate")

    def _at(self, step):
        try:
            return self.initial_lr * self.decay_rate ** self._s(step)
        except OverflowError:  # decay_rate > 1 and a huge step: the rate is unbounded
            return math.inf


class PiecewiseConstant(Schedule):
    """``values[0]`` up to and including ``boundaries[0]``, then ``values[1]`` up to
    ``boundaries[1]``, ..., and ``values[-1]`` after the last boundary (Keras' convention).

    Parameters
    ----------
    boundaries : sequence of int
        Strictly increasing steps, >= 0.
    values : sequence of float
        One more than ``boundaries``; each finite and >= 0.

    Examples
    --------
    >>> from fastopt.schedules import PiecewiseConstant
    >>> s = PiecewiseConstant([10, 20], [1.0, 0.5, 0.1])
    >>> s(10), s(11), s(20), s(21)
    (1.0, 0.5, 0.5, 0.1)
    """

    _fields = ("boundaries", "values")

    def __init__(self, boundaries, values):
        try:
            boundaries, values = list(boundaries), list(values)
        except TypeError:
            raise TypeError("boundaries and values must be sequences") from None
        self.boundaries = tuple(_v.check_count(b, f"boundaries[{i}]", 0)
                                for i, b in enumerate(boundaries))
        self.values = tuple(_v.check_lr(x, f"values[{i}]") for i, x in enumerate(values))
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries: got "
                             f"{len(self.values)} values for {len(self.boundaries)} boundaries")
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")

    def _at(self, step):
        return self.values[bisect.bisect_left(self.boundaries, step)]


class CosineDecay(Schedule):
    """``initial_lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))
    + alpha)``: from ``initial_lr`` down to ``alpha * initial_lr`` at ``decay_steps``, then flat.

    Parameters
    ----------
    initial_lr : float
        Finite and >= 0.
    decay_steps : int
        >= 1.
    alpha : float, default 0.0
        Final fraction of ``initial_lr``, in [0, 1].
    """

    _fields = ("initial_lr", "decay_steps", "alpha")

    def __init__(self, initial_lr, decay_steps, alpha=0.0):
        self.initial_lr = _v.check_lr(initial_lr, "initial_lr")
        self.decay_steps = _v.check_count(decay_steps, "decay_steps", 1)
        self.alpha = _v.check_nonnegative(alpha, "alpha")
        if self.alpha > 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")

    def _at(self, step):
        # Exactly the documented expression, in its order: re-associating it (say, computing
        # 0.5 * (1 + cos) first) changes the last bit for about one step in ten.
        cosine = math.cos(math.pi * min(step, self.decay_steps) / self.decay_steps)
        return self.initial_lr * ((1 - self.alpha) * 0.5 * (1 + cosine) + self.alpha)


class LinearWarmup(Schedule):
    """Ramp linearly from ``start_lr`` to ``schedule(0)`` over ``warmup_steps`` steps, then
    follow ``schedule``, shifted so that it starts where the warmup ends.

    ``warmup(step) = start_lr + (schedule(0) - start_lr) * step / warmup_steps`` for
    ``step < warmup_steps``, and ``schedule(step - warmup_steps)`` after.

    Parameters
    ----------
    schedule : Schedule or float
        What follows the warmup (a float means :class:`Constant`).
    warmup_steps : int
        >= 1.
    start_lr : float, default 0.0
        Finite and >= 0.
    """

    _fields = ("schedule", "warmup_steps", "start_lr")

    def __init__(self, schedule, warmup_steps, start_lr=0.0):
        self.schedule = as_schedule(schedule, "schedule")
        self.warmup_steps = _v.check_count(warmup_steps, "warmup_steps", 1)
        self.start_lr = _v.check_lr(start_lr, "start_lr")

    def _at(self, step):
        if step >= self.warmup_steps:
            return self.schedule._at(step - self.warmup_steps)
        target = self.schedule._at(0)
        return self.start_lr + (target - self.start_lr) * step / self.warmup_steps


def as_schedule(lr, name="lr"):
    """Return ``lr`` if it is a :class:`Schedule`, else :class:`Constant` of it (validated)."""
    if isinstance(lr, Schedule):
        return lr
    try:
        return Constant(_v.check_lr(lr, name))
    except TypeError:
        raise TypeError(f"{name} must be a float or a fastopt.schedules.Schedule, got "
                        f"{type(lr).__name__}") from None


# --- the assignment's two decay functions (docs/contract.md §4), published in fastopt.lab ----

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
