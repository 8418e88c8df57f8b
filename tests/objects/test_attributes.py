"""Attributes keep their promise (issue item 7): "validated on assignment" means that a name an
object does not have is refused too, rather than stored and ignored. ``opt.learning_rate = 0.5``,
``opt.betas = (0.9, 0.99)``, ``mb.seed = 123``, ``mb.batchsize = 2``, ``EWA().betta = .1`` and
``sched.decay_step = 5`` were accepted and changed nothing; ``del s.initial_lr`` then
``s.initial_lr = -5`` bypassed a schedule's immutability; a parameter made read-only after the
optimizer was built was still written.
"""
import copy
import pickle
import re

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import schedules as S
from fastopt._optim import OPTIMIZERS

MODULES = {"fastopt": fastopt, "reference": fastopt.reference}
CLASSES = [c.__name__ for c in OPTIMIZERS]


@pytest.fixture(params=sorted(MODULES))
def mod(request):
    return MODULES[request.param]


def course_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((5, 2)).astype(dtype), "b1": np.zeros((5, 1), dtype),
            "W2": rng.standard_normal((1, 5)).astype(dtype), "b2": np.zeros((1, 1), dtype)}


def grads_like(params):
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}


def snapshot(obj):
    """Everything an object holds, to compare before and after a refused assignment."""
    # Not state: the thread guard (a lock) and the epoch's owner (a weak reference).
    return pickle.dumps({k: v for k, v in vars(obj).items() if not k.startswith("_table")
                         and not k.startswith("_calls") and k != "_packed_call"
                         and k not in ("_busy", "_owner")})


# --- the examples ---------------------------------------------------------------------

@pytest.mark.parametrize("make,name,value,pattern", [
    (lambda m: m.Adam([np.ones(3)]), "learning_rate", 0.5, "Adam has no attribute "
     "'learning_rate': the learning rate is lr"),
    (lambda m: m.AdamW([np.ones(3)]), "betas", (0.9, 0.99), "the betas are beta1 and beta2"),
    (lambda m: m.SGD([np.ones(3)]), "momentun", 0.9, "did you mean 'momentum'"),
    (lambda m: m.RMSProp([np.ones(3)]), "epsilon", 1e-6, "the attributes that can be assigned "
     "are beta, eps, lr, max_grad_norm, maximize, momentum, nonfinite, skipped, t, "
     "weight_decay$"),
    (lambda m: m.MiniBatches(np.ones((2, 7)), batch_size=2), "seed", 123,
     "to reseed, assign rng = np.random.default_rng"),
    (lambda m: m.MiniBatches(np.ones((2, 7)), batch_size=2), "batchsize", 2,
     "did you mean 'batch_size'"),
    (lambda m: m.EWA(), "betta", 0.1, "did you mean 'beta'"),
])
def test_unknown_names_are_refused(mod, make, name, value, pattern):
    obj = make(mod)
    before = snapshot(obj)
    with pytest.raises(AttributeError, match=pattern):
        setattr(obj, name, value)
    assert not hasattr(obj, name)
    assert snapshot(obj) == before


@pytest.mark.parametrize("sched", [
    S.Constant(0.1), S.InverseTimeDecay(0.1, 0.5), S.ExponentialDecay(0.1, 0.5, decay_steps=3),
    S.PiecewiseConstant([5], [0.1, 0.01]), S.CosineDecay(0.1, decay_steps=10),
    S.LinearWarmup(S.CosineDecay(0.1, 10), warmup_steps=5)], ids=lambda s: type(s).__name__)
def test_schedules_refuse_unknown_names_and_deletion(sched):
    before = repr(sched), dict(vars(sched))
    with pytest.raises(AttributeError, match="schedules are immutable"):
        sched.decay_step = 5
    for field in sched._fields:
        with pytest.raises(AttributeError, match="cannot be deleted: schedules are immutable"):
            delattr(sched, field)
        with pytest.raises(AttributeError, match="cannot be assigned: schedules are immutable"):
            setattr(sched, field, getattr(sched, field))
    assert (repr(sched), dict(vars(sched))) == before


def test_did_you_mean_on_a_schedule_field():
    with pytest.raises(AttributeError, match="did you mean 'decay_steps'"):
        S.CosineDecay(0.1, 10).decay_step = 5


def test_del_cannot_bypass_a_schedules_immutability():
    sched = S.InverseTimeDecay(0.1, 1.0)
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del sched.initial_lr
    with pytest.raises(AttributeError, match="cannot be assigned"):
        sched.initial_lr = -5
    assert sched.initial_lr == 0.1 and sched(0) == 0.1


def test_a_custom_schedule_sets_its_fields_in_its_constructor_then_is_immutable():
    class Halving(S.Schedule):
        _fields = ("initial_lr", "every")

        def __init__(self, initial_lr, every):
            self.initial_lr = initial_lr
            self.every = every
            self.note = "any name while it is being built"

        def _at(self, step):
            return self.initial_lr * 0.5 ** (step // self.every)

    class Quartering(Halving):
        def __init__(self, initial_lr):
            super().__init__(initial_lr, 2)
            self.every = 1  # still being built: a subclass may set a field again

    sched = Quartering(1.0)
    assert sched(2) == 0.25 and sched.note
    with pytest.raises(AttributeError, match="cannot be assigned"):
        sched.every = 5
    with pytest.raises(AttributeError, match="Quartering has no attribute 'nte'.*'note'"):
        sched.nte = 1
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del sched.note
    sched._cache = {}  # private names stay the implementation's own
    # Copies are built objects too.
    for twin in (copy.deepcopy(sched), pickle.loads(pickle.dumps(S.CosineDecay(0.1, 10)))):
        with pytest.raises(AttributeError):
            twin.initial_lr = 3.0


def test_packed_arrays_refuse_unknown_names():
    packed = fastopt.pack(course_params())
    with pytest.raises(AttributeError, match="PackedArrays has no attribute 'bufer': did you "
                                             "mean 'buffer'"):
        packed.bufer = np.zeros(3)
    with pytest.raises(AttributeError, match="^buffer is read-only"):
        packed.buffer = np.zeros(3)
    with pytest.raises(AttributeError, match="a method of PackedArrays"):
        packed.update = None


# --- every public object, every class ---------------------------------------------------------

def public_objects(mod):
    params = course_params()
    yield from (getattr(mod, name)(params) for name in CLASSES)
    yield mod.MiniBatches(np.ones((3, 10)), np.ones(10), batch_size=4, seed=0)
    yield mod.EWA(beta=0.5)
    yield fastopt.pack(params)


def test_every_public_object_refuses_a_new_public_name_and_keeps_private_ones(mod):
    for obj in public_objects(mod):
        kind = type(obj).__name__
        for name in ("velocity_of_light", "lrate", "Beta"):
            with pytest.raises(AttributeError, match=f"^{kind} has no attribute {name!r}"):
                setattr(obj, name, 1)
            assert not hasattr(obj, name)
        if not isinstance(obj, fastopt.PackedArrays):  # __slots__: no private extras either
            obj._extension = 1  # private names: what a subclass or a later feature adds
            assert obj._extension == 1


def test_every_public_attribute_resists_deletion(mod):
    for obj in public_objects(mod):
        names = [n for n in dir(type(obj)) if not n.startswith("_")]
        for name in names:
            before = getattr(obj, name, None)
            with pytest.raises(AttributeError, match="cannot be deleted"):
                delattr(obj, name)
            after = getattr(obj, name, None)
            assert after is before or callable(after) or after == before


@pytest.mark.parametrize("cls", CLASSES)
def test_methods_and_read_only_properties_cannot_be_assigned(mod, cls):
    opt = getattr(mod, cls)(course_params())
    for name in ("step", "state_dict", "save"):
        with pytest.raises(AttributeError, match=f"^{name} is a method of {cls}"):
            setattr(opt, name, lambda *a: None)
    for name in ("last_grad_norm", "hyperparameters", "params", "state_names"):
        with pytest.raises(AttributeError, match=f"^{name} is a read-only property of {cls}"):
            setattr(opt, name, None)


@pytest.mark.parametrize("cls", CLASSES)
def test_hyperparameters_stay_assignable_with_validation(mod, cls):
    opt = getattr(mod, cls)(course_params())
    for name, spec in opt._hyper_attributes().items():
        if spec.fixed:
            continue
        setattr(opt, name, getattr(opt, name))  # the same value: accepted
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="^lr must be finite and >= 0"):
        opt.lr = -1.0
    opt.t, opt.skipped = 3, 1
    assert (opt.t, opt.skipped, opt.lr) == (3, 1, 0.5)


def test_a_subclass_extends_the_assignable_names():
    class Tagged(fastopt.SGD):
        _settable = frozenset({"tag"})

    opt = Tagged([np.ones(2)], lr=0.1)
    opt.tag = "run 7"
    assert opt.tag == "run 7"
    with pytest.raises(AttributeError, match="did you mean 'tag'"):
        opt.tags = "x"
    with pytest.raises(AttributeError, match="assigned are .*, tag, weight_decay$"):
        opt.colour = "x"


# --- a parameter made read-only after construction ---------------------------------------------

def read_only_targets(opt, packed):
    """(name in the message, array to make read-only) for each array a step writes."""
    w2, b1 = ("W2", "b1") if opt._dict_params else (2, 1)
    yield f"params[{w2!r}]", opt._params[2]
    yield f"state({opt.state_names[0]!r})[{b1!r}]", opt.state(opt.state_names[0])[b1]
    if packed:
        yield "params.buffer", opt._packed.buffer


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("layout", ["dict", "list", "packed"])
def test_a_parameter_made_read_only_after_construction_is_refused_at_the_next_step(mod, cls,
                                                                                  layout):
    base = course_params(np.float32)
    params = {"dict": base, "list": list(base.values()), "packed": fastopt.pack(base)}[layout]
    kwargs = {"momentum": 0.9} if cls == "SGD" else {}
    opt = getattr(mod, cls)(params, lr=0.1, **kwargs)
    grads = grads_like(base)
    if layout == "list":
        grads = list(grads.values())
    elif layout == "packed":
        grads = fastopt.pack(grads)
    assert opt.step(grads)
    for name, arr in read_only_targets(opt, layout == "packed"):
        before = opt.state_dict()
        arr.flags.writeable = False
        with pytest.raises(ValueError, match=f"^{re.escape(name)} was made read-only after "
                                             f"the optimizer was built"):
            opt.step(grads)
        after = opt.state_dict()
        assert after["t"] == before["t"] == 1
        for a, b in zip(after["params"], before["params"]):
            assert a.tobytes() == b.tobytes()
        for s in opt.state_names:
            for a, b in zip(after["state"][s], before["state"][s]):
                assert a.tobytes() == b.tobytes()
        arr.flags.writeable = True
        assert opt.step(grads) and opt.t == 2
        opt.t = 1
