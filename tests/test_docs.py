"""The documentation runs: every README code block and every docstring example."""
import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = ["fastopt", "fastopt.reference", "fastopt.lab", "fastopt.reference.lab",
           "fastopt.testing", "fastopt.schedules", "fastopt._smoothing", "fastopt._lab",
           "fastopt._experiment", "fastopt._scalars",
           "fastopt._minibatch", "fastopt._optim", "fastopt._packing", "fastopt._threads",
           "fastopt._clip", "fastopt._checkpoint",
           "fastopt._config"]


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert first_block.splitlines()[0].startswith("pip install . && python -m fastopt")
    assert first_block.splitlines()[1].startswith('pip install -e ".[test]" && pytest')


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files (a checkpoint)
    text = (ROOT / "README.md").read_text()
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, "README.md", "exec"), namespace)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
