"""Stateful fuzzing (issue 10): Hypothesis rule-based machines drive each public object through
random sequences of calls and assignments, valid and invalid, next to a twin.

The twin is the ``fastopt.reference`` object where there is one (``MiniBatches``), otherwise an
independent model (a plain dict for ``PackedArrays``; NumPy scalars and ``fastopt.ewa`` for
``EWA``). The invariant after every rule: the two hold the same bits, or both raised the same
exception type (with the same message), and nothing else was written: the data, the batch last
handed out, the packed buffer's identity and layout.

Adding a machine: subclass :class:`TwinMachine`, run each call on both sides with
:func:`outcomes` and compare them with :func:`assert_same_outcome`, decorate every rule with
``@counted`` (under ``@rule``), and expose it with ``TestName = as_test(Machine, examples)``.

Steps are counted in ``STEPS`` and printed by ``tests/conftest.py`` at the end of the run. Under
the "ci" profile (deterministic) each machine runs ``CI_EXAMPLES`` sequences of up to 50 steps;
``HYPOTHESIS_PROFILE=thorough`` runs ten times as many, random.
"""
import functools
import math
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import fastopt
import fastopt.reference

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan

# --- shared helpers ------------------------------------------------------------------------------

STEPS = Counter()  # machine name -> rules run (printed by conftest.pytest_terminal_summary)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
STEP_COUNT = 50


def as_test(machine, examples):
    """The pytest class for ``machine``: ``examples`` sequences of up to ``STEP_COUNT`` rules
    under "ci" (whose settings, derandomized, it inherits), ten times as many under "thorough"."""
    test = machine.TestCase
    scale = {"thorough": 10, "asan": 0.25}.get(PROFILE, 1)  # "asan": -O0 under ASan
    test.settings = settings(max_examples=max(1, int(examples * scale)),
                             stateful_step_count=STEP_COUNT)
    return test


def counted(fn):
    """Count every run of a rule under its machine's name."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        STEPS[type(self).__name__] += 1
        return fn(self, *args, **kwargs)
    return wrapper


class Raised:
    """An exception as an outcome: its type and message."""

    def __init__(self, exc):
        self.type, self.message = type(exc), str(exc)

    def __repr__(self):
        return f"Raised({self.type.__name__}: {self.message})"


def outcome(call):
    """``call()``'s result, or the exception it raised as a :class:`Raised`."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 -- any exception is an outcome to compare
        return Raised(exc)


def outcomes(fast, twin):
    return outcome(fast), outcome(twin)


def assert_same_bits(got, want, what):
    """Arrays (or tuples of them) with the same dtype, shape and bytes."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_bits(g, w, f"{what}[{i}]")
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got, want)
    if got.dtype.kind in "fc":
        # NaNs match at the same positions whatever their sign and payload (docs/contract.md
        # §1: `-g` in NumPy flips a NaN's sign bit, the kernels' multiply by -1 keeps it).
        nan_got, nan_want = np.isnan(got), np.isnan(want)
        assert (nan_got == nan_want).all(), (what, "NaN positions")
        got, want = np.where(nan_got, 0, got), np.where(nan_want, 0, want)
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


def assert_same_outcome(got, want, what):
    """Both raised the same exception type and message, or both returned the same bits (or
    equal plain values)."""
    if isinstance(want, Raised) or isinstance(got, Raised):
        assert isinstance(got, Raised) and isinstance(want, Raised), (what, got, want)
        assert (got.type, got.message) == (want.type, want.message), (what, got, want)
    elif isinstance(want, (np.ndarray, tuple)):
        assert_same_bits(got, want, what)
    else:
        assert got == want, (what, got, want)


def snapshot(*arrays):
    """Bytes of each array (None stays None), to check later that nothing wrote into them."""
    return [None if a is None else (a.dtype, a.shape, np.ascontiguousarray(a).tobytes())
            for a in arrays]


JUNK = st.sampled_from([None, "1", 1.5, float("nan"), -1, 0, True, [1], np.float64(2.0),
                        np.int64(3), np.bool_(True), object()])


class TwinMachine(RuleBasedStateMachine):
    """Base of every machine here (room for shared rules and checks)."""


# --- MiniBatches: fastopt next to fastopt.reference -----------------------------------------

DATA_DTYPES = [np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64]


def make_data(rng, shape, dtype):
    x = rng.standard_normal(shape) * 50
    if np.dtype(dtype).kind == "b":
        return x > 0
    if np.dtype(dtype).kind == "c":
        return (x + 1j * rng.standard_normal(shape)).astype(dtype)
    return x.astype(dtype)


BOOLS = st.one_of(st.booleans(), JUNK)
MINIBATCH_ATTRS = ["batch_size", "drop_last", "copy", "rng", "X", "Y", "axis", "m"]


class MiniBatchesMachine(TwinMachine):
    """Epochs started, advanced, drained and abandoned; attributes assigned between and during
    them; ``len``. The reference twin is the oracle for every batch."""

    @initialize(m=st.integers(1, 40), features=st.integers(1, 4), axis=st.sampled_from([0, 1]),
                dtype=st.sampled_from(DATA_DTYPES), labels=st.sampled_from([None, 1, 2]),
                batch_size=st.integers(1, 45), drop_last=st.booleans(), copy=st.booleans(),
                seed=st.integers(0, 2**32 - 1), strided=st.booleans())
    def setup(self, m, features, axis, dtype, labels, batch_size, drop_last, copy, seed,
              strided):
        rng = np.random.default_rng(seed)
        shape = (features, m) if axis == 1 else (m, features)
        X = make_data(rng, shape, dtype)
        if strided:  # a non-contiguous view of a bigger array: only read
            big = make_data(rng, (shape[0] * 2, shape[1] * 3), dtype)
            X = big[::2, ::3]
        Y = None
        if labels == 1:
            Y = rng.integers(0, 5, m).astype(np.int64)
        elif labels == 2:
            Y = make_data(rng, (2, m) if axis == 1 else (m, 2), np.float32)
        self.X, self.Y = X, Y
        self.data = snapshot(X, Y)
        kwargs = dict(batch_size=batch_size, seed=seed, axis=axis, drop_last=drop_last,
                      copy=copy)
        self.fast = fastopt.MiniBatches(X, Y, **kwargs)
        self.twin = fastopt.reference.MiniBatches(X, Y, **kwargs)
        self.epochs = []    # open (fast, twin) iterator pairs, oldest first
        self.current = None  # the pair started last: the only one that may yield
        self.live = None    # (fast batch, its bytes): the last batch the current one yielded

    def _keep_live(self, batch):
        arrays = batch if isinstance(batch, tuple) else (batch,)
        self.live = (arrays, snapshot(*arrays))

    @rule()
    @counted
    def start_epoch(self):
        if len(self.epochs) >= 3:
            self.epochs.pop(0)  # abandoned
        self.current = (iter(self.fast), iter(self.twin))
        self.epochs.append(self.current)
        self.live = None  # a new epoch: batches of older ones are no longer promised

    @precondition(lambda self: self.epochs)
    @rule(which=st.integers(0, 2), count=st.integers(1, 5))
    @counted
    def next_batches(self, which, count):
        pair = self.epochs[which % len(self.epochs)]
        it_fast, it_twin = pair
        for _ in range(count):
            got, want = outcomes(lambda: next(it_fast), lambda: next(it_twin))
            assert_same_outcome(got, want, "next batch")
            if isinstance(got, Raised):
                # Whatever was assigned before, a batch never fails for another reason (a
                # gather's own ValueError here would mean a buffer sized for other values).
                assert got.type in (StopIteration, RuntimeError), got
                return
            # An older epoch must raise (RuntimeError) or be over (StopIteration).
            assert pair is self.current, "a stale epoch yielded a batch"
            self._keep_live(got)

    @precondition(lambda self: self.epochs)
    @rule()
    @counted
    def drain_latest(self):
        pair = self.epochs.pop()
        it_fast, it_twin = pair
        got, want = outcomes(lambda: [tuple(np.copy(a) for a in (b if isinstance(b, tuple)
                                                                  else (b,))) for b in it_fast],
                             lambda: [tuple(np.copy(a) for a in (b if isinstance(b, tuple)
                                                                 else (b,))) for b in it_twin])
        if isinstance(got, list) and isinstance(want, list):
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert_same_bits(g, w, "drained batch")
            assert pair is self.current or not got, "a stale epoch yielded a batch"
            self.live = None  # the iterator ran on; its last batch was overwritten legitimately
        else:
            assert_same_outcome(got, want, "drain")
            assert got.type is RuntimeError, got

    @precondition(lambda self: self.epochs)
    @rule()
    @counted
    def abandon_oldest(self):
        self.epochs.pop(0)

    def _assign(self, name, fast_value, twin_value):
        got, want = outcomes(lambda: setattr(self.fast, name, fast_value),
                             lambda: setattr(self.twin, name, twin_value))
        assert_same_outcome(got, want, f"assign {name}={fast_value!r}")
        return got

    @rule(name=st.sampled_from(["batch_size", "drop_last", "copy", "rng"]), data=st.data())
    @counted
    def assign_valid(self, name, data):
        if name == "batch_size":
            value = data.draw(st.integers(1, 45))
        elif name == "rng":
            seed = data.draw(st.integers(0, 2**32 - 1))
            # A Generator for each twin, in the same state.
            self._assign(name, np.random.default_rng(seed), np.random.default_rng(seed))
            return
        else:
            value = data.draw(st.booleans())
        assert not isinstance(self._assign(name, value, value), Raised)

    @rule(name=st.sampled_from(MINIBATCH_ATTRS), data=st.data())
    @counted
    def assign_invalid_or_read_only(self, name, data):
        if name == "batch_size":
            value = data.draw(st.one_of(st.integers(-2, 0), JUNK))
        elif name in ("drop_last", "copy", "rng"):
            value = data.draw(JUNK)
        else:  # read-only: even the value it has is refused
            value = data.draw(st.one_of(JUNK, st.just(getattr(self.twin, name))))
        got = self._assign(name, value, value)
        if name == "batch_size" and isinstance(value, (int, np.integer)) and value >= 1:
            return  # True is refused, 1 and np.int64(3) are fine
        if name in ("drop_last", "copy") and isinstance(value, (bool, np.bool_)):
            return
        assert isinstance(got, Raised), (name, value)

    @rule()
    @counted
    def length(self):
        assert_same_outcome(*outcomes(lambda: len(self.fast), lambda: len(self.twin)), "len")

    @invariant()
    def twins_agree_and_nothing_else_was_written(self):
        if not hasattr(self, "fast"):
            return
        for name in ("batch_size", "drop_last", "copy", "axis", "m"):
            assert getattr(self.fast, name) == getattr(self.twin, name), name
        assert_same_bits(self.fast.X, self.twin.X, "X")
        assert (self.fast.rng.bit_generator.state == self.twin.rng.bit_generator.state)
        assert snapshot(self.X, self.Y) == self.data, "the data were written"
        if self.live is not None:
            arrays, before = self.live
            assert snapshot(*arrays) == before, "the batch handed out last was overwritten"


TestMiniBatches = as_test(MiniBatchesMachine, examples=100)


# --- PackedArrays: next to a plain dict, with both implementations' optimizers ---------------

KEYS = ["W1", "b1", "W2"]
SHAPES = st.sampled_from([(), (1,), (3,), (2, 3), (1, 1), (2, 1, 2)])


class PackedArraysMachine(TwinMachine):
    """Every method of the mapping protocol on packed gradients, next to a plain dict that
    holds what the entries should hold; optimizer steps with them, fastopt next to reference."""

    @initialize(n=st.integers(1, 3), shapes=st.lists(SHAPES, min_size=3, max_size=3),
                dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 1000),
                rule_name=st.sampled_from(["SGD", "Momentum", "RMSProp", "Adam"]))
    def setup(self, n, shapes, dtype, seed, rule_name):
        rng = np.random.default_rng(seed)
        self.rng = rng
        values = {k: rng.standard_normal(s).astype(dtype) for k, s in zip(KEYS[:n], shapes)}
        self.params = fastopt.pack(values)
        self.ref_params = fastopt.pack(values)
        self.opt = getattr(fastopt, rule_name)(self.params, lr=0.01)
        self.ref_opt = getattr(fastopt.reference, rule_name)(self.ref_params, lr=0.01)
        self.grads = fastopt.pack_like(self.params)
        self.buffer, self.layout = self.grads.buffer, self.grads.layout
        self.model = {k: np.zeros(s, dtype) for k, s in zip(KEYS[:n], shapes)}
        self.dtype = dtype

    # values: the right shape, a wrong one, junk; keys: ours and one that is not
    def _value(self, data, key):
        shape = self.model[key].shape if key in self.model else (2,)
        kind = data.draw(st.sampled_from(["good", "good", "good", "list", "shape", "junk"]))
        if kind == "good":
            return self.rng.standard_normal(shape)  # float64: converted to the buffer's dtype
        if kind == "list":
            return self.rng.standard_normal(shape).tolist()
        if kind == "shape":
            return np.ones(tuple(d + 1 for d in shape) or (2,))
        return data.draw(JUNK)

    def _key(self, data):
        return data.draw(st.sampled_from(list(self.model) + ["zz"]))

    def _expect_write(self, pairs):
        """What the model does for these (key, value) writes: all checked, then all copied."""
        staged = []
        for key, value in pairs:
            if key not in self.model:
                raise KeyError(key)
            # Only real numbers convert (None, "1" and objects would be parsed or become NaN);
            # a finite value beyond the dtype's range raises (it would become inf).
            try:
                given = np.asarray(value)
            except (TypeError, ValueError):
                raise TypeError(key) from None
            if given.dtype.kind not in "biuf":
                raise TypeError(key)
            with np.errstate(over="ignore"):
                arr = given.astype(self.dtype)
            if (np.isinf(arr) & np.isfinite(given)).any():
                raise ValueError(key)
            if arr.shape != self.model[key].shape:
                raise ValueError(key)
            staged.append((key, arr))
        for key, arr in staged:
            self.model[key] = arr.copy()

    def _compare_write(self, call, pairs, what):
        got = outcome(call)
        want = outcome(lambda: self._expect_write(pairs))
        if isinstance(want, Raised):
            assert isinstance(got, Raised) and got.type is want.type, (what, got, want)
        else:
            assert not isinstance(got, Raised), (what, got)
        return got

    @rule(data=st.data())
    @counted
    def setitem(self, data):
        key = self._key(data)
        value = self._value(data, key)
        self._compare_write(lambda: self.grads.__setitem__(key, value), [(key, value)],
                            "setitem")

    @rule(data=st.data(), form=st.sampled_from(["dict", "pairs", "kwargs", "ior", "ior-pairs"]))
    @counted
    def update(self, data, form):
        keys = data.draw(st.lists(st.sampled_from(list(self.model) + ["zz"]), max_size=3))
        pairs = [(k, self._value(data, k)) for k in keys]
        call = {"dict": lambda: self.grads.update(dict(pairs)),
                "pairs": lambda: self.grads.update(pairs),
                "kwargs": lambda: self.grads.update(**dict(pairs)),
                "ior": lambda: self.grads.__ior__(dict(pairs)),
                "ior-pairs": lambda: self.grads.__ior__(pairs)}[form]
        deduped = list(dict(pairs).items())  # a dict argument keeps the last value of a key
        got = self._compare_write(call, pairs if form.endswith("pairs") else deduped, form)
        if form.startswith("ior") and not isinstance(got, Raised):
            assert got is self.grads

    @rule(data=st.data())
    @counted
    def write_into_a_view(self, data):
        key = data.draw(st.sampled_from(list(self.model)))
        value = self.rng.standard_normal(self.model[key].shape)
        self.grads[key][...] = value
        self.model[key] = np.asarray(value, dtype=self.dtype)

    @rule(data=st.data(), method=st.sampled_from(
        ["del", "pop", "pop-default", "popitem", "clear", "setdefault", "fromkeys", "new",
         "set-buffer", "set-layout"]))
    @counted
    def refused_or_read(self, data, method):
        key = self._key(data)
        calls = {"del": lambda: self.grads.__delitem__(key),
                 "pop": lambda: self.grads.pop(key),
                 "pop-default": lambda: self.grads.pop(key, None),
                 "popitem": lambda: self.grads.popitem(),
                 "clear": lambda: self.grads.clear(),
                 "setdefault": lambda: self.grads.setdefault(key, np.ones(2)),
                 "fromkeys": lambda: fastopt.PackedArrays.fromkeys([key]),
                 "new": lambda: fastopt.PackedArrays(self.model),
                 "set-buffer": lambda: setattr(self.grads, "buffer", self.buffer.copy()),
                 "set-layout": lambda: setattr(self.grads, "layout", self.layout)}
        got = outcome(calls[method])
        if method == "setdefault" and key in self.model:
            assert got is dict.__getitem__(self.grads, key)
        else:
            assert isinstance(got, Raised), (method, got)
            assert got.type in (TypeError, KeyError, AttributeError), got

    @rule(data=st.data(), method=st.sampled_from(["copy", "or", "ror", "reversed", "dict"]))
    @counted
    def new_objects(self, data, method):
        if method == "copy":
            new = self.grads.copy()
            assert type(new) is fastopt.PackedArrays
            assert not np.shares_memory(new.buffer, self.buffer)
            new[next(iter(new))] = np.full(new[next(iter(new))].shape, 7.0)  # ours unchanged
        elif method == "or":
            key = self._key(data)
            value = self._value(data, key)
            merged = outcome(lambda: self.grads | {key: value})
            if not isinstance(merged, Raised):
                assert type(merged) is fastopt.PackedArrays
                assert not np.shares_memory(merged.buffer, self.buffer)
        elif method == "ror":
            merged = {"zz": 1} | self.grads
            assert type(merged) is dict and list(merged)[1:] == list(self.model)
        elif method == "reversed":
            assert list(reversed(self.grads)) == list(reversed(list(self.model)))
        else:
            assert dict(self.grads).keys() == self.model.keys()

    @rule(structure=st.sampled_from(["packed", "dict"]))
    @counted
    def step(self, structure):
        grads = self.grads if structure == "packed" else {k: v.copy()
                                                          for k, v in self.grads.items()}
        assert self.opt.step(grads) and self.ref_opt.step(grads)

    @invariant()
    def entries_hold_the_model_in_the_buffer(self):
        if not hasattr(self, "grads"):
            return
        grads = self.grads
        assert grads.buffer is self.buffer and grads.layout == self.layout
        assert list(grads) == list(self.model)
        for key, shape, offset in self.layout:
            view = dict.__getitem__(grads, key)
            assert view.base is self.buffer and view.shape == shape
            assert (view.__array_interface__["data"][0]
                    == self.buffer.__array_interface__["data"][0] + offset * view.itemsize)
            assert_same_bits(view, self.model[key], key)
        assert_same_bits(self.params.buffer, self.ref_params.buffer, "params after steps")


TestPackedArrays = as_test(PackedArraysMachine, examples=60)


# --- EWA: next to NumPy scalars and fastopt.ewa / fastopt.reference.ewa -----------------------

VALUES = st.one_of(st.floats(-1e6, 1e6), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-10, 10), JUNK)
BETAS = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.999, float(np.nextafter(1.0, 0.0))]),
                  st.floats(0, 1, exclude_max=True), st.sampled_from([1.0, -0.1, 2]), JUNK)


class EWAMachine(TwinMachine):
    """Updates, resets and assignments; every value is compared with an independent
    computation, and with the array functions while ``beta`` has not changed since a reset."""

    @initialize(beta=st.floats(0, 1, exclude_max=True), bias_correction=st.booleans(),
                dtype=st.sampled_from([np.float32, np.float64]))
    def setup(self, beta, bias_correction, dtype):
        self.avg = fastopt.EWA(beta, bias_correction, dtype)
        self.dt = np.dtype(dtype).type
        self.beta, self.bc = beta, bias_correction
        self.v, self.count, self.value = self.dt(0), 0, None
        self.history, self.one_beta = [], True  # values since reset; one beta all along

    @rule(value=VALUES)
    @counted
    def update(self, value):
        got = outcome(lambda: self.avg.update(value))
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating,
                                                                          np.integer)):
            assert isinstance(got, Raised) and got.type is TypeError, (value, got)
            return
        self.count += 1
        with np.errstate(all="ignore"):
            x = self.dt(float(value))
            self.v = self.dt(self.dt(self.beta) * self.v) + self.dt(
                self.dt(1 - self.beta) * x)
            v = self.v / self.dt(1 - math.pow(self.beta, self.count)) if self.bc else self.v
        self.value = float(v)
        self.history.append(x)
        assert_same_bits(np.float64(got), np.float64(self.value), "update")
        if self.one_beta:
            for ewa in (fastopt.ewa, fastopt.reference.ewa):
                series = ewa(np.array(self.history, self.dt), self.beta, self.bc)
                assert_same_bits(np.float64(float(series[-1])), np.float64(self.value),
                                 ewa.__module__)

    @rule(beta=BETAS)
    @counted
    def assign_beta(self, beta):
        got = outcome(lambda: setattr(self.avg, "beta", beta))
        if not isinstance(got, Raised):
            self.beta = float(beta)
            self.one_beta = self.one_beta and not self.count
        else:
            assert got.type in (TypeError, ValueError)

    @rule(value=BOOLS)
    @counted
    def assign_bias_correction(self, value):
        got = outcome(lambda: setattr(self.avg, "bias_correction", value))
        if isinstance(value, (bool, np.bool_)):
            assert not isinstance(got, Raised)
            self.bc = bool(value)  # the value at update k depends on the bc of that moment only
        else:
            assert isinstance(got, Raised) and got.type is TypeError

    @rule(name=st.sampled_from(["dtype", "count", "value"]), value=JUNK)
    @counted
    def assign_read_only(self, name, value):
        got = outcome(lambda: setattr(self.avg, name, value))
        assert isinstance(got, Raised) and got.type is AttributeError

    @rule()
    @counted
    def reset(self):
        self.avg.reset()
        self.v, self.count, self.value = self.dt(0), 0, None
        self.history, self.one_beta = [], True

    @invariant()
    def same_state(self):
        if not hasattr(self, "avg"):
            return
        assert (self.avg.count, self.avg.beta, self.avg.bias_correction) == (
            self.count, self.beta, self.bc)
        assert self.avg.dtype == np.dtype(self.dt)
        if self.value is None:
            assert self.avg.value is None
        else:
            assert_same_bits(np.float64(self.avg.value), np.float64(self.value), "value")


TestEWA = as_test(EWAMachine, examples=60)


# --- Optimizers: fastopt next to fastopt.reference ----------------------------------------

OPT_SHAPES = {"W1": (7, 3), "b1": (7, 1), "W2": (2, 7)}
OPT_CLASSES = {"SGD": dict(momentum=0.9), "Momentum": dict(nesterov=True),
               "RMSProp": dict(centered=True, momentum=0.5), "Adam": dict(amsgrad=True),
               "AdamW": dict(), "Adagrad": dict(lr_decay=0.01)}
# (attribute, strategy of values, valid and invalid)
OPT_ASSIGNMENTS = [
    ("lr", st.one_of(st.sampled_from([0.0, 1e-3, 0.1, -1.0, math.inf, "0.1", None]),
                     st.builds(fastopt.schedules.ExponentialDecay, st.sampled_from([0.01, 0.1]),
                               st.sampled_from([0.5, 0.9]), st.integers(1, 5)))),
    ("t", st.sampled_from([0, 1, 5, 200, -1, 2.5, "3", True])),
    ("nonfinite", st.sampled_from(["propagate", "raise", "skip", "Raise", None])),
    ("max_grad_norm", st.sampled_from([None, 0.5, 10.0, 0.0, -1.0, math.nan])),
    ("weight_decay", st.sampled_from([0.0, 0.01, -0.1, math.inf])),
    ("maximize", st.sampled_from([False, True, 1, "yes"])),
    ("beta1", st.sampled_from([0.0, 0.5, 0.9, 1.0, math.nan])),
    ("momentum", st.sampled_from([0.0, 0.5, 0.9, -0.5])),
    ("amsgrad", st.sampled_from([False, True])),
    ("centered", st.sampled_from([False, True])),
    ("eps", st.sampled_from([1e-8, 0.0, 1e-3])),
    ("skipped", st.sampled_from([0, 3, -2])),
]


def _opt_dtypes():
    """float32, float64, and the 16-bit formats (stepped through float32 masters, issue 24)
    where ml_dtypes is installed (float16 alone otherwise)."""
    dtypes = [np.float32, np.float64, np.float16]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return dtypes + [ml_dtypes.bfloat16]


class OptimizerMachine(TwinMachine):
    """An optimizer of each class over dict, list or packed parameters (float32, float64, or
    16-bit through float32 masters), stepped next to its reference twin with gradients that may
    hold inf/NaN or be malformed, loss-scaled or not, through attribute assignments (valid,
    invalid, fixed), save/load round trips and corrupted files."""

    @initialize(name=st.sampled_from(sorted(OPT_CLASSES)),
                structure=st.sampled_from(["dict", "list", "packed"]),
                dtype=st.sampled_from(_opt_dtypes()), seed=st.integers(0, 3))
    @counted
    def build(self, name, structure, dtype, seed):
        rng = np.random.default_rng(seed)
        values = {k: rng.standard_normal(s).astype(dtype) for k, s in OPT_SHAPES.items()}
        self.structure, self.dtype, self.rng = structure, dtype, rng
        self.half = np.dtype(dtype).itemsize == 2
        master = {"master_dtype": np.float32} if self.half else {}
        self.opts = []
        for module in (fastopt, fastopt.reference):
            params = {k: v.copy() for k, v in values.items()}
            if structure == "packed":
                params = fastopt.pack(params)
            elif structure == "list":
                params = list(params.values())
            self.opts.append(getattr(module, name)(params, lr=0.01, **OPT_CLASSES[name],
                                                   **master))
        self.files = 0

    def grads(self, opt, values):
        if self.structure == "list":
            return list(values.values())
        if self.structure == "packed":
            packed = fastopt.pack_like(opt._packed)
            packed.update(values)
            return packed
        return values

    @rule(data=st.data(), special=st.sampled_from([None, np.nan, np.inf, "shape", "dtype"]),
          scaling=st.sampled_from([{}, {"grad_scale": 1024.0}, {"grad_scale": 3.0},
                                   {"found_inf": True}, {"found_inf": np.array([0.0])},
                                   {"grad_scale": 0.0}, {"found_inf": "no"}]))
    @counted
    def step(self, data, special, scaling):
        values = {k: (self.rng.standard_normal(s) * 3).astype(self.dtype)
                  for k, s in OPT_SHAPES.items()}
        if special == "shape":
            values["b1"] = values["b1"].reshape(1, 7)
        elif special == "dtype":
            values["W2"] = values["W2"].astype(np.float32 if self.dtype == np.float16
                                               else np.float16)
        elif special is not None:
            values["W1"][1, 2] = special
        before = [snapshot(*self.opts[i]._params) for i in range(2)]
        got, want = outcomes(
            lambda: self.opts[0].step(self.grads(self.opts[0], values), **scaling),
            lambda: self.opts[1].step(self.grads(self.opts[1], values), **scaling))
        if special == "dtype" and self.structure == "packed":
            return  # pack_like's update converts: both step, checked by the invariant
        assert_same_outcome(got, want, f"step {special}")
        if isinstance(got, Raised) or got is False:
            for i in range(2):
                assert snapshot(*self.opts[i]._params) == before[i], "written on refusal"

    @rule(assignment=st.sampled_from(OPT_ASSIGNMENTS), data=st.data())
    @counted
    def assign(self, assignment, data):
        name, values = assignment
        value = data.draw(values)

        def setter(opt):
            return lambda: setattr(opt, name, value)
        got, want = outcomes(setter(self.opts[0]), setter(self.opts[1]))
        assert_same_outcome(got, want, f"{name} = {value!r}")

    @rule(corrupt=st.sampled_from([None, "truncate", "flip", "hyper"]))
    @counted
    def save_and_load(self, corrupt):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "opt.npz")
            self.opts[0].save(path)
            if corrupt == "truncate":
                data = open(path, "rb").read()
                open(path, "wb").write(data[:len(data) // 2])
            elif corrupt == "flip":
                data = bytearray(open(path, "rb").read())
                data[len(data) // 2] ^= 0xFF
                open(path, "wb").write(bytes(data))
            elif corrupt == "hyper":
                with np.load(path) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                arrays["meta.hyperparameters"] = np.array(
                    str(arrays["meta.hyperparameters"]).replace('"eps"', '"eps_"'))
                np.savez(path, **arrays)
            before = [snapshot(*opt._params) for opt in self.opts]
            hyper = [opt.hyperparameters for opt in self.opts]
            got, want = outcomes(lambda: self.opts[0].load(path),
                                 lambda: self.opts[1].load(path))
            if corrupt is None:
                assert got is None and want is None, (got, want)
            else:
                # A flipped byte may land in padding and load fine; then both loaded it.
                assert type(got) is type(want), (got, want)
                if isinstance(got, Raised):
                    for i, opt in enumerate(self.opts):
                        assert snapshot(*opt._params) == before[i], "a rejected file wrote"
                        assert opt.hyperparameters == hyper[i]

    @invariant()
    def same_bits(self):
        if not hasattr(self, "opts"):
            return
        fast, ref = self.opts
        assert fast.t == ref.t and fast.skipped == ref.skipped
        assert fast.hyperparameters == ref.hyperparameters
        assert fast.state_names == ref.state_names
        if self.half:
            # 16-bit parameters compared as their exact float32 values (NaN positions, not
            # payloads: docs/contract.md §1), and the masters they are rounded from.
            from fastopt import _half
            kind = _half.kind_of(self.dtype)
            for a, b in zip(fast._params, ref._params):
                assert_same_bits(_half.widen(_half.bits(a), kind),
                                 _half.widen(_half.bits(b), kind), "param")
            for a, b in zip(fast.master.values() if isinstance(fast.master, dict)
                            else fast.master, ref.master.values()
                            if isinstance(ref.master, dict) else ref.master):
                assert_same_bits(a, b, "master")
        for a, b in zip(fast._params, ref._params):
            if not self.half:
                assert_same_bits(a, b, "param")
        for s in fast.state_names:
            for a, b in zip(fast._state[s], ref._state[s]):
                assert_same_bits(a, b, s)


TestOptimizer = as_test(OptimizerMachine, examples=60)


def test_step_counter_counts():
    """The counter the summary prints is fed (the machines above ran first in this module)."""
    if not STEPS:
        pytest.skip("run with the machines to count their steps")
    assert all(n > 0 for n in STEPS.values())
