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
