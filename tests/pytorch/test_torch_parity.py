"""fastopt.torch writes the bits of fastopt.reference: every rule x option set x dtype x size,
several steps, on every SIMD variant with 1 and 2 threads (the ``fast_config`` fixture), each
parameter and every state tensor compared with ``assert_array_equal``."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

SIZES = [1, 7, 17, 1000, 100003]
STEPS = 4

# (fastopt.torch class, its kwargs, reference class, the reference's kwargs, state name map)
ADAM_STATE = {"exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max"}
RMS_STATE = {"square_avg": "sq_avg", "grad_avg": "grad_avg", "momentum_buffer": "momentum_buffer"}


def _adam(**kw):
    amsgrad = kw.get("amsgrad", False)
    decoupled = kw.pop("decoupled_weight_decay", False)
    rkw = dict(lr=kw.get("lr", 1e-3), beta1=kw.get("betas", (0.9, 0.999))[0],
               beta2=kw.get("betas", (0.9, 0.999))[1], eps=kw.get("eps", 1e-8),
               weight_decay=kw.get("weight_decay", 0.0), amsgrad=amsgrad,
               maximize=kw.get("maximize", False))
    if decoupled:
        return (fo.Adam, dict(kw, decoupled_weight_decay=True), ref.AdamW, rkw, ADAM_STATE)
    return fo.Adam, kw, ref.Adam, rkw, ADAM_STATE


def _adamw(**kw):
    rkw = dict(lr=kw.get("lr", 1e-3), beta1=kw.get("betas", (0.9, 0.999))[0],
               beta2=kw.get("betas", (0.9, 0.999))[1], eps=kw.get("eps", 1e-8),
               weight_decay=kw.get("weight_decay", 1e-2), amsgrad=kw.get("amsgrad", False),
               maximize=kw.get("maximize", False))
    return fo.AdamW, kw, ref.AdamW, rkw, ADAM_STATE


def _sgd(**kw):
    rkw = dict(lr=kw.get("lr", 1e-3), momentum=kw.get("momentum", 0.0),
               dampening=kw.get("dampening", 0.0), nesterov=kw.get("nesterov", False),
               weight_decay=kw.get("weight_decay", 0.0), maximize=kw.get("maximize", False))
    return fo.SGD, kw, ref.SGD, rkw, {"momentum_buffer": "momentum_buffer"}


def _rmsprop(**kw):
    rkw = dict(lr=kw.get("lr", 1e-2), beta=kw.get("alpha", 0.99), eps=kw.get("eps", 1e-8),
               centered=kw.get("centered", False), momentum=kw.get("momentum", 0.0),
               weight_decay=kw.get("weight_decay", 0.0), maximize=kw.get("maximize", False))
    return fo.RMSprop, kw, ref.RMSProp, rkw, RMS_STATE


def _adagrad(**kw):
    rkw = dict(lr=kw.get("lr", 1e-2), lr_decay=kw.get("lr_decay", 0.0),
               weight_decay=kw.get("weight_decay", 0.0),
               initial_accumulator_value=kw.get("initial_accumulator_value", 0.0),
               eps=kw.get("eps", 1e-10), maximize=kw.get("maximize", False))
    return fo.Adagrad, kw, ref.Adagrad, rkw, {"sum": "sum_sq"}


CASES = {
    "Adam": lambda: _adam(),
    "Adam-l2": lambda: _adam(lr=0.01, weight_decay=0.1),
    "Adam-amsgrad": lambda: _adam(lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    "Adam-maximize-l2": lambda: _adam(maximize=True, weight_decay=0.05, eps=1e-6),
    "Adam-decoupled": lambda: _adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "AdamW": lambda: _adamw(),
    "AdamW-amsgrad-maximize": lambda: _adamw(lr=0.02, weight_decay=0.3, amsgrad=True,
                                             maximize=True),
    "SGD": lambda: _sgd(lr=0.1),
    "SGD-momentum": lambda: _sgd(lr=0.1, momentum=0.9),
    "SGD-dampening-l2": lambda: _sgd(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    "SGD-nesterov-maximize": lambda: _sgd(lr=0.05, momentum=0.9, nesterov=True, maximize=True),
    "RMSprop": lambda: _rmsprop(),
    "RMSprop-centered": lambda: _rmsprop(lr=0.01, alpha=0.9, centered=True),
    "RMSprop-momentum": lambda: _rmsprop(momentum=0.5, weight_decay=0.01),
    "RMSprop-all": lambda: _rmsprop(centered=True, momentum=0.5, weight_decay=0.01,
                                    maximize=True, eps=1e-6),
    "Adagrad": lambda: _adagrad(),
    "Adagrad-options": lambda: _adagrad(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5,
                                        weight_decay=0.01),
    "Adagrad-maximize": lambda: _adagrad(maximize=True),
}

TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def run_pair(case, dtype, shapes, steps=STEPS, max_grad_norm=None, seed=0, in_place_from=2):
    """Step fastopt.torch and the reference object side by side; compare after each step.
    Gradients are assigned as new tensors (the copy path) before step ``in_place_from`` and
    written into the bound ``p.grad`` views (autograd's in-place path) from then on."""
    cls, kw, ref_cls, rkw, state_map = CASES[case]()
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    opt = cls(params, max_grad_norm=max_grad_norm, **kw)
    reference = ref_cls([a.copy() for a in arrays], max_grad_norm=max_grad_norm, **rkw)
    for step in range(steps):
        grads = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
        for p, g in zip(params, grads):
            if step < in_place_from or p.grad is None:
                p.grad = torch.from_numpy(g.copy())
            else:
                p.grad.copy_(torch.from_numpy(g))
        opt.step()
        reference.step(grads)
        check_equal(opt, params, reference, state_map, step)
    if max_grad_norm is not None:
        assert opt.last_grad_norm == reference.last_grad_norm
    return opt, params, reference


def check_equal(opt, params, reference, state_map, step=None):
    for i, (p, want) in enumerate(zip(params, reference.params)):
        np.testing.assert_array_equal(p.detach().numpy(), want, err_msg=f"param {i} step {step}")
        st = opt.state[p]
        for torch_name, ref_name in state_map.items():
            if ref_name in reference.state_names:
                np.testing.assert_array_equal(st[torch_name].numpy(),
                                              reference.state(ref_name)[i],
                                              err_msg=f"{torch_name} {i} step {step}")
            else:
                assert torch_name not in st
        if opt._uses_step:
            assert st["step"].dtype == torch.float32 and st["step"].shape == ()
            assert float(st["step"]) == reference.t


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_with_reference(case, dtype, size, fast_config):
    # A vector of the size under test and a small matrix after it: one packed kernel call
    # spans both (and the padding between their slots).
    run_pair(case, dtype, [(size,), (3, 5)])


@pytest.mark.parametrize("case", ["Adam", "AdamW", "SGD-momentum", "RMSprop-all",
                                  "Adagrad-options"])
@pytest.mark.parametrize("max_grad_norm", [0.5, 1e6])
def test_parity_with_clipping(case, max_grad_norm, fast_config):
    run_pair(case, np.float32, [(1000,), (17,), (4, 4)], max_grad_norm=max_grad_norm)


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_many_shapes_and_a_scalar(case):
    run_pair(case, np.float64, [(), (2, 3, 4), (1,), (33, 2)], steps=6)
