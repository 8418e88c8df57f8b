"""Optimizer checkpoints: ``state_dict``/``load_state_dict`` in memory, ``save``/``load`` to an
``.npz`` file (format version 2).

A file holds plain arrays only and is read with ``allow_pickle=False``: the parameters and
state as ``param.<i>`` and ``state.<name>.<i>``, metadata as ``meta.*``, and the
hyperparameters as one JSON text, where a learning-rate schedule is its class name and
arguments, rebuilt from the fixed registry of ``fastopt.schedules`` (no pickle, no eval).
Loading validates everything before anything changes: a rejected file leaves the optimizer as
it was. Hyperparameters come from the checkpoint (as torch restores them); the structure (type,
keys, shapes, dtypes, the state arrays kept) must match.

A checkpoint holds only what it can load: saving refuses a schedule that is not one of
:data:`SCHEDULES` (a subclass of ``Schedule`` written elsewhere, whose code a file of plain data
cannot carry) with a ``TypeError`` that says what to do, rather than write a file that fails
when training resumes. ``save(path, batches=loader)`` also stores a ``MiniBatches``' position
(``meta.batches``, its ``state_dict`` as JSON), so that optimizer and loader resume together,
bit for bit, mid-epoch. Files are created as ``open()`` creates them (mode 0666 less the
umask), not with ``mkstemp``'s 0600.

16-bit parameters (``master_dtype=np.float32``, docs/contract.md §14). The state dict gains
``"master_dtype": "float32"`` and ``"master"`` (the float32 master copies, a list in parameter
order); the file ``meta.master_dtype`` and ``master.<i>``, and the 16-bit parameters as
``param.<i>`` (bfloat16 as its ``uint16`` bits: NumPy cannot read ``ml_dtypes.bfloat16`` back
without pickles). The masters are what a step reads: loading writes them and the state, then
rewrites the 16-bit parameters as the masters rounded (the ``params`` a checkpoint holds are only
checked for their format and shape). Checkpoints of other optimizers keep their keys exactly (no
``master_dtype`` key: absent means None), so files written before stay readable; a checkpoint
with masters loaded into an optimizer without (or the reverse) is refused, naming both.
"""
import contextlib
import json
import os
import secrets
import zipfile

import numpy as np

from . import _half
from . import _validation as _v
from . import schedules as _schedules

FORMAT_VERSION = 2
_REQUIRED = ("optimizer", "version", "keys", "t", "skipped", "hyperparameters", "params",
             "state")
SCHEDULES = {cls.__name__: cls for cls in (
    _schedules.Constant, _schedules.InverseTimeDecay, _schedules.ExponentialDecay,
    _schedules.PiecewiseConstant, _schedules.CosineDecay, _schedules.LinearWarmup)}
"""The schedule classes a checkpoint may name."""


def state_dict(opt, copy):
    """The optimizer's state as a dict; the arrays themselves when ``copy`` is False (for
    ``save``, which only writes them)."""
    take = np.copy if copy else (lambda a: a)
    out = {
        "optimizer": type(opt).__name__,
        "version": FORMAT_VERSION,
        "keys": opt._param_keys(),
        "t": opt.t,
        "skipped": opt.skipped,
        "last_grad_norm": opt.last_grad_norm,
        "hyperparameters": opt.hyperparameters,
        "params": [take(p) for p in opt._param_arrays()],
        "state": {s: [take(a) for a in opt._state_arrays(s)] for s in opt.state_names},
    }
    masters = opt._master_arrays()
    if masters is not None:
        out["master_dtype"] = "float32"
        out["master"] = [take(m) for m in masters]
    return out


def load_state_dict(opt, state, batches=None, batches_state=None):
    """Restore ``state`` into ``opt`` (and ``batches_state`` into the MiniBatches
    ``batches``), everything validated before anything changes."""
    hyper, params, states, t, skipped, norm, masters = _validate(opt, state)
    # An array made read-only after construction: refused here, with the step's check and
    # message, before anything is written (the copies below stopped at it, half done).
    opt._check_writeable()
    guard = contextlib.nullcontext()
    if batches is not None:
        _check_batches(batches)
        checked = batches._check_state(batches_state)
        guard = batches._inside()  # held from before the first write: a busy loader refuses
    with guard:                    # with nothing changed, not after the optimizer is loaded
        if batches is not None:
            batches._check_owner()
        opt._restore_state(hyper, t, skipped, norm, params, masters, states)
        if batches is not None:
            batches._apply_state_held(checked)


def _validate(opt, state):
    _v.check_mapping(state, "state")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"state is missing {missing}; it is not a fastopt optimizer "
                         f"state_dict")
    name = type(opt).__name__
    if state["optimizer"] != name:
        raise ValueError(f"state is for an optimizer of type {state['optimizer']}; this one "
                         f"is {name}")
    if state["version"] != FORMAT_VERSION:
        raise ValueError(f"state has format version {state['version']!r}; this fastopt "
                         f"reads version {FORMAT_VERSION}")
    keys = opt._param_keys()
    if [str(k) for k in state["keys"]] != [str(k) for k in keys]:
        raise ValueError(f"state holds parameters {list(state['keys'])}; this optimizer has "
                         f"{keys}")
    # Masters or not: the structure first, before the hyperparameters that would differ too.
    theirs_master = _master_dtype_of(state.get("master_dtype"), "state['master_dtype']")
    if theirs_master != opt.master_dtype:
        raise _v.mixed_checkpoint_mismatch("the checkpoint", name, theirs_master,
                                           opt.master_dtype)
    _v.check_mapping(state["hyperparameters"], "state['hyperparameters']")
    theirs = dict(state["hyperparameters"])
    expected = opt._hyper_attributes()
    if set(theirs) != set(expected):
        raise ValueError(f"state['hyperparameters'] has {sorted(theirs)}; a {name} has "
                         f"{sorted(expected)}")
    ours = opt._hyper_now()
    for key, spec in expected.items():
        if spec.fixed and theirs[key] != ours[key]:
            raise ValueError(f"state has {key}={theirs[key]!r}; this {name} was built with "
                             f"{key}={ours[key]!r}, which fixes its state arrays")
    hyper = opt._checked_hyper({k: theirs[k] for k in expected})
    t = _v.check_step_count(state["t"], "state['t']")
    skipped = _v.check_step_count(state["skipped"], "state['skipped']")
    # Absent from the state dicts of fastopt before it was kept (same format version): None.
    norm = _v.check_grad_norm(state.get("last_grad_norm"), "state['last_grad_norm']")
    params = _check_arrays(keys, state["params"], "state['params']", opt._param_arrays(),
                           half=theirs_master is not None)
    # The state arrays have the dtype and shape of what the rule steps: the masters, if any.
    stepped = opt._master_arrays() or opt._param_arrays()
    masters = None
    if theirs_master is not None:
        if "master" not in state:
            raise ValueError("state has master_dtype='float32' but no 'master' (the float32 "
                             "master weights); it is not a complete fastopt state_dict")
        masters = _check_arrays(keys, state["master"], "state['master']", stepped)
    _v.check_mapping(state["state"], "state['state']")
    if set(state["state"]) != set(opt.state_names):
        raise ValueError(f"state['state'] holds {sorted(state['state'])}; expected "
                         f"{sorted(opt.state_names)}")
    states = {s: _check_arrays(keys, state["state"][s], f"state['state'][{s!r}]", stepped)
              for s in opt.state_names}
    return hyper, params, states, t, skipped, norm, masters


def _master_dtype_of(value, what):
    """A checkpoint's master dtype: None (absent, or a checkpoint without masters) or
    float32."""
    if value is None:
        return None
    try:
        dt = np.dtype(value) if isinstance(value, (str, np.dtype)) else None
    except TypeError:
        dt = None
    if dt != np.float32:
        raise ValueError(f"{what} must be 'float32' (or absent), got {value!r}")
    return dt


def _check_arrays(keys, arrays, what, refs, half=False):
    """Each array of ``arrays`` has the dtype and shape of its ``refs`` (``half``: the same
    16-bit format, bfloat16 as ``ml_dtypes.bfloat16`` or ``uint16`` alike)."""
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(refs):
        raise ValueError(f"{what} must be a list of {len(refs)} arrays")
    for key, ref, arr in zip(keys, refs, arrays):
        name = f"{what}[{key!r}]"
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be an ndarray, got {type(arr).__name__}")
        if half and _half.kind_of(arr.dtype) == _half.kind_of(ref.dtype):
            arr = arr.view(ref.dtype)  # only its shape left to check
        _v.check_same_layout(arr, name, ref, f"params[{key!r}]")
    return arrays


# --- hyperparameters as plain data ------------------------------------------------------------

def encode(value):
    """A hyperparameter as JSON-able plain data: a schedule as ``{"schedule": class name,
    "args": {field: value}}`` (recursively: LinearWarmup holds a schedule)."""
    if isinstance(value, _schedules.Schedule):
        return {"schedule": type(value).__name__,
                "args": {f: encode(getattr(value, f)) for f in value._fields}}
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    return value


def check_loadable(value, where):
    """Refuse a hyperparameter that :func:`decode` could not rebuild: a schedule whose class
    is not the one of that name in :data:`SCHEDULES` (a user's subclass, even one named like
    a fastopt schedule, would come back as something else or not at all)."""
    if isinstance(value, _schedules.Schedule):
        if SCHEDULES.get(type(value).__name__) is not type(value):
            raise TypeError(
                f"{where} is a {type(value).__module__}.{type(value).__qualname__}, a schedule "
                f"that a checkpoint cannot rebuild: a file holds plain data, and loading knows "
                f"only fastopt.schedules' {sorted(SCHEDULES)}. Nothing was written. Express "
                f"the schedule with those (LinearWarmup and PiecewiseConstant compose), or "
                f"assign opt.lr a float before save() and your schedule again after load()")
        for f in value._fields:
            check_loadable(getattr(value, f), f"{where}.{f}")
    elif isinstance(value, (tuple, list)):
        for v in value:
            check_loadable(v, where)


def decode(value, where):
    """The inverse of :func:`encode`; a schedule's class must be in :data:`SCHEDULES` and its
    arguments pass its own validation."""
    if isinstance(value, dict):
        if set(value) != {"schedule", "args"} or not isinstance(value["args"], dict):
            raise ValueError(f"{where} is not a schedule description")
        cls = SCHEDULES.get(value["schedule"])
        if cls is None:
            raise ValueError(f"{where} names schedule {value['schedule']!r}; known: "
                             f"{sorted(SCHEDULES)}")
        return cls(**{k: decode(v, f"{where}.{k}") for k, v in value["args"].items()})
    if isinstance(value, list):
        return [decode(v, where) for v in value]
    return value


# --- files --------------------------------------------------------------------------------------

def save(opt, path, batches=None):
    state = state_dict(opt, copy=False)
    for k, v in state["hyperparameters"].items():
        check_loadable(v, f"hyperparameter {k!r}")
    # Bounded on assignment; checked again for a count a step carried past int64.
    _v.check_step_count(state["t"], "t")
    norm = state["last_grad_norm"]
    arrays = {
        "meta.optimizer": np.array(state["optimizer"]),
        "meta.version": np.array(state["version"]),
        "meta.keys": np.array([str(k) for k in state["keys"]]),
        "meta.t": np.array(state["t"], dtype=np.int64),
        "meta.skipped": np.array(state["skipped"], dtype=np.int64),
        "meta.hyperparameters": np.array(json.dumps(
            {k: encode(v) for k, v in state["hyperparameters"].items()})),
        # Shape () with the norm, shape (0,) for None: a norm may itself be NaN or inf.
        "meta.last_grad_norm": np.array([] if norm is None else norm, dtype=np.float64),
    }
    if batches is not None:
        arrays["meta.batches"] = np.array(json.dumps(_batches_state(batches)))
    for i, p in enumerate(state["params"]):
        # bfloat16 as its bits: np.load cannot rebuild ml_dtypes.bfloat16 without pickles.
        arrays[f"param.{i}"] = _half.bits(p) if _half.kind_of(p.dtype) == _half.BF16 else p
    if "master" in state:
        arrays["meta.master_dtype"] = np.array(state["master_dtype"])
        for i, m in enumerate(state["master"]):
            arrays[f"master.{i}"] = m
    for s, lst in state["state"].items():
        for i, a in enumerate(lst):
            arrays[f"state.{s}.{i}"] = a
    fd, tmp = _create_temporary(os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_temporary(directory):
    """A new file next to the checkpoint, created with mode 0666 so that the umask decides
    its permissions, as ``open()`` does (``tempfile.mkstemp`` would make it 0600, and the
    checkpoint unreadable by the group that a umask of 002 or 022 lets read it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".fastopt-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 64 random bits: a clash is another writer's file
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _check_batches(batches):
    from ._minibatch import MiniBatches  # not at the top: _minibatch is not needed otherwise
    if not isinstance(batches, MiniBatches):
        raise TypeError(f"batches must be a fastopt.MiniBatches (its position is saved and "
                        f"loaded with the optimizer's), got {type(batches).__name__}")


def _batches_state(batches):
    _check_batches(batches)
    return batches.state_dict()


def load(opt, path, batches=None):
    if batches is not None:
        _check_batches(batches)
    state, batches_state = read(opt, path, batches is not None)
    load_state_dict(opt, state, batches, batches_state)


def read(opt, path, want_batches=False):
    """The file's optimizer state dict (for ``opt``'s checks) and, if ``want_batches``, the
    MiniBatches state it holds; nothing is validated against ``opt`` beyond the file's form."""
    with open(path, "rb") as f:  # ours to close, even when np.load fails half-way
        if f.read(4) != b"PK\x03\x04":
            # Without this, NumPy would try the file as a pickle and suggest
            # allow_pickle=True: the wrong advice for a file that should be an .npz.
            raise ValueError(f"{os.fspath(path)!r} is not a fastopt checkpoint: not an .npz "
                             f"(zip) file")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise ValueError(f"{os.fspath(path)!r} is not a readable fastopt checkpoint: "
                             f"{exc}") from None
    return _state_from_arrays(opt, data, os.fspath(path), want_batches)


def _state_from_arrays(opt, data, path, want_batches=False):
    """The optimizer's state dict from a file's arrays, and the MiniBatches state it holds
    (None unless ``want_batches``)."""
    def scalar(key, kind):
        if key not in data:
            raise ValueError(f"{path!r} has no {key!r}: not a fastopt checkpoint")
        arr = data[key]
        if arr.shape != () or arr.dtype.kind not in kind:
            raise ValueError(f"{path!r}: {key!r} has the wrong type ({arr.dtype}, shape "
                             f"{arr.shape})")
        return arr.item()

    version = scalar("meta.version", "iu")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {version}; this fastopt reads version "
                         f"{FORMAT_VERSION}")
    keys = data.get("meta.keys")
    if keys is None or keys.ndim != 1 or keys.dtype.kind != "U":
        raise ValueError(f"{path!r} has no valid 'meta.keys': not a fastopt checkpoint")
    n = keys.shape[0]
    try:
        raw = json.loads(scalar("meta.hyperparameters", "U"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r}: 'meta.hyperparameters' is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path!r}: 'meta.hyperparameters' is not a JSON object")
    hyper = {k: decode(v, f"hyperparameter {k!r}") for k, v in raw.items()}
    # The state arrays the file holds; whether they are the ones this optimizer keeps is
    # load_state_dict's check, after the hyperparameters that decide them.
    names = sorted({k.split(".")[1] for k in data if k.startswith("state.") and k.count(".") == 2})
    master_dtype = (scalar("meta.master_dtype", "U") if "meta.master_dtype" in data
                    else None)  # files without masters have none
    expected = {f"param.{i}" for i in range(n)} | {
        f"state.{s}.{i}" for s in names for i in range(n)}
    if master_dtype is not None:
        expected |= {f"master.{i}" for i in range(n)}
    arrays = {k for k in data if k.startswith(("param.", "state.", "master."))}
    if arrays != expected:
        raise ValueError(f"{path!r} holds arrays {sorted(arrays)}; expected "
                         f"{sorted(expected)}")
    norm = data.get("meta.last_grad_norm")  # absent from files of earlier fastopt: None
    if norm is not None:
        if norm.dtype != np.float64 or norm.shape not in ((), (0,)):
            raise ValueError(f"{path!r}: 'meta.last_grad_norm' has the wrong type "
                             f"({norm.dtype}, shape {norm.shape})")
        norm = norm.item() if norm.shape == () else None
    batches_state = None
    if want_batches:
        if "meta.batches" not in data:
            raise ValueError(f"{path!r} holds no MiniBatches state (it was saved without "
                             f"batches=); load it without batches=")
        try:
            batches_state = json.loads(scalar("meta.batches", "U"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path!r}: 'meta.batches' is not valid JSON ({exc})") from None
    state = {
        "optimizer": scalar("meta.optimizer", "U"),
        "version": version,
        "keys": [str(k) for k in keys],
        "t": scalar("meta.t", "iu"),
        "skipped": scalar("meta.skipped", "iu"),
        "last_grad_norm": norm,
        "hyperparameters": hyper,
        "params": [data[f"param.{i}"] for i in range(n)],
        "state": {s: [data[f"state.{s}.{i}"] for i in range(n)] for s in names},
    }
    if master_dtype is not None:
        state["master_dtype"] = master_dtype
        state["master"] = [data[f"master.{i}"] for i in range(n)]
    return state, batches_state
