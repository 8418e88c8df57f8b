"""Random sequences of what a training loop does (backward passes that accumulate, gradients
assigned or set to None, both zero_grad modes, steps, state-dict round trips, add_param_group),
checked after every step against one fastopt.reference object per parameter: no lost update, no
stale gradient stepped, no state mixed up between parameters."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402

# (fastopt.torch class and kwargs, reference class and kwargs)
RULES = {
    "Adam-amsgrad": (fo.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01),
                     ref.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    "AdamW": (fo.AdamW, dict(lr=0.01), ref.AdamW, dict(lr=0.01)),
    "SGD-nesterov": (fo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True),
                     ref.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "RMSprop": (fo.RMSprop, dict(lr=0.01, centered=True, momentum=0.3),
                ref.RMSProp, dict(lr=0.01, beta=0.99, centered=True, momentum=0.3)),
    "Adagrad": (fo.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.2),
                ref.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.2)),
}
SHAPES = [(3,), (2, 5), (17,), (), (4, 1, 3)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("rule", sorted(RULES))
def test_random_training_sequences(rule, seed):
    cls, kwargs, ref_cls, ref_kwargs = RULES[rule]
    rng = np.random.default_rng(seed)
    dtype = [np.float32, np.float64][seed % 2]

    def new_param():
        value = np.asarray(rng.standard_normal(SHAPES[rng.integers(len(SHAPES))]), dtype=dtype)
        return torch.nn.Parameter(torch.from_numpy(value.copy())), value

    pairs = [new_param() for _ in range(4)]
    params = [p for p, _ in pairs]
    opt = cls(params, **kwargs)
    refs = [ref_cls([value.copy()], **ref_kwargs) for _, value in pairs]
    grads = [None] * len(params)  # what p.grad holds, as the model sees it
    with fastopt.num_threads(1 + seed % 2):
        for _ in range(40):
            op = rng.choice(["backward", "backward", "assign", "zero", "none", "step", "step",
                             "reload", "add"])
            if op == "backward":
                for i, p in enumerate(params):
                    if rng.random() < 0.7:
                        g = np.asarray(rng.standard_normal(p.shape), dtype=dtype)
                        if p.grad is None:
                            p.grad = torch.from_numpy(g.copy())
                            grads[i] = g
                        else:
                            p.grad.add_(torch.from_numpy(g))
                            grads[i] = np.asarray(grads[i] + g, dtype=dtype)
            elif op == "assign":
                i = rng.integers(len(params))
                g = np.asarray(rng.standard_normal(params[i].shape), dtype=dtype)
                params[i].grad = torch.from_numpy(g.copy())
                grads[i] = g
            elif op == "zero":
                opt.zero_grad(set_to_none=False)
                grads = [None if g is None else np.zeros_like(g) for g in grads]
            elif op == "none":
                opt.zero_grad()
                grads = [None] * len(params)
            elif op == "step":
                opt.step()
                for r, g in zip(refs, grads):
                    if g is not None:
                        r.step([g])
            elif op == "reload":
                opt.load_state_dict(copy.deepcopy(opt.state_dict()))
            elif op == "add" and len(params) < 8:
                p, value = new_param()
                opt.add_param_group({"params": [p]})
                params.append(p)
                refs.append(ref_cls([value.copy()], **ref_kwargs))
                grads.append(None)
            for i, (p, r) in enumerate(zip(params, refs)):
                np.testing.assert_array_equal(p.detach().numpy(), r.params[0],
                                              err_msg=f"param {i} after {op}")
                if grads[i] is not None:
                    np.testing.assert_array_equal(p.grad.numpy(), grads[i])
                if r.t and "step" in opt.state[p]:
                    assert float(opt.state[p]["step"]) == r.t
