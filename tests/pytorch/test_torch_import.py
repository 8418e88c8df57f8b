"""torch stays optional: importing fastopt never imports torch, and fastopt.torch without torch
raises ImportError saying how to install it."""
import subprocess
import sys

import pytest

pytest.importorskip("torch")


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_importing_fastopt_does_not_import_torch():
    result = _run("import sys, fastopt, fastopt.reference, fastopt.lab, fastopt.testing, "
                  "fastopt.schedules; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_fastopt_torch_without_torch_says_pip_install_torch():
    # sys.modules["torch"] = None makes "import torch" fail as if torch were not installed.
    result = _run("import sys; sys.modules['torch'] = None\n"
                  "import fastopt\n"
                  "try:\n"
                  "    import fastopt.torch\n"
                  "except ImportError as e:\n"
                  "    print('ImportError:', e)\n")
    assert result.returncode == 0, result.stderr
    assert "ImportError:" in result.stdout and "pip install torch" in result.stdout


def test_readme_section_example_runs():
    # The README shows it in a plain fence: its ```python blocks also run where torch is not
    # installed (the installed wheel's test run), so this one is run here, beside torch.
    import pathlib
    import re

    import torch
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## PyTorch: `fastopt.torch`"):text.index("## Install")]
    code = re.search(r"```\n(.*?)```", section, re.S).group(1)
    model = torch.nn.Linear(3, 2)
    namespace = {"model": model}
    exec(compile(code, "README.md", "exec"), namespace)
    opt = namespace["opt"]
    assert type(opt).__name__ == "AdamW" and isinstance(opt, torch.optim.Optimizer)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()


@pytest.mark.parametrize("name", ["fastopt.torch", "fastopt.torch._optimizers",
                                  "fastopt.torch._base", "fastopt.torch._buffers"])
def test_docstring_examples(name):
    import doctest
    import importlib
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
