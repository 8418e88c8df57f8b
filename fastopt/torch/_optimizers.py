"""The five optimizers: torch.optim's signatures, defaults and messages; fastopt's kernels.

Each class validates a group's hyperparameters with the checks of fastopt's optimizer objects,
worded as torch words them (``fastopt._validation``, section "fastopt.torch"), and hands the
kernels of ``fastopt._ops`` the scalars that ``fastopt.reference``'s objects compute
(``fastopt._scalars``), so that a step writes the reference's bits (docs/contract.md §1, §7).
"""
import torch

from .. import _ops
from .. import _validation as _v
from .._scalars import adagrad_lr, bias_divisor
from ._base import MASTER, PackedOptimizer


def _scalar(value):
    """A 1-element tensor hyperparameter (torch allows tensor betas) as a Python number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return value.item()
    return value


def _modes(group, names, where):
    for name in names:
        _v.torch_mode(name, group.get(name), where)
    _v.torch_fused_and_foreach(group.get("fused"), group.get("foreach"), where)


class Adam(PackedOptimizer):
    """torch.optim.Adam's interface with fastopt's arithmetic (docs/contract.md §2, §7).

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
    decoupled_weight_decay=False, max_grad_norm=None)``

    The update is the course's form of Adam (eps outside the root, both moments divided by
    their bias corrections), which is torch's Adam up to rounding, not bit for bit: each step
    writes the bits of ``fastopt.reference.Adam`` on the same values, for every thread count.
    ``weight_decay`` is L2 (added to the gradient); ``decoupled_weight_decay=True`` is AdamW.
    State, in torch's names: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).
    ``foreach`` and ``fused`` are accepted and stored (a step is always one fused call);
    ``capturable=True`` and ``differentiable=True`` are refused. ``max_grad_norm`` (fastopt's):
    clip the global gradient norm inside the step (:attr:`max_grad_norm`). Packing, the gradient
    policy and what is refused: :class:`fastopt.torch.PackedOptimizer`.
    """

    _hyper_keys = ("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
                   "capturable", "differentiable", "fused", "decoupled_weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 max_grad_norm=None):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach,
                    "capturable": capturable, "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        self._check_defaults(defaults)
        if isinstance(betas, (tuple, list)):
            defaults["betas"] = tuple(_scalar(b) for b in betas)
        super().__init__(params, defaults, max_grad_norm)

    def _check_defaults(self, defaults):
        self._lr_of(defaults, "")
        self._hyper(defaults, "")

    def _hyper(self, group, where):
        # torch's order: eps, betas, weight_decay.
        eps = _v.torch_eps(_scalar(group["eps"]), where)
        betas = group["betas"]
        if isinstance(betas, (tuple, list)):
            betas = tuple(_scalar(b) for b in betas)
        beta1, beta2 = _v.torch_betas(betas, where)
        weight_decay = _v.torch_nonnegative(_scalar(group["weight_decay"]), "weight_decay",
                                            where)
        amsgrad = _v.torch_flag(group["amsgrad"], "amsgrad", where)
        maximize = _v.torch_flag(group["maximize"], "maximize", where)
        decoupled = _v.torch_flag(group["decoupled_weight_decay"], "decoupled_weight_decay",
                                  where)
        _modes(group, ("foreach", "fused", "capturable", "differentiable"), where)
        return beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled

    def _state_names(self, h):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if h[4] else ("exp_avg",
                                                                          "exp_avg_sq")

    def _kernel(self, buf, lo, hi, lr, h, t, first, scale):
        beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled = h
        s = buf.state_np
        states = (s["exp_avg"][lo:hi], s["exp_avg_sq"][lo:hi],
                  s["max_exp_avg_sq"][lo:hi] if amsgrad else None)
        scalars = (lr, beta1, beta2, eps, bias_divisor(beta1, t), bias_divisor(beta2, t),
                   weight_decay, decoupled, maximize, scale)
        if buf.kind:
            self._half_kernel("adam", buf, lo, hi, states, scalars)
        else:
            _ops.adam(buf.param_np[lo:hi], buf.grad_np[lo:hi], *states, *scalars)

    def _group_defaults(self):
        return {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                "differentiable": False, "decoupled_weight_decay": False, "fused": None}


class AdamW(Adam):
    """torch.optim.AdamW's interface with fastopt's arithmetic: decoupled weight decay,
    ``p = p*(1 - lr*weight_decay)`` before the moments (docs/contract.md §7).

    ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
    *, maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
    max_grad_norm=None)``

    Each step writes the bits of ``fastopt.reference.AdamW``. Everything else as in
    :class:`Adam` (``decoupled_weight_decay`` is always True, as in torch's AdamW).

    Examples
    --------
    >>> import torch, fastopt.torch as fo
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = fo.AdamW(model.parameters(), lr=1e-3)
    >>> model(torch.ones(2, 3)).sum().backward()
    >>> opt.step()
    >>> sorted(opt.state[model.weight])
    ['exp_avg', 'exp_avg_sq', 'step']
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, max_grad_norm=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, max_grad_norm=max_grad_norm)

    def _fix_groups(self):
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class SGD(PackedOptimizer):
    """torch.optim.SGD's interface with fastopt's arithmetic: torch's heavy ball
    (docs/contract.md §7): ``buf = g`` on a parameter's first step, then
    ``buf = momentum*buf + (1-dampening)*g``; ``p = p - lr*buf`` (nesterov:
    ``p = p - lr*(g + momentum*buf)``).

    ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False, foreach=None, differentiable=False, fused=None, max_grad_norm=None)``

    Each step writes the bits of ``fastopt.reference.SGD``. State, as torch keeps it:
    ``momentum_buffer`` from a parameter's first step when ``momentum > 0`` (no ``step``); a
    parameter without a buffer takes the first-step form, as in torch. ``dampening`` must be
    finite and >= 0 (torch does not check it).
    """

    _uses_step = False
    _hyper_keys = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach",
                   "differentiable", "fused")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None, max_grad_norm=None):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
                    "foreach": foreach, "differentiable": differentiable, "fused": fused}
        self._lr_of(defaults, "")
        self._hyper(defaults, "")
        super().__init__(params, defaults, max_grad_norm)

    def _hyper(self, group, where):
        momentum = _v.torch_nonnegative(_scalar(group["momentum"]), "momentum", where)
        weight_decay = _v.torch_nonnegative(_scalar(group["weight_decay"]), "weight_decay",
                                            where)
        dampening = _v.torch_nonnegative(_scalar(group["dampening"]), "dampening", where)
        nesterov = _v.torch_flag(group["nesterov"], "nesterov", where)
        maximize = _v.torch_flag(group["maximize"], "maximize", where)
        _v.torch_nesterov(momentum, dampening, nesterov, where)
        _modes(group, ("foreach", "fused", "differentiable"), where)
        return momentum, dampening, weight_decay, nesterov, maximize

    def _state_names(self, h):
        return ("momentum_buffer",) if h[0] > 0 else ()

    def _kernel(self, buf, lo, hi, lr, h, t, first, scale):
        momentum, dampening, weight_decay, nesterov, maximize = h
        states = (buf.state_np["momentum_buffer"][lo:hi] if momentum > 0 else None,)
        scalars = (lr, weight_decay, momentum, dampening, nesterov, first, maximize, scale)
        if buf.kind:
            self._half_kernel("sgd", buf, lo, hi, states, scalars)
        else:
            _ops.sgd(buf.param_np[lo:hi], buf.grad_np[lo:hi], *states, *scalars)

    def _group_defaults(self):
        return {"nesterov": False, "maximize": False, "foreach": None,
                "differentiable": False, "fused": False}


class RMSprop(PackedOptimizer):
    """torch.optim.RMSprop's interface with fastopt's arithmetic (docs/contract.md §2, §7):
    ``s = alpha*s + (1-alpha)*g*g``; ``p = p - lr*g / (sqrt(s) + eps)``, with ``centered``
    and ``momentum`` as torch defines them. torch's ``alpha`` is fastopt's ``beta``.

    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, capturable=False, foreach=None, maximize=False, differentiable=False,
    *, max_grad_norm=None)``

    Each step writes the bits of ``fastopt.reference.RMSProp``. State, in torch's names:
    ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
    ``alpha`` must be below 1 and ``eps`` above 0 (torch accepts alpha >= 1 and eps = 0).
    """

    _hyper_keys = ("alpha", "eps", "weight_decay", "momentum", "centered", "maximize",
                   "foreach", "capturable", "differentiable")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, *, max_grad_norm=None):
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                    "centered": centered, "weight_decay": weight_decay,
                    "capturable": capturable, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable}
        self._lr_of(defaults, "")
        self._hyper(defaults, "")
        super().__init__(params, defaults, max_grad_norm)

    def _hyper(self, group, where):
        # torch's order: eps, momentum, weight_decay, alpha.
        eps = _v.torch_eps(_scalar(group["eps"]), where)
        momentum = _v.torch_nonnegative(_scalar(group["momentum"]), "momentum", where)
        weight_decay = _v.torch_nonnegative(_scalar(group["weight_decay"]), "weight_decay",
                                            where)
        alpha = _v.torch_alpha(_scalar(group["alpha"]), where)
        centered = _v.torch_flag(group["centered"], "centered", where)
        maximize = _v.torch_flag(group["maximize"], "maximize", where)
        _modes(group, ("foreach", "capturable", "differentiable"), where)
        return alpha, eps, weight_decay, momentum, centered, maximize

    def _state_names(self, h):
        names = ("square_avg",)
        if h[3] > 0:
            names += ("momentum_buffer",)
        if h[4]:
            names += ("grad_avg",)
        return names

    def _kernel(self, buf, lo, hi, lr, h, t, first, scale):
        alpha, eps, weight_decay, momentum, centered, maximize = h
        s = buf.state_np
        states = (s["square_avg"][lo:hi], s["grad_avg"][lo:hi] if centered else None,
                  s["momentum_buffer"][lo:hi] if momentum > 0 else None)
        scalars = (lr, alpha, eps, weight_decay, momentum, maximize, scale)
        if buf.kind:
            self._half_kernel("rmsprop", buf, lo, hi, states, scalars)
        else:
            _ops.rmsprop(buf.param_np[lo:hi], buf.grad_np[lo:hi], *states, *scalars)

    def _group_defaults(self):
        return {"momentum": 0, "centered": False, "foreach": None, "maximize": False,
                "differentiable": False, "capturable": False}


class Adagrad(PackedOptimizer):
    """torch.optim.Adagrad's interface with fastopt's arithmetic (docs/contract.md §7):
    ``clr = lr / (1 + (t-1)*lr_decay)``, ``s = s + g*g``, ``p = p - clr*g / (sqrt(s) + eps)``.

    ``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
    max_grad_norm=None)``

    Each step writes the bits of ``fastopt.reference.Adagrad``. State, as torch keeps it from
    construction on: ``step`` and ``sum`` (starting at ``initial_accumulator_value``).
    """

    _hyper_keys = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize",
                   "foreach", "differentiable", "fused")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None, max_grad_norm=None):
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value,
                    "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable, "fused": fused}
        self._lr_of(defaults, "")
        self._hyper(defaults, "")
        super().__init__(params, defaults, max_grad_norm)

    def _hyper(self, group, where):
        # torch's order: lr_decay, weight_decay, initial_accumulator_value, eps.
        lr_decay = _v.torch_nonnegative(_scalar(group["lr_decay"]), "lr_decay", where)
        weight_decay = _v.torch_nonnegative(_scalar(group["weight_decay"]), "weight_decay",
                                            where)
        initial = _v.torch_nonnegative(_scalar(group["initial_accumulator_value"]),
                                       "initial_accumulator_value", where)
        eps = _v.torch_eps(_scalar(group["eps"]), where)
        maximize = _v.torch_flag(group["maximize"], "maximize", where)
        _modes(group, ("foreach", "fused", "differentiable"), where)
        return lr_decay, weight_decay, initial, eps, maximize

    def _state_names(self, h):
        return ("sum",)

    def _initial(self, name, h):
        return h[2]

    def _after_pack(self, new_slots):
        # torch's Adagrad builds its state in the constructor: step 0, sum filled.
        with torch.no_grad():
            for s in new_slots:
                h = self._hyper(self.param_groups[s.group], f"param_groups[{s.group}]")
                self._state_view(s, "sum").fill_(h[2])
                self._steps_np[s.k] = 0.0
                self.state[s.param] = {"step": s.step, "sum": s.views["sum"]}
                if s.kind:
                    self.state[s.param][MASTER] = s.views[MASTER]

    def _kernel(self, buf, lo, hi, lr, h, t, first, scale):
        lr_decay, weight_decay, initial, eps, maximize = h
        states = (buf.state_np["sum"][lo:hi],)
        scalars = (adagrad_lr(lr, lr_decay, t), eps, weight_decay, maximize, scale)
        if buf.kind:
            self._half_kernel("adagrad", buf, lo, hi, states, scalars)
        else:
            _ops.adagrad(buf.param_np[lo:hi], buf.grad_np[lo:hi], *states, *scalars)

    def _group_defaults(self):
        return {"foreach": None, "maximize": False, "differentiable": False, "fused": None}
