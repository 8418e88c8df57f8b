"""fastopt.torch behaves as a torch.optim optimizer: packing, the gradient policy, param groups,
schedulers, closures, hooks, state dicts both ways, add_param_group, copies, clipping."""
import copy
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402
from fastopt.torch import _buffers  # noqa: E402

CLASSES = [fo.Adam, fo.AdamW, fo.SGD, fo.RMSprop, fo.Adagrad]
TORCH_TWIN = {fo.Adam: torch.optim.Adam, fo.AdamW: torch.optim.AdamW, fo.SGD: torch.optim.SGD,
              fo.RMSprop: torch.optim.RMSprop, fo.Adagrad: torch.optim.Adagrad}
# Options that give every class a state (SGD keeps one only with momentum).
OPTIONS = {fo.Adam: dict(lr=0.01, amsgrad=True), fo.AdamW: dict(lr=0.01),
           fo.SGD: dict(lr=0.05, momentum=0.9), fo.RMSprop: dict(lr=0.01, centered=True,
                                                                 momentum=0.5),
           fo.Adagrad: dict(lr=0.1, initial_accumulator_value=0.1)}
STATE_NAMES = {fo.Adam: ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
               fo.AdamW: ["step", "exp_avg", "exp_avg_sq"], fo.SGD: ["momentum_buffer"],
               fo.RMSprop: ["step", "square_avg", "momentum_buffer", "grad_avg"],
               fo.Adagrad: ["step", "sum"]}
ids = [c.__name__ for c in CLASSES]


def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return model.to(dtype)


def loss_of(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g, dtype=next(model.parameters()).dtype)
    return model(x).pow(2).mean()


def snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


# -- packing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_parameters_become_views_of_one_buffer_per_dtype(cls):
    model = make_model()
    before = snapshot(model)
    extra = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = cls([{"params": model.parameters()}, {"params": [extra]}])
    assert_same(before, snapshot(model))  # values kept
    buf32 = opt._bufs[np.dtype(np.float32)]
    start = buf32.param_t.data_ptr()
    for p in model.parameters():
        assert p.is_contiguous()
        assert start <= p.data_ptr() < start + buf32.param_t.numel() * 4
        assert p.data_ptr() % 64 == 0
    assert extra.data_ptr() == opt._bufs[np.dtype(np.float64)].param_t.data_ptr()


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_one_kernel_call_per_group_and_dtype(cls, monkeypatch):
    model = make_model()
    extra = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = cls([{"params": model.parameters()}, {"params": [extra], "lr": 0.5}],
              **OPTIONS[cls])
    calls = []
    original = opt._kernel
    monkeypatch.setattr(opt, "_kernel", lambda *a: (calls.append(a[1:3]), original(*a)))
    for i in range(3):
        opt.zero_grad(set_to_none=False)
        (loss_of(model, i) + extra.sum()).backward()
        opt.step()
    assert len(calls) == 3 * 2


def test_allocator_switch_gives_the_same_bits():
    results = []
    for allocator in ("numpy", "torch"):
        _buffers.ALLOCATOR = allocator
        try:
            model = make_model()
            opt = fo.AdamW(model.parameters(), lr=0.01)
            for i in range(3):
                opt.zero_grad()
                loss_of(model, i).backward()
                opt.step()
            results.append(snapshot(model))
        finally:
            _buffers.ALLOCATOR = "numpy"
    assert_same(*results)


def test_channels_last_parameter_becomes_contiguous():
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    values = conv.weight.detach().clone()
    assert not conv.weight.is_contiguous()
    fo.SGD(conv.parameters(), lr=0.1)
    assert conv.weight.is_contiguous()
    assert torch.equal(conv.weight.detach(), values)


# -- gradients -----------------------------------------------------------------------------------

def test_zero_grad_keeps_views_and_autograd_accumulates_into_them():
    model = make_model()
    opt = fo.Adam(model.parameters())
    loss_of(model, 0).backward()
    opt.step()
    slots = opt._group_slots[0]
    assert all(p.grad is s.grad for p, s in zip(model.parameters(), slots))
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is s.grad for p, s in zip(model.parameters(), slots))
    assert all(float(p.grad.abs().sum()) == 0 for p in model.parameters())
    loss_of(model, 1).backward()
    first = [p.grad.clone() for p in model.parameters()]
    loss_of(model, 1).backward()  # accumulates in place, in the buffer
    assert all(p.grad is s.grad for p, s in zip(model.parameters(), slots))
    for p, g in zip(model.parameters(), first):
        assert torch.equal(p.grad, 2 * g)


def test_set_to_none_then_backward_copies_into_the_slot_and_rebinds():
    model = make_model()
    opt = fo.Adam(model.parameters())
    opt.zero_grad()  # torch's default: None
    assert all(p.grad is None for p in model.parameters())
    loss_of(model, 0).backward()
    fresh = [p.grad for p in model.parameters()]
    kept = [g.clone() for g in fresh]
    opt.step()
    for p, g, k, s in zip(model.parameters(), fresh, kept, opt._group_slots[0]):
        assert p.grad is s.grad and p.grad is not g
        assert torch.equal(p.grad, k) and torch.equal(g, k)  # the user's tensor not written


def test_user_assigned_gradient_is_copied_never_written():
    p = torch.nn.Parameter(torch.ones(4))
    opt = fo.SGD([p], lr=0.5)
    g = torch.full((4,), 2.0)
    p.grad = g
    opt.step()
    assert torch.equal(p.detach(), torch.zeros(4))
    assert torch.equal(g, torch.full((4,), 2.0))
    g2 = torch.full((4,), -2.0)
    p.grad = g2  # replaced again: the new tensor is what the step uses
    opt.step()
    assert torch.equal(p.detach(), torch.ones(4))


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_parameter_without_gradient_is_skipped_and_its_step_does_not_advance(cls):
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(3))
    opt = cls([a, b], **OPTIONS[cls])
    a.grad = torch.full((3,), 0.5)
    b.grad = torch.full((3,), 0.5)
    opt.step()
    b_after_one = b.detach().clone()
    b_state = {k: v.clone() for k, v in opt.state[b].items()}
    opt.zero_grad()
    a.grad = torch.full((3,), 0.25)  # b has no gradient: skipped
    opt.step()
    assert torch.equal(b.detach(), b_after_one)
    for k, v in opt.state[b].items():
        assert torch.equal(v, b_state[k])
    if "step" in opt.state[a]:
        assert float(opt.state[a]["step"]) == 2 and float(opt.state[b]["step"]) == 1


def test_never_stepped_with_stale_values_after_set_to_none():
    p = torch.nn.Parameter(torch.ones(3))
    opt = fo.SGD([p], lr=1.0)
    p.grad = torch.ones(3)
    opt.step()  # the slot now holds ones
    opt.zero_grad()  # None: the stale slot must not be stepped
    opt.step()
    assert torch.equal(p.detach(), torch.zeros(3))


def test_different_step_counts_split_the_call_and_match_the_reference():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (5, 9, 3)]
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    opt = fo.Adam(params, lr=0.01, amsgrad=True)
    refs = [dict(p=a.copy(), m=np.zeros_like(a), v=np.zeros_like(a), v_max=np.zeros_like(a),
                 t=0) for a in arrays]
    pattern = [(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 0), (1, 1, 1)]
    for mask in pattern:
        opt.zero_grad()
        for p, r, on in zip(params, refs, mask):
            if on:
                g = rng.standard_normal(p.shape).astype(np.float32)
                p.grad = torch.from_numpy(g.copy())
                r["t"] += 1
                ref.adam_update(r["p"], g, r["m"], r["v"], r["t"], 0.01, v_max=r["v_max"])
        opt.step()
        for p, r in zip(params, refs):
            np.testing.assert_array_equal(p.detach().numpy(), r["p"])
            if r["t"]:
                np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"].numpy(), r["v"])
                assert float(opt.state[p]["step"]) == r["t"]


# -- param groups, schedulers, closures ------------------------------------------------------------

def test_param_groups_with_their_own_hyperparameters():
    rng = np.random.default_rng(2)
    a0, b0 = rng.standard_normal(6), rng.standard_normal(4)
    a = torch.nn.Parameter(torch.from_numpy(a0.copy()))
    b = torch.nn.Parameter(torch.from_numpy(b0.copy()))
    opt = fo.AdamW([{"params": [a]}, {"params": [b], "lr": 0.1, "weight_decay": 0.5,
                                      "betas": (0.5, 0.9)}], lr=0.01)
    ra = ref.AdamW([a0.copy()], lr=0.01)
    rb = ref.AdamW([b0.copy()], lr=0.1, weight_decay=0.5, beta1=0.5, beta2=0.9)
    for _ in range(3):
        ga, gb = rng.standard_normal(6), rng.standard_normal(4)
        a.grad, b.grad = torch.from_numpy(ga.copy()), torch.from_numpy(gb.copy())
        opt.step()
        ra.step([ga])
        rb.step([gb])
        np.testing.assert_array_equal(a.detach().numpy(), ra.params[0])
        np.testing.assert_array_equal(b.detach().numpy(), rb.params[0])


def _scheduled_run(make_scheduler, tensor_lr=False, steps=8):
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(10).astype(np.float32)
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    lr = torch.tensor(0.05) if tensor_lr else 0.05
    opt = fo.Adam([w], lr=lr)
    sched = make_scheduler(opt)
    reference = ref.Adam([w0.copy()], lr=0.05)
    for _ in range(steps):
        g = rng.standard_normal(10).astype(np.float32)
        w.grad = torch.from_numpy(g.copy())
        lr_now = opt.param_groups[0]["lr"]
        beta1 = opt.param_groups[0]["betas"][0]
        reference.lr = float(lr_now)
        reference.beta1 = float(beta1)
        opt.step()
        reference.step([g])
        sched.step()
        np.testing.assert_array_equal(w.detach().numpy(), reference.params[0])
    return opt


@pytest.mark.parametrize("name,make", [
    ("StepLR", lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5)),
    ("LambdaLR", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e))),
    ("CosineAnnealingLR", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5)),
    ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=10)),
    ("LinearLR", lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 4)),
])
def test_lr_schedulers_are_read_every_step(name, make):
    _scheduled_run(make)


def test_tensor_lr_with_a_scheduler():
    opt = _scheduled_run(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.7),
                         tensor_lr=True)
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)


def test_reduce_lr_on_plateau():
    w = torch.nn.Parameter(torch.ones(2))
    opt = fo.SGD([w], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for _ in range(3):
        w.grad = torch.ones(2)
        opt.step()
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_step_with_closure(cls):
    model = make_model()
    twin = make_model()
    opt = cls(model.parameters(), **OPTIONS[cls])
    opt_twin = cls(twin.parameters(), **OPTIONS[cls])

    def closure():
        opt.zero_grad()
        loss = loss_of(model, 5)
        loss.backward()
        return loss

    for _ in range(3):
        loss = opt.step(closure)
        assert isinstance(loss, torch.Tensor)
        opt_twin.zero_grad()
        loss_of(twin, 5).backward()
        opt_twin.step()
    assert_same(snapshot(model), snapshot(twin))


# -- hooks ---------------------------------------------------------------------------------------

def test_hooks_run():
    model = make_model()
    opt = fo.AdamW(model.parameters())
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    opt.register_state_dict_pre_hook(lambda o: seen.append("sd-pre"))
    opt.register_state_dict_post_hook(lambda o, sd: seen.append("sd-post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append("load-pre"))
    opt.register_load_state_dict_post_hook(
        lambda o: seen.append(("load-post", o.state[next(model.parameters())]["exp_avg"]
                               is o._group_slots[0][0].views["exp_avg"])))
    loss_of(model, 0).backward()
    opt.step()
    sd = opt.state_dict()
    opt.load_state_dict(sd)
    assert seen == ["pre", "post", "sd-pre", "sd-post", "load-pre", ("load-post", True)]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_step_hooks_as_torch_runs_them(cls):
    # fastopt.torch wraps step itself (torch's wrapper would open a profiler block on every
    # step): global hooks around the optimizer's, a pre hook may replace the arguments, a pre
    # hook returning anything else is refused as torch refuses it, and step is wrapped once.
    from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                       register_optimizer_step_pre_hook)
    model = make_model()
    opt = cls(model.parameters())
    seen = []
    handles = [register_optimizer_step_pre_hook(lambda o, a, k: seen.append("global-pre")),
               register_optimizer_step_post_hook(lambda o, a, k: seen.append("global-post")),
               opt.register_step_pre_hook(lambda o, a, k: seen.append("pre")),
               opt.register_step_post_hook(lambda o, a, k: seen.append("post"))]
    try:
        loss_of(model, 0).backward()
        opt.step()
        assert seen == ["global-pre", "pre", "post", "global-post"]
        closure_calls = []

        def closure():
            closure_calls.append(1)
            return torch.tensor(3.0)

        swap = opt.register_step_pre_hook(lambda o, a, k: ((o,), {"closure": closure}))
        assert opt.step() == 3.0 and closure_calls == [1]
        swap.remove()
        bad = opt.register_step_pre_hook(lambda o, a, k: "not a tuple")
        with pytest.raises(RuntimeError, match="must return None or a tuple"):
            opt.step()
        bad.remove()
    finally:
        for h in handles:
            h.remove()
    assert getattr(type(opt).step, "hooked", False)
    assert type(opt).step.__wrapped__.__qualname__.endswith(".step")


def test_the_profiler_sees_the_step():
    model = make_model()
    opt = fo.Adam(model.parameters())
    loss_of(model, 0).backward()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    assert "Optimizer.step#Adam.step" in {e.key for e in prof.key_averages()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_buffers_of_one_dtype_start_at_different_page_offsets(dtype):
    # 4K aliasing: the parameter, gradient and state buffers of one step start at different
    # offsets within a 4 KiB page, each on a cache line.
    model = make_model(dtype=dtype)
    opt = fo.Adam(model.parameters(), amsgrad=True)
    loss_of(model, 0).backward()
    opt.step()
    (buf,) = opt._bufs.values()
    starts = [buf.param_np.ctypes.data, buf.grad_np.ctypes.data,
              *(a.ctypes.data for a in buf.state_np.values())]
    assert len(starts) == 5
    assert all(a % _buffers.ALIGN_BYTES == 0 for a in starts)
    assert len({a % _buffers.PAGE_BYTES for a in starts}) == len(starts)


# -- state dicts ---------------------------------------------------------------------------------

def _train(model, opt, steps, start=0, set_to_none=True):
    for i in range(start, start + steps):
        opt.zero_grad(set_to_none=set_to_none)
        loss_of(model, i).backward()
        opt.step()


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_state_dict_has_torchs_format(cls):
    model, twin = make_model(), make_model()
    opt = cls(model.parameters(), **OPTIONS[cls])
    torch_opt = TORCH_TWIN[cls](twin.parameters(), **OPTIONS[cls])
    _train(model, opt, 2)
    _train(twin, torch_opt, 2)
    ours, theirs = opt.state_dict(), torch_opt.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for k in ours["state"]:
        assert list(ours["state"][k]) == list(theirs["state"][k]) == STATE_NAMES[cls]
        for name, value in ours["state"][k].items():
            other = theirs["state"][k][name]
            assert value.dtype == other.dtype and value.shape == other.shape, name


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_torch_loads_ours_and_continues(cls):
    model, twin = make_model(), make_model()
    opt = cls(model.parameters(), **OPTIONS[cls])
    _train(model, opt, 3)
    twin.load_state_dict(model.state_dict())
    torch_opt = TORCH_TWIN[cls](twin.parameters(), **OPTIONS[cls])
    # A state dict holds the optimizer's own tensors (torch's too): copy it, or both
    # optimizers would step one state.
    torch_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(twin, torch_opt, 3, start=3)
    _train(model, opt, 3, start=3)
    # torch rounds in another order: close, not equal.
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("before_first_step", [True, False])
@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_we_load_torchs_and_continue_with_reference_bits(cls, before_first_step):
    twin = make_model()
    torch_opt = TORCH_TWIN[cls](twin.parameters(), **OPTIONS[cls])
    _train(twin, torch_opt, 3)
    model = make_model()
    opt = cls(model.parameters(), **OPTIONS[cls])
    if not before_first_step:
        _train(model, opt, 2, start=10)
    model.load_state_dict(twin.state_dict())
    opt.load_state_dict(torch_opt.state_dict())
    views = [dict(opt.state[p]) for p in model.parameters()]
    for p, s in zip(model.parameters(), opt._group_slots[0]):
        for name, value in opt.state[p].items():
            assert value is (s.step if name == "step" else s.views[name])
            assert torch.equal(value, torch_opt.state[list(twin.parameters())[s.index]][name])
    # Continue: the same bits as a fastopt optimizer that took those three steps itself is
    # not the claim (torch's state differs); the claim is the reference's bits from that state.
    reference = _reference_from(cls, opt, model)
    for i in range(3, 6):
        opt.zero_grad()
        loss_of(model, i).backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        opt.step()
        reference.step(grads)
    for p, want in zip(model.parameters(), reference.params):
        np.testing.assert_array_equal(p.detach().numpy(), want)
    for p, before in zip(model.parameters(), views):
        assert all(opt.state[p][k] is v for k, v in before.items())


REF_CLASS = {fo.Adam: ref.Adam, fo.AdamW: ref.AdamW, fo.SGD: ref.SGD, fo.RMSprop: ref.RMSProp,
             fo.Adagrad: ref.Adagrad}
REF_NAMES = {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max",
             "momentum_buffer": "momentum_buffer", "square_avg": "sq_avg",
             "grad_avg": "grad_avg", "sum": "sum_sq"}


def _reference_kwargs(cls, g):
    """The reference object's keywords for a fastopt.torch group ``g``."""
    if cls in (fo.Adam, fo.AdamW):
        kw = dict(lr=g["lr"], beta1=g["betas"][0], beta2=g["betas"][1], eps=g["eps"],
                  weight_decay=g["weight_decay"], amsgrad=g["amsgrad"], maximize=g["maximize"])
    elif cls is fo.SGD:
        kw = dict(lr=g["lr"], momentum=g["momentum"], dampening=g["dampening"],
                  nesterov=g["nesterov"], weight_decay=g["weight_decay"],
                  maximize=g["maximize"])
    elif cls is fo.RMSprop:
        kw = dict(lr=g["lr"], beta=g["alpha"], eps=g["eps"], centered=g["centered"],
                  momentum=g["momentum"], weight_decay=g["weight_decay"],
                  maximize=g["maximize"])
    else:
        kw = dict(lr=g["lr"], lr_decay=g["lr_decay"], weight_decay=g["weight_decay"],
                  initial_accumulator_value=g["initial_accumulator_value"], eps=g["eps"],
                  maximize=g["maximize"])
    return kw


def _reference_from(cls, opt, model):
    """A fastopt.reference object holding copies of ``model``'s parameters and ``opt``'s state
    (all parameters at the same step count)."""
    params = [p.detach().numpy().copy() for p in model.parameters()]
    reference = REF_CLASS[cls](params, **_reference_kwargs(cls, opt.param_groups[0]))
    first = opt.state[next(model.parameters())]
    if "step" in first:
        reference.t = int(first["step"])
    elif first:
        reference.t = 1  # SGD with a buffer: past its first step
    for i, p in enumerate(model.parameters()):
        for name, value in opt.state[p].items():
            if name != "step":
                reference.state(REF_NAMES[name])[i][...] = value.numpy()
    return reference


def test_load_before_any_state_then_step_starts_fresh():
    # A state dict without state for a parameter: that parameter starts from zeros.
    model = make_model()
    opt = fo.Adam(model.parameters(), lr=0.01)
    empty = opt.state_dict()
    _train(model, opt, 2)
    opt.load_state_dict(copy.deepcopy(empty))
    assert len(opt.state) == 0
    params = [p.detach().numpy().copy() for p in model.parameters()]
    reference = ref.Adam(params, lr=0.01)
    opt.zero_grad()
    loss_of(model, 7).backward()
    reference.step([p.grad.numpy().copy() for p in model.parameters()])
    opt.step()
    for p, want in zip(model.parameters(), reference.params):
        np.testing.assert_array_equal(p.detach().numpy(), want)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_torch_save_and_load_of_the_state_dict(cls, tmp_path):
    model = make_model()
    opt = cls(model.parameters(), **OPTIONS[cls])
    _train(model, opt, 2)
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    loaded = torch.load(path)  # weights_only=True: plain dicts and tensors only
    twin = copy.deepcopy(model)
    opt2 = cls(twin.parameters(), **OPTIONS[cls])
    opt2.load_state_dict(loaded)
    _train(model, opt, 2, start=2)
    _train(twin, opt2, 2, start=2)
    assert_same(snapshot(model), snapshot(twin))


def test_own_state_dict_loaded_back_is_a_no_op():
    model = make_model()
    opt = fo.RMSprop(model.parameters(), **OPTIONS[fo.RMSprop])
    _train(model, opt, 2)
    before = {k: v.clone() for k, v in opt.state[next(model.parameters())].items()}
    opt.load_state_dict(opt.state_dict())
    for k, v in opt.state[next(model.parameters())].items():
        assert torch.equal(v, before[k])


# -- add_param_group, copies -----------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_add_param_group_repacks_and_keeps_everything(cls):
    model, twin = make_model(), make_model()
    head = torch.nn.Linear(3, 2)
    head_twin = copy.deepcopy(head)
    opt = cls(list(model.parameters()), **OPTIONS[cls])
    opt_twin = cls([{"params": list(twin.parameters())},
                    {"params": list(head_twin.parameters()), "lr": 0.02}], **OPTIONS[cls])
    _train(model, opt, 2, set_to_none=False)
    _train(twin, opt_twin, 2, set_to_none=False)
    opt.add_param_group({"params": list(head.parameters()), "lr": 0.02})
    assert len(opt.param_groups) == 2
    for i in range(2, 5):
        for m, h, o in ((model, head, opt), (twin, head_twin, opt_twin)):
            o.zero_grad(set_to_none=False)
            (loss_of(m, i) + h(torch.ones(1, 3)).sum()).backward()
            o.step()
    assert_same(snapshot(model) + snapshot(head), snapshot(twin) + snapshot(head_twin))


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_copies_continue_with_the_same_bits(cls, how):
    model = make_model()
    opt = cls(model.parameters(), **OPTIONS[cls], max_grad_norm=0.5)
    _train(model, opt, 2)
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    elif how == "pickle":
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    else:
        buffer = io.BytesIO()
        torch.save((model, opt), buffer)
        buffer.seek(0)
        model2, opt2 = torch.load(buffer, weights_only=False)
    assert opt2.max_grad_norm == 0.5
    p2 = list(model2.parameters())
    assert [q for g in opt2.param_groups for q in g["params"]] == p2
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(model.parameters(), p2))
    _train(model, opt, 3, start=2)
    _train(model2, opt2, 3, start=2)
    assert_same(snapshot(model), snapshot(model2))


# -- clipping ------------------------------------------------------------------------------------

def test_torch_clip_grad_norm_before_step():
    model, twin = make_model(), make_model()
    opt = fo.AdamW(model.parameters(), lr=0.01)
    opt_twin = fo.AdamW(twin.parameters(), lr=0.01)
    for i in range(3):
        for m, o in ((model, opt), (twin, opt_twin)):
            o.zero_grad(set_to_none=False)
            loss_of(m, i).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        norm = torch.nn.utils.get_total_norm([p.grad for p in twin.parameters()])
        coef = torch.clamp(0.1 / (norm + 1e-6), max=1.0)
        for p in twin.parameters():
            p.grad.mul_(coef)
        opt.step()
        opt_twin.step()
    assert_same(snapshot(model), snapshot(twin))


def test_max_grad_norm_matches_fastopt_clip_then_step():
    model = make_model(dtype=torch.float64)
    params0 = [p.detach().numpy().copy() for p in model.parameters()]
    opt = fo.Adam(model.parameters(), lr=0.01, max_grad_norm=0.05)
    reference = ref.Adam([p.copy() for p in params0], lr=0.01)
    for i in range(4):
        opt.zero_grad()
        loss_of(model, i).backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        norm = ref.clip_grad_norm(grads, 0.05)
        opt.step()
        reference.step(grads)
        assert opt.last_grad_norm == norm
    for p, want in zip(model.parameters(), reference.params):
        np.testing.assert_array_equal(p.detach().numpy(), want)


# -- threads, autograd -----------------------------------------------------------------------------

def test_same_bits_on_one_and_two_threads():
    results = []
    for threads in (1, 2):
        with fastopt.num_threads(threads):
            torch.manual_seed(0)
            model = torch.nn.Linear(300, 200)
            opt = fo.AdamW(model.parameters(), lr=0.01)
            for i in range(3):
                opt.zero_grad()
                g = torch.Generator().manual_seed(i)
                model(torch.randn(8, 300, generator=g)).pow(2).mean().backward()
                opt.step()
            results.append(snapshot(model))
    assert_same(*results)


def test_step_bumps_the_version_counter_as_torch_does():
    model = make_model()
    opt = fo.SGD(model.parameters(), lr=0.1)
    loss_of(model, 0).backward()
    y = loss_of(model, 1)  # the graph saved the weights
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_shallow_copy_is_refused():
    opt = fo.SGD(make_model().parameters(), lr=0.1)
    with pytest.raises(TypeError, match="copy.deepcopy"):
        copy.copy(opt)


def test_autocast_and_grad_scaler_on_the_cpu():
    model = make_model()
    params0 = [p.detach().numpy().copy() for p in model.parameters()]
    opt = fo.AdamW(model.parameters(), lr=0.01)
    reference = ref.AdamW(params0, lr=0.01)
    scaler = torch.amp.GradScaler("cpu")
    for i in range(3):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_of(model, i).float()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # in place, on the packed gradient views
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        reference.step(grads)
    for p, want in zip(model.parameters(), reference.params):
        np.testing.assert_array_equal(p.detach().numpy(), want)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_empty_and_scalar_parameters(cls):
    empty = torch.nn.Parameter(torch.empty(0, 5))
    scalar = torch.nn.Parameter(torch.tensor(1.0))
    lone = torch.nn.Parameter(torch.empty(0, dtype=torch.float64))  # a dtype with no items
    opt = cls([empty, scalar, lone], **OPTIONS[cls])
    reference = REF_CLASS[cls]([np.ones((), np.float32)],
                               **_reference_kwargs(cls, opt.param_groups[0]))
    for _ in range(3):
        for p in (empty, scalar, lone):
            p.grad = torch.full_like(p, 0.5)
        opt.step()
        reference.step([np.full((), 0.5, np.float32)])
    np.testing.assert_array_equal(scalar.detach().numpy(), reference.params[0])
    assert empty.shape == (0, 5) and lone.shape == (0,)
    assert set(opt.state_dict()["state"]) == {0, 1, 2}
