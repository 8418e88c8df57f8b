"""The machinery shared by fastopt.torch's optimizers: packing, the gradient policy, state in
torch's format, and a step that is one fastopt kernel call per (parameter group, dtype).

Layout. The parameters of each dtype live in one buffer (:func:`fastopt.torch._buffers.allocate`),
ordered by parameter group and, within a group, in the group's order; each parameter's slot starts
on a 64-byte boundary (the few padding items between slots are zeros that every rule maps to
zeros, so a kernel call spans them). ``p.data`` is a view of its slot. The gradients have a buffer
of the same layout (``p.grad`` is a view of its slot once the optimizer has bound it), and so has
each state (``exp_avg``, ...); ``self.state[p]`` holds views of those slots plus ``step``, a 0-d
float32 view of one buffer of step counts (torch keeps ``step`` as a float32 scalar tensor).

A step, in three phases, so that a refusal leaves everything as it was:

1. check, writing nothing: every group's hyperparameters (``group["lr"]`` read at each step, a
   tensor lr included), every parameter that has a gradient (a replaced ``p.data``, a gradient
   that is not our view, state entries that are not our views);
2. bind: copy a gradient that is not our view into its slot (one ``torch._foreach_copy_``) and
   rebind ``p.grad`` to the slot; likewise state entries and replaced parameters;
3. step: per (group, dtype), one kernel call over each run of consecutive parameters that have a
   gradient and the same step count (the common case: one call for the whole group), with the
   scalars computed exactly as ``fastopt.reference``'s objects compute them.

16-bit (bfloat16, float16) parameters and gradients have 16-bit buffers of that layout; their
float32 master copy (state ``"master"``) and their states are float32 buffers of the same
layout, and their kernel is the table's ``(rule, kind)`` entry (``_half_kernel``).
"""
import functools
import itertools
import math
import weakref

import numpy as np
import torch
from torch.optim import optimizer as _torch_optimizer

from .. import _dispatch
from .. import _half
from .. import _ops
from .. import _validation as _v
from .._scalars import clip_coefficient
from . import _buffers

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
# The packed dtypes of 16-bit parameters (fastopt._half's convention: uint16 holds bfloat16 bits).
_BF16, _F16 = np.dtype(np.uint16), np.dtype(np.float16)
_MAX_STEP = 2 ** 24  # float32 counts every whole number up to here, not one past it
_DTYPE_ORDER = (_F32, _F64, _BF16, _F16)
MASTER = "master"
"""The state key of a 16-bit parameter's float32 master copy (docs/contract.md §13)."""

# The parameter buffers of fastopt.torch alive, by data pointer (weakly, by the ndarray that each
# buffer's storage holds, so an entry lives exactly as long as a view of that buffer): parameters
# that share one of them were packed by a fastopt.torch optimizer (an earlier one over the same
# model), so they may be packed again; any other shared storage is refused (tied views).
_OUR_STORAGES = weakref.WeakValueDictionary()

# Called through map() over every watched tensor at each step (C-level loops: ~0.1 us a tensor).
_data_ptr = torch.Tensor.data_ptr
_is_contiguous = torch.Tensor.is_contiguous


class _Slot:
    """One parameter: where it lives in the buffers of its dtype, and its views."""

    __slots__ = ("param", "k", "group", "index", "name", "dtype", "start", "stop", "shape",
                 "numel", "data", "grad", "grad_np", "views", "step", "kind", "version")


class _Buffers:
    """The buffers of one dtype: parameters, gradients, and each state allocated so far.

    For 16-bit parameters (``kind`` "bfloat16" or "float16") the parameters and gradients are
    16-bit, and the states are float32, the first of them :data:`MASTER`, the float32 master
    copy of the parameters (allocated with the buffers, not on a first step)."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel = dtype, numel
        self.kind = _half.kind_of(dtype) if dtype.itemsize == 2 else None
        self.state_dtype = _F32 if self.kind else dtype
        # Each buffer of one step starts at another offset within a 4 KiB page (stagger): a
        # load and a store 4 KiB apart look alike to the CPU's memory disambiguation (4K
        # aliasing), and large NumPy buffers all start at the same offset. Measured on the
        # 100-tensor list of docs/torch.md, Adam's kernel on same-offset buffers took 858 us
        # against 789 us on separately allocated ones.
        self.param_np, self.param_t = _buffers.allocate(numel, dtype, stagger=0)
        self.grad_np, self.grad_t = _buffers.allocate(numel, dtype, stagger=1)
        self.state_np, self.state_t = {}, {}
        if self.kind:
            self.add_state(MASTER)

    def add_state(self, name):
        self.state_np[name], self.state_t[name] = _buffers.allocate(
            self.numel, self.state_dtype, stagger=2 + len(self.state_np))

    def pairs(self):
        """(tensor, ndarray) of every buffer: parameters, gradients, each state."""
        return ([(self.param_t, self.param_np), (self.grad_t, self.grad_np)]
                + [(self.state_t[name], self.state_np[name]) for name in self.state_t])

    def follow(self):
        """Re-derive the NumPy arrays of the buffers whose storage torch moved (in place, under
        every view: ``share_memory_()``, a tensor put on a ``torch.multiprocessing`` queue);
        whether any moved."""
        moved = False
        if self.param_t.data_ptr() != self.param_np.ctypes.data:
            self.param_np, moved = _buffers.as_numpy(self.param_t), True
            _OUR_STORAGES[self.param_t.untyped_storage().data_ptr()] = self.param_np
        if self.grad_t.data_ptr() != self.grad_np.ctypes.data:
            self.grad_np, moved = _buffers.as_numpy(self.grad_t), True
        for name, t in self.state_t.items():
            if t.data_ptr() != self.state_np[name].ctypes.data:
                self.state_np[name], moved = t.numpy(), True
        return moved


_UNCACHEABLE = object()
_ATOMS = frozenset((type(None), bool, int, float, str))


def _snapshot(value):
    """A group value as a key that an in-place change cannot alter and ``==`` compares safely:
    lists and tuples as tuples (``group["betas"][0] = 0.5`` on a list is seen), a 1-element
    tensor as its number (``weight_decay.fill_(1.0)`` is seen), each with its type (``True`` is
    not ``1``); anything else is :data:`_UNCACHEABLE` (checked at every step, so that the
    group's validation words any error)."""
    kind = type(value)
    if kind in _ATOMS:
        return kind, value
    if kind is list or kind is tuple:
        items = tuple(map(_snapshot, value))
        return _UNCACHEABLE if _UNCACHEABLE in items else (kind, items)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return torch.Tensor, value.dtype, value.item()
    if isinstance(value, (np.number, np.bool_)):  # NumPy scalars: immutable, == is safe
        return kind, value
    return _UNCACHEABLE


def _one_value(counts):
    """Whether a slice of step counts holds one value (slot k's count is steps_np[k])."""
    return counts.min() == counts.max()


def _aligned(n, dtype):
    per_line = _buffers.ALIGN_BYTES // dtype.itemsize
    return -(-n // per_line) * per_line


def _tensor_extent(t):
    """[start, end) bytes a tensor's elements span in memory."""
    if t.numel() == 0:
        return None
    start = t.data_ptr()
    span = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()) if size > 0)
    if any(s < 0 for s in t.stride()):
        return None  # torch has no negative strides; defensive
    return start, start + (span + 1) * t.element_size()


def _hooked_step(step):
    """torch's ``Optimizer.profile_hook_step``, but with the profiler's ``record_function``
    only while a profiler runs.

    torch wraps every optimizer's ``step`` to run the step hooks inside a
    ``record_function("Optimizer.step#...")`` block; the block costs ~13 us a step whether or
    not anything profiles (the whole wrapper 17 us around a no-op step, on the 2-core Xeon of
    docs/torch.md), a twentieth of fastopt.torch's Adam step over the 784-256-256-10 network.
    The hooks run exactly as torch runs them (global pre hooks, then the optimizer's; the
    optimizer's post hooks, then the global ones; a pre hook may return new args and kwargs);
    marked ``hooked`` so that ``Optimizer.__init__`` does not wrap it again.
    """
    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        self = args[0]
        if torch.autograd._profiler_enabled():
            with torch.autograd.profiler.record_function(
                    f"Optimizer.step#{type(self).__name__}.step"):
                return _run_hooked(step, self, args, kwargs)
        return _run_hooked(step, self, args, kwargs)

    wrapper.hooked = True
    return wrapper


def _run_hooked(step, self, args, kwargs):
    for pre_hook in itertools.chain(_torch_optimizer._global_optimizer_pre_hooks.values(),
                                    self._optimizer_step_pre_hooks.values()):
        result = pre_hook(self, args, kwargs)
        if result is not None:
            if isinstance(result, tuple) and len(result) == 2:
                args, kwargs = result
            else:
                raise RuntimeError(f"{step} must return None or a tuple of (new_args, "
                                   f"new_kwargs), but got {result}.")
    out = step(*args, **kwargs)
    self._optimizer_step_code()
    for post_hook in itertools.chain(self._optimizer_step_post_hooks.values(),
                                     _torch_optimizer._global_optimizer_post_hooks.values()):
        post_hook(self, args, kwargs)
    return out


class PackedOptimizer(torch.optim.Optimizer):
    """Base class of :class:`Adam`, :class:`AdamW`, :class:`SGD`, :class:`RMSprop` and
    :class:`Adagrad`: a ``torch.optim.Optimizer`` whose parameters, gradients and state are
    packed, and whose step is fastopt's kernels.

    Gradient policy
    ---------------
    At each :meth:`step`, for every parameter:

    - ``p.grad is None``: the parameter is skipped, as torch skips it (its step count does not
      advance; its slot is never stepped with stale values).
    - ``p.grad`` is the optimizer's view of its slot (bound at an earlier step): nothing to do;
      autograd has accumulated into the buffer.
    - anything else (the fresh tensor autograd allocates after ``zero_grad()`` set the gradients
      to None, or a tensor you assigned): it is checked (dense, CPU, the parameter's dtype and
      shape; any strides, channels_last included), copied into the slot (one
      ``torch._foreach_copy_`` for all of them: one read and one write of each such gradient),
      and ``p.grad`` is rebound to the slot, so that later backward passes accumulate into the
      buffer. Your tensor itself is never written.

    ``zero_grad(set_to_none=False)`` zeroes the whole gradient buffer in one call and keeps the
    views: the fastest loop, with no copy. ``zero_grad()`` (``set_to_none=True``, torch's
    default) keeps torch's meaning: the gradients become None, parameters that then get no
    gradient are skipped, and those that do are copied in at the next step.

    Packed parameters
    -----------------
    The parameters become views: when the optimizer is built (and again on
    :meth:`add_param_group`), each parameter's values are copied into its slot and ``p.data``
    becomes a view of it (C-contiguous: a channels_last parameter becomes contiguous). A
    parameter whose ``p.data`` you later replace by a tensor of the same dtype and shape (or by
    the same memory in another layout, ``w.data = w.data.T``) is copied back into its slot at
    the next step; another dtype or shape is refused, and so is new data in another parameter's
    slot or storage (``b.weight.data = a.weight.data`` after building: the step would untie
    them). Refused with a ``TypeError``/``ValueError`` naming the parameter (its name with
    ``named_parameters()``, else ``param_groups[g]['params'][i]``), before anything is written:
    non-CPU (CUDA, meta) parameters or gradients, sparse ones, complex ones, dtypes other than
    float32, float64, bfloat16 and float16, parameters sharing storage with each
    other (tied views; the same Parameter twice in a group, or in two groups), parameters in
    shared memory (``p.is_shared()``, Hogwild: packing would un-share them; use torch.optim, or
    build this optimizer before ``share_memory()``), gradients of another dtype or shape.

    16-bit parameters
    -----------------
    bfloat16 and float16 parameters (and their gradients) stay 16-bit, packed like the others;
    the optimizer keeps a float32 master of each (``state[p]["master"]``, widened exactly from
    the parameter at construction) and float32 state, and a step is one call of the kernel
    table's ``(rule, "bfloat16"/"float16")`` entry per (group, dtype): the master and state get
    the reference's float32 step on the widened gradient, the parameter the master rounded to
    nearest even. A write to a 16-bit parameter that its version counter records
    (``with torch.no_grad(): p.mul_(2)``, ``model.load_state_dict``) and that changes its bits
    makes the master that value widened at the next step. Loss scaling: :meth:`step`.

    Moved and repointed memory
    --------------------------
    Each step first checks (one C-level pass over the views' data pointers) that torch still
    sees the memory the kernels write. A buffer whose storage torch moved in place
    (``model.share_memory()`` after building, a state dict put on a ``torch.multiprocessing``
    queue) is followed: its NumPy arrays are derived again. A view repointed by ``x.data = t``
    or ``x.set_(t)`` (``p.grad``, a state entry, ``step``) is from then on your tensor, as if
    assigned: copied into the slot at the next step that uses it, the slot getting a fresh view.
    """

    _uses_step = True        # torch keeps state["step"] (SGD does not)
    # torch.amp.GradScaler hands the loss scale and the inf check to step() as
    # optimizer.grad_scale / optimizer.found_inf (as for torch's fused optimizers) instead of
    # unscaling the gradients itself: one pass over the gradients fewer.
    _step_supports_amp_scaling = True
    _hyper_keys = ()         # the group keys a step reads, besides lr

    def __init__(self, params, defaults, max_grad_norm=None):
        self._max_grad_norm = _v.torch_max_grad_norm(max_grad_norm)
        self.last_grad_norm = None
        self._ready = False
        self._slots = []
        super().__init__(params, defaults)
        self._pack()
        self._ready = True
        self._after_pack(self._slots)

    # -- what each rule defines ----------------------------------------------------------------

    def _hyper(self, group, where):
        """The group's hyperparameters (lr excepted), validated, as the kernel takes them."""
        raise NotImplementedError

    def _state_names(self, h):
        """The state entries (besides step) a parameter of a group with hyperparameters ``h``
        keeps, in torch's order."""
        raise NotImplementedError

    def _initial(self, name, h):
        return 0.0

    def _kernel(self, buf, lo, hi, lr, h, t, first, scale):
        raise NotImplementedError

    def _after_pack(self, new_slots):
        """Called with the slots of parameters just added (Adagrad initialises their state)."""

    # -- properties ----------------------------------------------------------------------------

    @property
    def max_grad_norm(self):
        """Clip the gradients' global L2 norm to this value inside :meth:`step` (fastopt's
        deterministic sum, docs/contract.md §8), or None. The scaling is fused into the update:
        the parameters and state get the bits of ``fastopt.clip_grad_norm`` followed by the
        step, and the gradient buffer is not written. ``last_grad_norm`` holds the norm."""
        return self._max_grad_norm

    @max_grad_norm.setter
    def max_grad_norm(self, value):
        self._max_grad_norm = _v.torch_max_grad_norm(value)

    # -- naming --------------------------------------------------------------------------------

    def _param_name(self, group_index, index, group=None):
        group = self.param_groups[group_index] if group is None else group
        where = f"param_groups[{group_index}]['params'][{index}]"
        names = group.get("param_names")
        if names is not None and index < len(names):
            return f"{names[index]!r} ({where})"
        return where

    # -- groups --------------------------------------------------------------------------------

    def add_param_group(self, param_group):
        """torch's ``add_param_group``, with the group's hyperparameters checked and its
        parameters packed (every buffer is re-packed: the existing parameters, gradients and
        state move to new buffers, values unchanged). Refused before anything changes: a
        parameter already in a group (named), or one fastopt cannot step."""
        if isinstance(param_group, dict) and "params" in param_group:
            params = param_group["params"]
            items = [params] if isinstance(params, torch.Tensor) else (
                list(params) if not isinstance(params, set) else None)
            if items is not None:
                tensors = [p[1] if isinstance(p, tuple) else p for p in items]
                gi = len(self.param_groups)
                seen = {}
                for i, p in enumerate(tensors):
                    if id(p) in seen:
                        raise ValueError(
                            f"param_groups[{gi}]['params'][{i}] is the same tensor as "
                            f"param_groups[{gi}]['params'][{seen[id(p)]}]: a parameter may "
                            f"appear once (it would be stepped twice)")
                    seen[id(p)] = i
                for other_index, other in enumerate(self.param_groups):
                    for j, q in enumerate(other["params"]):
                        if id(q) in seen:
                            raise ValueError(
                                f"some parameters appear in more than one parameter group: "
                                f"param_groups[{gi}]['params'][{seen[id(q)]}] is already "
                                f"{self._param_name(other_index, j)}")
                param_group["params"] = items  # a generator is read once
        super().add_param_group(param_group)
        group_index = len(self.param_groups) - 1
        try:
            self._hyper(self.param_groups[-1], f"param_groups[{group_index}]")
            self._lr_of(self.param_groups[-1], f"param_groups[{group_index}]")
            if self._ready:
                self._sync()  # the old views' values are read below: follow moves first
                known = {id(s.param) for s in self._slots}
                self._pack()
                self._after_pack([s for s in self._slots if id(s.param) not in known])
        except BaseException:
            self.param_groups.pop()
            raise

    def _lr_of(self, group, where):
        lr = group["lr"]
        if type(lr) is float and 0.0 <= lr < math.inf:
            return lr
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1 or lr.is_complex():
                _v.torch_tensor_lr(lr.numel(), lr.is_complex(), where)
            lr = lr.item()
        return _v.torch_lr(lr, where)

    # -- packing -------------------------------------------------------------------------------

    def _check_new_param(self, p, name):
        if p.device.type != "cpu":
            _v.torch_bad_tensor("parameter", name, f"is on {p.device}: fastopt.torch steps CPU "
                                f"tensors only (move the model with .cpu() before building "
                                f"the optimizer)")
        if p.layout != torch.strided:
            _v.torch_bad_tensor("parameter", name, f"has layout {p.layout}: fastopt.torch "
                                f"steps dense (strided) parameters only", TypeError)
        if p.is_complex():
            _v.torch_bad_tensor("parameter", name, f"is complex ({p.dtype}): fastopt.torch "
                                f"steps real float32, float64, bfloat16 and float16 parameters "
                                f"only; view it as real pairs with torch.view_as_real",
                                TypeError)
        if p.dtype not in _buffers.NUMPY_DTYPES:
            _v.torch_bad_tensor("parameter", name, f"is {p.dtype}: fastopt.torch steps float32, "
                                f"float64, bfloat16 and float16 parameters only", TypeError)

    def _pack(self, allow_shared=False):
        """(Re)build every buffer from the current parameters and state; see the module
        docstring. Checks come first: on a refusal nothing has changed."""
        old = {id(s.param): s for s in self._slots}
        # 16-bit parameters written in place since the last step take their new values into
        # their masters here, as a step would have (the re-pack would hide the write).
        stale = {id(s.param) for s in getattr(self, "_half_slots", ()) if self._master_stale(s)}
        order = []  # (group index, index in group, param), packed order
        for gi, group in enumerate(self.param_groups):
            for dtype in _DTYPE_ORDER:
                for i, p in enumerate(group["params"]):
                    if id(p) not in old:
                        self._check_new_param(p, self._param_name(gi, i, group))
                    if p.numel() and p.untyped_storage().is_shared():
                        # Hogwild (torch's mnist_hogwild): parameters in shared memory, an
                        # optimizer per process. Packing copies them into private memory.
                        _v.torch_shared_memory(self._param_name(gi, i, group), id(p) in old)
                    if _buffers.NUMPY_DTYPES[p.dtype] == dtype:
                        order.append((gi, i, p))
        # Storage shared between parameters (views of one tensor, tied storage) is refused:
        # packing would untie it silently. Parameters already packed by fastopt.torch share its
        # buffers without overlapping, and may be packed again.
        by_storage = {}
        for gi, i, p in order:
            if id(p) in old or p.numel() == 0:
                continue
            key = p.untyped_storage().data_ptr()
            by_storage.setdefault(key, []).append((gi, i, p))
        for key, members in by_storage.items():
            ours = allow_shared or _OUR_STORAGES.get(key) is not None
            if len(members) > 1 and not ours:
                (g1, i1, _), (g2, i2, _) = members[0], members[1]
                raise ValueError(
                    f"parameters {self._param_name(g1, i1)} and {self._param_name(g2, i2)} "
                    f"share storage (views of one tensor, or tied weights): fastopt.torch "
                    f"packs each parameter into its own slot, which would untie them. Pass "
                    f"the tensor they view once, or a module whose tied weights are one "
                    f"Parameter")
            extents = sorted((_tensor_extent(p), gi, i) for gi, i, p in members)
            for (a, g1, i1), (b, g2, i2) in zip(extents, extents[1:]):
                if a[1] > b[0]:
                    raise ValueError(
                        f"parameters {self._param_name(g1, i1)} and {self._param_name(g2, i2)} "
                        f"overlap in memory: a step would update the shared elements twice")
        # Layout.
        sizes = {}
        slots = []
        for k, (gi, i, p) in enumerate(order):
            dtype = _buffers.NUMPY_DTYPES[p.dtype]
            s = _Slot()
            s.param, s.k, s.group, s.index = p, k, gi, i
            s.name = self._param_name(gi, i)
            s.dtype, s.shape, s.numel = dtype, tuple(p.shape), p.numel()
            s.kind = _half.kind_of(dtype) if dtype.itemsize == 2 else None
            s.start = sizes.get(dtype, 0)
            s.stop = s.start + s.numel
            sizes[dtype] = _aligned(s.stop, dtype)
            slots.append(s)
        bufs = {dtype: _Buffers(dtype, max(n, 1)) for dtype, n in sizes.items()}
        old_bufs = getattr(self, "_bufs", {})
        for dtype, buf in bufs.items():
            if dtype in old_bufs:
                for name in old_bufs[dtype].state_np:
                    if name not in buf.state_np:
                        buf.add_state(name)
        steps_np, steps_t = _buffers.allocate(max(len(slots), 1), _F32)
        # Views, then values (the old buffers stay alive until the old slots go).
        for s in slots:
            buf = bufs[s.dtype]
            s.data = buf.param_t[s.start:s.stop].view(s.shape)
            s.grad = buf.grad_t[s.start:s.stop].view(s.shape)
            s.grad_np = buf.grad_np[s.start:s.stop]
            s.views = {name: t[s.start:s.stop].view(s.shape) for name, t in buf.state_t.items()}
            s.step = steps_t[s.k]
        with torch.no_grad():
            for s in slots:
                p = s.param
                was = old.get(id(p))
                s.data.copy_(p.data)
                if s.kind and was is None:
                    self._widen_master(s, bufs[s.dtype])
                if was is not None:
                    if p.grad is was.grad:
                        s.grad.copy_(was.grad)
                    for name, view in was.views.items():
                        s.views[name].copy_(view)
                    if id(p) in stale:
                        self._widen_master(s, bufs[s.dtype])
                    steps_np[s.k] = float(was.step)
                    state = self.state.get(p)
                    if state:
                        for key, value in list(state.items()):
                            if key == "step" and value is was.step:
                                state[key] = s.step
                            elif value is was.views.get(key):
                                state[key] = s.views[key]
                p.data = s.data
                if was is not None and p.grad is was.grad:
                    p.grad = s.grad
        for buf in bufs.values():
            _OUR_STORAGES[buf.param_t.untyped_storage().data_ptr()] = buf.param_np
        self._bufs, self._slots = bufs, slots
        self._steps_np, self._steps_t = steps_np, steps_t
        # Segments: (group index, dtype, first slot position, end position) in packed order.
        segments = []
        for pos, s in enumerate(slots):
            if segments and segments[-1][0] == s.group and segments[-1][1] == s.dtype:
                segments[-1][3] = pos + 1
            else:
                segments.append([s.group, s.dtype, pos, pos + 1])
        self._segments = [tuple(x) for x in segments]
        self._group_slots = [[] for _ in self.param_groups]
        for s in sorted(slots, key=lambda s: (s.group, s.index)):
            self._group_slots[s.group].append(s)
        self._param_order = [s for group in self._group_slots for s in group]
        self._half_slots = [s for s in slots if s.kind]
        self._hyper_cache = {}
        self._rewatch()
        self._record_versions()

    # -- views that moved or were repointed -----------------------------------------------------

    def _rewatch(self):
        """The tensors whose data pointers each step compares at C level (:meth:`_sync`), with
        the pointers they must have: each buffer's tensor (its ndarray's address: torch may move
        a storage under its views), each ``p.data``, and each view the user can reach (``p.grad``,
        state entries, ``step``): ``x.data = other`` or ``x.set_(...)`` keeps the Python object,
        which the step recognises by identity, but points it at other memory."""
        watch, ptrs, what = [], [], []
        for buf in self._bufs.values():
            for t, a in buf.pairs():
                watch.append(t)
                ptrs.append(a.ctypes.data)
                what.append(None)
        watch.append(self._steps_t)
        ptrs.append(self._steps_np.ctypes.data)
        what.append(None)
        steps_base = self._steps_np.ctypes.data
        for s in self._slots:
            buf = self._bufs[s.dtype]
            # An empty tensor's data_ptr() is 0 (torch returns nullptr for no elements).
            offset = s.start * s.dtype.itemsize
            live = 1 if s.numel else 0
            watch.append(s.param)
            ptrs.append((buf.param_np.ctypes.data + offset) * live)
            what.append((s, "param"))
            watch.append(s.grad)
            ptrs.append((buf.grad_np.ctypes.data + offset) * live)
            what.append((s, "grad"))
            state_offset = s.start * buf.state_dtype.itemsize
            for name, view in s.views.items():
                watch.append(view)
                ptrs.append((buf.state_np[name].ctypes.data + state_offset) * live)
                what.append((s, name))
            if self._uses_step:
                watch.append(s.step)
                ptrs.append(steps_base + s.k * 4)
                what.append((s, "step"))
        self._watch, self._watch_ptrs, self._watch_what = watch, ptrs, what
        self._params = [s.param for s in self._slots]

    def _sync(self):
        """The positions of the slots whose ``p.data`` is not the optimizer's view (replaced,
        or the same memory with another layout), after following moved buffers and replacing
        repointed views. The common case is two C-level passes (~0.1 us a watched tensor: 505
        data pointers and 100 layouts, ~55 us, for Adam over the 100-tensor list of
        docs/torch.md, against ~900 us for the whole step)."""
        if (list(map(_data_ptr, self._watch)) == self._watch_ptrs
                and all(map(_is_contiguous, self._params))):
            return ()
        return self._resync()

    def _resync(self):
        moved = any([buf.follow() for buf in self._bufs.values()])
        if self._steps_t.data_ptr() != self._steps_np.ctypes.data:
            self._steps_np, moved = self._steps_t.numpy(), True
        if moved:
            for s in self._slots:
                s.grad_np = self._bufs[s.dtype].grad_np[s.start:s.stop]
            self._rewatch()
        replaced = set()
        repointed = False
        for t, ptr, what in zip(self._watch, self._watch_ptrs, self._watch_what):
            if what is None:
                continue
            s, kind = what
            if kind == "param":
                if t.data_ptr() != ptr or not t.is_contiguous():
                    replaced.add(s.k)
                continue
            if t.data_ptr() == ptr:
                continue
            # A view pointed elsewhere: from now on it is the user's tensor, as a tensor
            # assigned to p.grad or to the state would be (copied in at the next step that
            # uses it); the slot gets a fresh view.
            repointed = True
            buf = self._bufs[s.dtype]
            if kind == "grad":
                s.grad = buf.grad_t[s.start:s.stop].view(s.shape)
            elif kind == "step":
                s.step = self._steps_t[s.k]
            else:
                s.views[kind] = buf.state_t[kind][s.start:s.stop].view(s.shape)
        if repointed:
            self._rewatch()
        return replaced

    def _state_view(self, s, name):
        """The slot's view of state ``name``, allocating that state's buffer on first use."""
        view = s.views.get(name)
        if view is None:
            buf = self._bufs[s.dtype]
            if name not in buf.state_np:
                buf.add_state(name)
                for other in self._slots:
                    if other.dtype == s.dtype:
                        other.views[name] = buf.state_t[name][other.start:other.stop].view(
                            other.shape)
                self._rewatch()
            view = s.views[name]
        return view

    # -- 16-bit parameters: the master ------------------------------------------------------------

    def _widen_master(self, s, buf=None):
        """Slot ``s``'s master := its 16-bit parameter widened (exact)."""
        buf = self._bufs[s.dtype] if buf is None else buf
        lo, hi = s.start, s.stop
        buf.state_np[MASTER][lo:hi] = _half.widen(_half.bits(buf.param_np[lo:hi]), s.kind)

    def _narrow_param(self, s):
        """Slot ``s``'s 16-bit parameter := its master rounded to nearest even."""
        buf = self._bufs[s.dtype]
        lo, hi = s.start, s.stop
        _half.narrow(buf.state_np[MASTER][lo:hi], s.kind, out=_half.bits(buf.param_np[lo:hi]))

    def _master_stale(self, s):
        """Whether a 16-bit parameter was written in place since the optimizer last wrote or
        saw it (its version counter moved: ``with torch.no_grad(): p.mul_(2)``,
        ``model.load_state_dict(...)``) AND now differs from its master rounded: then the 16-bit
        values are the truth and the master is widened from them again (a write of the same bits,
        such as reloading the weights the optimizer's state dict came with, keeps the master)."""
        if s.param._version == s.version or not s.numel:
            return False
        buf = self._bufs[s.dtype]
        lo, hi = s.start, s.stop
        rounded = _half.narrow(buf.state_np[MASTER][lo:hi], s.kind)
        return not np.array_equal(rounded, _half.bits(buf.param_np[lo:hi]))

    def _record_versions(self):
        for s in self._half_slots:
            s.version = s.param._version

    def _half_kernel(self, rule, buf, lo, hi, states, scalars):
        """``fastopt._dispatch.table[rule, kind](master, grad_bits, *states, *scalars,
        param_bits)`` over ``[lo, hi)`` of a 16-bit buffer (docs/contract.md §14)."""
        _dispatch.table[rule, buf.kind](buf.state_np[MASTER][lo:hi],
                                        _half.bits(buf.grad_np[lo:hi]), *states, *scalars,
                                        _half.bits(buf.param_np[lo:hi]))

    # -- gradients -----------------------------------------------------------------------------

    def zero_grad(self, set_to_none=True):
        """torch's ``zero_grad``. ``set_to_none=True`` (the default): every gradient becomes
        None, as in torch (parameters that get no gradient before the next step are skipped).
        ``set_to_none=False``: the whole gradient buffer is zeroed in one call and the
        ``p.grad`` views stay bound (a gradient that is not the optimizer's view is zeroed in
        place, as torch does)."""
        if set_to_none:
            return super().zero_grad(True)
        self._sync()  # follow moved buffers; a repointed p.grad view is zeroed as the user's
        with torch.no_grad():
            for s in self._slots:
                g = s.param.grad
                if g is None:
                    continue
                if g is not s.grad:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    g.zero_()
                elif g.requires_grad:
                    g.requires_grad_(False)
            for buf in self._bufs.values():
                buf.grad_np.fill(0)
        return None

    def _check_grad(self, s, g, ours):
        if not isinstance(g, torch.Tensor):
            _v.torch_bad_tensor("the gradient of", s.name, f"is a {type(g).__name__}, not a "
                                f"tensor", TypeError)
        if g.layout != torch.strided:
            _v.torch_bad_tensor("the gradient of", s.name, f"is sparse ({g.layout}): "
                                f"fastopt.torch steps dense gradients only (for sparse "
                                f"embeddings use torch.optim.SparseAdam, or "
                                f"nn.Embedding(sparse=False))", TypeError)
        if g.device.type != "cpu":
            _v.torch_bad_tensor("the gradient of", s.name, f"is on {g.device}: fastopt.torch "
                                f"steps CPU tensors only")
        if g.dtype != s.param.dtype:
            _v.torch_bad_tensor("the gradient of", s.name, f"is {g.dtype}, its parameter "
                                f"{s.param.dtype}: they must have the same dtype", TypeError)
        if tuple(g.shape) != s.shape:
            _v.torch_bad_tensor("the gradient of", s.name, f"has shape {tuple(g.shape)}, its "
                                f"parameter {s.shape}")
        if g.numel() and g.untyped_storage().data_ptr() in ours:
            _v.torch_bad_tensor("the gradient of", s.name, "is a view of this optimizer's own "
                                "buffers (another parameter's gradient, a parameter or a "
                                "state): assign a tensor of its own (.clone())")

    def _our_storages(self):
        ptrs = set()
        for buf in self._bufs.values():
            ptrs.add(buf.param_t.untyped_storage().data_ptr())
            ptrs.add(buf.grad_t.untyped_storage().data_ptr())
            for t in buf.state_t.values():
                ptrs.add(t.untyped_storage().data_ptr())
        return ptrs

    # -- stepping ------------------------------------------------------------------------------

    def _group_hyper(self, gi, group):
        """(lr, h): the group's scalars, validated (h cached while the group's values stay)."""
        where = f"param_groups[{gi}]"
        lr = self._lr_of(group, where)
        key = _snapshot([group.get(k) for k in self._hyper_keys])
        cached = self._hyper_cache.get(gi)
        if key is not _UNCACHEABLE and cached is not None and cached[0] == key:
            return lr, cached[1]
        h = self._hyper(group, where)
        if key is not _UNCACHEABLE:
            self._hyper_cache[gi] = (key, h)
        return lr, h

    @_hooked_step
    def step(self, closure=None):
        """One step of every parameter that has a gradient (see the class docstring for the
        gradient policy).

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (called with gradients enabled, as in
            torch).

        Returns
        -------
        The closure's loss, or None.

        Notes
        -----
        Loss scaling (``_step_supports_amp_scaling``): ``torch.amp.GradScaler.step`` sets
        ``optimizer.grad_scale`` (the loss scale S; None after ``scaler.unscale_(optimizer)``)
        and ``optimizer.found_inf`` before calling this, as for torch's fused optimizers. A
        nonzero ``found_inf`` skips the step before anything is written (parameters, masters,
        state and step counts stay); otherwise the gradients are multiplied by ``1/S`` inside
        the kernels (times the clipping coefficient with ``max_grad_norm``, whose norm is that
        of the unscaled gradients), the gradient buffer itself is not written.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        if grad_scale is not None:
            grad_scale = _v.torch_amp_scalar("grad_scale", grad_scale)
        if found_inf is not None and _v.torch_amp_scalar("found_inf", found_inf) != 0:
            return loss  # an inf/NaN gradient: GradScaler skips this step (and lowers S)
        # torch.no_grad() as a context manager costs ~4 us; the switch itself ~0.1 us.
        enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            self._step(grad_scale)
        finally:
            torch._C._set_grad_enabled(enabled)
        return loss

    def _step(self, grad_scale=None):
        groups = self.param_groups
        if len(groups) != len(self._group_slots):
            raise ValueError(f"param_groups has {len(groups)} groups; this optimizer packed "
                             f"{len(self._group_slots)}: add groups with add_param_group")
        hypers = []
        for gi, group in enumerate(groups):
            params = group["params"]
            slots = self._group_slots[gi]
            if len(params) != len(slots) or any(
                    q is not s.param for q, s in zip(params, slots)):
                raise ValueError(f"param_groups[{gi}]['params'] was changed after the optimizer "
                                 f"packed it; add parameters with add_param_group")
            hypers.append(self._group_hyper(gi, group))
        # Phase 1: check, writing nothing (but first follow buffers that torch moved, and
        # give repointed views' slots fresh views: nothing the user sees changes).
        replaced = self._sync()
        state_get = self.state.get
        uses_step = self._uses_step
        steps_np = self._steps_np
        stepped = [False] * len(self._slots)
        fresh = []           # slots whose state starts now
        grad_copies = []     # (slot, gradient tensor)
        param_copies = []    # slots whose p.data was replaced
        state_fixes = []     # (slot, name, value)
        names_of = [self._state_names(h) for _, h in hypers]
        ours = None
        # 16-bit parameters written in place since the last step: their masters are widened
        # from them again in phase 2.
        rewiden = [s for s in self._half_slots if self._master_stale(s)]
        for s in self._slots:
            p = s.param
            g = p.grad
            if g is None:
                continue
            stepped[s.k] = True
            if replaced and s.k in replaced:
                self._check_replaced(s)
                param_copies.append((s, self._replaced_overlaps(s, replaced)))
            if g is not s.grad:
                if ours is None:
                    ours = self._our_storages()
                self._check_grad(s, g, ours)
                grad_copies.append((s, g))
            names = names_of[s.group]
            st = state_get(p)
            # No state yet (or, for SGD, no momentum buffer yet: torch's first step): it starts
            # now, from the initial values.
            if not st or (not uses_step and names and st.get("momentum_buffer") is None):
                fresh.append(s)
                continue
            if uses_step:
                value = st.get("step")
                if value is not s.step:
                    state_fixes.append((s, "step", self._step_value(s, value)))
            if s.kind:
                value = st.get(MASTER)
                if value is not None and value is not s.views[MASTER]:
                    state_fixes.append((s, MASTER, self._check_state(s, MASTER, value)))
            for name in names:
                value = st.get(name)
                view = s.views.get(name)
                if value is None:
                    raise ValueError(
                        f"the state of {s.name} has no {name!r} although it has "
                        f"{sorted(st)}: an option that needs it (amsgrad, centered, momentum) "
                        f"was switched on after this parameter's first step; torch fails "
                        f"there too. Switch it back, or clear the state (opt.state[p] = {{}})")
                if value is not view:
                    state_fixes.append((s, name, self._check_state(s, name, value)))
        if uses_step:
            fixed = {s.k: v for s, name, v in state_fixes if name == "step"}
            if steps_np.max() >= _MAX_STEP or any(v >= _MAX_STEP for v in fixed.values()):
                starting = {s.k for s in fresh}
                for s in self._slots:
                    count = fixed.get(s.k, steps_np[s.k])
                    if stepped[s.k] and s.k not in starting and count >= _MAX_STEP:
                        raise ValueError(
                            f"{s.name} has taken {int(count)} steps, the most a float32 step "
                            f"count holds exactly (2**24, as torch keeps it): one more would "
                            f"not advance it. Reset its state to continue")
        # Phase 2: bind (copies into the slots; nothing is stepped yet).
        for s, own_slot in param_copies:
            data = s.param.data
            s.data.copy_(data.clone() if own_slot else data)  # never copy a slot onto itself
            s.param.data = s.data
            if s.kind:
                self._widen_master(s)
        for s in rewiden:
            self._widen_master(s)
        if grad_copies:
            torch._foreach_copy_([s.grad for s, _ in grad_copies], [g for _, g in grad_copies])
            for s, _ in grad_copies:
                s.param.grad = s.grad
        for s, name, value in state_fixes:
            if name == "step":
                steps_np[s.k] = value
                self.state[s.param]["step"] = s.step
            else:
                view = self._state_view(s, name)
                view.copy_(value)
                self.state[s.param][name] = view
        for s in fresh:
            h = hypers[s.group][1]
            for name in self._state_names(h):
                self._state_view(s, name).fill_(self._initial(name, h))
            steps_np[s.k] = 0.0
        fresh_ids = {s.k for s in fresh}
        # Phase 3: clipping (fastopt's fixed-order sum over the slots, in parameter order).
        # With loss scaling the gradients are S times the true ones: the factor is 1/S, and the
        # norm clipped is that of the unscaled gradients (the sum's norm divided by S: for a
        # power-of-two S, GradScaler's, exactly the norm of the gradients divided by S).
        scale = 1.0 if grad_scale is None else 1.0 / grad_scale
        if self._max_grad_norm is not None:
            total = 0.0
            for s in self._param_order:
                if stepped[s.k]:
                    total += (_ops.sumsq_half(_half.bits(s.grad_np), s.kind) if s.kind
                              else _ops.sumsq(s.grad_np))
            norm = math.sqrt(total)
            if grad_scale is not None:
                norm = norm / grad_scale
            self.last_grad_norm = norm
            scale = scale * clip_coefficient(norm, self._max_grad_norm)
        # Phase 4: the kernels, one call per run of consecutive stepped slots of one key (the
        # step count; for SGD, whether it is the first step).
        slots = self._slots
        for gi, dtype, first_pos, end_pos in self._segments:
            lr, h = hypers[gi]
            names = names_of[gi]
            buf = self._bufs[dtype]
            pos = first_pos
            # The common case, without a Python pass over the slots (0.85 us a slot, 85 us a
            # step over 100 tensors): every slot of the segment steps, none starts its state
            # now, and all share one step count.
            if (not fresh_ids and all(stepped[first_pos:end_pos])
                    and (not uses_step or _one_value(steps_np[first_pos:end_pos]))):
                lo, hi = slots[first_pos].start, slots[end_pos - 1].stop
                if hi > lo:
                    self._kernel(buf, lo, hi, lr, h, int(steps_np[first_pos]) + 1, False,
                                 scale)
                if uses_step:
                    steps_np[first_pos:end_pos] += 1
                continue
            while pos < end_pos:
                s = slots[pos]
                if not stepped[s.k]:
                    pos += 1
                    continue
                key = self._key(s, fresh_ids, names)
                run_end = pos + 1
                while (run_end < end_pos and stepped[slots[run_end].k]
                       and self._key(slots[run_end], fresh_ids, names) == key):
                    run_end += 1
                lo, hi = s.start, slots[run_end - 1].stop
                t = int(steps_np[s.k]) + 1
                if hi > lo:
                    self._kernel(buf, lo, hi, lr, h, t, s.k in fresh_ids, scale)
                if uses_step:
                    steps_np[s.k:slots[run_end - 1].k + 1] += 1
                pos = run_end
        if uses_step or any(names_of) or self._half_slots:
            for s in fresh:
                names = names_of[s.group]
                if not (uses_step or names or s.kind):
                    continue
                st = self.state[s.param]
                if uses_step:
                    st["step"] = s.step
                for name in names:
                    st[name] = s.views[name]
                if s.kind:
                    st[MASTER] = s.views[MASTER]
        params = [s.param for s in slots if stepped[s.k]]
        if params:
            torch._C._increment_version(params)
        if self._half_slots:
            self._record_versions()

    def _key(self, s, fresh_ids, names):
        if self._uses_step:
            return self._steps_np[s.k]  # 0 for a fresh slot (set in phase 2)
        return s.k in fresh_ids if names else True

    def _check_replaced(self, s):
        if s.param.dtype != _buffers.TORCH_DTYPES[s.dtype]:
            _v.torch_bad_tensor("parameter", s.name, f"became {s.param.dtype} after the "
                                f"optimizer was built (it packed it as "
                                f"{_buffers.TORCH_DTYPES[s.dtype]}): build the "
                                f"optimizer after converting the model", TypeError)
        if tuple(s.param.shape) != s.shape:
            _v.torch_bad_tensor("parameter", s.name, f"has shape {tuple(s.param.shape)} since "
                                f"the optimizer packed it as {s.shape}: build a new optimizer")
        if s.param.device.type != "cpu":
            _v.torch_bad_tensor("parameter", s.name, f"moved to {s.param.device}: "
                                f"fastopt.torch steps CPU tensors only")
        if s.param.layout != torch.strided:
            _v.torch_bad_tensor("parameter", s.name, f"became {s.param.layout} after the "
                                f"optimizer packed it: fastopt.torch steps dense parameters "
                                f"only", TypeError)

    def _replaced_overlaps(self, s, replaced):
        """Whether the new ``p.data`` of slot ``s`` lies in its own slot (a transposed view of
        it: copied through a clone). New data in another parameter's slot, or in the storage
        of another parameter whose data was replaced too, is refused: the step would untie
        the two (as packing would at construction)."""
        data = s.param.data
        if data.numel() == 0:
            return False
        lo, hi = _tensor_extent(data)
        key = data.untyped_storage().data_ptr()
        buf = self._bufs[s.dtype]
        if key == buf.param_t.untyped_storage().data_ptr():
            base, size = buf.param_np.ctypes.data, s.dtype.itemsize
            if base + s.start * size <= lo and hi <= base + s.stop * size:
                return True
            for other in self._slots:
                if (other is not s and other.dtype == s.dtype
                        and base + other.start * size < hi and lo < base + other.stop * size):
                    break
            else:
                other = None
            _v.torch_retied(s.name, other.name if other is not None else None)
        if key in self._our_storages():
            _v.torch_bad_tensor("parameter", s.name, "was replaced by a view of this "
                                "optimizer's gradient or state buffers: assign a tensor of "
                                "its own (.clone())")
        for other in self._slots:
            if (other is not s and other.k in replaced and other.numel
                    and other.param.untyped_storage().data_ptr() == key):
                _v.torch_retied(s.name, other.name)
        return False

    def _step_value(self, s, value):
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"state['step'] of {s.name} must be a number, got a tensor of "
                                 f"shape {tuple(value.shape)}")
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"state['step'] of {s.name} must be a number, got "
                            f"{type(value).__name__}")
        value = float(value)
        if not (0 <= value <= _MAX_STEP and value == int(value)):
            raise ValueError(f"state['step'] of {s.name} must be a whole number in [0, 2**24] "
                             f"(a float32 count, as torch keeps it), got {value}")
        return value

    def _check_state(self, s, name, value):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state[{name!r}] of {s.name} must be a tensor, got "
                            f"{type(value).__name__}")
        if value.layout != torch.strided or value.device.type != "cpu":
            raise ValueError(f"state[{name!r}] of {s.name} must be a dense CPU tensor, got "
                             f"{value.layout} on {value.device}")
        if value.is_complex() or not value.is_floating_point():
            raise TypeError(f"state[{name!r}] of {s.name} must be a real float tensor, got "
                            f"{value.dtype}")
        if tuple(value.shape) != s.shape:
            raise ValueError(f"state[{name!r}] of {s.name} has shape {tuple(value.shape)}, its "
                             f"parameter {s.shape}")
        if value.numel() and value.untyped_storage().data_ptr() in self._our_storages():
            value = value.clone()  # never copy a slot onto another in place
        return value

    # -- state dicts, copies ---------------------------------------------------------------------

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict`` (a state dict of this class or of torch's own optimizer
        of the same rule; hooks run as in torch), then the loaded state is copied into the
        packed buffers (the views stay; nothing else is replaced). Every group's hyperparameters
        and every loaded state entry are checked first; on a refusal the optimizer is as it
        was.

        16-bit parameters: their state entries are taken as saved, not cast to the parameter's
        dtype as torch's load casts them (a float32 ``exp_avg`` stays float32; a bfloat16 one,
        from torch's own optimizer, is widened exactly); the master is the saved
        ``state[p]["master"]``, or, in a state dict without one (torch's own, or saved before
        the parameter's first step), the parameter widened; and the parameter is then
        rewritten as its master rounded."""
        old_state, old_groups = self.state, self.param_groups
        old_cache = self._hyper_cache
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        raw = self._saved_half_state(state_dict)
        pre_hooks = self._optimizer_load_state_dict_pre_hooks
        post_hooks = self._optimizer_load_state_dict_post_hooks
        self._optimizer_load_state_dict_pre_hooks = type(pre_hooks)()
        self._optimizer_load_state_dict_post_hooks = type(post_hooks)()
        try:
            super().load_state_dict(state_dict)
        finally:
            self._optimizer_load_state_dict_pre_hooks = pre_hooks
            self._optimizer_load_state_dict_post_hooks = post_hooks
        try:
            self._hyper_cache = {}
            self._adopt_loaded(raw)
        except BaseException:
            self.state, self.param_groups, self._hyper_cache = old_state, old_groups, old_cache
            raise
        for hook in post_hooks.values():
            hook(self)

    def _saved_half_state(self, state_dict):
        """{parameter: its saved state entries} for the 16-bit parameters, before torch's load
        casts them to the parameter's dtype (torch's id mapping: saved ids in group order)."""
        if not self._half_slots:
            return {}
        try:
            saved_ids = itertools.chain.from_iterable(
                g["params"] for g in state_dict["param_groups"])
            params = itertools.chain.from_iterable(g["params"] for g in self.param_groups)
            id_map = dict(zip(saved_ids, params))
            saved = state_dict["state"]
            half = {id(s.param) for s in self._half_slots}
            return {id_map[k]: v for k, v in saved.items()
                    if k in id_map and id(id_map[k]) in half and isinstance(v, dict)}
        except (KeyError, TypeError):
            return {}  # torch's load words the malformed state dict

    def _adopt_loaded(self, raw=None):
        """Check ``self.state`` as torch's load left it (tensors of their own; for 16-bit
        parameters the saved tensors ``raw`` instead), then copy it into the buffers and make
        its entries our views."""
        raw = raw or {}
        self._sync()  # the step counts are written through NumPy below
        hypers = []
        for gi, group in enumerate(self.param_groups):
            self._lr_of(group, f"param_groups[{gi}]")
            hypers.append(self._hyper(group, f"param_groups[{gi}]"))
        plan = []
        for s in self._slots:
            st = self.state.get(s.param)
            if not st:
                continue
            h = hypers[s.group]
            entries = {}
            if self._uses_step:
                if "step" not in st:
                    raise ValueError(f"the loaded state of {s.name} has no 'step' (it has "
                                     f"{sorted(st)})")
                entries["step"] = self._step_value(s, st["step"])
            saved = raw.get(s.param, {})
            names = self._state_names(h)
            if s.kind:
                names += (MASTER,)
            for name in names:
                value = saved.get(name, st.get(name))
                if value is None:
                    if name == MASTER or (name == "momentum_buffer" and not self._uses_step):
                        continue  # SGD before its first step: no buffer, as in torch
                    raise ValueError(f"the loaded state of {s.name} has no {name!r} (it has "
                                     f"{sorted(st)}), which its group's options need")
                entries[name] = self._check_state(s, name, value)
            plan.append((s, st, entries))
        with torch.no_grad():
            for s in self._slots:
                if not self.state.get(s.param):
                    self.state.pop(s.param, None)
            for s, st, entries in plan:
                new = {}
                for key, value in st.items():
                    if key == "step" and "step" in entries:
                        self._steps_np[s.k] = entries["step"]
                        new[key] = s.step
                    elif key in entries:
                        view = self._state_view(s, key)
                        view.copy_(entries[key])
                        new[key] = view
                    else:
                        new[key] = value
                if s.kind and MASTER not in entries:
                    self._widen_master(s)  # torch's own state dict: the parameter is the truth
                    new[MASTER] = s.views[MASTER]
                self.state[s.param] = new
            # The 16-bit parameters follow their masters (widened above where none was saved).
            stateless = [s for s in self._half_slots if not self.state.get(s.param)]
            for s in stateless:
                self._widen_master(s)
            for s in self._half_slots:
                self._narrow_param(s)
            if self._half_slots:
                torch._C._increment_version([s.param for s in self._half_slots])
                self._record_versions()

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._group_defaults().items():
                group.setdefault(key, value)
        self._fix_groups()
        if "_slots" not in self.__dict__:
            # Unpickled or deep-copied: the parameters are copies (pickle leaves them views of
            # one copied storage, which is ours), the state tensors too. Pack anew and adopt.
            self.__dict__.setdefault("_max_grad_norm", None)
            self.__dict__.setdefault("last_grad_norm", None)
            self._slots = []
            self._ready = False
            loaded = self.state
            self.state = type(loaded)(dict)
            self._pack(allow_shared=True)
            self._ready = True
            self.state = loaded
            self._hyper_cache = {}
            self._adopt_loaded()

    def __copy__(self):
        raise TypeError(f"copy.copy of a fastopt.torch.{type(self).__name__} is refused: a "
                        f"shallow copy would pack the same parameters into buffers of its "
                        f"own, and the two optimizers would move them back and forth. Use "
                        f"copy.deepcopy (or pickle) for an independent optimizer")

    def __getstate__(self):
        state = super().__getstate__()
        state["_max_grad_norm"] = self._max_grad_norm
        state["last_grad_norm"] = self.last_grad_norm
        return state

    def _group_defaults(self):
        """Keys torch's ``__setstate__`` fills in for groups saved by older versions."""
        return {"maximize": False, "foreach": None, "differentiable": False}

    def _fix_groups(self):
        """Class-specific group rules after a load (AdamW's decoupled_weight_decay)."""
