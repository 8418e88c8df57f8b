"""The package's import graph: no cycle, no module run twice, every module importable alone.

A cycle makes the order of imports matter and let ``python -m fastopt.distributed`` run the
module body twice (two ``DistributedOptimizer`` classes in one process); these tests keep the
graph a tree of layers.
"""
import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastopt

PACKAGE = pathlib.Path(fastopt.__file__).parent
SOURCES = pathlib.Path(__file__).resolve().parents[2] / "fastopt"


def _modules(root):
    """Dotted name -> path of every module of the package under ``root``: the Python ones and
    the compiled kernels (their .pyx; what they import is checked apart, below)."""
    found = {}
    for path in sorted([*root.rglob("*.py"), *root.glob("*.pyx")]):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name, path):
    """``(module, names)`` of every import in ``name``, at the top or inside a function:
    ``import a.b`` gives ``("a.b", ())``, ``from a import b, c`` gives ``("a", ("b", "c"))``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.append((module, tuple(alias.name for alias in node.names)))
    return out


def _graph(modules):
    """Module -> the fastopt modules it imports. ``from a import b`` depends on the module
    ``a.b`` when there is one (``a`` is then its package, already being imported), on ``a``
    itself when ``b`` is a name defined there (``from fastopt import __version__`` runs
    fastopt/__init__.py)."""
    def deepest(dotted):
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted

    graph = {}
    for name, path in modules.items():
        targets = set()
        for module, names in ([] if path.suffix == ".pyx" else _imports(name, path)):
            if not (module == "fastopt" or module.startswith("fastopt.")):
                continue
            if not names:
                targets.add(deepest(module))
            for n in names:
                sub = f"{module}.{n}"
                targets.add(sub if sub in modules else deepest(module))
        targets.discard(name)
        targets.discard("")
        graph[name] = targets
    return graph


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.skipif(not SOURCES.is_dir(), reason="the sources are not beside tests/ "
                    "(tests of an installed wheel)")
def test_no_import_cycle_among_the_modules():
    graph = _graph(_modules(SOURCES))
    assert _cycles(graph) == []


# The applications: the command lines and demos. They import the library; nothing else imports
# them (the testing package's two command-line modules are registered by fastopt/__main__.py).
APPLICATIONS = ("fastopt.__main__", "fastopt._apps", "fastopt.distributed.__main__",
                "fastopt.testing._vectors", "fastopt.testing._conform_cli")


def _is_application(name):
    return any(name == a or name.startswith(a + ".") for a in APPLICATIONS)


@pytest.mark.skipif(not SOURCES.is_dir(), reason="the sources are not beside tests/")
def test_the_library_never_imports_the_applications():
    graph = _graph(_modules(SOURCES))
    library = {m for m in graph if not _is_application(m)}
    assert {m: sorted(t for t in graph[m] if _is_application(t)) for m in library
            if any(_is_application(t) for t in graph[m])} == {}
    # Every module is one or the other, and the applications are the ones listed.
    assert any(_is_application(m) for m in graph) and library


@pytest.mark.skipif(not SOURCES.is_dir(), reason="the sources are not beside tests/")
def test_the_compiled_kernels_import_no_fastopt_module():
    # The kernels are the bottom layer: fastopt/_validation.py and fastopt/_ops.py use them,
    # never the reverse (a refused gather returns False and _ops words the error).
    sources = [SOURCES / "_kernels.pyx", *sorted((SOURCES / "_pxi").glob("*.pxi"))]
    pattern = re.compile(r"^\s*(from\s+(fastopt|\.)\S*\s+(c?import)|(c?import)\s+fastopt)", re.M)
    for path in sources:
        assert not pattern.search(path.read_text()), path


_DUPLICATES = """
import atexit, os, sys
def _check():
    # Two module objects from one file: a body that ran twice (os.path and posixpath are one
    # object under two names, which is fine).
    seen = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        # fastopt's modules and what python -m runs (torch registers submodules of its one
        # extension module under several names: not a body run twice).
        ours = name == "__main__" or name == "fastopt" or name.startswith("fastopt.")
        if path and ours:
            seen.setdefault(os.path.realpath(path), {})[id(module)] = name
    twice = {p: sorted(ids.values()) for p, ids in seen.items() if len(ids) > 1}
    if twice:
        sys.stderr.write("RUN TWICE: %r\\n" % (twice,))
        sys.stderr.flush()
        os._exit(3)
atexit.register(_check)
"""


@pytest.fixture(scope="module")
def duplicate_check(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sitecustomize")
    (folder / "sitecustomize.py").write_text(_DUPLICATES)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder)] + [p for p in sys.path if p])
    return env


def _module_names():
    return sorted(_modules(PACKAGE))


@pytest.mark.parametrize("name", _module_names())
def test_every_module_imports_alone_and_once(name, duplicate_check):
    if "distributed" in name:
        pytest.importorskip("mpi4py")
    if name == "fastopt.torch" or name.startswith("fastopt.torch."):
        pytest.importorskip("torch")  # optional: fastopt.torch says so without it (tested there)
    if name.endswith("__main__"):
        # An entry point: what `python -m` runs. Its body is run below, with --help.
        pytest.skip("an entry point")
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not built here (an opt-in SIMD variant)")
    result = subprocess.run([sys.executable, "-c", f"import {name}"], env=duplicate_check,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("entry", ["fastopt", "fastopt.distributed"])
def test_each_entry_point_runs_its_modules_once(entry, duplicate_check):
    # `python -m fastopt.distributed` used to run distributed.py as __main__ and then import it
    # again as fastopt.distributed: two copies of every class in one process.
    if entry == "fastopt.distributed":
        pytest.importorskip("mpi4py")
    result = subprocess.run([sys.executable, "-m", entry, "--help"], env=duplicate_check,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout
