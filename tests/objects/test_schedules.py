"""Learning-rate decay (docs/contract.md §4) and fastopt.schedules."""
import math

import numpy as np
import pytest

import fastopt.lab
import fastopt.reference.lab
from fastopt import schedules as S

LABS = [fastopt.lab, fastopt.reference.lab]


@pytest.mark.parametrize("lab", LABS, ids=["fastopt", "reference"])
def test_assignment_decays_follow_the_spec(lab):
    for epoch in range(0, 5001, 7):
        for rate in (0.3, 1, 2.5):
            assert lab.update_lr(0.1, epoch, rate) == 0.1 / (1 + rate * epoch)
            want = 0.1 / (1 + rate * np.floor(epoch / 1000))
            got = lab.schedule_lr_decay(0.1, epoch, rate)
            assert type(got) is float and got == want
            assert lab.schedule_lr_decay(0.1, epoch, rate, time_interval=100) == \
                0.1 / (1 + rate * math.floor(epoch / 100))
    # the assignment's own check values
    assert lab.update_lr(0.5, 2, 1) == 0.16666666666666666
    assert lab.schedule_lr_decay(0.5, 100, 1, time_interval=100) == 0.25


def test_decay_is_from_the_initial_rate_never_compounded():
    lr = fastopt.lab.update_lr(0.1, 10, 1)
    assert fastopt.lab.update_lr(0.1, 11, 1) == 0.1 / 12 != lr / (1 + 11)


def test_inverse_time_decay_generalises_the_assignment():
    every = S.InverseTimeDecay(0.1, 1.0)
    stairs = S.InverseTimeDecay(0.1, 1.0, decay_steps=1000, staircase=True)
    steps = np.arange(0, 6000, 13)
    for e in steps:
        assert every(int(e)) == fastopt.lab.update_lr(0.1, int(e), 1.0)
        assert stairs(int(e)) == fastopt.lab.schedule_lr_decay(0.1, int(e), 1.0)
    np.testing.assert_array_equal(stairs(steps), [stairs(int(e)) for e in steps])


@pytest.mark.parametrize("sched,formula", [
    (S.Constant(0.3), lambda s: 0.3),
    (S.InverseTimeDecay(0.2, 0.5, decay_steps=10), lambda s: 0.2 / (1 + 0.5 * (s / 10))),
    (S.ExponentialDecay(0.2, 0.96, decay_steps=10), lambda s: 0.2 * 0.96 ** (s / 10)),
    (S.ExponentialDecay(0.2, 0.96, decay_steps=10, staircase=True),
     lambda s: 0.2 * 0.96 ** math.floor(s / 10)),
    (S.CosineDecay(0.1, 50, alpha=0.1),
     lambda s: 0.1 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * min(s, 50) / 50)) + 0.1)),
    (S.PiecewiseConstant([10, 40], [0.1, 0.01, 0.001]),
     lambda s: 0.1 if s <= 10 else 0.01 if s <= 40 else 0.001),
    (S.LinearWarmup(S.CosineDecay(0.1, 50), 5, start_lr=0.01),
     lambda s: 0.01 + (0.1 - 0.01) * s / 5 if s < 5 else
     0.1 * 0.5 * (1 + math.cos(math.pi * min(s - 5, 50) / 50))),
    (S.LinearWarmup(0.5, 4), lambda s: 0.5 * s / 4 if s < 4 else 0.5),
], ids=lambda x: type(x).__name__ if isinstance(x, S.Schedule) else "")
def test_formulas_scalar_and_array(sched, formula):
    steps = np.arange(0, 120)
    want = [formula(int(s)) for s in steps]
    assert [sched(int(s)) for s in steps] == want
    assert all(type(sched(int(s))) is float for s in steps[:3])
    got = sched(steps.reshape(8, 15).astype(np.int32))
    assert got.shape == (8, 15) and got.dtype == np.float64
    np.testing.assert_array_equal(got.ravel(), want)
    assert sched(np.int64(7)) == formula(7)


def test_reprs_are_readable_and_round_trip():
    for sched in (S.Constant(0.1), S.InverseTimeDecay(0.1, 1.0, 1000, True),
                  S.ExponentialDecay(0.1, 0.5), S.PiecewiseConstant([3], [0.1, 0.01]),
                  S.CosineDecay(0.1, 100, 0.01), S.LinearWarmup(S.Constant(0.1), 10)):
        text = repr(sched)
        assert text.startswith(type(sched).__name__ + "(")
        assert eval(text, vars(S)) == sched
    assert repr(S.InverseTimeDecay(0.1, 1.0, 1000, True)) == \
        "InverseTimeDecay(initial_lr=0.1, decay_rate=1.0, decay_steps=1000, staircase=True)"


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: S.Constant(-1), ValueError, "^lr must be finite and >= 0"),
    (lambda: S.InverseTimeDecay(0.1, -1), ValueError, "^decay_rate must be finite and >= 0"),
    (lambda: S.InverseTimeDecay(0.1, 1, decay_steps=0), ValueError, "^decay_steps must be an"),
    (lambda: S.InverseTimeDecay(0.1, 1, decay_steps=1.5), TypeError, "^decay_steps must be an"),
    (lambda: S.InverseTimeDecay(0.1, 1, staircase="yes"), TypeError, "^staircase must be True"),
    (lambda: S.ExponentialDecay(0.1, 0.0), ValueError, "^decay_rate must be finite and > 0"),
    (lambda: S.PiecewiseConstant([10, 5], [1, 2, 3]), ValueError, "strictly increasing"),
    (lambda: S.PiecewiseConstant([10], [1]), ValueError, "one more entry than boundaries"),
    (lambda: S.PiecewiseConstant(5, [1]), TypeError, "must be sequences"),
    (lambda: S.CosineDecay(0.1, 10, alpha=2), ValueError, r"^alpha must be in \[0, 1\]"),
    (lambda: S.LinearWarmup("fast", 10), TypeError, "^schedule must be a float or a fastopt"),
    (lambda: S.LinearWarmup(0.1, 0), ValueError, "^warmup_steps must be an integer >= 1"),
    (lambda: S.Constant(0.1)(-1), ValueError, "^step must be an integer >= 0"),
    (lambda: S.Constant(0.1)(2.0), TypeError, "^step must be an integer >= 0, got float"),
    (lambda: S.Constant(0.1)(np.array([1.0])), TypeError, "integer dtype"),
    (lambda: S.Constant(0.1)(np.array([1, -1])), ValueError, "negative"),
    (lambda: fastopt.lab.update_lr(0.1, -1, 1), ValueError, "^epoch_num must be finite"),
    (lambda: fastopt.lab.schedule_lr_decay(0.1, 1, 1, 0), ValueError, "^time_interval must be"),
    (lambda: fastopt.lab.update_lr("0.1", 1, 1), TypeError, "^learning_rate0 must be a real"),
])
def test_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_exponential_growth_overflow_is_inf():
    assert S.ExponentialDecay(1.0, 10.0)(10**6) == math.inf


def test_schedules_are_immutable():
    sched = S.CosineDecay(0.1, decay_steps=10)
    with pytest.raises(AttributeError, match="schedules are immutable"):
        sched.initial_lr = -1.0
    assert sched.initial_lr == 0.1
    warm = S.LinearWarmup(sched, warmup_steps=3)
    with pytest.raises(AttributeError, match="LinearWarmup.schedule cannot be assigned"):
        warm.schedule = S.Constant(1.0)
