"""``python -m fastopt vectors``: known-answer cases as language-neutral files.

    python -m fastopt vectors --rule adam --dtype float32 --out DIR
    python -m fastopt vectors --all --out DIR            # the whole catalogue
    python -m fastopt vectors --all --small --no-npz --out tests/conformance/vectors   # the committed set

Writes into DIR (docs/contract.md §11 describes the format, version :data:`FORMAT_VERSION`):

* ``manifest.json``: per case the rule, dtype, every hyperparameter, step counts, learning
  rates, shapes, file names and the SHA-256 of every ``.bin`` file (only those: not of
  ``index.txt``, the ``.npz`` files or the manifest itself);
* ``index.txt``: the same facts one per line (``key value``) for readers without a JSON parser
  (C: ``fgets`` and ``sscanf``); the hashes, step counts and rates are only in the manifest
  and the files;
* ``<case>/<array>.bin``: each array as raw little-endian values, C order, no header;
* ``<case>.npz``: the same arrays for Python (``numpy.load``), unless ``--no-npz``.

Every NaN is written as the canonical quiet NaN (sign clear, top mantissa bit only): NaN
payloads and signs are not part of the contract (§1), and a platform whose NumPy propagates
another payload must still regenerate the same bytes.
"""
import hashlib
import json
import os
import pathlib
import sys

import numpy as np

from .._apps import cli as _cli
from .._version import __version__
from . import _cases

FORMAT_VERSION = 1
"""Version of the file format (manifest keys, file layout); bumped on any change."""

CONTRACT_VERSION = 1
"""Version of the arithmetic the vectors pin (docs/contract.md §1, §2, §4, §7, §8): bumped
whenever a deliberate change of the reference moves any bit of any case."""

CONTRACT = {"document": "docs/contract.md", "version": CONTRACT_VERSION,
            "sections": {"arithmetic": "§1", "rules": "§2", "schedules": "§4", "options": "§7",
                         "clipping": "§8", "vectors": "§11"}}

_CANONICAL_NAN = {np.dtype(np.float32): np.uint32(0x7FC00000),
                  np.dtype(np.float64): np.uint64(0x7FF8000000000000)}


def canonical(arr):
    """``arr`` as little-endian C-order bytes' array, every NaN the canonical quiet NaN."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype in _CANONICAL_NAN:
        nan = np.isnan(arr)
        if nan.any():
            bits = arr.view(_CANONICAL_NAN[arr.dtype].dtype).copy()
            bits[nan] = _CANONICAL_NAN[arr.dtype]
            arr = bits.view(arr.dtype)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def case_arrays(case):
    """Array name -> array, in the order written: inputs, then expectations."""
    arrays = {"steps": case.steps, "lr": case.lr, "param": case.param, "grads": case.grads}
    for name, value in case.state.items():
        arrays[f"state.{name}"] = value
    arrays["expected_param"] = case.expected_param
    for name, value in case.expected_state.items():
        arrays[f"expected_state.{name}"] = value
    return arrays


def _json_value(value):
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def _index_value(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)  # shortest round-trip: strtod gives the same double
    return str(value)


def write(cases, out, npz=True):
    """Write ``cases`` into directory ``out`` (created if needed); return the manifest dict.

    Files of a case are rewritten whole; files of other cases already in ``out`` are left
    alone, but ``manifest.json`` and ``index.txt`` list only ``cases``.
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    index = [f"# fastopt known-answer vectors, format {FORMAT_VERSION}, contract version "
             f"{CONTRACT_VERSION}: see manifest.json and docs/contract.md §11",
             f"format {FORMAT_VERSION}", f"contract {CONTRACT_VERSION}", f"cases {len(cases)}"]
    for case in cases:
        folder = out / case.name
        folder.mkdir(exist_ok=True)
        arrays = {name: canonical(value) for name, value in case_arrays(case).items()}
        files = {}
        for name, arr in arrays.items():
            data = arr.tobytes()
            rel = f"{case.name}/{name}.bin"
            (out / rel).write_bytes(data)
            files[name] = {"file": rel, "dtype": arr.dtype.name, "shape": list(arr.shape),
                           "sha256": hashlib.sha256(data).hexdigest()}
        if npz:
            with open(out / f"{case.name}.npz", "wb") as f:
                np.savez(f, **{name.replace(".", "__"): arr for name, arr in arrays.items()})
        hyper = {k: _json_value(v) for k, v in case.hyper.items()}
        entries.append({
            "name": case.name, "rule": case.rule, "dtype": case.dtype.name,
            "size": case.size, "steps_taken": len(case.steps), "offset": case.offset,
            "start_step": case.start_step, "hyper": hyper,
            "schedule": None if case.schedule is None else repr(case.schedule),
            "steps": [int(t) for t in case.steps], "lr": [float(x) for x in case.lr],
            "skipped": [bool(s) for s in case.skipped],
            "edges": {k: [int(i) for i in v] for k, v in case.edges.items()},
            "arrays": files,
            "npz": f"{case.name}.npz" if npz else None})
        index += [f"case {case.name}", f"rule {case.rule}", f"dtype {case.dtype.name}",
                  f"size {case.size}", f"steps {len(case.steps)}", f"offset {case.offset}",
                  f"start_step {case.start_step}"]
        index += [f"hyper {k} {_index_value(v)}" for k, v in case.hyper.items()]
        index += [f"arrays {' '.join(files)}", "end"]
    manifest = {"format": "fastopt-known-answer-vectors", "format_version": FORMAT_VERSION,
                "contract": CONTRACT, "byte_order": "little",
                "nan": "every NaN is the canonical quiet NaN (0x7fc00000, 0x7ff8000000000000)",
                "generator": {"fastopt": __version__, "numpy": np.__version__},
                "cases": entries}
    # bytes, not text: the same bytes on every platform (no locale encoding, no "\r\n")
    (out / "manifest.json").write_bytes(_manifest_text(manifest).encode("utf-8"))
    (out / "index.txt").write_bytes(("\n".join(index) + "\n").encode("utf-8"))
    return manifest


def _manifest_text(manifest):
    """JSON with the header indented and one compact line per case (a case's entry is ~1.3 KB
    this way, twice that indented)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "cases"}, indent=1,
                      ensure_ascii=False)
    lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False)
             for e in manifest["cases"]]
    return (head[:-2] + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")


def read(directory, name=None):
    """Load cases back from ``directory`` (no fastopt arithmetic involved), checking every
    ``.bin`` file's SHA-256 against the manifest (the ``.npz`` files are not read).

    Returns
    -------
    list of dict
        Per case its manifest entry with ``"data"``: array name -> ndarray.
    """
    directory = pathlib.Path(directory)
    manifest = json.loads((directory / "manifest.json").read_bytes().decode("utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory / 'manifest.json'} has format_version "
                         f"{manifest.get('format_version')!r}; this fastopt reads "
                         f"{FORMAT_VERSION}")
    out = []
    for entry in manifest["cases"]:
        if name is not None and entry["name"] != name:
            continue
        data = {}
        for key, info in entry["arrays"].items():
            raw = (directory / info["file"]).read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            if digest != info["sha256"]:
                raise ValueError(f"{info['file']}: SHA-256 {digest}, the manifest says "
                                 f"{info['sha256']}")
            dtype = np.dtype(info["dtype"]).newbyteorder("<")
            data[key] = np.frombuffer(raw, dtype).reshape(info["shape"])
        out.append(dict(entry, data=data))
    return out


def add_parser(subparsers):
    """Register ``vectors`` on ``python -m fastopt``'s subparsers."""
    p = subparsers.add_parser(
        "vectors", help="write known-answer test vectors (golden trajectories) as files",
        description="Write fastopt's golden trajectories (fastopt.testing.cases: every rule, "
                    "option, dtype, vector tail, alignment, long and late windows, edge "
                    "values) as raw little-endian arrays plus manifest.json (SHA-256 of "
                    "every .bin file) and index.txt, for tests in C, CUDA, Rust...; and an .npz "
                    "per case. The format is docs/contract.md §11.")
    p.add_argument("--rule", nargs="+", type=_cli.one_of(_cases.RULES),
                   choices=list(_cases.RULES), metavar="RULE",
                   help="rules to write, any letter case (choose from: %(choices)s)")
    p.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                   help="dtypes to write (default: both)")
    p.add_argument("--all", action="store_true", help="every rule (and both dtypes unless "
                                                      "--dtype)")
    p.add_argument("--small", action="store_true",
                   help="the quick subset (the committed tests/conformance/vectors) instead of the whole "
                        "catalogue")
    p.add_argument("--no-npz", dest="npz", action="store_false",
                   help="write no .npz files")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    p.set_defaults(check_arguments=lambda args: _check(p, args))
    return p


def _check(parser, args):
    if not args.all and not args.rule:
        parser.error("give --rule RULE ... or --all")
    if args.all and args.rule:
        parser.error("--all writes every rule: give --rule or --all, not both")
    # the nearest existing path of DIR must be a directory: a file there would end the run in
    # a FileExistsError traceback after the cases were built
    path = pathlib.Path(args.out)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = (f"{os.fspath(args.out)!r} is a file" if p == path else
                        f"{os.fspath(args.out)!r} cannot be created: {os.fspath(p)!r} is a file")
                parser.error(f"argument --out: {what}; give a directory to write into "
                             f"(created if missing)")
            break


def _unique(names):
    """``names`` without repeats, any letter case, first spelling and order kept: a rule or
    dtype given twice is written once."""
    seen, out = set(), []
    for n in names:
        if n.lower() not in seen:
            seen.add(n.lower())
            out.append(n)
    return out


def _size(nbytes):
    """A total for the summary: KiB below 1 MiB (a small set is not "0.0 MiB")."""
    if nbytes < 2 ** 20:
        return f"{nbytes / 2 ** 10:.1f} KiB"
    return f"{nbytes / 2 ** 20:.1f} MiB"


def run(args, out=None):
    """Build the selected cases and write them; print a summary."""
    out = sys.stdout if out is None else out
    rules = _cases.RULES if args.all else _unique(args.rule)
    dtypes = _unique(args.dtype or ["float32", "float64"])
    selected = [c for r in rules for d in dtypes
                for c in _cases.cases(r, d, small=args.small)]
    write(selected, args.out, npz=args.npz)
    total = sum(f.stat().st_size for f in pathlib.Path(args.out).rglob("*") if f.is_file())
    print(f"wrote {len(selected)} cases ({', '.join(rules)}; {', '.join(dtypes)}) to "
          f"{os.fspath(args.out)}: manifest.json, index.txt and {_size(total)} in all",
          file=out)
    return 0
