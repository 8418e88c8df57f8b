"""One API, two implementations: every public function and class of ``fastopt`` and
``fastopt.reference`` (and of ``fastopt.lab`` and ``fastopt.reference.lab``) is what
``fastopt._backend.bind`` makes of one catalogue over that implementation's ``ops``, so that a
function, a docstring or an option cannot exist on one side only."""
import ast
import inspect
import pickle

import numpy as np
import pytest

import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab
from fastopt import _backend

PAIRS = [  # (compiled module, reference module, catalogue)
    (fastopt, fastopt.reference, _backend.API),
    (fastopt.lab, fastopt.reference.lab, _backend.LAB),
]
OPS = {fastopt: fastopt._ops, fastopt.lab: fastopt._ops,
       fastopt.reference: fastopt.reference._ops, fastopt.reference.lab: fastopt.reference._ops}

# fastopt's public names that fastopt.reference does not have: none of them depends on the
# implementation. A new name that does belongs in fastopt._backend.API, not here.
FASTOPT_ONLY = {"schedules", "set_num_threads", "get_num_threads", "num_threads", "Optimizer",
                "NonFiniteGradientError", "NonFiniteNormError", "pack", "pack_like",
                "PackedArrays", "show_config"}


IDS = ["fastopt", "lab"]


@pytest.mark.parametrize("fast, ref, catalogue", PAIRS, ids=IDS)
def test_both_implementations_publish_the_same_names_signatures_and_docs(fast, ref, catalogue):
    assert set(ref.__all__) == {entry.__name__ for entry in catalogue}
    assert set(fast.__all__) - set(ref.__all__) == (FASTOPT_ONLY if fast is fastopt else set())
    assert set(ref.__all__) <= set(fast.__all__)
    for name in ref.__all__:
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.__name__ == b.__name__ == name
        assert a.__doc__ and a.__doc__ == b.__doc__, name
        assert inspect.signature(a) == inspect.signature(b), name
        if isinstance(a, type):
            assert [m for m in dir(a) if not m.startswith("__")] == [
                m for m in dir(b) if not m.startswith("__")], name


@pytest.mark.parametrize("module", [fastopt, fastopt.reference, fastopt.lab,
                                    fastopt.reference.lab], ids=lambda m: m.__name__)
def test_every_public_name_is_the_bindings(module):
    catalogue = _backend.LAB if module.__name__.endswith("lab") else _backend.API
    bound = _backend.bind(OPS[module], module.__name__, catalogue)
    for name, obj in bound.items():
        assert getattr(module, name) is obj, name
    for name in set(module.__all__) - set(bound):
        obj = getattr(module, name)
        # Not bound, so it must not depend on the implementation.
        # (Optimizer is the optimizers' base, for isinstance: it has no rule of its own.)
        assert not (isinstance(obj, type) and hasattr(obj, "_ops")) or obj is fastopt.Optimizer, \
            name
        assert not (inspect.isfunction(obj) and _backend._takes_ops(obj)), name


@pytest.mark.parametrize("module", [fastopt, fastopt.reference, fastopt.lab,
                                    fastopt.reference.lab], ids=lambda m: m.__name__)
def test_the_public_modules_define_nothing_of_their_own(module):
    # Only imports and names taken from the binding: a function or class written in one of
    # them would exist for one implementation only.
    tree = ast.parse(inspect.getsource(module))
    defined = [node.name for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert defined == []


@pytest.mark.parametrize("fast, ref, catalogue", PAIRS, ids=IDS)
def test_functions_are_the_one_function_with_ops_bound(fast, ref, catalogue):
    functions = [entry for entry in catalogue
                 if inspect.isfunction(entry) and _backend._takes_ops(entry)]
    assert functions
    for entry in functions:
        for module in (fast, ref):
            bound = getattr(module, entry.__name__)
            assert inspect.isfunction(bound)
            assert bound.__wrapped__ is entry
            assert (bound.__module__, bound.__qualname__) == (module.__name__, entry.__name__)
            assert bound.__doc__ is entry.__doc__
            # The signature without ops; the one written function's own code, compiled again
            # with ops as its only closure variable (no second call): its file and lines.
            parameters = list(inspect.signature(entry).parameters.values())
            assert list(inspect.signature(bound).parameters.values()) == parameters[1:]
            assert [c.cell_contents for c in bound.__closure__] == [OPS[module]]
            assert bound.__code__.co_filename == entry.__code__.co_filename
            assert bound.__code__.co_firstlineno == entry.__code__.co_firstlineno
            assert bound.__code__.co_freevars == ("ops",)
            assert pickle.loads(pickle.dumps(bound)) is bound
            # help() shows the signature without ops and the text.
            assert f"{entry.__name__}{inspect.signature(bound)}" in _pydoc(bound)


def _pydoc(obj):
    import pydoc
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


@pytest.mark.parametrize("fast, ref, catalogue", PAIRS, ids=IDS)
def test_classes_differ_only_in_their_ops(fast, ref, catalogue):
    classes = [entry for entry in catalogue if isinstance(entry, type) and hasattr(entry, "_ops")]
    assert classes or catalogue is _backend.LAB
    for entry in classes:
        a, b = getattr(fast, entry.__name__), getattr(ref, entry.__name__)
        assert a is entry and a._ops is fastopt._ops   # written over the compiled ops
        assert b.__bases__ == (a,) and b._ops is fastopt.reference._ops
        assert set(vars(b)) - {"_assignable_names"} == {"__doc__", "_ops", "__module__"}
        assert (b.__module__, b.__qualname__) == ("fastopt.reference", entry.__name__)


def test_only_the_compiled_ops_have_adam_checked():
    assert fastopt._ops.dispatch is fastopt._dispatch
    assert fastopt.reference._ops.dispatch is None


def test_the_binding_passes_every_kind_of_parameter_on():
    def f(ops, a, b=2, *rest, c, d=4, **kw):
        """f's text."""
        return ops, a, b, rest, c, d, kw

    g = _backend._bound_function(f, "OPS", "some.module")
    assert str(inspect.signature(g)) == "(a, b=2, *rest, c, d=4, **kw)"
    assert g(1, c=3) == ("OPS", 1, 2, (), 3, 4, {})
    assert g(1, 5, 6, 7, c=3, d=8, e=9) == ("OPS", 1, 5, (6, 7), 3, 8, {"e": 9})
    assert (g.__name__, g.__qualname__, g.__module__, g.__doc__) == (
        "f", "f", "some.module", "f's text.")
    with pytest.raises(TypeError, match=r"f\(\) missing 1 required keyword-only argument: 'c'"):
        g(1)

    def h(ops, a, *, c=1):
        return ops, a, c

    assert str(inspect.signature(_backend._bound_function(h, 0, "m"))) == "(a, *, c=1)"
    assert _backend._bound_function(h, 0, "m")(5, c=2) == (0, 5, 2)


def test_a_bad_call_is_worded_like_a_plain_functions():
    with pytest.raises(TypeError, match=r"^adam_update\(\) missing 1 required positional "
                                        r"argument: 'lr'$"):
        fastopt.adam_update(None, None, None, None, 1)
    with pytest.raises(TypeError, match=r"^sgd_update\(\) got an unexpected keyword argument "
                                        r"'momentum'$"):
        fastopt.reference.sgd_update(None, None, 0.1, momentum=0.9)


def test_a_function_that_assigns_to_ops_is_called_through_a_wrapper():
    def f(ops, a, master=None):
        ops = ops if master is None else ("master", ops)
        return ops, a

    g = _backend._bound_function(f, "OPS", "some.module")
    assert g(1) == ("OPS", 1) and g(1, master=2) == (("master", "OPS"), 1)
    assert [c.cell_contents for c in g.__closure__] == [f, "OPS"]


def test_a_bound_function_fails_in_the_written_source():
    import traceback
    try:
        fastopt.reference.adam_update(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0, 0.1)
    except ValueError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
    assert any(f.filename == _backend.__file__ and f.name == "adam_update" for f in frames)


def test_a_source_edited_since_import_is_not_bound(tmp_path, monkeypatch):
    """The binding compiles a function's source again: a file changed since the import (or a
    .pyc whose source changed) must not put other code behind the name; the imported function
    is then called through a wrapper."""
    import importlib
    import os
    import sys
    path = tmp_path / "edited_since_import.py"
    path.write_text("def f(ops, a, b=1):\n    return 'imported', ops, a, b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_since_import")
    try:
        path.write_text("def f(ops, a, b=1):\n    return 'edited on disk', ops, a, b\n")
        os.utime(path, (1, 1))  # a new mtime whatever the file system's resolution
        g = _backend._bound_function(module.f, "OPS", "m")
        assert g(2) == ("imported", "OPS", 2, 1)
    finally:
        sys.modules.pop("edited_since_import", None)


def test_a_function_that_names_itself_is_called_through_a_wrapper():
    g = _backend._bound_function(_countdown, "OPS", "m")
    assert g(3) == "OPS"
    assert [c.cell_contents for c in g.__closure__] == [_countdown, "OPS"]


def _countdown(ops, n):
    return ops if n == 0 else _countdown(ops, n - 1)


def test_the_reference_mixed_step_checks_lengths_before_writing():
    import fastopt.reference._ops as ref
    master = np.ones(4, np.float32)
    step = ref.kernel_table()["sgd", "bfloat16"]
    with pytest.raises(ValueError, match="param_bits has 3 items; expected 4"):
        step(master, np.zeros(4, np.uint16), None, 0.1, 0.0, 0.0, 0.0, False, False, False,
             1.0, np.zeros(3, np.uint16))
    np.testing.assert_array_equal(master, np.ones(4, np.float32))
