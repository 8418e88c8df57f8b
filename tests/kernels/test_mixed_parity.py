"""16-bit parameters (docs/contract.md §14): the compiled kernels against the reference, bit for bit.

``table[rule, kind](master, grad_bits, *states, *scalars, param_bits)`` of fastopt._dispatch (the
fused kernels of fastopt/_pxi/mixed.pxi) against fastopt.reference's ``mixed(rule, kind)``
(NumPy in float32 between fastopt._half's integer conversions): every rule x its options x
bfloat16/float16 x sizes around the SIMD widths, the 32-item thread chunks, the 2048-item
buffer chunks and the thread thresholds x several steps x every SIMD variant x 1 and 2 threads
(conftest.py's ``fast_config``). Master (as uint32), every state array (uint32) and the 16-bit
copy are compared; then the rounding edges, all 65536 gradient patterns, loss scaling by a power
of two, the 16-bit all_finite / sum-of-squares entries and the length checks.
"""
import itertools

import numpy as np
import pytest

import fastopt
import fastopt._ops
from fastopt import _dispatch, _half
from fastopt.reference import _ops as reference_ops
from fastopt.testing import assert_ulp_equal

pytestmark = pytest.mark.bits

KINDS = _half.KINDS
SIZES = (1, 7, 31, 32, 33, 1000, 4099)
LARGE = 40000   # above every rule's thread threshold (2**13 to 2**15), 20 buffer chunks
STEPS = 4


def _combos(**axes):
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


# The options of each rule, as the float32 kernel takes them (as tests/kernels/test_options.py
# enumerates them for the classes): every state array that can be absent, each flag, weight
# decay, maximize, and a gradient scale (clipping / loss scaling) besides 1.
OPTIONS = {
    "sgd": [o for o in _combos(momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                               nesterov=[False, True], weight_decay=[0.0, 0.01],
                               maximize=[False, True], grad_scale=[1.0, 0.37])
            if not (o["nesterov"] and (o["momentum"] == 0 or o["dampening"] != 0))],
    "momentum": _combos(nesterov=[False, True], weight_decay=[0.0, 0.01],
                        maximize=[False, True], grad_scale=[1.0, 2.0 ** -7]),
    "rmsprop": _combos(centered=[False, True], momentum=[0.0, 0.5], weight_decay=[0.0, 0.01],
                       maximize=[False, True], grad_scale=[1.0, 0.37]),
    # bias: (beta1, beta2, first t): both divisions; the second only (beta1 = 0.9 rounds its
    # correction to 1 from t = 165 in float32); none (both corrections round to 1).
    "adam": _combos(weight_decay=[0.0, 0.01], decoupled=[False, True], amsgrad=[False, True],
                    maximize=[False, True], grad_scale=[1.0, 0.37],
                    bias=[(0.9, 0.999, 0), (0.9, 0.999, 300), (0.5, 0.5, 300)]),
    "adagrad": _combos(weight_decay=[0.0, 0.01], maximize=[False, True],
                       grad_scale=[1.0, 0.37], lr_decay=[0.0, 0.01]),
}
CASES = [(rule, i) for rule, combos in OPTIONS.items() for i in range(len(combos))]


def _case_id(case):
    rule, i = case
    return f"{rule}-" + "-".join(f"{k}={v}" for k, v in OPTIONS[rule][i].items())


def make_state(rule, o, n, rng):
    """The float32 state arrays the kernel takes (None for an absent one), in its order."""
    def arr(fill=0.0):
        return np.full(n, fill, np.float32)
    if rule == "sgd":
        return [arr() if o["momentum"] else None]
    if rule == "momentum":
        return [arr()]
    if rule == "rmsprop":
        return [arr(), arr() if o["centered"] else None, arr() if o["momentum"] else None]
    if rule == "adam":
        return [arr(), arr(), arr() if o["amsgrad"] else None]
    return [arr(0.1)]


def scalars(rule, o, step):
    """The float32 kernel's scalars for step ``step`` (1, 2, ...), as the optimizers pass them."""
    if rule == "sgd":
        return (0.05, o["weight_decay"], o["momentum"], o["dampening"], o["nesterov"],
                step == 1, o["maximize"], o["grad_scale"])
    if rule == "momentum":
        return (0.05, 0.9, o["weight_decay"], o["nesterov"], o["maximize"], o["grad_scale"])
    if rule == "rmsprop":
        return (0.01, 0.9, 1e-8, o["weight_decay"], o["momentum"], o["maximize"],
                o["grad_scale"])
    if rule == "adam":
        beta1, beta2, t0 = o["bias"]
        t = t0 + step
        return (0.01, beta1, beta2, 1e-8, 1 - beta1 ** t, 1 - beta2 ** t, o["weight_decay"],
                o["decoupled"], o["maximize"], o["grad_scale"])
    clr = 0.1 / (1 + (step - 1) * o["lr_decay"])
    return (clr, 1e-10, o["weight_decay"], o["maximize"], o["grad_scale"])


def gradient_bits(rng, n, kind, step):
    """Normal gradients rounded to ``kind``; from step 3 on, a tenth of the items are any 16-bit
    pattern at all (zeros, subnormals, the largest values, infinities, NaN payloads)."""
    g = _half.narrow((rng.standard_normal(n) * 3).astype(np.float32), kind)
    if step >= 3:
        idx = rng.random(n) < 0.1
        g[idx] = rng.integers(0, 1 << 16, int(idx.sum()), dtype=np.uint16)
    return g


def initial_master(rng, n):
    return (rng.standard_normal(n) * 2).astype(np.float32)


def run(table, rule, kind, o, n, seed, steps=STEPS, master=None, grads=None):
    """Step ``steps`` times; return [(master, *states, param_bits) copies after each step]."""
    rng = np.random.default_rng(seed)
    master = initial_master(rng, n) if master is None else master.copy()
    state = make_state(rule, o, n, rng)
    param = np.zeros(n, np.uint16)
    step_fn = table[rule, kind]
    out = []
    for step in range(1, steps + 1):
        g = gradient_bits(rng, n, kind, step) if grads is None else grads[step - 1]
        g.flags.writeable = False      # the gradient is only read
        step_fn(master, g, *state, *scalars(rule, o, step), param)
        out.append([master.copy(), *(s.copy() for s in state if s is not None), param.copy()])
    return out


def _half_nan(bits, kind):
    exp = 0x7C00 if kind == _half.F16 else 0x7F80
    return ((bits & exp) == exp) & ((bits & ~np.uint16(exp | 0x8000)) != 0)


def assert_same_bits(got, want, what, kind):
    """Same bits everywhere, signed zeros included, except that where both are NaN only the
    position counts (docs/contract.md §1: when two NaNs meet, or ``maximize`` negates a NaN
    gradient, NumPy and the C loops may propagate another payload or sign). The copy must be
    exactly the master rounded, NaN payload included (``_half.narrow``)."""
    for step, (g_arrays, w_arrays) in enumerate(zip(got, want), 1):
        assert len(g_arrays) == len(w_arrays)
        *g_float, g_param = g_arrays
        *w_float, w_param = w_arrays
        for k, (g, w) in enumerate(zip(g_float, w_float)):
            name = "master" if k == 0 else f"state {k - 1}"
            assert_ulp_equal(g, w, err_msg=f"{what}: {name} after step {step}")
        both_nan = _half_nan(g_param, kind) & _half_nan(w_param, kind)
        np.testing.assert_array_equal(np.where(both_nan, 0, g_param),
                                      np.where(both_nan, 0, w_param),
                                      err_msg=f"{what}: param bits after step {step}")
        np.testing.assert_array_equal(g_param, _half.narrow(g_float[0], kind),
                                      err_msg=f"{what}: param bits are not the master rounded")


def reference_table():
    return reference_ops.kernel_table()


_REFERENCE_RUNS = {}


def reference_run(rule, i, kind, n):
    """The reference's run of option set ``i``, computed once for all the fast configurations."""
    key = (rule, i, kind, n)
    if key not in _REFERENCE_RUNS:
        _REFERENCE_RUNS[key] = run(reference_table(), rule, kind, OPTIONS[rule][i], n, seed=n)
    return _REFERENCE_RUNS[key]


# Large arrays: the rule's own threshold decides the thread split (not forced), on every variant
# and thread count; every option on at once, and none.
LARGE_CASES = [("sgd", 0), ("sgd", len(OPTIONS["sgd"]) - 1), ("momentum", 0),
               ("momentum", len(OPTIONS["momentum"]) - 1), ("rmsprop", 0),
               ("rmsprop", len(OPTIONS["rmsprop"]) - 1), ("adam", 0),
               ("adam", len(OPTIONS["adam"]) - 3), ("adam", len(OPTIONS["adam"]) - 2),
               ("adagrad", 0), ("adagrad", len(OPTIONS["adagrad"]) - 1)]


def _check_against_the_reference(case, kind, config):
    rule, i = case
    o = OPTIONS[rule][i]
    for n in SIZES:
        got = run(_dispatch.table, rule, kind, o, n, seed=n)
        want = reference_run(rule, i, kind, n)
        assert_same_bits(got, want, f"{rule} {kind} {o} n={n} {config}", kind)


# Every option set on the variant in use (the best one here; baseline in CI's older-CPU pass).
# The 16-bit step runs each rule's own float32 range function per chunk, so the options' loops
# are the float32 kernels' (each combination on every variant and thread count in
# test_parity.py/test_options.py); what is new is the widening, the chunking and the rounding,
# which do not depend on the options: those run on every variant and thread count below with
# each rule's option sets all off and all on. (The full cross product on every configuration
# took 7.7 minutes of this file's 7.9 here, under load, and CI runs this file four times.)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_option_matches_the_reference(case, kind):
    _check_against_the_reference(case, kind, _dispatch.current)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", LARGE_CASES, ids=_case_id)
def test_every_variant_and_thread_count_matches_the_reference(fast_config, case, kind):
    _check_against_the_reference(case, kind, fast_config)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", _dispatch.available())
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", LARGE_CASES, ids=_case_id)
def test_large_arrays_split_by_the_rules_thresholds(case, kind, variant, threads):
    rule, i = case
    o = OPTIONS[rule][i]
    want = run(reference_table(), rule, kind, o, LARGE, seed=3)
    with _dispatch.using(variant), fastopt.num_threads(threads):
        got = run(_dispatch.table, rule, kind, o, LARGE, seed=3)
    assert_same_bits(got, want, f"{rule} {kind} {o} {variant} {threads}t", kind)


def test_adam_fma_divisions_and_their_fallback_both_run():
    """On a variant with the FMA divisions (docs/contract.md §10), a 16-bit Adam step uses them
    per buffer chunk and redoes a chunk with the divider when it overflowed; both match."""
    fma = [v for v in _dispatch.available() if _dispatch.MODULES[v].FMA]
    if not fma:
        pytest.skip("no variant with FMA here")
    module = _dispatch.MODULES[fma[0]]
    o = OPTIONS["adam"][0]
    before = module.division_chunks()
    with _dispatch.using(fma[0]):
        for kind in KINDS:
            got = run(_dispatch.table, "adam", kind, o, 5000, seed=11)
            want = run(reference_table(), "adam", kind, o, 5000, seed=11)
            assert_same_bits(got, want, f"adam {kind}", kind)
    fast, redone = (a - b for a, b in zip(module.division_chunks(), before))
    assert fast > 0 and redone > 0


# --- conversions -------------------------------------------------------------------------------

def _float32_edges():
    """float32 values at every rounding boundary of both formats (as uint32 patterns)."""
    base = [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000,
            # float16: 2**-25 (half its smallest subnormal: a tie to 0), just above, 2**-24,
            # subnormal ties, the smallest normal and just below, 65504, 65519.99, 65520 (the
            # tie past the largest finite value: infinity), 2**16
            0x33000000, 0x33000001, 0x33800000, 0x33C00000, 0x34200000, 0x387FC000, 0x387FE000,
            0x387FF000, 0x38800000, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,
            # bfloat16: the largest finite value, the tie past it, FLT_MAX
            0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF,
            # ties to even at 1.0 for both formats
            0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0x3F800FFF, 0x3F801001,
            0x3F807FFF, 0x3F808001,
            # infinity, signalling and quiet NaNs with payloads (low bits only, high bits only)
            0x7F800000, 0x7F800001, 0x7F800FFF, 0x7F801000, 0x7FA00000, 0x7FBFFFFF, 0x7FC00000,
            0x7FC00001, 0x7FC02000, 0x7FD55555, 0x7FFFE000, 0x7FFFFFFF]
    ties = [(e << 23) | (k << 13) | low for e in range(98, 146) for k in (0, 1, 2, 511, 1023)
            for low in (0x0000, 0x1000, 0x0FFF, 0x1001)]
    ties += [(e << 23) | (k << 16) | low for e in range(0, 255, 3) for k in (0, 1, 64, 127)
             for low in (0x0000, 0x8000, 0x7FFF, 0x8001)]
    u = np.array(base + ties, dtype=np.uint32)
    return np.concatenate([u, u | np.uint32(0x80000000)])


@pytest.mark.parametrize("variant", _dispatch.available())
@pytest.mark.parametrize("kind", KINDS)
def test_conversions_are_the_references(variant, kind):
    module = _dispatch.MODULES[variant]
    f16 = kind == _half.F16
    every = np.arange(1 << 16, dtype=np.uint16)
    wide = np.empty(every.size, np.float32)
    module.widen_half(f16, every, wide)
    np.testing.assert_array_equal(wide.view(np.uint32), _half.widen(every, kind).view(np.uint32))
    rng = np.random.default_rng(5)
    u = np.concatenate([_float32_edges(), rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint32)])
    got = np.empty(u.size, np.uint16)
    module.narrow_half(f16, u.view(np.float32), got)
    np.testing.assert_array_equal(got, _half.narrow(u.view(np.float32), kind))


@pytest.mark.parametrize("kind", KINDS)
def test_rounding_edges_through_a_step(fast_config, kind):
    """Masters at the rounding edges, stepped by a zero update (SGD, lr = 0, zero gradient:
    ``p - 0*0`` is p, -0.0 included, and quiets a signalling NaN in both), then by a real one
    (Adam): the copy is the reference's, and for numbers NumPy's / ml_dtypes' cast."""
    u = _float32_edges()
    n = u.size
    zero = np.zeros(n, np.uint16)
    for table in (_dispatch.table, reference_table()):
        master = u.view(np.float32).copy()
        param = np.zeros(n, np.uint16)
        table["sgd", kind](master, zero, None, 0.0, 0.0, 0.0, 0.0, False, False, False, 1.0,
                           param)
        if table is _dispatch.table:
            got_master, got_param = master.copy(), param.copy()
        else:
            np.testing.assert_array_equal(got_master.view(np.uint32), master.view(np.uint32))
            np.testing.assert_array_equal(got_param, param)
    x = u.view(np.float32)
    number = ~np.isnan(x)
    np.testing.assert_array_equal(got_master.view(np.uint32)[number], u[number])
    if kind == _half.F16:
        with np.errstate(all="ignore"):
            cast = x.astype(np.float16).view(np.uint16)
    else:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        with np.errstate(all="ignore"):
            cast = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(got_param[number], cast[number])
    # A NaN master (payload P) and a finite update: p - x keeps P (quieted), in both.
    nan = np.isnan(x)
    qp = u[nan] | np.uint32(0x00400000)
    np.testing.assert_array_equal(got_master.view(np.uint32)[nan], qp)
    # Now a real step on the same masters.
    o = OPTIONS["adam"][0]
    grads = [gradient_bits(np.random.default_rng(s), n, kind, 1) for s in range(2)]
    got = run(_dispatch.table, "adam", kind, o, n, 0, steps=2, master=x, grads=grads)
    want = run(reference_table(), "adam", kind, o, n, 0, steps=2, master=x, grads=grads)
    assert_same_bits(got, want, f"adam {kind} edges", kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rule", list(OPTIONS))
def test_every_gradient_pattern_through_a_step(fast_config, rule, kind):
    """All 65536 16-bit gradients (NaN payloads, infinities, subnormals, both zeros) through
    two steps of each rule with its default options and with every option on."""
    every = np.arange(1 << 16, dtype=np.uint16)
    grads = [every, every[::-1].copy()]
    for o in (OPTIONS[rule][0], OPTIONS[rule][-1]):
        got = run(_dispatch.table, rule, kind, o, every.size, 1, steps=2, grads=grads)
        want = run(reference_table(), rule, kind, o, every.size, 1, steps=2, grads=grads)
        assert_same_bits(got, want, f"{rule} {kind} {o} every pattern", kind)


@pytest.mark.parametrize("kind", KINDS)
def test_loss_scale_of_a_power_of_two_is_a_division(kind):
    """grad_scale = 2**-k multiplies the widened gradient; for a power of two S = 2**k that is
    g / S bit for bit (both are the correctly rounded g * 2**-k): the 16-bit step with
    grad_scale = 1/S equals the float32 reference step on widen(g) / S with grad_scale = 1."""
    every = np.arange(1 << 16, dtype=np.uint16)
    table = reference_table()
    rng = np.random.default_rng(4)
    start = initial_master(rng, every.size)
    for k in (0, 1, 8, 16, 24, 40, 100, 127):
        s = 2.0 ** k
        with np.errstate(all="ignore"):
            divided = _half.widen(every, kind) / np.float32(s)
        for rule in OPTIONS:
            o = dict(OPTIONS[rule][0], grad_scale=1.0)
            master_a, master_b = start.copy(), start.copy()
            state_a = make_state(rule, o, every.size, rng)
            state_b = [None if x is None else x.copy() for x in state_a]
            param = np.zeros(every.size, np.uint16)
            args = list(scalars(rule, o, 1))
            table[rule, kind](master_a, every, *state_a, *args[:-1], 1 / s, param)
            table[rule, np.dtype(np.float32)](master_b, divided, *state_b, *args)
            np.testing.assert_array_equal(master_a.view(np.uint32), master_b.view(np.uint32),
                                          err_msg=f"{rule} S=2**{k}")
            np.testing.assert_array_equal(param, _half.narrow(master_b, kind))
            for a, b in zip(state_a, state_b):
                if a is not None:
                    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
            # and the compiled step gives the same
            master_c = start.copy()
            state_c = make_state(rule, o, every.size, rng)
            param_c = np.zeros(every.size, np.uint16)
            _dispatch.table[rule, kind](master_c, every, *state_c, *args[:-1], 1 / s, param_c)
            assert_same_bits([[master_c, param_c]], [[master_a, param]], f"{rule} S=2**{k}",
                             kind)


# --- the other 16-bit entries ----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_all_finite_and_sums_of_squares_are_the_references(fast_config, kind):
    rng = np.random.default_rng(9)
    finite_bits = _half.narrow(rng.standard_normal(100003).astype(np.float32) * 100, kind)
    every = np.arange(1 << 16, dtype=np.uint16)
    cases = [np.zeros(0, np.uint16), finite_bits[:1], finite_bits[:1000], finite_bits[:1025],
             finite_bits[:5000], finite_bits, every, every[_half.finite(every, kind)]]
    for bits in cases:
        for pos in ((), (0,), (bits.size - 1,), (bits.size // 2,)):
            b = bits.copy()
            if pos and b.size:
                b[pos[0]] = 0x7C00 if kind == _half.F16 else 0x7F80     # +inf
            assert fastopt._ops.all_finite_half(b, kind) == \
                reference_ops.all_finite_half(b, kind)
        got = _dispatch.table["sumsq", kind](bits)
        want = reference_ops.sumsq_half(bits, kind)
        np.testing.assert_array_equal(np.float64(got), np.float64(want))
        # the float32 kernel's sum on the widened values
        f32 = _dispatch.table["sumsq", np.dtype(np.float32)](_half.widen(bits, kind))
        np.testing.assert_array_equal(np.float64(got), np.float64(f32))
        blocks = -(-bits.size // reference_ops.SUMSQ_BLOCK)
        out_got, out_want = np.empty(blocks), np.empty(blocks)
        _dispatch.table["sumsq_blocks", kind](bits, out_got)
        reference_ops.sumsq_blocks_half(bits, kind, out_want)
        np.testing.assert_array_equal(out_got, out_want)
    with pytest.raises(ValueError, match="^out has 1 items; expected 2"):
        _dispatch.table["sumsq_blocks", kind](finite_bits[:1025], np.empty(1))


@pytest.mark.parametrize("kind", KINDS)
def test_as_view_is_a_uint16_view(kind):
    bits = np.arange(10, dtype=np.uint16)
    view = _dispatch.table["as_view", kind](bits)
    # the same type as the float32 entry's view (Cython's typed memoryview of this module)
    f32_view = _dispatch.table["as_view", np.dtype(np.float32)](np.ones(1, np.float32))
    assert type(view) is type(f32_view)
    back = np.asarray(view)
    assert back.dtype == np.uint16 and np.shares_memory(back, bits)
    # a step takes the views as it takes arrays
    master = np.ones(10, np.float32)
    param = np.zeros(10, np.uint16)
    _dispatch.table["sgd", kind](master, view, None, 0.5, 0.0, 0.0, 0.0, False, False,
                                 False, 1.0, _dispatch.table["as_view", kind](param))
    want_master = np.ones(10, np.float32)
    want_param = np.zeros(10, np.uint16)
    reference_table()["sgd", kind](want_master, bits, None, 0.5, 0.0, 0.0, 0.0, False, False,
                                   False, 1.0, want_param)
    np.testing.assert_array_equal(master.view(np.uint32), want_master.view(np.uint32))
    np.testing.assert_array_equal(param, want_param)


# --- the second line: lengths ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rule", list(OPTIONS))
def test_a_length_that_does_not_fit_raises_before_anything_is_written(rule, kind):
    o = OPTIONS[rule][-1]     # every state array present
    n = 40
    rng = np.random.default_rng(0)
    master = initial_master(rng, n)
    state = [s for s in make_state(rule, o, n, rng)]
    grad = gradient_bits(rng, n, kind, 1)
    param = np.full(n, 7, np.uint16)
    arrays = [master, grad, *state, param]
    names = ["master", "grad"] + [f"state{k}" for k in range(len(state))] + ["param"]
    for k in range(1, len(arrays)):
        if arrays[k] is None:
            continue
        args = [a.copy() if a is not None else None for a in arrays]
        args[k] = args[k][:-1]
        before = [None if a is None else a.copy() for a in args]
        with pytest.raises(ValueError, match=r"has 39 items; expected 40, the length of master"):
            _dispatch.table[rule, kind](args[0], args[1], *args[2:-1],
                                        *scalars(rule, o, 1), args[-1])
        for a, b, name in zip(args, before, names):
            if a is not None:
                np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8),
                                              err_msg=f"{name} written")
