"""The assignment's experiment (docs/contract.md §6) and the ``python -m fastopt`` command line."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import assignment
import fastopt.lab
import fastopt.reference.lab
from fastopt.testing import assert_ulp_equal

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

LABS = {"fastopt": fastopt.lab, "reference": fastopt.reference.lab}
RUNS = [
    ("gd", dict(learning_rate=0.0007)),
    ("momentum", dict(beta=0.9, learning_rate=0.0007)),
    ("adam", dict(learning_rate=0.0007)),
    ("rmsprop", dict(beta=0.9, learning_rate=0.0007)),
    ("gd", dict(learning_rate=0.1, decay="update_lr")),
    ("gd", dict(learning_rate=0.1, decay="schedule_lr_decay")),
    ("momentum", dict(learning_rate=0.1, decay="schedule_lr_decay")),
    ("adam", dict(learning_rate=0.01, decay="schedule_lr_decay", decay_rate=0.5)),
]
EPOCHS = 1001  # crosses epoch 1000: prints twice, records 11 costs


def test_dataset_check_values():
    X, Y = fastopt.lab.load_dataset()
    assert X.shape == (2, 300) and Y.shape == (1, 300)
    np.testing.assert_allclose(X[:, :3], [[-0.21687013, 0.80505015, 0.71127451],
                                          [1.01544937, -0.5579734, -0.41006024]], rtol=0,
                               atol=5e-9)
    assert Y[0, :10].tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 0, 1]
    assert Y.sum() == 150
    X2, Y2 = fastopt.reference.lab.load_dataset()
    assert_ulp_equal(X, X2)


def test_dataset_matches_the_spec_recipe():
    rs = np.random.RandomState(3)
    t = np.linspace(0, np.pi, 150)
    X = np.vstack([np.append(np.cos(t), 1 - np.cos(t)),
                   np.append(np.sin(t), 1 - np.sin(t) - 0.5)]).T
    y = np.hstack([np.zeros(150, dtype=int), np.ones(150, dtype=int)])
    idx = np.arange(300)
    rs.shuffle(idx)
    X, y = X[idx], y[idx]
    X += rs.normal(scale=0.2, size=(300, 2))
    got_X, got_Y = fastopt.lab.load_dataset()
    assert_ulp_equal(got_X, X.T)
    assert got_Y.tolist() == [y.tolist()]


def test_initialize_parameters_he():
    params = fastopt.lab.initialize_parameters([2, 5, 2, 1])
    np.random.seed(3)
    for l, (n, n_prev) in enumerate([(5, 2), (2, 5), (1, 2)], 1):
        assert_ulp_equal(params[f"W{l}"], np.random.randn(n, n_prev) * np.sqrt(2 / n_prev))
        assert params[f"b{l}"].shape == (n, 1) and not params[f"b{l}"].any()


@pytest.mark.parametrize("optimizer,kwargs", RUNS,
                         ids=[f"{o}-{k.get('decay', 'const')}" for o, k in RUNS])
def test_model_fastopt_reference_and_assignment_agree(optimizer, kwargs, capsys):
    X, Y = fastopt.lab.load_dataset()
    outputs, printed = {}, {}
    for name, lab in LABS.items():
        kw = dict(kwargs)
        if "decay" in kw:
            kw["decay"] = getattr(lab, kw["decay"])
        outputs[name] = lab.model(X, Y, [2, 5, 2, 1], optimizer, num_epochs=EPOCHS,
                                  return_costs=True, **kw)
        printed[name] = capsys.readouterr().out
    kw = dict(kwargs)
    if "decay" in kw:
        kw["decay"] = getattr(assignment, kw["decay"])
    outputs["assignment"] = assignment.model(X, Y, [2, 5, 2, 1], optimizer, num_epochs=EPOCHS,
                                             net=fastopt.lab, **kw)
    printed["assignment"] = capsys.readouterr().out
    assert printed["fastopt"] == printed["reference"] == printed["assignment"]
    lines = printed["fastopt"].splitlines()
    assert lines[0].startswith("Cost after epoch 0: ")
    assert any(line.startswith("Cost after epoch 1000: ") for line in lines)
    assert ("learning rate after epoch 1000: " in printed["fastopt"]) == ("decay" in kwargs)
    want_params, want_costs = outputs["assignment"]
    for name in LABS:
        params, costs = outputs[name]
        assert len(costs) == 11
        np.testing.assert_array_equal(costs, want_costs)
        for k in want_params:
            assert_ulp_equal(params[k], want_params[k], err_msg=f"{name} {k}")


def test_model_returns_parameters_and_validates(capsys):
    X, Y = fastopt.lab.load_dataset()
    params = fastopt.lab.model(X, Y, [2, 5, 2, 1], "adam", num_epochs=3, print_cost=False)
    assert sorted(params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="^optimizer must be one of 'gd', 'momentum', 'adam', "
                                         "'rmsprop', got 'sgd'"):
        fastopt.lab.model(X, Y, [2, 5, 2, 1], "sgd", num_epochs=1)
    with pytest.raises(TypeError, match="^decay must be None or a function"):
        fastopt.lab.model(X, Y, [2, 5, 2, 1], "gd", num_epochs=1, decay=0.5)


def test_predict_prints_the_accuracy_and_returns_the_predictions(capsys):
    # Like the course's predict (tests/course/test_course_users.py compares with its loop); it
    # returned the accuracy before, which this test checked in the printed line.
    X, Y = fastopt.lab.load_dataset()
    params = fastopt.lab.initialize_parameters([2, 5, 2, 1])
    p = fastopt.lab.predict(X, Y, params)
    a3, _ = fastopt.lab.forward_propagation(X, params)
    acc = np.mean((a3 > 0.5).astype(int) == Y)
    np.testing.assert_array_equal(p, (a3 > 0.5).astype(int))
    assert capsys.readouterr().out == f"Accuracy: {acc}\n"


def test_compute_cost_is_the_summed_cross_entropy():
    a3 = np.array([[0.8, 0.9, 0.4]])
    Y = np.array([[1, 1, 0]])
    want = -(np.log(0.8) + np.log(0.9) + np.log(0.6))
    np.testing.assert_allclose(fastopt.lab.compute_cost(a3, Y), want, rtol=1e-15)


# --- the command line, in a real subprocess ---------------------------------------------------

def run_cli(*args, env=None, code=None):
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "fastopt"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_default_table_both_backends():
    r = run_cli("--epochs", "1001", "--only", "gd", "adam+schedule_lr_decay")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "cost@0" in lines[1] and "cost@1000" in lines[1] and "bit-identical" in lines[1]
    assert lines[2].split()[0] == "gd" and lines[2].split()[-1] == "yes"
    assert lines[3].split()[0] == "adam+schedule_lr_decay" and lines[3].split()[-1] == "yes"
    assert lines[4].startswith("total: fastopt")
    assert "done in" in r.stderr  # progress goes to stderr, the table to stdout


@pytest.mark.parametrize("backend", ["fastopt", "reference"])
def test_cli_single_backend(backend):
    r = run_cli("--epochs", "50", "--only", "momentum", "--backend", backend, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"{backend} s" in r.stdout and "bit-identical" not in r.stdout
    assert r.stderr == ""


def test_cli_help_and_errors():
    r = run_cli("--help")
    assert r.returncode == 0
    for option in ("--epochs", "--only", "--backend", "--plot", "bench"):
        assert option in r.stdout
    r = run_cli("--only", "sgd")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("--epochs", "0")
    assert r.returncode == 2 and "must be at least 1" in r.stderr


def test_cli_bench():
    r = run_cli("bench", "--sizes", "1e3", "2000", "--optimizers", "Adam", "SGD", "--threads",
                "1", "2", "--quick")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(("Adam", "SGD"))]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (name, n, t) for name in ("Adam", "SGD") for n in ("1e+03", "2e+03") for t in "12"]
    assert all(row[4] == "us" and float(row[5]) > 0 for row in rows)  # time, then GB/s
    has_torch = importlib.util.find_spec("torch") is not None
    assert ("torch is not installed" in r.stdout) != has_torch


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib (the [plot] extra) is not installed")
def test_cli_plot(tmp_path):
    r = run_cli("--epochs", "200", "--only", "gd", "adam", "--backend", "fastopt", "--quiet",
                "--plot", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in ("costs.png", "boundaries.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_cli_plot_without_matplotlib_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv[0] = 'fastopt'; "
            "from fastopt.__main__ import main; sys.exit(main(sys.argv[1:]))")
    r = run_cli("--epochs", "5", "--plot", str(tmp_path), code=code)
    assert r.returncode == 1
    assert "pip install 'fastopt[plot]'" in r.stderr
    assert "Cost" not in r.stdout and "run" not in r.stdout  # it stopped before training
