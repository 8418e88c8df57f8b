"""fastopt.torch when memory moves or is repointed under its views: storage moved into shared
memory after packing, ``.data`` / ``set_`` on the optimizer's views, ``p.data`` replaced by a
view of the same memory with another layout or of another parameter, parameters already in
shared memory, and hyperparameters changed in place. The promise (docs/contract.md §13): never a
silent wrong result or a dropped gradient; a correct slow path, or an error naming the parameter
raised before anything is written.

Most tests step two optimizers in lockstep: one whose views were disturbed, and a twin given the
same values the ordinary way (a tensor assigned to ``p.grad`` or to the state), and compare the
bits."""
import multiprocessing
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt.torch as fo  # noqa: E402

CLASSES = [fo.Adam, fo.AdamW, fo.SGD, fo.RMSprop, fo.Adagrad]
OPTIONS = {fo.Adam: dict(lr=0.01, amsgrad=True), fo.AdamW: dict(lr=0.01),
           fo.SGD: dict(lr=0.05, momentum=0.9), fo.RMSprop: dict(lr=0.01, centered=True,
                                                                 momentum=0.5),
           fo.Adagrad: dict(lr=0.1, initial_accumulator_value=0.1)}
STATE_NAMES = {fo.Adam: ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
               fo.AdamW: ["exp_avg", "exp_avg_sq"], fo.SGD: ["momentum_buffer"],
               fo.RMSprop: ["square_avg", "momentum_buffer", "grad_avg"], fo.Adagrad: ["sum"]}
ids = [c.__name__ for c in CLASSES]


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))


def backward(model, seed):
    g = torch.Generator().manual_seed(seed)
    model(torch.randn(8, 4, generator=g)).pow(2).mean().backward()


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


def assert_state_same(opt_a, pa, opt_b, pb):
    for p, q in zip(pa, pb):
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert sorted(sa) == sorted(sb)
        for key in sa:
            np.testing.assert_array_equal(torch.as_tensor(sa[key]).numpy(),
                                          torch.as_tensor(sb[key]).numpy())


def twins(cls, **kwargs):
    a, b = make_model(), make_model()
    kw = dict(OPTIONS[cls], **kwargs)
    return a, cls(a.parameters(), **kw), b, cls(b.parameters(), **kw)


# -- 1. storage moved under the buffers ------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("when", ["after building", "after a step"])
def test_share_memory_after_building_keeps_stepping_the_models_memory(cls, when):
    a, opt_a, b, opt_b = twins(cls)
    for step in range(4):
        if (when == "after building" and step == 0) or (when == "after a step" and step == 2):
            a.share_memory()  # moves the parameters' (and bound gradients') storage in place
            for st in opt_a.state.values():  # as putting opt.state_dict() on a queue does
                for value in st.values():
                    value.share_memory_()
            assert all(p.is_shared() for p in a.parameters())
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=(step % 2 == 0))
            backward(model, step)
            opt.step()
        assert_same(a.parameters(), b.parameters())
        assert_state_same(opt_a, list(a.parameters()), opt_b, list(b.parameters()))
    # The model computes with what the steps wrote.
    x = torch.randn(2, 4)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    assert all(p.is_shared() for p in a.parameters())


def test_load_state_dict_after_the_step_counts_moved():
    a, opt_a, b, opt_b = twins(fo.Adam)
    for model, opt in ((a, opt_a), (b, opt_b)):
        backward(model, 0)
        opt.step()
    for st in opt_a.state.values():
        st["step"].share_memory_()  # the step counts' buffer moves
    saved = opt_b.state_dict()
    saved["state"] = {k: dict(v, step=torch.tensor(5.0)) for k, v in saved["state"].items()}
    opt_a.load_state_dict(saved)
    opt_b.load_state_dict(saved)
    for model, opt in ((a, opt_a), (b, opt_b)):
        backward(model, 1)
        opt.step()
    assert_same(a.parameters(), b.parameters())
    assert [float(st["step"]) for st in opt_a.state.values()] == [6.0] * 4


def test_the_common_step_takes_no_slow_path(monkeypatch):
    model = make_model()
    opt = fo.Adam(model.parameters())
    backward(model, 0)
    opt.step()
    monkeypatch.setattr(opt, "_resync", lambda: pytest.fail("slow path taken"))
    for step in range(2):
        opt.zero_grad(set_to_none=False)
        backward(model, step)
        opt.step()


def test_a_state_dict_put_on_a_torch_multiprocessing_queue():
    ctx = torch.multiprocessing.get_context("spawn")
    a, opt_a, b, opt_b = twins(fo.SGD)
    q = ctx.Queue()
    q.put(a.state_dict())  # pickling moves each storage into shared memory, in place
    q.get(timeout=30)
    assert a[0].weight.is_shared()
    for step in range(3):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=False)
            backward(model, step)
            opt.step()
    assert_same(a.parameters(), b.parameters())


def _hogwild_worker(opt, model):
    backward(model, 0)
    opt.step()


def _forked_worker_scenario():
    a, opt_a, b, opt_b = twins(fo.SGD, momentum=0.0)
    a.share_memory()
    proc = multiprocessing.get_context("fork").Process(target=_hogwild_worker, args=(opt_a, a))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0, proc.exitcode
    _hogwild_worker(opt_b, b)
    assert_same(a.parameters(), b.parameters())


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_built_before_share_memory_a_forked_worker_steps_the_shared_parameters():
    # In a fresh interpreter: forking this pytest process, which may have imported JAX (the
    # conformance report's optax tests) and started its threads, risks a deadlock in the child.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_torch_views as t; "
            "t._forked_worker_scenario(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code, str(pathlib.Path(__file__).parent)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and result.stdout.split()[-1:] == ["ok"], result.stderr[-3000:]


# -- 2. views repointed with .data / set_ ------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("how", ["data", "set_"])
def test_a_repointed_gradient_view_is_the_users_gradient(cls, how):
    a, opt_a, b, opt_b = twins(cls)
    for step in range(4):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=False)
            backward(model, step)
        if step in (1, 2):
            for p, q in zip(a.parameters(), b.parameters()):
                new = p.grad.detach() * 10
                if how == "data":
                    p.grad.data = new
                else:
                    p.grad.set_(new)
                q.grad = q.grad * 10
        opt_a.step()
        opt_b.step()
        assert_same(a.parameters(), b.parameters())
    # Later backward passes accumulate into the buffer again, and zero_grad empties them.
    for model, opt in ((a, opt_a), (b, opt_b)):
        opt.zero_grad(set_to_none=False)
        backward(model, 9)
        opt.step()
    assert_same(a.parameters(), b.parameters())


def test_a_gradient_view_repointed_then_set_to_none():
    # /tmp/rv/t14: p.grad.data = clone; zero_grad(); backward: the fresh gradient was copied
    # into the repointed view, not into the slot.
    p = torch.nn.Parameter(torch.zeros(4))
    opt = fo.SGD([p], lr=1.0)
    p.grad = torch.ones(4)
    opt.step()
    p.grad.data = p.grad.data.clone()
    for i in range(3):
        opt.zero_grad()
        (p.sum() * 2).backward()
        before = p.detach().clone()
        opt.step()
        np.testing.assert_array_equal((p.detach() - before).numpy(), np.full(4, -2.0, np.float32))


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_a_repointed_state_view_is_the_users_state(cls):
    a, opt_a, b, opt_b = twins(cls)
    for step in range(4):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            backward(model, step)
        if step == 2:
            for p, q in zip(a.parameters(), b.parameters()):
                for name in STATE_NAMES[cls]:
                    new = opt_a.state[p][name].detach() * 0.5 + 0.25
                    opt_a.state[p][name].data = new
                    opt_b.state[q][name] = new.clone()
                if cls is not fo.SGD:
                    opt_a.state[p]["step"].data = torch.tensor(7.0)
                    opt_b.state[q]["step"] = torch.tensor(7.0)
        opt_a.step()
        opt_b.step()
        assert_same(a.parameters(), b.parameters())
        assert_state_same(opt_a, list(a.parameters()), opt_b, list(b.parameters()))


# -- 3. parameters already in shared memory ----------------------------------------------------


def test_parameters_in_shared_memory_are_refused_naming_them():
    model = make_model()
    model.share_memory()
    with pytest.raises(ValueError, match=r"'0.weight' .*shared memory.*torch.optim"):
        fo.Adam(model.named_parameters())
    assert all(p.is_shared() for p in model.parameters())
    opt = fo.Adam(make_model().parameters())
    with pytest.raises(ValueError, match="shared memory"):
        opt.add_param_group({"params": model.parameters()})
    assert len(opt.param_groups) == 1


def test_add_param_group_after_share_memory_is_refused():
    model = make_model()
    opt = fo.SGD(model.parameters(), lr=0.1)
    model.share_memory()
    extra = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="add_param_group packs every parameter again"):
        opt.add_param_group({"params": [extra]})
    assert len(opt.param_groups) == 1
    assert all(p.is_shared() for p in model.parameters())


# -- 4, 5. p.data replaced by other views of the buffers -----------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_a_transposed_view_of_its_own_slot_is_packed_back(cls):
    a, b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = cls(a.parameters(), **OPTIONS[cls]), cls(b.parameters(), **OPTIONS[cls])
    x = torch.randn(3, 4)
    for step in range(3):
        if step == 1:
            a.weight.data = a.weight.data.T  # same data pointer, other strides
            b.weight.data = b.weight.data.T.clone()
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            model(x * (step + 1)).pow(2).sum().backward()
            opt.step()
        assert_same(a.parameters(), b.parameters())
    assert a.weight.is_contiguous()


def test_tying_through_data_after_building_is_refused_before_anything_is_written():
    enc, dec = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    opt = fo.SGD(list(enc.parameters()) + list(dec.parameters()), lr=0.1)
    dec.weight.data = enc.weight.data
    dec(enc(torch.randn(2, 4))).sum().backward()
    before = [p.detach().clone() for p in list(enc.parameters()) + list(dec.parameters())]
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[2\] and parameter "
                                         r"param_groups\[0\]\['params'\]\[0\] share storage"
                                         r".*would untie them"):
        opt.step()
    assert dec.weight.data_ptr() == enc.weight.data_ptr()
    assert_same(list(enc.parameters()) + list(dec.parameters()), before)


def test_two_parameters_replaced_by_views_of_one_new_tensor_are_refused():
    p, q = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = fo.Adam([p, q])
    shared = torch.ones(2, 3)
    p.data, q.data = shared[0], shared[1]
    p.grad, q.grad = torch.ones(3), torch.ones(3)
    with pytest.raises(ValueError, match="share storage.*would untie them"):
        opt.step()
    assert not opt.state


def test_a_parameter_replaced_by_a_gradient_view_is_refused():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = fo.SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    p.data = p.grad
    with pytest.raises(ValueError, match="gradient or state buffers"):
        opt.step()


# -- 6, 7. hyperparameters changed in place; lr messages -----------------------------------------


def test_betas_list_changed_in_place_is_seen():
    a, b = make_model(), make_model()
    opt_a = fo.Adam([{"params": a.parameters(), "betas": [0.9, 0.999]}], lr=0.01)
    opt_b = fo.Adam(b.parameters(), lr=0.01, betas=(0.9, 0.999))
    for step in range(3):
        if step == 1:
            opt_a.param_groups[0]["betas"][0] = 0.5
            opt_b.param_groups[0]["betas"] = (0.5, 0.999)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            backward(model, step)
            opt.step()
        assert_same(a.parameters(), b.parameters())


def test_a_tensor_hyperparameter_filled_in_place_is_seen():
    a, b = make_model(), make_model()
    opt_a = fo.SGD(a.parameters(), lr=0.1, weight_decay=torch.tensor(0.0))
    opt_b = fo.SGD(b.parameters(), lr=0.1, weight_decay=0.0)
    for step in range(3):
        if step == 1:
            opt_a.param_groups[0]["weight_decay"].fill_(0.5)
            opt_b.param_groups[0]["weight_decay"] = 0.5
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            backward(model, step)
            opt.step()
        assert_same(a.parameters(), b.parameters())


def test_a_bool_where_a_number_was_is_refused():
    opt = fo.SGD(make_model().parameters(), lr=0.1, momentum=1)
    opt.step()
    opt.param_groups[0]["momentum"] = True
    with pytest.raises(TypeError, match="momentum"):
        opt.step()


def test_a_multi_element_tensor_hyperparameter_is_worded():
    model = make_model()
    opt = fo.Adam(model.parameters())
    backward(model, 0)
    opt.step()
    opt.param_groups[0]["weight_decay"] = torch.tensor([0.1, 0.2])
    with pytest.raises(TypeError, match=r"weight_decay must be a real number.*param_groups\[0\]"):
        opt.step()


def test_tensor_lr_messages_name_no_empty_location():
    params = make_model().parameters()
    with pytest.raises(ValueError) as info:
        fo.Adam(params, lr=torch.tensor([0.1, 0.2]))
    assert str(info.value) == "Tensor lr must be 1-element"
    with pytest.raises(TypeError) as info:
        fo.SGD(make_model().parameters(), lr=torch.tensor(0.1 + 0j))
    assert "(in " not in str(info.value)


def test_numpy_scalar_hyperparameters_are_cached_and_changes_seen():
    a, b = make_model(), make_model()
    opt_a = fo.SGD(a.parameters(), lr=0.1, momentum=np.float64(0.5))
    opt_b = fo.SGD(b.parameters(), lr=0.1, momentum=0.5)
    for step in range(3):
        if step == 2:
            opt_a.param_groups[0]["momentum"] = np.float32(0.25)
            opt_b.param_groups[0]["momentum"] = float(np.float32(0.25))
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            backward(model, step)
            opt.step()
        assert_same(a.parameters(), b.parameters())
    assert 0 in opt_a._hyper_cache
