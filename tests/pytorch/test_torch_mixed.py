"""fastopt.torch with 16-bit parameters (issue 24): a float32 master inside the optimizer, the
16-bit parameters rewritten as the master rounded, each step one call of the kernel table's
``(rule, "bfloat16"/"float16")`` entry; and loss scaling driven by torch.amp.GradScaler.

The reference for a 16-bit parameter is fastopt.reference's float32 object stepping the master
on the widened 16-bit gradients (the reference's mixed step is exactly that update followed by
rounding the master, docs/contract.md §14), so the scalars fastopt.torch computes are checked
against the reference objects' too."""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402
from fastopt import _half  # noqa: E402
from fastopt.reference import _ops as ref_ops  # noqa: E402
from test_torch_parity import CASES  # noqa: E402

pytestmark = pytest.mark.bits

KINDS = {"bfloat16": torch.bfloat16, "float16": torch.float16}
SIZES = [1, 7, 17, 1000, 100003]
STEPS = 4


def bits(t):
    """The uint16 patterns of a 16-bit tensor (a view: no copy)."""
    return t.detach().view(torch.int16).numpy().view(np.uint16)


def half_tensor(u16, kind):
    return torch.from_numpy(np.ascontiguousarray(u16, dtype=np.uint16).copy()).view(KINDS[kind])


def random_half(rng, shape, kind, scale=1.0):
    """16-bit values (as uint16 bits) of normal samples; finite."""
    return _half.narrow((rng.standard_normal(shape) * scale).astype(np.float32), kind)


def check(opt, params, reference, state_map, kind_of_param, step=None):
    for i, (p, want) in enumerate(zip(params, reference.params)):
        st = opt.state[p]
        kind = kind_of_param[i]
        if kind is None:
            np.testing.assert_array_equal(p.detach().numpy(), want, err_msg=f"param {i} {step}")
        else:
            assert st["master"].dtype == torch.float32 and p.dtype == KINDS[kind]
            np.testing.assert_array_equal(st["master"].numpy(), want,
                                          err_msg=f"master {i} step {step}")
            np.testing.assert_array_equal(bits(p), _half.narrow(want, kind),
                                          err_msg=f"param bits {i} step {step}")
        for torch_name, ref_name in state_map.items():
            if ref_name in reference.state_names:
                assert st[torch_name].dtype == torch.float32
                np.testing.assert_array_equal(st[torch_name].numpy(),
                                              reference.state(ref_name)[i],
                                              err_msg=f"{torch_name} {i} step {step}")
            else:
                assert torch_name not in st
        if opt._uses_step:
            assert float(st["step"]) == reference.t


def run_mixed(case, kind, shapes, steps=STEPS, max_grad_norm=None, seed=0, grad_scale=None):
    """fastopt.torch over 16-bit parameters against the reference's float32 object on their
    masters; gradients assigned as new tensors at the first two steps, written into the bound
    views after. ``grad_scale``: the optimizer's grad_scale (as GradScaler sets it), the
    gradients handed to it multiplied by it (a power of two: exact)."""
    cls, kw, ref_cls, rkw, state_map = CASES[case]()
    rng = np.random.default_rng(seed)
    starts = [random_half(rng, shape, kind) for shape in shapes]
    params = [torch.nn.Parameter(half_tensor(b, kind)) for b in starts]
    opt = cls(params, max_grad_norm=max_grad_norm, **kw)
    reference = ref_cls([_half.widen(b, kind) for b in starts], max_grad_norm=max_grad_norm,
                        **rkw)
    for step in range(steps):
        gbits = [random_half(rng, shape, kind, scale=0.5) for shape in shapes]
        handed = gbits if grad_scale is None else [
            _half.narrow(_half.widen(g, kind) * np.float32(grad_scale), kind) for g in gbits]
        for p, g in zip(params, handed):
            if step < 2 or p.grad is None:
                p.grad = half_tensor(g, kind)
            else:
                p.grad.copy_(half_tensor(g, kind))
        if grad_scale is not None:
            opt.grad_scale = torch.tensor(float(grad_scale))
        opt.step()
        reference.step([_half.widen(g, kind) for g in gbits])
        check(opt, params, reference, state_map, [kind] * len(params), step)
    if max_grad_norm is not None:
        assert opt.last_grad_norm == reference.last_grad_norm
    return opt, params, reference


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_parity_with_reference(case, kind, size, fast_config):
    run_mixed(case, kind, [(size,), (3, 5)])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", ["Adam", "AdamW", "SGD-momentum", "RMSprop-all",
                                  "Adagrad-options"])
@pytest.mark.parametrize("max_grad_norm", [0.5, 1e6])
def test_mixed_parity_with_clipping(case, kind, max_grad_norm, fast_config):
    run_mixed(case, kind, [(1000,), (17,), (4, 4)], max_grad_norm=max_grad_norm)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_kernel_table_entry_is_the_reference_mixed_step(kind):
    """One Adam step through fastopt.torch equals one call of the reference table's
    ("adam", kind) entry with the scalars the float path uses."""
    rng = np.random.default_rng(3)
    pbits, gbits = random_half(rng, 1000, kind), random_half(rng, 1000, kind)
    p = torch.nn.Parameter(half_tensor(pbits, kind))
    opt = fo.Adam([p], lr=0.01, weight_decay=0.1)
    p.grad = half_tensor(gbits, kind)
    opt.step()
    master, m, v = _half.widen(pbits, kind), np.zeros(1000, np.float32), np.zeros(1000, np.float32)
    out = np.zeros(1000, np.uint16)
    ref_ops.kernel_table()["adam", kind](master, gbits, m, v, None, 0.01, 0.9, 0.999, 1e-8,
                                         1 - 0.9, 1 - 0.999, 0.1, False, False, 1.0, out)
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(), master)
    np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"].numpy(), v)
    np.testing.assert_array_equal(bits(p), out)


# -- loss scaling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(KINDS) + ["float32"])
@pytest.mark.parametrize("case", ["Adam", "SGD-momentum", "RMSprop-centered", "Adagrad"])
@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
def test_grad_scale_power_of_two_equals_unscaled_gradients(case, kind, max_grad_norm,
                                                           fast_config):
    """grad_scale=S multiplies the gradients by 1/S: for a power of two, bit for bit the step
    on the gradients divided by S (the norm clipped being the unscaled one)."""
    if kind == "float32":
        cls, kw, ref_cls, rkw, state_map = CASES[case]()
        rng = np.random.default_rng(1)
        start = rng.standard_normal(1000).astype(np.float32)
        p = torch.nn.Parameter(torch.from_numpy(start.copy()))
        opt = cls([p], max_grad_norm=max_grad_norm, **kw)
        reference = ref_cls([start.copy()], max_grad_norm=max_grad_norm, **rkw)
        for step in range(3):
            g = rng.standard_normal(1000).astype(np.float32)
            p.grad = torch.from_numpy(g * np.float32(2.0 ** 12))
            opt.grad_scale = 2.0 ** 12
            opt.step()
            reference.step([g])
            check(opt, [p], reference, state_map, [None], step)
        if max_grad_norm is not None:
            assert opt.last_grad_norm == reference.last_grad_norm
        return
    run_mixed(case, kind, [(1000,), (3, 5)], steps=3, max_grad_norm=max_grad_norm,
              grad_scale=2.0 ** 8)


def _tiny_model(kind, seed=0):
    torch.manual_seed(seed)
    dtype = {"float32": torch.float32, **KINDS}[kind]
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 1)).to(dtype)


@pytest.mark.parametrize("kind", sorted(KINDS) + ["float32"])
def test_grad_scaler_skips_the_step_with_an_inf_gradient(kind):
    """GradScaler drives fastopt.torch (grad_scale/found_inf handed to step): at the step whose
    gradient holds an inf nothing is written and the scale halves; every other step equals the
    reference run on the unscaled gradients that never saw the bad step."""
    model = _tiny_model(kind)
    params = list(model.parameters())
    opt = fo.Adam(params, lr=0.01)
    half = kind != "float32"
    starts = [_half.widen(bits(p), kind) if half else p.detach().numpy().copy()
              for p in params]
    reference = ref.Adam([s.copy() for s in starts], lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1)).to(params[0].dtype)
    bad_step = 2
    for step in range(6):
        opt.zero_grad()
        loss = model(x).float().pow(2).mean()
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        if step == bad_step:
            with torch.no_grad():
                params[0].grad[0, 0] = float("inf")
            before = {i: (bits(p).copy() if half else p.detach().numpy().copy(),
                          {k: v.clone() for k, v in opt.state[p].items()})
                      for i, p in enumerate(params)}
        else:
            grads = [(_half.widen(bits(p.grad), kind) if half else p.grad.numpy().copy())
                     * np.float32(1.0 / scale) for p in params]  # exact: scale is 2**k
        scaler.step(opt)
        scaler.update()
        assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")
        if step == bad_step:
            assert scaler.get_scale() == scale / 2
            for i, p in enumerate(params):
                was, state = before[i]
                np.testing.assert_array_equal(bits(p) if half else p.detach().numpy(), was)
                assert sorted(opt.state[p]) == sorted(state)
                for k, v in state.items():
                    assert torch.equal(opt.state[p][k], v), k
            continue
        reference.step(grads)
        check(opt, params, reference, fo_state_map(), [kind if half else None] * len(params),
              step)
    assert float(opt.state[params[0]]["step"]) == 5


def fo_state_map():
    return {"exp_avg": "m", "exp_avg_sq": "v"}


def test_grad_scaler_after_unscale_and_clipping():
    """scaler.unscale_(opt) (torch unscales the gradients in place; GradScaler then hands
    grad_scale=None), torch's clip_grad_norm_, then scaler.step: the step on the unscaled
    gradients."""
    model = _tiny_model("bfloat16")
    params = list(model.parameters())
    opt = fo.AdamW(params, lr=0.01)
    reference = ref.AdamW([_half.widen(bits(p), "bfloat16") for p in params], lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    x = torch.randn(16, 8).to(torch.bfloat16)
    for step in range(3):
        opt.zero_grad()
        scaler.scale(model(x).float().pow(2).mean()).backward()
        scaler.unscale_(opt)
        grads = [_half.widen(bits(p.grad), "bfloat16") for p in params]
        scaler.step(opt)
        scaler.update()
        reference.step(grads)
        check(opt, params, reference, fo_state_map(), ["bfloat16"] * len(params), step)


@pytest.mark.parametrize("value,error,match", [
    (0.0, ValueError, r"grad_scale must be finite and > 0.*got 0.0"),
    (float("nan"), ValueError, r"grad_scale must be finite and > 0"),
    (float("inf"), ValueError, r"grad_scale must be finite and > 0"),
    (torch.ones(2), TypeError, r"grad_scale must be a 1-element tensor.*shape \(2,\)"),
    ("2", TypeError, r"grad_scale must be a 1-element tensor or a number.*str"),
])
def test_bad_grad_scale_refused_before_writing(value, error, match):
    p = torch.nn.Parameter(torch.ones(5, dtype=torch.bfloat16))
    opt = fo.Adam([p])
    p.grad = torch.ones(5, dtype=torch.bfloat16)
    opt.grad_scale = value
    with pytest.raises(error, match=match):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(5, dtype=torch.bfloat16)) and not opt.state[p]


def test_found_inf_skips_before_anything_is_written():
    p = torch.nn.Parameter(torch.ones(5, dtype=torch.float16))
    opt = fo.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.full((5,), float("inf"), dtype=torch.float16)
    opt.found_inf = torch.tensor(1.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(5, dtype=torch.float16)) and not opt.state[p]
    assert p.grad is not opt._slots[0].grad  # not even bound
    opt.found_inf = torch.tensor(0.0)
    p.grad = torch.ones(5, dtype=torch.float16)
    opt.step()
    assert sorted(opt.state[p]) == ["master", "momentum_buffer"]


# -- models with float32 and 16-bit parameters --------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
def test_mixed_dtypes_in_one_group(threads):
    """float32, bfloat16 and float16 parameters in one group: one kernel call per dtype, each
    parameter the bits of its own reference."""
    from fastopt import num_threads
    rng = np.random.default_rng(5)
    w32 = rng.standard_normal((4, 3)).astype(np.float32)
    wb = random_half(rng, (5, 2), "bfloat16")
    wh = random_half(rng, (7,), "float16")
    b32 = rng.standard_normal(3).astype(np.float32)
    params = [torch.nn.Parameter(torch.from_numpy(w32.copy())),
              torch.nn.Parameter(half_tensor(wb, "bfloat16")),
              torch.nn.Parameter(half_tensor(wh, "float16")),
              torch.nn.Parameter(torch.from_numpy(b32.copy()))]
    kinds = [None, "bfloat16", "float16", None]
    opt = fo.Adam(params, lr=0.02, weight_decay=0.01, max_grad_norm=1.0)
    assert [seg[1].name for seg in opt._segments] == ["float32", "uint16", "float16"]
    starts = [w32, _half.widen(wb, "bfloat16"), _half.widen(wh, "float16"), b32]
    reference = ref.Adam([s.copy() for s in starts], lr=0.02, weight_decay=0.01,
                         max_grad_norm=1.0)
    with num_threads(threads):
        for step in range(4):
            grads = []
            for p, kind in zip(params, kinds):
                if kind is None:
                    g = rng.standard_normal(p.shape).astype(np.float32)
                    p.grad = torch.from_numpy(g.copy())
                else:
                    gb = random_half(rng, p.shape, kind)
                    p.grad = half_tensor(gb, kind)
                    g = _half.widen(gb, kind)
                grads.append(g)
            opt.step()
            reference.step(grads)
            check(opt, params, reference, fo_state_map(), kinds, step)
    assert opt.last_grad_norm == reference.last_grad_norm


def test_a_bfloat16_model_trains_with_a_real_backward():
    model = _tiny_model("bfloat16")
    opt = fo.Adam(model.parameters(), lr=0.01)
    x = torch.randn(64, 8).to(torch.bfloat16)
    y = x.float().sum(1, keepdim=True).to(torch.bfloat16)
    first = None
    for _ in range(60):
        opt.zero_grad(set_to_none=False)
        loss = (model(x) - y).float().pow(2).mean()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first / 2
    for p in model.parameters():
        assert p.dtype == torch.bfloat16
        np.testing.assert_array_equal(bits(p), _half.narrow(opt.state[p]["master"].numpy(),
                                                             "bfloat16"))


# -- writes to the 16-bit parameters outside the optimizer ------------------------------------------

def test_in_place_write_to_a_half_parameter_rewidens_its_master():
    p = torch.nn.Parameter(torch.full((4,), 1.5, dtype=torch.bfloat16))
    opt = fo.SGD([p], lr=0.5)
    p.grad = torch.ones(4, dtype=torch.bfloat16)
    opt.step()  # master 1.0
    with torch.no_grad():
        p.mul_(4)  # 4.0: the 16-bit value is now the truth
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(), np.full(4, 3.5, np.float32))


def test_reloading_the_same_weights_keeps_the_master():
    """model.load_state_dict writes the parameters in place (their version moves) but with the
    bits they have: the masters keep their low bits, and the run goes on as without the
    reload."""
    runs = []
    for reload in (False, True):
        model = _tiny_model("bfloat16")
        opt = fo.Adam(model.parameters(), lr=1e-3)
        _train(model, opt, 2, seed=1)
        if reload:
            master = opt.state[model[0].weight]["master"].clone()
            assert not torch.equal(master, model[0].weight.detach().float())  # low bits
            model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
        _train(model, opt, 2, seed=2)
        runs.append((model, opt))
    (m1, o1), (m2, o2) = runs
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(bits_t(p), bits_t(q))
        assert torch.equal(o1.state[p]["master"], o2.state[q]["master"])


def test_replaced_data_of_another_dtype_refused():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    opt = fo.Adam([p])
    p.data = torch.ones(3)
    p.grad = torch.ones(3)
    with pytest.raises(TypeError, match=r"became torch.float32.*packed it as torch.bfloat16"):
        opt.step()


# -- state dicts ----------------------------------------------------------------------------------------

def _train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(8, 8, generator=g).to(dtype)
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("cls,kw", [(fo.Adam, dict(lr=0.01, amsgrad=True)),
                                    (fo.SGD, dict(lr=0.05)),
                                    (fo.SGD, dict(lr=0.05, momentum=0.9)),
                                    (fo.RMSprop, dict(centered=True)), (fo.Adagrad, {})],
                         ids=["Adam", "SGD", "SGD-momentum", "RMSprop", "Adagrad"])
def test_torch_save_mid_run_resumes_as_straight(cls, kw, kind):
    straight = _tiny_model(kind)
    opt = cls(straight.parameters(), **kw)
    _train(straight, opt, 3, seed=1)
    _train(straight, opt, 3, seed=2)

    first = _tiny_model(kind)
    opt1 = cls(first.parameters(), **kw)
    _train(first, opt1, 3, seed=1)
    for p in first.parameters():
        assert opt1.state[p]["master"].dtype == torch.float32
    blob = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt1.state_dict()}, blob)
    blob.seek(0)
    saved = torch.load(blob)
    resumed = _tiny_model(kind, seed=7)
    resumed.load_state_dict(saved["model"])
    opt2 = cls(resumed.parameters(), **kw)
    opt2.load_state_dict(saved["opt"])
    _train(resumed, opt2, 3, seed=2)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(bits_t(p), bits_t(q))
        for key, value in opt.state[p].items():
            assert opt2.state[q][key].dtype == value.dtype
            assert torch.equal(opt2.state[q][key], value), key


def bits_t(p):
    return p.detach().view(torch.int16)


def test_load_state_dict_restores_master_and_parameters():
    model = _tiny_model("bfloat16")
    opt = fo.Adam(model.parameters(), lr=0.01)
    _train(model, opt, 2, seed=1)
    saved = {k: v for k, v in opt.state_dict().items()}
    saved = {"state": {i: {k: v.clone() for k, v in st.items()}
                       for i, st in saved["state"].items()},
             "param_groups": saved["param_groups"]}
    weights = [bits(p).copy() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    opt.load_state_dict(saved)
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(bits(p), weights[i])
        assert torch.equal(opt.state[p]["master"], saved["state"][i]["master"])
        assert opt.state[p]["exp_avg"].dtype == torch.float32


def test_loading_torchs_own_bf16_state_dict_widens():
    """torch's Adam on bfloat16 parameters keeps bfloat16 exp_avg/exp_avg_sq and no master:
    fastopt.torch widens them (exact) and takes the parameters as the masters."""
    model = _tiny_model("bfloat16")
    theirs = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, theirs, 2, seed=1)
    sd = theirs.state_dict()
    assert sd["state"][0]["exp_avg"].dtype == torch.bfloat16
    opt = fo.Adam(model.parameters(), lr=0.01)
    opt.load_state_dict(sd)
    for i, p in enumerate(model.parameters()):
        st = opt.state[p]
        assert st["exp_avg"].dtype == torch.float32
        assert torch.equal(st["exp_avg"], sd["state"][i]["exp_avg"].float())
        assert torch.equal(st["master"], p.detach().float())
        assert float(st["step"]) == 2
    _train(model, opt, 1, seed=2)


def test_fastopt_mixed_state_dict_into_torchs_adam():
    """torch's load casts every state tensor to the parameter's dtype: exp_avg/exp_avg_sq become
    bfloat16 (its own format), the master is rounded to bfloat16 and left unused (an extra
    key torch ignores); torch's Adam then steps on."""
    model = _tiny_model("bfloat16")
    opt = fo.Adam(model.parameters(), lr=0.01)
    _train(model, opt, 2, seed=1)
    theirs = torch.optim.Adam(model.parameters(), lr=0.01)
    theirs.load_state_dict(opt.state_dict())
    p = next(model.parameters())
    assert theirs.state[p]["exp_avg"].dtype == torch.bfloat16
    assert theirs.state[p]["master"].dtype == torch.bfloat16
    assert torch.equal(theirs.state[p]["master"], p.detach())
    _train(model, theirs, 1, seed=2)
    assert float(theirs.state[p]["step"]) == 3


def test_deepcopy_keeps_the_master():
    import copy
    model = _tiny_model("float16")
    opt = fo.RMSprop(model.parameters(), lr=0.01)
    _train(model, opt, 2, seed=1)
    twin_model, twin = copy.deepcopy((model, opt))
    _train(model, opt, 2, seed=2)
    _train(twin_model, twin, 2, seed=2)
    for p, q in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(bits_t(p), bits_t(q))
        assert torch.equal(opt.state[p]["master"], twin.state[q]["master"])


def test_add_param_group_with_half_parameters_keeps_masters():
    a = torch.nn.Parameter(torch.randn(10).to(torch.bfloat16))
    opt = fo.Adam([a], lr=0.01)
    a.grad = torch.randn(10).to(torch.bfloat16)
    opt.step()
    master = opt.state[a]["master"].clone()
    b = torch.nn.Parameter(torch.randn(6).to(torch.float16))
    opt.add_param_group({"params": [b]})
    assert torch.equal(opt.state[a]["master"], master)
    b.grad = torch.ones(6, dtype=torch.float16)
    opt.step()
    assert opt.state[b]["master"].dtype == torch.float32


def test_in_place_write_then_add_param_group_keeps_the_write():
    p = torch.nn.Parameter(torch.full((4,), 1.5, dtype=torch.bfloat16))
    opt = fo.SGD([p], lr=0.5)
    p.grad = torch.ones(4, dtype=torch.bfloat16)
    opt.step()  # master 1.0
    with torch.no_grad():
        p.fill_(4.0)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.float16))]})
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(), np.full(4, 4.0, np.float32))
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(), np.full(4, 3.5, np.float32))


@pytest.mark.parametrize("found_inf", [True, 1, 1.0, np.float32(2.0), torch.tensor([1.0])])
def test_found_inf_as_a_number_or_bool(found_inf):
    p = torch.nn.Parameter(torch.ones(3))
    opt = fo.Adam([p])
    p.grad = torch.ones(3)
    opt.found_inf = found_inf
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and not opt.state[p]
    opt.found_inf = False
    opt.grad_scale = np.float32(4.0)
    opt.step()
    assert float(opt.state[p]["step"]) == 1


def test_an_assigned_master_is_copied_in_and_the_parameter_follows():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = fo.SGD([p], lr=0.5)
    p.grad = torch.ones(4, dtype=torch.bfloat16)
    opt.step()
    mine = torch.full((4,), 2.0 + 2.0 ** -12)  # below bfloat16's resolution at 2
    opt.state[p]["master"] = mine
    opt.step()
    assert opt.state[p]["master"] is opt._slots[0].views["master"]
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(),
                                  np.full(4, np.float32(2.0 + 2.0 ** -12) - np.float32(0.5)))
    assert torch.equal(mine, torch.full((4,), 2.0 + 2.0 ** -12))  # only read
    np.testing.assert_array_equal(bits(p), _half.narrow(opt.state[p]["master"].numpy(),
                                                        "bfloat16"))


def test_a_bad_master_is_refused_before_writing():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
    opt = fo.Adam([p])
    p.grad = torch.ones(4, dtype=torch.float16)
    opt.step()
    before = bits(p).copy()
    opt.state[p]["master"] = torch.ones(5)
    with pytest.raises(ValueError, match=r"state\['master'\] of param_groups\[0\]\['params'\]"
                                         r"\[0\] has shape \(5,\)"):
        opt.step()
    np.testing.assert_array_equal(bits(p), before)
    assert float(opt._steps_np[0]) == 1


def test_a_state_dict_saved_before_the_first_step_takes_the_parameters():
    """No state, no master saved: after loading, each master is its parameter widened (the
    parameters written in place since construction included)."""
    model = _tiny_model("bfloat16")
    opt = fo.Adam(model.parameters(), lr=0.01)
    sd = opt.state_dict()
    assert sd["state"] == {}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    opt.load_state_dict(sd)
    slots = {id(s.param): s for s in opt._slots}
    for p in model.parameters():
        np.testing.assert_array_equal(slots[id(p)].views["master"].numpy(),
                                      _half.widen(bits(p), "bfloat16").reshape(p.shape))


def test_replaced_data_of_the_same_dtype_becomes_the_master():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
    opt = fo.SGD([p], lr=0.5)
    p.grad = torch.ones(4, dtype=torch.float16)
    opt.step()
    p.data = torch.full((4,), 3.0, dtype=torch.float16)
    opt.step()
    assert p.data_ptr() == opt._slots[0].data.data_ptr()
    np.testing.assert_array_equal(opt.state[p]["master"].numpy(), np.full(4, 2.5, np.float32))
