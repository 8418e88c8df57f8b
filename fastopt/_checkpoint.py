"""Optimizer checkpoints: ``state_dict``/``load_state_dict`` in memory, ``save``/``load`` to an
``.npz`` file (format version 2).

A file holds plain arrays only and is read with ``allow_pickle=False``: the parameters and
state as ``param.<i>`` and ``state.<name>.<i>``, metadata as ``meta.*``, and the
hyperparameters as one JSON text, where a learning-rate schedule is its class name and
arguments, rebuilt from the fixed registry of ``fastopt.schedules`` (no pickle, no eval).
Loading validates everything before anything changes: a rejected file leaves the optimizer as
it was. Hyperparameters come from the checkpoint (as torch restores them); the structure (type,
keys, shapes, dtypes, the state arrays kept) must match.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

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
    return {
        "optimizer": type(opt).__name__,
        "version": FORMAT_VERSION,
        "keys": list(opt._keys),
        "t": opt.t,
        "skipped": opt.skipped,
        "hyperparameters": opt.hyperparameters,
        "params": [take(p) for p in opt._params],
        "state": {s: [take(a) for a in opt._state[s]] for s in opt.state_names},
    }


def load_state_dict(opt, state):
    hyper, params, states, t, skipped = _validate(opt, state)
    for dst, src in zip(opt._params, params):
        dst[...] = src
    for s in opt.state_names:
        for dst, src in zip(opt._state[s], states[s]):
            dst[...] = src
    opt._hyper = hyper
    opt.t, opt.skipped = t, skipped


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
    if [str(k) for k in state["keys"]] != [str(k) for k in opt._keys]:
        raise ValueError(f"state holds parameters {list(state['keys'])}; this optimizer has "
                         f"{list(opt._keys)}")
    _v.check_mapping(state["hyperparameters"], "state['hyperparameters']")
    theirs = dict(state["hyperparameters"])
    expected = opt._hyper_attributes()
    if set(theirs) != set(expected):
        raise ValueError(f"state['hyperparameters'] has {sorted(theirs)}; a {name} has "
                         f"{sorted(expected)}")
    for key, spec in expected.items():
        if spec.fixed and theirs[key] != opt._hyper[key]:
            raise ValueError(f"state has {key}={theirs[key]!r}; this {name} was built with "
                             f"{key}={opt._hyper[key]!r}, which fixes its state arrays")
    hyper = opt._checked_hyper({k: theirs[k] for k in expected})
    t = _v.check_count(state["t"], "state['t']", 0)
    skipped = _v.check_count(state["skipped"], "state['skipped']", 0)
    params = _check_arrays(opt, state["params"], "state['params']")
    _v.check_mapping(state["state"], "state['state']")
    if set(state["state"]) != set(opt.state_names):
        raise ValueError(f"state['state'] holds {sorted(state['state'])}; expected "
                         f"{sorted(opt.state_names)}")
    states = {s: _check_arrays(opt, state["state"][s], f"state['state'][{s!r}]")
              for s in opt.state_names}
    return hyper, params, states, t, skipped


def _check_arrays(opt, arrays, what):
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(opt._params):
        raise ValueError(f"{what} must be a list of {len(opt._params)} arrays")
    for key, ref, arr in zip(opt._keys, opt._params, arrays):
        name = f"{what}[{key!r}]"
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be an ndarray, got {type(arr).__name__}")
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

def save(opt, path):
    state = state_dict(opt, copy=False)
    arrays = {
        "meta.optimizer": np.array(state["optimizer"]),
        "meta.version": np.array(state["version"]),
        "meta.keys": np.array([str(k) for k in state["keys"]]),
        "meta.t": np.array(state["t"], dtype=np.int64),
        "meta.skipped": np.array(state["skipped"], dtype=np.int64),
        "meta.hyperparameters": np.array(json.dumps(
            {k: encode(v) for k, v in state["hyperparameters"].items()})),
    }
    for i, p in enumerate(state["params"]):
        arrays[f"param.{i}"] = p
    for s, lst in state["state"].items():
        for i, a in enumerate(lst):
            arrays[f"state.{s}.{i}"] = a
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastopt-", suffix=".npz.tmp", dir=directory)
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


def load(opt, path):
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
    load_state_dict(opt, _state_from_arrays(opt, data, os.fspath(path)))


def _state_from_arrays(opt, data, path):
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
    expected = {f"param.{i}" for i in range(n)} | {
        f"state.{s}.{i}" for s in names for i in range(n)}
    arrays = {k for k in data if k.startswith(("param.", "state."))}
    if arrays != expected:
        raise ValueError(f"{path!r} holds arrays {sorted(arrays)}; expected "
                         f"{sorted(expected)}")
    return {
        "optimizer": scalar("meta.optimizer", "U"),
        "version": version,
        "keys": [str(k) for k in keys],
        "t": scalar("meta.t", "iu"),
        "skipped": scalar("meta.skipped", "iu"),
        "hyperparameters": hyper,
        "params": [data[f"param.{i}"] for i in range(n)],
        "state": {s: [data[f"state.{s}.{i}"] for i in range(n)] for s in names},
    }
