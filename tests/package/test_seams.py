"""Issue 21: other layers use an optimizer through its public attributes and the internal seams
listed in ``Optimizer._SEAMS`` (documented in the class docstring), never its other privates.

An AST scan of the sources (no import: fastopt.distributed needs mpi4py): an attribute access
``x._name`` where ``x`` is not ``self``/``cls`` nor a module the file imported.
"""
import ast
import pathlib

import fastopt
from fastopt._optim import Optimizer

# The package as imported: the checkout's fastopt/, or an installed wheel's (whose tests run from
# a copy of tests/ with no fastopt/ beside it).
SOURCES = pathlib.Path(fastopt.__file__).resolve().parent
OPTIM = SOURCES / "_optim.py"

# The modules that hold or load an optimizer; every private they read of another object is a
# seam, or listed here with its owner.
STRICT = ("_checkpoint.py", "distributed/__init__.py", "_lab.py")
OTHER_OWNERS = {
    # fastopt.MiniBatches, restored with an optimizer's checkpoint (its own guard and checks).
    "_check_state", "_inside", "_check_owner", "_apply_state_held",
    # fastopt.schedules.Schedule's field names (a namedtuple-like protocol of that module).
    "_fields",
}


def _imported_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _private_reads(path):
    """``(line, attribute)`` of every ``x._name`` (not dunder) where ``x`` is not ``self``,
    ``cls`` or an imported module."""
    tree = ast.parse(path.read_text(), str(path))
    modules = _imported_names(tree) | {"self", "cls"}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in modules)):
            found.append((node.lineno, node.attr))
    return found


def _optimizer_privates():
    """Every private name the optimizer classes of fastopt/_optim.py define or assign on
    ``self``."""
    tree = ast.parse(OPTIM.read_text())
    names = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.Assign)):
                targets = ([node.name] if isinstance(node, ast.FunctionDef) else
                           [t.id for t in node.targets if isinstance(t, ast.Name)])
                names.update(t for t in targets if t.startswith("_"))
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "self" and node.attr.startswith("_")):
                names.add(node.attr)
    return {n for n in names if not n.startswith("__")}


def test_seams_exist_and_are_documented():
    for name in Optimizer._SEAMS:
        assert hasattr(Optimizer, name) or name == "_busy", name
        assert f"``{name}" in Optimizer.__doc__, f"{name} is not in the class docstring"


def test_the_strict_modules_read_only_seams():
    allowed = set(Optimizer._SEAMS) | OTHER_OWNERS
    bad = [f"fastopt/{rel}:{line}: ._{attr[1:]}"
           for rel in STRICT for line, attr in _private_reads(SOURCES / rel)
           if attr not in allowed]
    assert not bad, ("private reads of another object, not a seam of Optimizer._SEAMS:\n"
                     + "\n".join(bad))


def test_no_module_reads_an_optimizers_other_privates():
    privates = _optimizer_privates() - set(Optimizer._SEAMS)
    assert {"_hyper", "_state", "_params", "_t", "_written"} <= privates  # the scan works
    bad = []
    for path in sorted(SOURCES.rglob("*.py")):
        if path == OPTIM:
            continue
        for line, attr in _private_reads(path):
            if attr in privates and not _owned_elsewhere(path, attr):
                bad.append(f"{path.relative_to(SOURCES.parent)}:{line}: .{attr}")
    assert not bad, "an optimizer's private read outside fastopt/_optim.py:\n" + "\n".join(bad)


def _owned_elsewhere(path, attr):
    """Whether this module's own classes define ``attr`` on ``self`` too (``x._name`` there
    may be one of its own objects: MiniBatches' ``_busy``, PackedArrays' ``_layout``...)."""
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
               and n.value.id == "self" and n.attr == attr for n in ast.walk(tree))


def test_the_scan_finds_a_private_read(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from . import _v\n\ndef f(opt):\n    _v.x()\n    return opt._hyper\n")
    assert _private_reads(probe) == [(5, "_hyper")]
    assert fastopt.Adam._SEAMS is Optimizer._SEAMS
