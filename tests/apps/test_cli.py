"""Every command line reports a bad argument through argparse (usage, ``error: argument ...``,
exit status 2) before doing anything, never with a traceback; names are taken in any letter
case; ``bench`` gives each column one unit."""
import importlib.util
import os
import subprocess
import sys

import pytest

from fastopt._apps import bench as _bench, cli as _cli
from fastopt.__main__ import build_parser, main

HAVE_MPI = importlib.util.find_spec("mpi4py") is not None


def run(module, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "FASTOPT_NUM_THREADS": "1"})


@pytest.mark.parametrize("argv, message", [
    # The two of the issue: a traceback from pack() ("params is empty") and from NumPy
    # ("Maximum allowed dimension exceeded").
    (["train", "--layers", "784"], "argument --layers: needs at least 2 values"),
    (["bench", "--sizes", "1e20"], "argument --sizes: must be at most"),
])
def test_the_reported_arguments_end_in_a_usage_message_not_a_traceback(argv, message):
    r = run("fastopt", *argv)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("usage: python -m fastopt")
    assert message in r.stderr
    assert r.stdout == ""


MEMORY = _cli.physical_memory()
BAD = [
    # a count beyond any array NumPy takes (OverflowError inside MiniBatches or NumPy)
    (["train", "--batch-size", "1e20"], "argument --batch-size: must be at most 9,223,372,036,"
                                        "854,775,807 (the largest array size NumPy takes)"),
    (["train", "--test-size", "1e20"], "argument --test-size: must be at most"),
    (["surfaces", "--samples", "1e20"], "argument --samples: must be at most"),
    # thread counts (an OverflowError from the kernels' C int; 100000 crashed OpenMP)
    (["bench", "--threads", "1e20"], "argument --threads: must be at most"),
    (["bench", "--threads", "100000"], "cores this process may use"),
    (["train", "--threads", "100000"], "argument --threads: must be at most"),
    # sizes whose arrays cannot fit in memory (MemoryError, or NumPy's dimension error)
    (["bench", "--sizes", "1e12"], "argument --sizes: must be at most"),
    (["surfaces", "--steps", "1e10"], "argument --steps: must be at most"),
    (["surfaces", "--max-dim", "100000"], "argument --max-dim: must be at most"),
    # the layer list: one size has no output layer
    (["train", "--layers", "784"], "argument --layers: needs at least 2 values (the input size "
                                   "first and the classes last), got 1: 784"),
    # names that are no names, in any case
    (["bench", "--optimizers", "lion"], "invalid choice: 'lion'"),
    (["train", "--optimizer", "LION"], "invalid choice: 'LION'"),
    (["--only", "Lion"], "invalid choice: 'Lion'"),
]
if MEMORY is not None:
    BAD.append((["train", "--train-size", "1e12"],
                "argument --train-size/--test-size: 1,000,000,010,000 examples of 784 features "
                "need about"))


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_are_refused_by_argparse(argv, message):
    # In a subprocess with a timeout: before these checks, some of them ran for hours
    # (--samples 1e20), and --threads 100000 crashed the interpreter.
    r = run("fastopt", *argv, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "usage: python -m fastopt" in r.stderr and message in r.stderr, r.stderr
    assert r.stdout == ""


def test_train_sizes_are_checked_with_the_layers_given(capsys):
    # 1e12 examples of 784 features do not fit; the bound follows --layers.
    if MEMORY is None:
        pytest.skip("the platform does not say how much memory it has")
    features = 4
    fits = MEMORY // (features * 12) // 2
    args = build_parser().parse_args(["train", "--layers", str(features), "3",
                                      "--train-size", str(fits)])
    args.check_arguments(args)  # no SystemExit
    with pytest.raises(SystemExit):
        args = build_parser().parse_args(["train", "--layers", "40000", "3",
                                          "--train-size", str(fits)])
        args.check_arguments(args)


def test_names_are_taken_in_any_letter_case():
    parse = build_parser().parse_args
    assert parse(["bench", "--optimizers", "adam", "sgd", "RMSPROP", "Momentum"]).optimizers \
        == ["Adam", "SGD", "RMSProp", "Momentum"]
    assert parse(["train", "--optimizer", "AdamW"]).optimizer == "adamw"
    assert parse(["train", "--optimizer", "ADAM"]).optimizer == "adam"
    assert parse(["--only", "ADAM", "Gd+Update_LR"]).only == ["adam", "gd+update_lr"]
    assert parse(["surfaces", "--functions", "Saddle"]).functions == ["saddle"]


@pytest.mark.skipif(not HAVE_MPI, reason="mpi4py (the [mpi] extra) is not installed")
def test_the_distributed_command_line_refuses_and_takes_names_alike():
    for argv, message in [
            (["train", "--lr", "nan"], "argument --lr: must be finite and > 0"),
            (["train", "--lr", "-1"], "argument --lr: must be finite and > 0"),
            (["train", "--max-grad-norm", "-1"], "argument --max-grad-norm: must be finite"),
            (["train", "--seed", "-1"], "argument --seed: must be >= 0"),
            (["train", "--batch-size", "1e20"], "argument --batch-size: must be at most"),
            (["bench", "--sizes", "1e20"], "argument --sizes: must be at most"),
            (["bench", "--threads", "1e20"], "argument --threads: must be at most")]:
        r = run("fastopt.distributed", *argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (argv, r.stderr)
        assert message in r.stderr, (argv, r.stderr)
    code = ("from fastopt.distributed.__main__ import build_parser as b; "
            "print(b().parse_args(['bench', '--optimizer', 'ADAM']).optimizer, "
            "b().parse_args(['train', '--optimizer', 'AdamW']).optimizer)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.split() == ["adam", "adamw"], r.stderr


def test_bench_gives_every_time_in_one_unit(monkeypatch, capsys):
    # The times of the table: 8488.6 us and 41.63 ms in one column.
    times = iter([41.63e-3, 8.4886e-3, 2.0e-6, 1.5e-6])  # reference, fastopt, per size
    monkeypatch.setattr(_bench, "best_time", lambda fn, *a, **k: next(times))
    monkeypatch.setattr(_bench, "have_torch", lambda: False)
    _bench.run(["SGD"], [1000, 10], [1], "float32", sys.stdout)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("SGD")]
    assert [(r[3], r[4]) for r in rows] == [("8488.6", "us"), ("1.5", "us")]
    assert [(r[6], r[7]) for r in rows] == [("41630.0", "us"), ("2.0", "us")]


def test_running_out_of_memory_anyway_is_a_message(monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.28 GiB")
    monkeypatch.setattr(_bench, "run", out_of_memory)
    assert main(["bench", "--sizes", "10"]) == 1
    assert "out of memory (Unable to allocate 7.28 GiB); try smaller sizes" in \
        capsys.readouterr().err
