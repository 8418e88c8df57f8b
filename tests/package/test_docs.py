"""The documentation runs: every README code block and every docstring example."""
import doctest
import importlib
import pathlib
import re
import shlex
import subprocess

import pytest

try:
    import tomllib  # Python 3.11+
except ImportError:
    tomllib = None

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = ["fastopt", "fastopt.reference", "fastopt.lab", "fastopt.reference.lab",
           "fastopt.testing", "fastopt.testing._ulp", "fastopt.testing._cases",
           "fastopt.testing._conform", "fastopt.testing._conform_adapters", "fastopt.schedules", "fastopt._smoothing", "fastopt._lab",
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
        if is_mpi_example(block):
            continue  # the data-parallel example, whatever its fence: see is_mpi_example
        exec(compile(block, "README.md", "exec"), namespace)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# --- every README code block ------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def readme_blocks():
    """``(language, text, line)`` of every fenced block of the README."""
    text = (ROOT / "README.md").read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def is_mpi_example(text):
    # The README's data-parallel example ("Data-parallel training over MPI", a ```py block):
    # it runs under mpiexec, so its test belongs with the MPI tests (tests/distributed/test_distributed.py,
    # tests/distributed/mpi/), not in this process.
    return "from fastopt.distributed import" in text


def test_readme_blocks_are_all_of_a_kind_this_file_checks():
    kinds = {"python": "exec'd", "py": "the MPI example", "bash": "shell commands",
             "": "a transcript or an output"}
    blocks = readme_blocks()
    assert len(blocks) >= 10
    for language, text, line in blocks:
        assert language in kinds, f"README.md line {line}: a ```{language} block no test runs"
        if language == "py":
            assert is_mpi_example(text), f"README.md line {line}: a ```py block that is not " \
                                         f"the MPI example; use ```python so that it runs"


def shell_commands(text):
    """Each simple command of a shell block, as argv lists (comments dropped, split at && and
    ;), with any ``$ `` prompt removed."""
    commands = []
    for line in text.splitlines():
        line = line[2:] if line.startswith("$ ") else line
        words = shlex.split(line, comments=True)
        command = []
        for word in words + ["&&"]:
            if word in ("&&", ";", "||"):
                if command:
                    commands.append(command)
                command = []
            else:
                command.append(word)
    return commands


def fastopt_argv(command):
    """The arguments after ``python -m fastopt`` (under ``mpiexec -n N`` or not), or None."""
    for i in range(len(command) - 2):
        if command[i:i + 3] == ["python", "-m", "fastopt"]:
            return command[i + 3:]
    return None


def test_readme_shell_blocks_are_valid_commands():
    from fastopt.__main__ import build_parser
    pyproject = ROOT / "pyproject.toml"  # absent beside an installed wheel's tests
    extras = set(tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]) \
        if tomllib and pyproject.exists() else None
    checked = 0
    for language, text, line in readme_blocks():
        if language == "bash":
            r = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
            assert r.returncode == 0, f"README.md line {line}: {r.stderr}"
        elif language != "" or not text.startswith("$ "):
            continue  # python blocks are exec'd above; output blocks hold no command
        for command in shell_commands(text if language == "bash" else
                                      "\n".join(l for l in text.splitlines()
                                                if l.startswith("$ "))):
            argv = fastopt_argv(command)
            if argv is not None:
                # Parsed, not run (the main job takes minutes): a renamed option or a value
                # out of range fails here.
                try:
                    args = build_parser().parse_args(argv)
                except SystemExit:
                    pytest.fail(f"README.md line {line}: python -m fastopt {' '.join(argv)} "
                                f"does not parse")
                check = getattr(args, "check_arguments", None)
                if check is not None:
                    check(args)
                checked += 1
            if command[:2] == ["pip", "install"] and extras is not None:
                for target in command[2:]:
                    named = re.search(r"\[([\w,]+)\]$", target)
                    if named:
                        assert set(named.group(1).split(",")) <= extras, \
                            f"README.md line {line}: {target} names an extra pyproject.toml " \
                            f"does not define"
    assert checked >= 2


def test_readme_python_blocks_are_all_run_but_the_mpi_example():
    # test_readme_python_blocks_run executes every ```python block except the MPI example;
    # a ```py block (which it would not see) may only be that example.
    blocks = readme_blocks()
    assert sum(language == "python" and not is_mpi_example(text)
               for language, text, _ in blocks) >= 6
    assert sum(is_mpi_example(text) for _, text, _ in blocks) == 1


# --- docstrings and the contract say the same thing ------------------------------------------

# Each update function's expression with the contract's parentheses, and its section.
EXPRESSIONS = {
    "sgd_update": ("§2", ["p = p - lr*g"]),
    "momentum_update": ("§2", ["velocity = beta*velocity + (1-beta)*g", "p = p - lr*velocity"]),
    "rmsprop_update": ("§2", ["sq_avg = beta*sq_avg + (1-beta)*(g*g)",
                              "p = p - (lr*g) / (sqrt(sq_avg) + eps)"]),
    "adam_update": ("§2", ["m = beta1*m + (1-beta1)*g", "m_hat = m / bias1",
                           "v = beta2*v + (1-beta2)*(g*g)", "v_hat = v / bias2",
                           "p = p - (lr*m_hat) / (sqrt(v_hat) + eps)"]),
    "adagrad_update": ("§7", ["clr = lr / (1 + (t-1)*lr_decay)", "sum_sq = sum_sq + g*g",
                              "p = p - (clr*g) / (sqrt(sum_sq) + eps)"]),
}


def _squeeze(text):
    return re.sub(r"\s+", "", text)


def contract_text():
    """docs/contract.md; the tests that read it are skipped where only tests/ and README.md
    were copied (an installed wheel's test run, .ci/run and cibuildwheel's test-sources)."""
    path = ROOT / "docs" / "contract.md"
    if not path.exists():
        pytest.skip("docs/contract.md is not beside tests/ (tests of an installed wheel)")
    return path.read_text()


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_update_docstrings_give_the_contract_expression_and_section(name):
    import fastopt
    import fastopt.reference
    section, expressions = EXPRESSIONS[name]
    contract = _squeeze(contract_text())
    for module in (fastopt, fastopt.reference):
        doc = getattr(module, name).__doc__
        assert f"docs/contract.md {section}" in doc, (module.__name__, name)
        for expression in expressions:
            assert _squeeze(expression) in _squeeze(doc), (module.__name__, name, expression)
            assert _squeeze(expression) in contract, (name, expression)


def test_the_contract_opening_agrees_with_section_10():
    text = contract_text()
    opening = text[:text.index("## 1.")]
    section_10 = text[text.index("## 10."):]
    # §10 and the README say the avx2 kernels divide by Adam's corrections with the FMA
    # sequence; the opening once said the kernels do not take it.
    assert "On the `avx2` variant" in section_10 and "(proved, not used)" in section_10
    assert re.search(r"Section 10 proves the shortcut that the `avx2`\s+kernels take", opening)
    assert re.search(r"a second one that they do not\s+take \(a double reciprocal, §10\.6", opening)


def test_the_contract_gives_float32_adamws_decay_factor_as_measured():
    # docs/contract.md §7: lr*wd = 1e-5 rounds to 1 - 1.00136e-5 in float32 (0.14 % more decay),
    # and 1000 steps end a median of 164 ULP from float64 (151 with zero gradients).
    import numpy as np

    import fastopt
    from fastopt.testing import ulp_distance
    contract = _squeeze(contract_text())
    lr, wd = 1e-3, 1e-2
    factor = float(np.float32(1 - lr * wd))
    assert f"{1 - factor:.6g}" == "1.00136e-05" and round((1 - factor) / (lr * wd) - 1, 4) == 0.0014
    assert _squeeze("`1 - 1.00136e-5`: every step decays 0.14 % more than asked") in contract
    medians = []
    for scale in (1.0, 0.0):  # as benchmarks/adamw_decay.py measures it
        rng = np.random.default_rng(1)
        p32 = rng.standard_normal(100_000).astype(np.float32)
        p64 = p32.astype(np.float64)
        o32 = fastopt.AdamW([p32], lr=lr, weight_decay=wd)
        o64 = fastopt.AdamW([p64], lr=lr, weight_decay=wd)
        # One thread: the bits do not depend on the count (§1), and on a busy machine two
        # threads waiting for each other made this test 15x slower.
        with fastopt.num_threads(1):
            for _ in range(1000):
                g = (rng.standard_normal(100_000) * scale).astype(np.float32)
                o32.step([g])
                o64.step([g.astype(np.float64)])
        medians.append(float(np.median(np.asarray(ulp_distance(p32, p64.astype(np.float32)),
                                                  dtype=np.float64))))
    assert medians == [164.0, 151.0]
    assert _squeeze("a median of 164 ULP (10th-90th percentile 104-225)") in contract
    assert _squeeze("151 ULP with zero gradients") in contract


def test_readme_figures_name_their_machine_and_the_main_jobs_time_is_a_range():
    text = (ROOT / "README.md").read_text()
    flat = " ".join(text.split())
    # `python -m fastopt` took 75-107 s on two idle 2-core machines, where the README said 30 s.
    assert "about 30 s" not in flat
    assert re.search(r"\(1-2 minutes: 75-107 s measured on two idle 2-core machines; on the "
                     r"2-core AMD EPYC of \[Measured\]\(#measured\)", flat)
    # Every block of measured output, and every table of times, says on which machine, and
    # that the figures depend on it.
    for language, block, line in readme_blocks():
        if language == "" and re.search(r"\d+\.\d+ s\b", block):
            before = " ".join(text[:text.index(block)].split()[-120:])
            assert "AMD EPYC" in before, f"README.md line {line}: figures without a machine"
            assert "depend on" in before, f"README.md line {line}: say they depend on it"
    assert "On a 2-core AMD EPYC (Zen 4)" in flat  # the Measured section


# --- the README's module map is the tree -------------------------------------------------------

def _module_map():
    """Every path the README's "Where things are" table names, shorthand resolved: a bare file
    name (``_threads.py``) is in the folder of the last full path (``fastopt/...``) before it
    in the same row."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Where things are"):]
    section = section[:section.index("\n## ", 4)]
    named = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split(" | ")[0]
        folder = ""
        for token in re.findall(r"`([^`]+)`", first_cell):
            if "/" in token:
                folder = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
                named.add(token)
            else:
                named.add(folder + token)
    return named


def test_the_readme_module_map_names_every_file_of_the_package():
    package = ROOT / "fastopt"
    if not (package / "_kernels.pyx").exists():
        pytest.skip("the sources are not beside tests/ (tests of an installed wheel)")
    named = _module_map()
    files = {str(p.relative_to(ROOT)) for p in package.rglob("*")
             if p.is_file() and p.suffix in (".py", ".pyx", ".pyi", ".typed", ".pxi")
             and "__pycache__" not in p.parts}
    folders = {n for n in named if n.endswith("/")}
    covered = {f for f in files if f in named or any(f.startswith(d) for d in folders)}
    assert sorted(files - covered) == [], "README 'Where things are' does not name these"
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert missing == [], "README 'Where things are' names paths that do not exist"
