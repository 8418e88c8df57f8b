"""fastopt.torch refuses bad input with a clear TypeError/ValueError naming the parameter, before
anything is written (or takes a correct slow path); torch's own constructor messages where torch
refuses too."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402

TWIN = {fo.Adam: torch.optim.Adam, fo.AdamW: torch.optim.AdamW, fo.SGD: torch.optim.SGD,
        fo.RMSprop: torch.optim.RMSprop, fo.Adagrad: torch.optim.Adagrad}


def params():
    return [torch.nn.Parameter(torch.ones(3))]


# -- constructors: torch's words ------------------------------------------------------------------

TORCH_REFUSES = [
    (fo.Adam, dict(lr=-1.0)), (fo.Adam, dict(lr=float("nan"))), (fo.Adam, dict(eps=-1e-8)),
    (fo.Adam, dict(betas=(1.0, 0.999))), (fo.Adam, dict(betas=(0.9, -0.1))),
    (fo.Adam, dict(weight_decay=-0.1)), (fo.AdamW, dict(lr=-0.5)),
    (fo.AdamW, dict(betas=(0.9, 1.0))), (fo.AdamW, dict(weight_decay=-1.0)),
    (fo.SGD, dict(lr=-0.1)), (fo.SGD, dict(lr=0.1, momentum=-0.9)),
    (fo.SGD, dict(lr=0.1, weight_decay=-1.0)), (fo.SGD, dict(lr=0.1, nesterov=True)),
    (fo.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    (fo.RMSprop, dict(lr=-0.1)), (fo.RMSprop, dict(eps=-1.0)),
    (fo.RMSprop, dict(momentum=-1.0)), (fo.RMSprop, dict(weight_decay=-1.0)),
    (fo.RMSprop, dict(alpha=-0.5)), (fo.Adagrad, dict(lr=-0.1)),
    (fo.Adagrad, dict(lr_decay=-0.1)), (fo.Adagrad, dict(weight_decay=-0.1)),
    (fo.Adagrad, dict(initial_accumulator_value=-0.1)), (fo.Adagrad, dict(eps=-1e-10)),
]


@pytest.mark.parametrize("cls,kwargs", TORCH_REFUSES,
                         ids=[f"{c.__name__}-{k}" for c, k in TORCH_REFUSES])
def test_constructor_refusals_in_torchs_words(cls, kwargs):
    with pytest.raises(ValueError) as theirs:
        TWIN[cls](params(), **kwargs)
    with pytest.raises(ValueError) as ours:
        cls(params(), **kwargs)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("cls,kwargs,error,match", [
    (fo.Adam, dict(lr=float("inf")), ValueError, "Invalid learning rate: inf.*finite"),
    (fo.Adam, dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0.*eps > 0"),
    (fo.RMSprop, dict(alpha=1.0), ValueError, "Invalid alpha value: 1.0.*alpha < 1"),
    (fo.SGD, dict(lr=0.1, dampening=-0.5), ValueError, "Invalid dampening value"),
    (fo.Adam, dict(lr="0.1"), TypeError, "lr must be a real number, got str"),
    (fo.Adam, dict(amsgrad=1), TypeError, "amsgrad must be True or False"),
    (fo.Adam, dict(betas=0.9), TypeError, "betas must be a pair"),
    (fo.Adam, dict(lr=torch.tensor([0.1, 0.2])), ValueError, "Tensor lr must be 1-element"),
    (fo.Adam, dict(capturable=True), ValueError, "capturable=True is not supported.*CUDA"),
    (fo.SGD, dict(differentiable=True), ValueError, "differentiable=True is not supported"),
    (fo.Adam, dict(foreach="yes"), ValueError, "foreach='yes' is not supported"),
    (fo.Adam, dict(fused=True, foreach=True), RuntimeError, "cannot be `True` together"),
    (fo.Adam, dict(max_grad_norm=0.0), ValueError, "max_grad_norm must be finite and > 0"),
])
def test_constructor_refusals_of_fastopt(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(params(), **kwargs)


def test_options_torch_lacks_are_errors_as_in_torch():
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        fo.AdamW(params(), decoupled_weight_decay=True)
    with pytest.raises(TypeError, match="momentum"):
        fo.Adam(params(), momentum=0.9)


@pytest.mark.parametrize("cls", [fo.Adam, fo.AdamW, fo.SGD, fo.Adagrad])
def test_cpu_values_of_foreach_and_fused_are_accepted(cls):
    for kwargs in (dict(foreach=True), dict(foreach=False), dict(fused=True),
                   dict(fused=False)):
        opt = cls(params(), **kwargs)
        assert opt.param_groups[0][next(iter(kwargs))] == next(iter(kwargs.values()))


def test_signatures_and_defaults_are_torchs():
    import inspect
    for ours, theirs in TWIN.items():
        a = inspect.signature(ours.__init__).parameters
        b = inspect.signature(theirs.__init__).parameters
        assert list(a)[:-1] == list(b), ours.__name__  # plus max_grad_norm, last
        assert list(a)[-1] == "max_grad_norm"
        for name in b:
            assert a[name].default == b[name].default, (ours.__name__, name)
            assert a[name].kind == b[name].kind, (ours.__name__, name)


# -- parameters -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,match", [
    (lambda: torch.nn.Parameter(torch.ones(3, device="meta")), ValueError,
     r"parameter param_groups\[0\]\['params'\]\[1\] is on meta.*CPU"),
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.complex64)), TypeError,
     r"param_groups\[0\]\['params'\]\[1\] is complex"),
    (lambda: torch.ones(3, dtype=torch.int64), TypeError,
     r"param_groups\[0\]\['params'\]\[1\] is torch.int64.*float32, float64, bfloat16 and "
     r"float16"),
    (lambda: torch.nn.Parameter(torch.ones(3).to_sparse()), TypeError,
     r"param_groups\[0\]\['params'\]\[1\] has layout torch.sparse_coo"),
])
def test_parameters_refused(make, error, match):
    good = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(error, match=match):
        fo.Adam([good, make()])
    assert good.data_ptr() != 0 and torch.equal(good.detach(), torch.ones(2))


def test_named_parameters_are_named_in_messages():
    named = [("weight", torch.nn.Parameter(torch.ones(2, 2, dtype=torch.complex64)))]
    with pytest.raises(TypeError, match=r"'weight' \(param_groups\[0\]\['params'\]\[0\]\)"):
        fo.SGD(named, lr=0.1)


def test_views_of_one_tensor_are_refused():
    base = torch.zeros(10, requires_grad=True)
    a, b = base[:5].detach().requires_grad_(), base[5:].detach().requires_grad_()
    with pytest.raises(ValueError, match="share storage"):
        fo.SGD([a, b], lr=0.1)


def test_a_parameter_in_two_groups_or_twice_in_one():
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"more than one parameter group.*"
                                         r"param_groups\[1\]\['params'\]\[0\].*"
                                         r"param_groups\[0\]\['params'\]\[1\]"):
        fo.Adam([{"params": [q, p]}, {"params": [p]}])
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\] is the same"):
        fo.Adam([p, p])
    opt = fo.Adam([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_an_earlier_optimizers_packing_is_not_shared_storage():
    model = torch.nn.Linear(3, 3)
    fo.Adam(model.parameters())
    opt = fo.SGD(model.parameters(), lr=0.1)  # rebuilding an optimizer over the same model
    model(torch.ones(1, 3)).sum().backward()
    opt.step()


def test_add_param_group_refusal_changes_nothing():
    p = torch.nn.Parameter(torch.ones(2))
    opt = fo.Adam([p])
    p.grad = torch.ones(2)
    opt.step()
    bufs, slots = opt._bufs, opt._slots
    bad = torch.ones(2, dtype=torch.int64)
    with pytest.raises(TypeError, match="is torch.int64"):
        opt.add_param_group({"params": [bad]})
    with pytest.raises(ValueError, match=r"Invalid epsilon value: -1 \(in param_groups\[1\]\)"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "eps": -1})
    assert len(opt.param_groups) == 1 and opt._bufs is bufs and opt._slots is slots


# -- gradients ------------------------------------------------------------------------------------

def _two_params_stepped_once(cls=fo.Adam, **kwargs):
    a, b = torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(4))
    opt = cls([a, b], **kwargs)
    a.grad, b.grad = torch.full((2, 3), 0.5), torch.full((4,), 0.5)
    opt.step()
    return opt, a, b


def _frozen(opt, *ps):
    return [(p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}) for p in ps]


def _assert_unchanged(opt, ps, frozen):
    for p, (value, state) in zip(ps, frozen):
        assert torch.equal(p.detach(), value)
        for k, v in opt.state[p].items():
            assert torch.equal(v, state[k])


def test_sparse_gradient_is_refused_before_anything_is_written():
    opt, a, b = _two_params_stepped_once()
    frozen = _frozen(opt, a, b)
    new_a = torch.full((2, 3), 2.0)
    a.grad = new_a  # valid: would be copied in
    b.grad = torch.full((4,), 1.0).to_sparse()
    with pytest.raises(TypeError, match=r"gradient of param_groups\[0\]\['params'\]\[1\] "
                                        r"is sparse"):
        opt.step()
    _assert_unchanged(opt, (a, b), frozen)
    assert a.grad is new_a  # not rebound either


def test_sparse_embedding_gradients_are_refused():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = fo.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse.*SparseAdam"):
        opt.step()


def test_a_gradient_that_views_our_buffers_is_refused():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = fo.SGD([a, b], lr=0.1)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.step()
    frozen = _frozen(opt, a, b)
    a.grad = b.grad  # the slot of another parameter
    with pytest.raises(ValueError, match=r"gradient of param_groups\[0\]\['params'\]\[0\] is "
                                         r"a view of this optimizer's own buffers"):
        opt.step()
    _assert_unchanged(opt, (a, b), frozen)


@pytest.mark.parametrize("layout", ["transposed", "channels_last", "strided"])
def test_non_contiguous_gradients_take_a_correct_slow_path(layout):
    rng = np.random.default_rng(0)
    if layout == "channels_last":
        shape = (4, 3, 2, 2)
    else:
        shape = (6, 5)
    w0 = rng.standard_normal(shape).astype(np.float32)
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = fo.Adam([w], lr=0.1)
    reference = ref.Adam([w0.copy()], lr=0.1)
    for _ in range(3):
        g = rng.standard_normal(shape).astype(np.float32)
        t = torch.from_numpy(g.copy())
        if layout == "transposed":
            t = t.t().contiguous().t()
        elif layout == "channels_last":
            t = t.contiguous(memory_format=torch.channels_last)
        else:
            t = torch.from_numpy(np.repeat(g, 2, axis=1).copy())[:, ::2]
        assert not t.is_contiguous() and torch.equal(t, torch.from_numpy(g))
        w.grad = t
        opt.step()
        reference.step([g])
        np.testing.assert_array_equal(w.detach().numpy(), reference.params[0])
        np.testing.assert_array_equal(opt.state[w]["exp_avg"].numpy(), reference.state("m")[0])


def test_a_parameter_resized_after_packing_is_named():
    opt, a, b = _two_params_stepped_once()
    frozen = _frozen(opt, a)
    b.data = torch.ones(5)
    b.grad = torch.ones(5)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\] has shape "
                                         r"\(5,\) since the optimizer packed it as \(4,\)"):
        opt.step()
    _assert_unchanged(opt, (a,), frozen)


def test_a_model_converted_after_packing_is_refused():
    model = torch.nn.Linear(2, 2)
    opt = fo.Adam(model.parameters())
    model.double()
    model(torch.ones(1, 2, dtype=torch.float64)).sum().backward()
    with pytest.raises(TypeError, match=r"'?param_groups\[0\]\['params'\]\[0\]'? became "
                                        r"torch.float64.*build the optimizer after"):
        opt.step()


def test_replaced_data_of_the_same_kind_is_packed_back():
    w = torch.nn.Parameter(torch.ones(3))
    opt = fo.SGD([w], lr=0.5)
    w.data = torch.full((3,), 4.0)  # e.g. a re-initialisation that rebinds .data
    w.grad = torch.ones(3)
    opt.step()
    assert torch.equal(w.detach(), torch.full((3,), 3.5))
    assert w.data_ptr() == opt._group_slots[0][0].data.data_ptr()


# -- groups changed between steps -------------------------------------------------------------------

@pytest.mark.parametrize("key,value,error,match", [
    ("lr", -1.0, ValueError, r"Invalid learning rate: -1.0 \(in param_groups\[0\]\)"),
    ("lr", float("nan"), ValueError, "Invalid learning rate: nan"),
    ("betas", (1.0, 0.9), ValueError, "Invalid beta parameter at index 0"),
    ("eps", 0.0, ValueError, "Invalid epsilon value"),
    ("capturable", True, ValueError, "capturable=True is not supported"),
    ("amsgrad", True, ValueError, r"has no 'max_exp_avg_sq'.*switched on after"),
])
def test_a_group_changed_to_something_invalid_is_refused_at_step(key, value, error, match):
    opt, a, b = _two_params_stepped_once()
    frozen = _frozen(opt, a, b)
    opt.param_groups[0][key] = value
    a.grad, b.grad = torch.ones(2, 3), torch.ones(4)
    with pytest.raises(error, match=match):
        opt.step()
    _assert_unchanged(opt, (a, b), frozen)


def test_params_list_changed_in_place_is_refused():
    opt, a, b = _two_params_stepped_once()
    opt.param_groups[0]["params"].append(torch.nn.Parameter(torch.ones(2)))
    with pytest.raises(ValueError, match="add_param_group"):
        opt.step()


# -- load_state_dict refusals --------------------------------------------------------------------------

def test_load_refusals_leave_the_optimizer_as_it_was():
    opt, a, b = _two_params_stepped_once()
    frozen = _frozen(opt, a, b)
    groups = copy.deepcopy(opt.param_groups)
    good = copy.deepcopy(opt.state_dict())

    bad_shape = copy.deepcopy(good)
    bad_shape["state"][1]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"state\['exp_avg'\] of param_groups\[0\]\['params'\]"
                                         r"\[1\] has shape \(5,\)"):
        opt.load_state_dict(bad_shape)

    bad_eps = copy.deepcopy(good)
    bad_eps["param_groups"][0]["eps"] = 0.0
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        opt.load_state_dict(bad_eps)

    missing = copy.deepcopy(good)
    del missing["state"][0]["exp_avg_sq"]
    with pytest.raises(ValueError, match="has no 'exp_avg_sq'"):
        opt.load_state_dict(missing)

    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})

    _assert_unchanged(opt, (a, b), frozen)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in groups]
    for p, s in zip((a, b), opt._group_slots[0]):
        assert opt.state[p]["exp_avg"] is s.views["exp_avg"]


def test_a_step_count_past_float32s_exact_range_is_refused():
    opt, a, b = _two_params_stepped_once()
    opt.state[a]["step"].fill_(2 ** 24)
    frozen = _frozen(opt, a, b)
    a.grad, b.grad = torch.ones(2, 3), torch.ones(4)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[0\] has taken "
                                         r"16777216 steps"):
        opt.step()
    _assert_unchanged(opt, (a, b), frozen)
    opt.state[a]["step"] = torch.tensor(float(2 ** 24))  # replaced, not written: same refusal
    with pytest.raises(ValueError, match="has taken 16777216 steps"):
        opt.step()
    opt.state[a]["step"] = torch.tensor(float(2 ** 24 - 1))
    opt.step()
    assert float(opt.state[a]["step"]) == 2 ** 24
