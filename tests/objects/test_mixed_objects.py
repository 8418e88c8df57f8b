"""16-bit parameters through float32 masters in the optimizer objects (issue 24, docs/contract.md
§14.2): ``master_dtype=np.float32``, loss scaling (``step(grads, grad_scale=, found_inf=)``),
checkpoints, copies and refusals.

Parity: fastopt's classes and fastopt.reference's (which differ only in ``_ops``) write the same
master bits (uint32 views), state bits and 16-bit parameter bits (uint16 views), for every
optimizer x format (float16, bfloat16 as ml_dtypes and as uint16 bits) x dict/list/packed x
options, over several steps; one rule also against a plain-NumPy oracle (widen, the float32
reference step, narrow).
"""
import copy
import math
import pickle

import numpy as np
import pytest

import fastopt
import fastopt.reference
from fastopt import _half
from fastopt._optim import OPTIMIZERS

ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = pytest.mark.bits

SHAPES = {"W1": (6, 5), "b1": (6, 1), "W2": (1, 6)}
FORMATS = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
           "uint16": np.dtype(np.uint16)}
# Per class: options exercising its state (momentum, centered, amsgrad, decay).
CLASSES = {"SGD": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
           "Momentum": dict(lr=0.05, beta=0.8),
           "RMSProp": dict(lr=1e-2, centered=True, momentum=0.5),
           "Adam": dict(lr=1e-2, amsgrad=True, weight_decay=1e-2),
           "AdamW": dict(lr=1e-2, weight_decay=0.1),
           "Adagrad": dict(lr=0.1, lr_decay=0.01)}
STEPS = 4
S = 2.0 ** 10


def to_format(x, fmt):
    """float32 values as an array of ``fmt`` (rounded to nearest even)."""
    x = np.asarray(x, np.float32)
    if fmt == "uint16":
        return _half.narrow(x, "bfloat16")
    return x.astype(FORMATS[fmt])


def kind(fmt):
    return "float16" if fmt == "float16" else "bfloat16"


def values(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def structure(arrays, how, like=None):
    """``arrays`` (a dict) as a dict, a list or a PackedArrays (``like``'s layout for grads)."""
    if how == "packed":
        if like is None:
            return fastopt.pack(arrays)
        packed = fastopt.pack_like(like)
        packed.update(arrays)
        return packed
    return list(arrays.values()) if how == "list" else dict(arrays)


def gradient(step, fmt, scale=1.0, special=None):
    g = {k: (v * 3 * scale).astype(np.float32) for k, v in values(100 + step).items()}
    if special is not None:
        g["W1"][2, 3] = special
    return {k: to_format(v, fmt) for k, v in g.items()}


def build(module, name, fmt, how, **options):
    params = structure({k: to_format(v, fmt) for k, v in values().items()}, how)
    kwargs = dict(CLASSES[name], **options)
    return params, getattr(module, name)(params, master_dtype=np.float32, **kwargs)


def bits_of(opt):
    """Everything a step writes, as integer views: 16-bit params, masters, state; counters."""
    return ([_half.bits(p).copy() for p in opt._params],
            [m.view(np.uint32).copy() for m in opt._masters],
            {s: [a.view(np.uint32).copy() for a in opt._state[s]] for s in opt.state_names},
            opt.t, opt.skipped, opt.last_grad_norm)


def assert_same(a, b):
    pa, ma, sa, *ca = a
    pb, mb, sb, *cb = b
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(ma, mb):
        np.testing.assert_array_equal(x, y)
    assert sa.keys() == sb.keys()
    for s in sa:
        for x, y in zip(sa[s], sb[s]):
            np.testing.assert_array_equal(x, y)
    assert ca[:2] == cb[:2]
    assert (ca[2] == cb[2]) or (ca[2] != ca[2] and cb[2] != cb[2])


OPTIONS = {
    "plain": (dict(), {}),
    "clip": (dict(max_grad_norm=1.0), {}),
    "skip": (dict(nonfinite="skip"), {"special": {1: math.inf, 2: math.nan}}),
    "loss-scale": (dict(), {"grad_scale": S}),
    "loss-scale-clip": (dict(max_grad_norm=1.0), {"grad_scale": 3.0}),
    "found-inf": (dict(), {"grad_scale": S, "found_inf": {1: True, 3: np.array([1.0])}}),
}


def run(module, name, fmt, how, option, steps=STEPS):
    options, step_args = OPTIONS[option]
    params, opt = build(module, name, fmt, how, **options)
    results = []
    for step in range(steps):
        scale = step_args.get("grad_scale", 1.0)
        special = step_args.get("special", {}).get(step)
        grads = structure(gradient(step, fmt, scale, special), how, params)
        kwargs = {}
        if "grad_scale" in step_args:
            kwargs["grad_scale"] = scale
        found = step_args.get("found_inf", {}).get(step)
        if "found_inf" in step_args:
            kwargs["found_inf"] = False if found is None else found
        results.append(opt.step(grads, **kwargs))
    return opt, results


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("how", ["dict", "list", "packed"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_fast_and_reference_write_the_same_bits(name, fmt, how, option):
    fast, got = run(fastopt, name, fmt, how, option)
    ref, want = run(fastopt.reference, name, fmt, how, option)
    assert got == want
    assert_same(bits_of(fast), bits_of(ref))
    # The 16-bit parameters are always the masters rounded.
    for p, m, k in zip(fast._params, fast._masters, fast._kinds):
        np.testing.assert_array_equal(_half.bits(p), _half.narrow(m, k))
    if option in ("skip", "found-inf"):
        assert got == [True, False, False, True] if option == "skip" else [
            True, False, True, False]
        assert fast.t == 2 and fast.skipped == 2


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSProp"])
@pytest.mark.parametrize("how", ["dict", "packed"])
def test_parity_on_every_simd_variant_and_thread_count(fast_config, name, how):
    for fmt in ("float16", "bfloat16"):
        for option in ("clip", "loss-scale-clip"):
            fast, _ = run(fastopt, name, fmt, how, option)
            ref, _ = run(fastopt.reference, name, fmt, how, option)
            assert_same(bits_of(fast), bits_of(ref))


def test_formats_of_one_optimizer_may_differ_and_dict_list_packed_agree():
    # A dict mixing float16 and bfloat16 arrays: each array is stepped in its own format.
    v = values()
    mixed = {"W1": to_format(v["W1"], "float16"), "b1": to_format(v["b1"], "bfloat16"),
             "W2": to_format(v["W2"], "uint16")}
    opt = fastopt.Adam(mixed, lr=0.01, master_dtype=np.float32)
    ref_params = {k: a.copy() for k, a in mixed.items()}
    ref = fastopt.reference.Adam(ref_params, lr=0.01, master_dtype=np.float32)
    g = {k: np.full(a.shape, 0.5, np.float32) for k, a in mixed.items()}
    grads = {k: a.dtype.type(0) + to_format(g[k], fmt) for (k, a), fmt in
             zip(mixed.items(), ("float16", "bfloat16", "uint16"))}
    assert opt.step(grads) and ref.step(grads)
    assert_same(bits_of(opt), bits_of(ref))
    # bfloat16 parameters take ml_dtypes or uint16 gradients alike.
    for how in ("dict", "list", "packed"):
        a, _ = run(fastopt, "Adam", "bfloat16", how, "clip")
        b, _ = run(fastopt, "Adam", "uint16", how, "clip")
        assert_same(bits_of(a), bits_of(b))
        if how != "dict":
            c, _ = run(fastopt, "Adam", "bfloat16", "dict", "clip")
            assert_same(bits_of(a), bits_of(c))


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_adam_against_a_plain_numpy_oracle(module, fmt):
    """Widen, the float32 reference step on the master (gradient divided by a power-of-two loss
    scale in float32: g/S, which equals the kernels' g*(1/S) bit for bit), narrow."""
    v = values()
    params = {k: to_format(a, fmt) for k, a in v.items()}
    opt = module.Adam(params, lr=1e-2, weight_decay=1e-2, master_dtype=np.float32)
    master = {k: _half.widen(_half.bits(a), kind(fmt)).reshape(a.shape) for k, a in
              params.items()}
    m = {k: np.zeros_like(a) for k, a in master.items()}
    s = {k: np.zeros_like(a) for k, a in master.items()}
    for step in range(STEPS):
        grads = gradient(step, fmt, S)
        assert opt.step(grads, grad_scale=S)
        for k in master:
            g32 = _half.widen(_half.bits(grads[k]), kind(fmt)).reshape(master[k].shape)
            fastopt.reference.adam_update(master[k], g32 / np.float32(S), m[k], s[k], step + 1,
                                          lr=1e-2, weight_decay=1e-2)
    for k in master:
        np.testing.assert_array_equal(opt.master[k].view(np.uint32), master[k].view(np.uint32))
        np.testing.assert_array_equal(opt.state("m")[k], m[k])
        np.testing.assert_array_equal(_half.bits(params[k]), _half.narrow(master[k], kind(fmt)))


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_power_of_two_loss_scale_is_a_division_bit_for_bit(module, cls, dtype):
    """grad_scale=2**16 on S*g steps exactly as the gradient divided by S does (float params;
    the 16-bit case is the oracle test above); both are the correctly rounded g*2**-16."""
    cls = getattr(module, cls.__name__)
    outs = []
    for scaled in (True, False):
        params = {k: a.astype(dtype) for k, a in values().items()}
        opt = cls(params, lr=0.01, max_grad_norm=2.0)
        for step in range(STEPS):
            g = {k: (a * 3).astype(dtype) for k, a in values(100 + step).items()}
            if scaled:
                opt.step({k: a * dtype(2.0 ** 16) for k, a in g.items()}, grad_scale=2 ** 16)
            else:
                opt.step(g)
        outs.append((params, opt))
    (p1, o1), (p2, o2) = outs
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    assert o1.last_grad_norm == o2.last_grad_norm


# --- refusals: raised before anything is written -------------------------------------------------

def test_16_bit_params_without_master_dtype_are_refused():
    for fmt in FORMATS:  # uint16 means bfloat16 bits: refused the same way
        a = to_format(np.ones(3), fmt)
        with pytest.raises(TypeError, match="^params\\[0\\] has dtype .*Pass master_dtype="
                                            "np.float32"):
            fastopt.Adam([a])
        with pytest.raises(TypeError, match="256 \\+ 1 == 256"):
            fastopt.reference.SGD({"w": a})
    with pytest.raises(TypeError, match="Pass master_dtype=np.float32"):
        fastopt.Adam(fastopt.pack({"w": np.ones(3, np.float16)}))


def test_master_dtype_with_float_params_and_other_master_dtypes_are_refused():
    for dtype in (np.float32, np.float64):
        with pytest.raises(TypeError, match="is its own master: build the optimizer without"):
            fastopt.Adam([np.ones(3, dtype)], master_dtype=np.float32)
    for bad in (np.float64, np.float16, "float64", 1, True):
        with pytest.raises(TypeError, match="^master_dtype must be None or np.float32"):
            fastopt.Adam([np.ones(3, np.float16)], master_dtype=bad)
    opt = fastopt.Adam([np.ones(3, np.float16)], master_dtype="float32")
    assert opt.master_dtype == np.float32
    with pytest.raises(TypeError, match="16-bit float format"):
        fastopt.Adam([[1.0, 2.0]], master_dtype=np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        fastopt.Adam([np.ones((3, 4), np.float16)[:, ::2]], master_dtype=np.float32)
    ro = np.ones(3, np.float16)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastopt.Adam([ro], master_dtype=np.float32)


def _bad_steps(fmt):
    """(description, step arguments, exception, message) of refused steps."""
    good = gradient(0, fmt)
    wrong_format = {"float16": np.float32, "bfloat16": np.float16, "uint16": np.float32}[fmt]
    bad_dtype = dict(good, W1=good["W1"].view(np.uint16).astype(wrong_format))
    fix = "ml_dtypes.bfloat16 or its uint16 bits" if fmt != "float16" else "np.float16"
    cases = [
        ("dtype", (bad_dtype,), {}, TypeError, f"must be {kind(fmt)} too \\({fix}\\)"),
        ("shape", (dict(good, b1=good["b1"].reshape(1, 6)),), {}, ValueError, "has shape"),
        ("strided", (dict(good, W1=np.repeat(good["W1"], 2, axis=1)[:, ::2]),), {},
         ValueError, "C-contiguous"),
        ("list", ([1, 2],), {}, TypeError, "must be a dict"),
        ("grad_scale=0", (good,), dict(grad_scale=0.0), ValueError, "^grad_scale must be"),
        ("grad_scale=-1", (good,), dict(grad_scale=-1.0), ValueError, "^grad_scale must be"),
        ("grad_scale=nan", (good,), dict(grad_scale=math.nan), ValueError, "^grad_scale must"),
        ("grad_scale=inf", (good,), dict(grad_scale=math.inf), ValueError, "^grad_scale must"),
        ("grad_scale=str", (good,), dict(grad_scale="2"), TypeError, "^grad_scale must"),
        ("grad_scale=True", (good,), dict(grad_scale=True), TypeError, "^grad_scale must"),
        ("found_inf=str", (good,), dict(found_inf="yes"), TypeError, "^found_inf must"),
        ("found_inf=2 items", (good,), dict(found_inf=np.zeros(2)), TypeError,
         "^found_inf must"),
        ("found_inf=object", (good,), dict(found_inf=object()), TypeError, "^found_inf must"),
        ("found_inf=str array", (good,), dict(found_inf=np.array("1")), TypeError,
         "^found_inf must"),
        ("nonfinite raise", (gradient(0, fmt, special=math.inf),), {},
         fastopt.NonFiniteGradientError, "nothing was updated"),
    ]
    # A gradient that is the optimizer's own parameter array (overlap).
    return cases


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_refused_step_writes_nothing(module, fmt):
    params, opt = build(module, "Adam", fmt, "dict", nonfinite="raise", max_grad_norm=1.0)
    opt.step(gradient(5, fmt))
    before = bits_of(opt)
    for what, args, kwargs, exc, message in _bad_steps(fmt):
        with pytest.raises(exc, match=message):
            opt.step(*args, **kwargs)
        assert_same(bits_of(opt), before)
    with pytest.raises(ValueError, match="one of the optimizer's own arrays|shares memory"):
        opt.step(dict(gradient(0, fmt), W1=params["W1"]))
    assert_same(bits_of(opt), before)
    with pytest.raises(ValueError, match="shares memory"):
        opt.step(dict(gradient(0, fmt), W1=params["W1"][:]))
    assert_same(bits_of(opt), before)
    params["b1"].flags.writeable = False
    with pytest.raises(ValueError, match="made read-only after the optimizer was built"):
        opt.step(gradient(0, fmt))
    params["b1"].flags.writeable = True
    opt.master["W2"].flags.writeable = False
    with pytest.raises(ValueError, match="master\\['W2'\\] was made read-only"):
        opt.step(gradient(0, fmt))
    opt.master["W2"].flags.writeable = True
    assert_same(bits_of(opt), before)
    assert opt.step(gradient(0, fmt))


@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_found_inf_skips_the_whole_step(module, dtype):
    master = np.float32 if dtype == np.float16 else None
    params = fastopt.pack({k: a.astype(dtype) for k, a in values().items()})
    opt = module.Adam(params, lr=0.1, master_dtype=master, nonfinite="raise")
    grads = fastopt.pack_like(params)
    grads.update({k: a.astype(dtype) for k, a in values(7).items()})
    assert opt.step(grads)
    before = params.buffer.copy(), opt.state("m")["W1"].copy()
    # found_inf decides before the gradients are checked for inf (nonfinite="raise" included).
    grads["W1"][0, 0] = np.inf
    for found in (True, np.bool_(True), 1, 0.5, math.nan, np.array(1.0), np.array([1]),
                  np.ones((1, 1), np.float32)):
        assert opt.step(grads, grad_scale=8.0, found_inf=found) is False
    assert opt.t == 1 and opt.skipped == 8
    np.testing.assert_array_equal(params.buffer.view(np.uint8), before[0].view(np.uint8))
    np.testing.assert_array_equal(opt.state("m")["W1"], before[1])
    grads["W1"][0, 0] = 1
    for found in (False, 0, 0.0, np.array(0.0), np.array([False])):
        assert opt.step(grads, found_inf=found) is True
    assert opt.t == 6 and opt.skipped == 8


# --- attributes, accessors -----------------------------------------------------------------------

def test_master_dtype_is_read_only_and_master_is_readable():
    params, opt = build(fastopt, "Adam", "bfloat16", "packed")
    assert opt.master_dtype == np.dtype(np.float32)
    with pytest.raises(AttributeError, match="^master_dtype is read-only on Adam"):
        opt.master_dtype = None
    with pytest.raises(AttributeError):
        del opt.master_dtype
    with pytest.raises(AttributeError, match="read-only property"):
        opt.master = {}
    master = opt.master
    assert list(master) == list(SHAPES) and all(m.dtype == np.float32 for m in master.values())
    # Widened exactly, and views of one packed float32 buffer.
    for k in SHAPES:
        np.testing.assert_array_equal(master[k], params[k].astype(np.float32))
    base = master["W1"].base
    assert all(m.base is base for m in master.values())
    assert not np.shares_memory(master["W1"], params.buffer)
    opt.step(structure(gradient(0, "bfloat16"), "packed", params))
    np.testing.assert_array_equal(params["W1"].astype(np.float32),
                                  master["W1"].astype(ml_dtypes.bfloat16).astype(np.float32))
    # A float optimizer's master is its parameters; a list stays a list.
    p = [np.ones(3)]
    assert fastopt.SGD(p).master[0] is p[0] and fastopt.SGD(p).master_dtype is None
    assert isinstance(build(fastopt, "SGD", "float16", "list")[1].master, list)
    assert "master_dtype=float32" in repr(opt)


def test_user_arrays_are_written_in_place_through_views():
    params, opt = build(fastopt, "SGD", "bfloat16", "dict")
    ids = {k: (id(a), a.__array_interface__["data"][0]) for k, a in params.items()}
    opt.step(gradient(0, "bfloat16"))
    assert {k: (id(a), a.__array_interface__["data"][0]) for k, a in params.items()} == ids
    assert all(a.dtype == ml_dtypes.bfloat16 for a in params.values())


# --- packing 16-bit arrays -----------------------------------------------------------------------

def test_pack_of_16_bit_formats():
    rng = np.random.default_rng(3)
    x32 = (rng.standard_normal(1000) * 100).astype(np.float32)
    x32[:4] = [np.nan, -np.inf, 0.0, -0.0]
    for fmt in FORMATS:
        given = to_format(x32, fmt)
        packed = fastopt.pack({"a": given})
        assert packed.buffer.dtype == FORMATS[fmt]
        np.testing.assert_array_equal(_half.bits(packed.buffer), _half.bits(given))
        # float32 values rounded to nearest even: NumPy's float16 cast, ml_dtypes' bfloat16.
        rounded = fastopt.pack({"a": x32}, dtype=FORMATS[fmt])
        np.testing.assert_array_equal(_half.bits(rounded.buffer), _half.bits(given))
    # The same format is copied bit for bit: uint16 bits into an ml_dtypes.bfloat16 buffer.
    bf = fastopt.pack({"a": np.zeros(3, ml_dtypes.bfloat16)})
    bf["a"] = np.array([0x7F81, 0xFFFF, 0x3F80], np.uint16)  # signalling NaN payloads kept
    assert _half.bits(bf.buffer).tolist() == [0x7F81, 0xFFFF, 0x3F80]
    # float64 rounded once (through float32 rounded to odd), not twice.
    tie_above = 1 + 2.0 ** -8 + 2.0 ** -40  # float32 would round it to the tie 1 + 2**-8
    assert _half.bits(fastopt.pack({"a": np.array([tie_above])},
                                   dtype=np.uint16).buffer).tolist() == [0x3F81]
    assert fastopt.pack({"a": np.array([1 + 2.0 ** -11 + 2.0 ** -40])}, dtype=np.float16
                        ).buffer.tolist() == [np.float16(1 + 2.0 ** -10)]
    with pytest.raises(ValueError, match="beyond the range of float16"):
        fastopt.pack({"a": np.array([1.0, 70000.0])}, dtype=np.float16)
    with pytest.raises(ValueError, match="beyond the range of bfloat16"):
        fastopt.pack({"a": np.array([1e39])}, dtype=ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match="mixes dtypes"):
        fastopt.pack({"a": np.ones(2, np.float16), "b": np.ones(2, np.uint16)})
    with pytest.raises(TypeError, match="^dtype must be float32, float64 or a 16-bit"):
        fastopt.pack({"a": np.ones(2)}, dtype=np.int16)
    clone = pickle.loads(pickle.dumps(bf))
    assert clone.buffer.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(_half.bits(clone.buffer), _half.bits(bf.buffer))


# --- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("module", [fastopt, fastopt.reference], ids=["fast", "reference"])
@pytest.mark.parametrize("how", ["dict", "list", "packed"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_checkpoint_round_trip_resumes_bit_for_bit(module, fmt, how, tmp_path):
    straight, _ = run(module, "Adam", fmt, how, "loss-scale-clip", steps=5)
    params, opt = build(module, "Adam", fmt, how, max_grad_norm=1.0)
    for step in range(3):
        opt.step(structure(gradient(step, fmt, 3.0), how, params), grad_scale=3.0)
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    in_memory = opt.state_dict()
    assert in_memory["master_dtype"] == "float32" and len(in_memory["master"]) == 3
    for resume in ("file", "dict"):
        params2, opt2 = build(module, "Adam", fmt, how, max_grad_norm=1.0, lr=0.5)
        for a in (params2.values() if how != "list" else params2):
            a[...] = a.dtype.type(0) if fmt != "uint16" else 0
        if resume == "file":
            opt2.load(path)
        else:
            opt2.load_state_dict(in_memory)
        assert opt2.t == 3 and opt2.lr == CLASSES["Adam"]["lr"]
        assert_same(bits_of(opt2), bits_of(opt))
        for step in range(3, 5):
            opt2.step(structure(gradient(step, fmt, 3.0), how, params2), grad_scale=3.0)
        assert_same(bits_of(opt2), bits_of(straight))


def test_checkpoint_moves_between_bfloat16_representations(tmp_path):
    opt, _ = run(fastopt, "RMSProp", "bfloat16", "dict", "clip")
    path = tmp_path / "c.npz"
    opt.save(path)
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert npz["param.0"].dtype == np.uint16 and npz["master.0"].dtype == np.float32
        assert str(npz["meta.master_dtype"]) == "float32"
    params, other = build(fastopt.reference, "RMSProp", "uint16", "dict", max_grad_norm=1.0)
    other.load(path)
    assert_same(bits_of(other), bits_of(opt))


def test_a_master_loads_over_edited_params_and_rewrites_them():
    params, opt = build(fastopt, "SGD", "float16", "dict")
    opt.step(gradient(0, "float16"))
    state = opt.state_dict()
    state["master"][0][...] = 1.0 + 2.0 ** -12  # between float16 neighbours: rounds to 1
    params["W1"][...] = 7
    opt.load_state_dict(state)
    assert (params["W1"] == 1).all() and (opt.master["W1"] == np.float32(1 + 2.0 ** -12)).all()


def test_checkpoints_of_mixed_and_plain_optimizers_do_not_cross(tmp_path):
    mixed, _ = run(fastopt, "Adam", "float16", "dict", "plain", steps=1)
    plain = fastopt.Adam({k: a.copy() for k, a in values().items()})
    plain.step({k: a.copy() for k, a in values(1).items()})
    assert "master" not in plain.state_dict() and "master_dtype" not in plain.state_dict()
    for src, dst, message in ((mixed, plain, "build this one with master_dtype=np.float32"),
                              (plain, mixed, "build this one with master_dtype=None")):
        before = bits_of(dst) if dst is mixed else [a.copy() for a in dst._params]
        with pytest.raises(ValueError, match=message):
            dst.load_state_dict(src.state_dict())
        path = tmp_path / "x.npz"
        src.save(path)
        with pytest.raises(ValueError, match=message):
            dst.load(path)
        if dst is mixed:
            assert_same(bits_of(dst), before)
        else:
            for a, b in zip(dst._params, before):
                np.testing.assert_array_equal(a, b)
    # Other formats and a missing master are refused too, before anything is written.
    state = mixed.state_dict()
    before = bits_of(mixed)
    bad = [dict(state, master_dtype="float64"), {k: v for k, v in state.items() if k != "master"},
           dict(state, master=[m.astype(np.float64) for m in state["master"]]),
           dict(state, params=[p.astype(np.float32) for p in state["params"]])]
    for s in bad:
        with pytest.raises((TypeError, ValueError)):
            mixed.load_state_dict(s)
        assert_same(bits_of(mixed), before)


# --- copies --------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["dict", "list", "packed"])
@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
def test_deepcopy_and_pickle_have_their_own_master(fmt, how):
    opt, _ = run(fastopt, "Adam", fmt, how, "clip", steps=2)
    copies = [copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))]
    for c in copies:
        assert c.master_dtype == np.float32
        assert_same(bits_of(c), bits_of(opt))
        for a, b in zip(c._masters, opt._masters):
            assert not np.shares_memory(a, b)
        for a, b in zip(c._params, opt._params):
            assert not np.shares_memory(a, b) and a.dtype == b.dtype
    for o in [opt] + copies:
        params = o.params if how != "packed" else o._packed
        o.step(structure(gradient(9, fmt), how, params))
    for c in copies:
        assert_same(bits_of(c), bits_of(opt))
