"""Adapters for :func:`fastopt.testing.check_update`: another library's optimizer as an update
function of the calling convention (``fastopt.testing._conform``, docs/contract.md §12).

``from_torch`` (a ``torch.optim.Optimizer`` class), ``from_optax`` (an optax
``GradientTransformation`` without its learning rate), ``from_fastopt`` (fastopt's own optimizer
objects, compiled or reference). Each returns a function whose signature names the keywords it
takes, so that ``check_update`` runs only the cases it can.
"""
import importlib
import inspect

import numpy as np

from .. import _validation as _v
from ._conform import RULES, _same, rule_defaults


def _with_signature(update, keywords, rule, fixed, name, describe=None):
    """Give ``update`` (which takes ``**hyper``) the signature that names ``keywords``, so that
    :func:`check_update` passes those and runs only the cases they cover."""
    P = inspect.Parameter
    params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in ("param", "grad", "state")]
    params += [P(n, P.KEYWORD_ONLY) for n in ("t", "lr", *keywords)]
    update.__signature__ = inspect.Signature(params)
    update.rule, update.fixed_hyper = rule, dict(fixed)
    update.__name__ = update.__qualname__ = name
    if describe is not None:
        update.describe = describe
    return update


# -- adapters: fastopt itself ----------------------------------------------------------------

def from_fastopt(rule, impl=None):
    """fastopt's optimizer class ``rule`` (compiled kernels; ``impl=fastopt.reference`` for
    the reference) as an update function of the calling convention.

    Each call builds the optimizer over ``param``, sets its step count to ``t - 1`` and its
    state to ``state``, takes one step and copies the state back, so every option
    (``nonfinite``, ``max_grad_norm``) is the optimizer's own. A step refused by
    ``nonfinite="raise"`` writes nothing, as the case expects.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import check_update, from_fastopt, trajectory
    >>> check_update(from_fastopt("Adam"),
    ...              cases=[trajectory("Adam", np.float32, edges=True)]).bit_identical
    True
    """
    from .. import _optim  # fastopt's compiled objects (fastopt.Adam is _optim.Adam)
    label = "fastopt" if impl is None else impl.__name__
    impl = _optim if impl is None else impl
    rule = _v.check_conform_rule(rule, RULES)
    cls = getattr(impl, rule)

    def update(param, grad, state, *, t, lr, **hyper):
        opt = cls([param], lr=lr, **hyper)
        opt.t = t - 1
        for s in opt.state_names:
            opt.state(s)[0][...] = state[s]
        try:
            opt.step([grad])
        except _optim.NonFiniteGradientError:
            if hyper.get("nonfinite") != "raise":
                raise
        for s in opt.state_names:
            state[s][...] = opt.state(s)[0]

    update.rule, update.fixed_hyper = rule, {}
    update.__name__ = update.__qualname__ = f"{label}.{rule}"
    return update


# -- adapters: torch.optim -------------------------------------------------------------------

# fastopt state name -> torch.optim's (docs/contract.md §10).
TORCH_STATE = {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq",
               "momentum_buffer": "momentum_buffer", "velocity": "momentum_buffer",
               "sq_avg": "square_avg", "grad_avg": "grad_avg", "sum_sq": "sum"}
# fastopt rule -> the torch.optim class that computes it: the one mapping of fastopt's
# optimizers to torch's (with torch_counterpart below for the keywords). `conform torch` and the
# applications' registry (fastopt/_apps/registry.py: train --compare torch, bench) read it. The
# course's Momentum is torch's SGD with dampening equal to momentum.
TORCH_CLASSES = {"SGD": "SGD", "Momentum": "SGD", "RMSProp": "RMSprop", "Adam": "Adam",
                 "AdamW": "AdamW", "Adagrad": "Adagrad"}
# torch class name -> the fastopt rule it computes by default (the first rule mapped to it:
# SGD's is SGD, not the course's Momentum).
TORCH_RULE = {}
for _rule, _torch_class in TORCH_CLASSES.items():
    TORCH_RULE.setdefault(_torch_class, _rule)
del _rule, _torch_class
# Per rule: the fastopt keywords the torch class has (the rest are fastopt's own options,
# nonfinite, max_grad_norm and the course's Nesterov, which torch lacks).
TORCH_KEYWORDS = {
    "SGD": ("momentum", "dampening", "nesterov", "weight_decay", "maximize"),
    "Momentum": ("beta", "weight_decay", "maximize"),
    "RMSProp": ("beta", "eps", "centered", "momentum", "weight_decay", "maximize"),
    "Adam": ("beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"),
    "AdamW": ("beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"),
    "Adagrad": ("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
}
_TORCH_COUNTS_STEPS = ("Adam", "AdamW", "RMSProp", "Adagrad")  # keep state["step"]


def _to_torch(rule, hyper):
    """fastopt's keywords -> torch's: betas, RMSprop's alpha, and the course's Momentum as
    torch's SGD with dampening equal to momentum."""
    kw = dict(hyper)
    if rule in ("Adam", "AdamW") and ("beta1" in kw or "beta2" in kw):
        kw["betas"] = (kw.pop("beta1", 0.9), kw.pop("beta2", 0.999))
    if rule == "RMSProp" and "beta" in kw:
        kw["alpha"] = kw.pop("beta")
    if rule == "Momentum":
        beta = kw.pop("beta", 0.9)
        kw["momentum"] = kw["dampening"] = beta
    return kw


def torch_counterpart(rule, hyperparameters):
    """The torch.optim class and keyword arguments that compute fastopt's ``rule`` with
    ``hyperparameters``.

    Parameters
    ----------
    rule : str
        A fastopt rule (``"Adam"``, ``"Momentum"``, ...).
    hyperparameters : dict
        Any of the rule's keywords in fastopt's names, ``lr`` included (an optimizer's
        ``.hyperparameters`` will do).

    Returns
    -------
    (str, dict)
        The ``torch.optim`` class name and its keywords (``betas``, ``alpha``, SGD's
        ``momentum`` and ``dampening`` for the course's Momentum, ...).

    Raises
    ------
    ValueError
        When a hyperparameter torch has no keyword for (``nonfinite``, ``max_grad_norm``,
        the course's Nesterov Momentum) is not at the rule's default: torch would compute
        something else.

    Examples
    --------
    >>> torch_counterpart("Momentum", {"lr": 0.1, "beta": 0.9, "nonfinite": "propagate"})
    ('SGD', {'lr': 0.1, 'momentum': 0.9, 'dampening': 0.9})
    """
    rule = _v.check_conform_rule(rule, RULES)
    defaults = rule_defaults(rule)
    kept = {}
    for key, value in hyperparameters.items():
        if key == "lr" or key in TORCH_KEYWORDS[rule]:
            kept[key] = value
        elif not _same(value, defaults.get(key)):
            raise ValueError(f"torch.optim.{TORCH_CLASSES[rule]} has no counterpart of "
                             f"fastopt's {rule}({key}={value!r})")
    return TORCH_CLASSES[rule], _to_torch(rule, kept)


def _from_torch_kwargs(rule, kwargs):
    """torch's hyperparameter keywords -> (fastopt's fixed hyper, the other torch keywords)."""
    kw = dict(kwargs)
    fixed = {}
    if rule in ("Adam", "AdamW") and "betas" in kw:
        fixed["beta1"], fixed["beta2"] = (float(b) for b in kw.pop("betas"))
    if rule == "RMSProp" and "alpha" in kw:
        fixed["beta"] = kw.pop("alpha")
    if rule == "Momentum" and ("momentum" in kw or "dampening" in kw):
        # dampening defaults to momentum (not to torch's 0): momentum alone is the course's
        # form; it must be read before it is popped
        mu = kw.pop("momentum", 0.9)
        d = kw.pop("dampening", mu)
        _v.check_torch_momentum_form(mu, d)
        fixed["beta"] = mu
    for key in TORCH_KEYWORDS[rule]:
        if key in kw:
            fixed[key] = kw.pop(key)
    return fixed, kw


def from_torch(optimizer_class, rule=None, **kwargs):
    """A ``torch.optim.Optimizer`` class as an update function of the calling convention.

    Each call wraps ``param`` and the state arrays as tensors sharing their memory, builds
    ``optimizer_class([p], lr=lr, ...)`` with the case's hyperparameters in torch's names
    (``beta1, beta2`` -> ``betas``; RMSProp's ``beta`` -> ``alpha``), sets torch's state
    (``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``square_avg``, ``grad_avg``,
    ``momentum_buffer``, ``sum``, and ``step = t - 1``), steps and reads the state back.
    torch's SGD has no momentum buffer before its first step and starts it at the gradient:
    the adapter leaves it unset when ``t == 1``, as torch would.

    Parameters
    ----------
    optimizer_class : type
        ``torch.optim.SGD``, ``RMSprop``, ``Adam``, ``AdamW`` or ``Adagrad`` (or a subclass).
    rule : str, optional
        The fastopt rule to compare with; default from the class's name. ``"Momentum"`` with
        ``torch.optim.SGD`` compares torch's heavy ball ``SGD(momentum=beta,
        dampening=beta)`` with the course's exponentially weighted Momentum: the same
        recurrence except that torch's buffer starts at ``g`` (the course's at
        ``(1-beta)*g``), so the two differ from step 1.
    **kwargs
        Fixed torch keywords. Hyperparameters (``betas=(0.9, 0.99)``, ``alpha``,
        ``amsgrad``, ...) fix the cases run to those values; the rest (``foreach``,
        ``fused``, ``differentiable``) go to the constructor as they are.

    Examples
    --------
    >>> import torch                                          # doctest: +SKIP
    >>> from fastopt.testing import check_update, from_torch  # doctest: +SKIP
    >>> print(check_update(from_torch(torch.optim.Adam), small=True))   # doctest: +SKIP
    """
    cname = getattr(optimizer_class, "__name__", repr(optimizer_class))
    if rule is None:
        base = next((b.__name__ for b in getattr(optimizer_class, "__mro__", ())
                     if b.__name__ in TORCH_RULE), None)
        if base is None:
            raise ValueError(f"cannot tell which fastopt rule {cname} computes; give "
                             f"rule= (one of {', '.join(RULES)})")
        rule = TORCH_RULE[base]
    rule = _v.check_conform_rule(rule, RULES)
    fixed, extra = _from_torch_kwargs(rule, kwargs)
    keywords = [k for k in TORCH_KEYWORDS[rule] if k not in fixed]
    heavy_ball = rule in ("SGD", "Momentum")

    def update(param, grad, state, *, t, lr, **hyper):
        import torch
        p = torch.from_numpy(param)
        p.grad = torch.from_numpy(np.array(grad))
        kw = _to_torch(rule, {**fixed, **hyper})
        opt = optimizer_class([p], lr=lr, **kw, **extra)
        st = opt.state[p]
        if rule in _TORCH_COUNTS_STEPS:
            fused = bool(opt.param_groups[0].get("fused"))
            st["step"] = torch.tensor(float(t - 1), dtype=torch.float32)
            if fused:
                st["step"] = st["step"].to(p.device)
        for name, arr in state.items():
            if name not in TORCH_STATE:
                continue
            if heavy_ball and t == 1:
                st.pop(TORCH_STATE[name], None)  # torch starts the buffer at g
                continue
            st[TORCH_STATE[name]] = torch.from_numpy(arr)
        opt.step()
        for name in list(state):
            tname = TORCH_STATE.get(name)
            if tname in st:
                state[name] = st[tname].detach().numpy()

    def describe(hyper):
        defaults = rule_defaults(rule)
        shown = {k: v for k, v in {**hyper, **fixed}.items()
                 if k in TORCH_KEYWORDS[rule] and not _same(v, defaults.get(k))}
        if rule == "Momentum":
            shown.setdefault("beta", defaults["beta"])
        kw = {**_to_torch(rule, shown), **extra}
        return f"{cname}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"

    return _with_signature(update, keywords, rule, fixed, f"torch.optim.{cname}", describe)


# -- adapters: optax -------------------------------------------------------------------------

# Per rule: optax state field -> fastopt state name (ScaleByAdamState(count, mu, nu),
# ScaleByAmsgradState(..., nu_max), ScaleByRmsState(nu), ScaleByRStdDevState(mu, nu),
# TraceState(trace), ScaleByRssState(sum_of_squares)).
OPTAX_FIELDS = {
    "Adam": {"mu": "m", "nu": "v", "nu_max": "v_max"},
    "AdamW": {"mu": "m", "nu": "v", "nu_max": "v_max"},
    "RMSProp": {"nu": "sq_avg", "mu": "grad_avg", "trace": "momentum_buffer"},
    "Momentum": {"trace": "velocity"},
    "SGD": {"trace": "momentum_buffer"},
    "Adagrad": {"sum_of_squares": "sum_sq"},
}


def _like(template, value):
    """``value`` (NumPy) as the kind of array ``template`` is (NumPy, or jax's)."""
    if isinstance(template, (np.ndarray, np.generic)) or template is None:
        return np.array(value, dtype=getattr(template, "dtype", None))
    jnp = importlib.import_module("jax.numpy")
    return jnp.asarray(value, dtype=template.dtype)


def _walk(node, visit):
    """Rebuild a pytree of NamedTuples, tuples and lists, calling ``visit(field, value)`` on
    every NamedTuple field that is not itself a container."""
    if hasattr(node, "_fields"):
        changes = {}
        for field in node._fields:
            value = getattr(node, field)
            if hasattr(value, "_fields") or isinstance(value, (tuple, list)):
                changes[field] = _walk(value, visit)
            else:
                changes[field] = visit(field, value)
        return node._replace(**changes)
    if isinstance(node, (tuple, list)):
        return type(node)(_walk(x, visit) for x in node)
    return node


def from_optax(transformation, rule, **hyper):
    """An optax ``GradientTransformation`` without its learning rate as an update function of
    the calling convention.

    Pass the transformation that computes the direction (``optax.scale_by_adam(b1, b2,
    eps)``, ``optax.scale_by_rms(decay, eps)``, ``optax.trace(decay)``, ...): the adapter
    applies each step's learning rate as ``optax.scale_by_learning_rate`` and
    ``optax.apply_updates`` do, ``p + (-lr)*u`` in the parameter's dtype, so that schedules
    and late windows work. The optax state is kept in ``state["_optax"]``; its fields named as
    optax names the moments (``mu``, ``nu``, ``nu_max``, ``trace``, ``sum_of_squares``) are set
    from the case's state before each step (``count`` to ``t - 1``) and read back after it,
    so they are compared; state the adapter cannot name is not compared, and a case that
    does not start from zero state at step 1 then is not run. Anything with ``init(params)``
    and ``update(updates, state, params)`` returning NumPy or jax arrays works. jax computes in
    float32 unless ``jax_enable_x64`` is set: float64 cases then show float32's rounding.

    Parameters
    ----------
    transformation : optax.GradientTransformation or duck-typed equivalent
    rule : str
        The fastopt rule it computes ("Adam", "RMSProp", ...).
    **hyper
        The hyperparameters the transformation was built with, in fastopt's names (e.g.
        ``beta2=0.99``; the rule's defaults otherwise): only cases with these values run.
    """
    if not (hasattr(transformation, "init") and hasattr(transformation, "update")):
        raise TypeError(f"transformation must have init(params) and update(updates, state, "
                        f"params) (an optax.GradientTransformation), got "
                        f"{type(transformation).__name__}")
    rule = _v.check_conform_rule(rule, RULES)
    fields = OPTAX_FIELDS[rule]
    defaults = rule_defaults(rule)
    _v.check_conform_keywords(hyper, rule, defaults, "from_optax's **hyper")
    # Every option the rule has is fixed: the transformation was built once.
    fixed = {k: hyper.get(k, v) for k, v in defaults.items()}

    def update(param, grad, state, *, t, lr):
        opt_state = state.get("_optax")
        first = opt_state is None
        if first:
            opt_state = transformation.init(param.copy())
        seen = set()

        def load(field, value):
            if field == "count":
                return _like(value, t - 1)
            name = fields.get(field)
            if name is not None and state.get(name) is not None:
                seen.add(name)
                return _like(value, state[name])
            return value
        opt_state = _walk(opt_state, load)
        if first:
            for name in [n for n in state if not n.startswith("_") and n not in seen]:
                if t != 1 or np.any(state[name] != 0):
                    raise ValueError(f"cannot set the optax state for {name!r} (no field "
                                     f"named as in OPTAX_FIELDS): only runs from step 1 and "
                                     f"zero state can be checked")
                del state[name]  # not compared
        updates, opt_state = transformation.update(grad.copy(), opt_state, param.copy())
        u = np.asarray(updates).astype(param.dtype, copy=False)
        with np.errstate(all="ignore"):
            new_param = param + (-lr) * u

        def store(field, value):
            name = fields.get(field)
            if name in seen:
                state[name] = np.asarray(value).astype(param.dtype)
            return value
        state["_optax"] = _walk(opt_state, store)
        return new_param

    name = getattr(transformation, "__qualname__", None) or type(transformation).__name__
    return _with_signature(update, [], rule, fixed, f"optax:{name}")
