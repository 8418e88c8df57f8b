"""The applications around fastopt.torch: ``python -m fastopt train --compare torch``'s row
"torch + fastopt.torch", ``python -m fastopt bench --torch`` and ``bench --json``.

Small sizes only; nothing here is timed (the timer is replaced where only the plumbing is
under test). Until fastopt.torch is in the build, the tests that need it are skipped and the
plumbing is run with torch.optim's class standing in for it (``stand_in``)."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from fastopt._apps import bench as _bench, train as _train
from fastopt.__main__ import main

torch = pytest.importorskip("torch")

HAVE_FASTOPT_TORCH = importlib.util.find_spec("fastopt.torch") is not None
needs_fastopt_torch = pytest.mark.skipif(not HAVE_FASTOPT_TORCH,
                                         reason="fastopt.torch is not in this build")
TINY = ["--layers", "20", "16", "12", "5", "--train-size", "700", "--test-size", "150",
        "--quiet"]


@pytest.fixture
def stand_in(monkeypatch):
    """torch.optim's classes in fastopt.torch's place (same constructor signatures), so that
    the row and the table are exercised before fastopt.torch exists."""
    monkeypatch.setattr(_bench, "fastopt_torch_class", lambda name: getattr(torch.optim, name))
    monkeypatch.setattr(_bench, "have_fastopt_torch", lambda: True)
    monkeypatch.setattr(_train, "have_fastopt_torch", lambda: True)
    monkeypatch.setattr(_train.FastoptTorchLoop, "make_optimizer",
                        lambda self, name, params, kwargs, flags:
                        getattr(torch.optim, name)(params, **kwargs))


@pytest.fixture
def fast_timer(monkeypatch):
    """Every entry timed by three calls (the plumbing, not the speed, is under test)."""
    def timer(fns, min_time=0.05, repeat=5):
        out = {}
        for key, fn in fns.items():
            for _ in range(3):
                fn()
            out[key] = {"fastopt.torch": 1e-4, "torch fastest": 2e-4}.get(key, 3e-4)
        return out
    monkeypatch.setattr(_bench, "interleaved_best", timer)


# -- train --compare torch --------------------------------------------------------------------

def check_train_rows(out):
    assert "torch + fastopt.torch epoch 2/2" in out
    assert "  speed-up over torch + fastopt.torch" in out
    assert "torch + fastopt.torch: its optimizer step" in out
    assert "torch: torch.nn, torch.optim.Adam(fused=True)" in out


def test_train_compare_torch_adds_the_row_with_a_stand_in(stand_in, capsys):
    assert main(["train", "--epochs", "2", "--compare", "torch", *TINY]) == 0
    out = capsys.readouterr().out
    check_train_rows(out)
    assert "torch + fastopt.torch: torch.nn, fastopt.torch.Adam" in out


@needs_fastopt_torch
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop", "adagrad"])
def test_train_compare_torch_with_fastopt_torch(optimizer, capsys):
    assert main(["train", "--epochs", "1", "--compare", "torch", "--optimizer", optimizer,
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert "torch + fastopt.torch epoch 1/1" in out
    assert "torch + fastopt.torch: its optimizer step" in out


@needs_fastopt_torch
def test_fastopt_torch_row_steps_like_fastopt_on_the_same_gradients():
    """The row's optimizer is fastopt's arithmetic: fed torch.nn's gradient of one batch, its
    step writes what fastopt.Adam writes on the same (packed-equal) values."""
    import fastopt
    params0 = _train._mlp.init_params([6, 4, 3], seed=0)
    X = np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32)
    y = np.arange(64) % 3
    loop = _train.FastoptTorchLoop(params0, (X, y, X, y), fastopt.Adam,
                                   dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8), 64, 0)
    loop.opt.zero_grad(set_to_none=False)
    logits = loop.model(torch.from_numpy(np.ascontiguousarray(X.T)))
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
    before = [p.detach().numpy().copy() for p in loop.model.parameters()]
    grads = [p.grad.numpy().copy() for p in loop.model.parameters()]
    loop.opt.step()
    ref = fastopt.reference.Adam(before, lr=1e-3)
    ref.step(grads)
    for p, want in zip(loop.model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), want)


def test_train_without_fastopt_torch_leaves_the_row_out(monkeypatch, capsys):
    monkeypatch.setattr(_train, "have_fastopt_torch", lambda: False)
    assert main(["train", "--epochs", "1", "--compare", "torch", *TINY]) == 0
    captured = capsys.readouterr()
    assert "torch + fastopt.torch" not in captured.out
    assert "the row 'torch + fastopt.torch' is left out" in captured.err


# -- bench --torch and --json -----------------------------------------------------------------

def test_workloads_are_the_issues():
    assert _bench.TORCH_WORKLOADS["mlp"] == [(256, 784), (256,), (256, 256), (256,), (10, 256),
                                             (10,)]
    mixed = _bench.TORCH_WORKLOADS["mixed"]
    assert len(mixed) == 100
    assert abs(sum(int(np.prod(s)) for s in mixed) - 1_000_000) < 5_000


def test_bench_torch_json(stand_in, fast_timer, tmp_path, capsys):
    path = tmp_path / "torch.json"
    assert main(["bench", "--torch", "--sizes", "1000", "--threads", "1", "--quick",
                 "--optimizers", "adam", "RMSPROP", "--workloads", "one", "mlp",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    rows = [line for line in lines if line and line[0] in ("Adam", "RMSprop")]
    assert [(r[0], r[1]) for r in rows] == [("Adam", "1x1e+03"), ("Adam", "mlp"),
                                            ("RMSprop", "1x1e+03"), ("RMSprop", "mlp")]
    assert ("geometric mean over 4 rows: torch fastest / fastopt.torch 2.00x, torch default / "
            "fastopt.torch 3.00x") in out
    result = json.loads(path.read_text())
    assert result["command"] == "bench --torch"
    assert result["geometric_mean"]["torch fastest / fastopt.torch"] == pytest.approx(2.0)
    assert [r["optimizer"] for r in result["rows"]] == ["Adam", "Adam", "RMSprop", "RMSprop"]
    assert result["rows"][1]["items"] == 269_322 and result["rows"][1]["tensors"] == 6
    assert result["rows"][2]["torch_fastest_flags"] == {"foreach": True}
    assert result["machine"]["torch"] == torch.__version__


def test_bench_torch_refuses_fastopts_own_forms(stand_in, capsys):
    assert main(["bench", "--torch", "--optimizers", "momentum"]) == 2
    assert "Momentum is fastopt's own form" in capsys.readouterr().err
    assert main(["bench", "--optimizers", "adagrad"]) == 2
    assert "Adagrad is timed by bench --torch only" in capsys.readouterr().err
    assert main(["bench", "--workloads", "mlp"]) == 2
    assert "--workloads applies to --torch only" in capsys.readouterr().err


def test_bench_json_refuses_an_unwritable_file_before_timing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(_bench, "run", lambda *a, **k: pytest.fail("timed anyway"))
    assert main(["bench", "--json", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    assert "cannot write it (No such file or directory)" in capsys.readouterr().err


def test_bench_json_and_geometric_mean(monkeypatch, tmp_path, capsys):
    times = iter([4e-3, 1e-3, 2e-3])  # reference, fastopt, torch
    monkeypatch.setattr(_bench, "best_time", lambda fn, *a, **k: next(times))
    path = tmp_path / "bench.json"
    assert main(["bench", "--optimizers", "sgd", "--sizes", "100", "--threads", "1",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "geometric mean over 1 rows: reference / fastopt 4.00x, torch / fastopt 2.00x" in out
    result = json.loads(path.read_text())
    assert result["command"] == "bench" and result["rows"][0]["n"] == 100
    assert result["geometric_mean"]["torch / fastopt"] == pytest.approx(2.0)


@needs_fastopt_torch
@pytest.mark.parametrize("name", list(_bench.TORCH_CASES))
def test_bench_torch_steps_fastopt_torch(name):
    """The benchmark's step is a real fastopt.torch step in steady state: it changes the
    parameters, and the step count moved through load_state_dict is the one stepped from."""
    step = _bench.torch_optim_step("fastopt.torch", name, "mlp", np.float32)
    opt = step.__self__
    params = [p for group in opt.param_groups for p in group["params"]]
    before = [p.detach().numpy().copy() for p in params]
    step()
    assert any(not np.array_equal(p.detach().numpy(), b) for p, b in zip(params, before))
    steps = [float(opt.state[p]["step"]) for p in params if "step" in opt.state[p]]
    if name == "SGD":
        assert steps == []  # torch's SGD keeps no step count, nor does fastopt.torch's
    else:
        assert len(steps) == len(params)
        assert all(s == _bench.STEADY_STATE_STEP + 1 for s in steps)


# -- benchmarks/tools/torch_ulp_distance.py ---------------------------------------------------------

def load_benchmark_tool(name):
    """The script ``benchmarks/tools/<name>.py`` as a module (its ``main`` is not run)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "tools" / f"{name}.py"
    if not path.exists():
        pytest.skip("benchmarks/ is not beside tests/ (tests of an installed wheel)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_fastopt_torch
@pytest.mark.parametrize("case", range(16), ids=lambda i: f"case{i}")
def test_ulp_distance_script_measures_fastopt_torch_equal_to_the_reference(case):
    """docs/torch.md's table: fastopt.torch writes the reference's bits at every checkpoint,
    and every tensor of torch's state is compared (a few steps, float32)."""
    ulp = load_benchmark_tool("torch_ulp_distance")
    name, options, _ = ulp.CASES[case]
    result, same = ulp.measure(name, options, np.dtype(np.float32), [1, 3], "default")
    assert same is True
    group = getattr(torch.optim, name)([torch.zeros(1)], **options).param_groups[0]
    expected = {"param"} | {n for n in ulp.STATE_NAMES[name]
                            if (n != "max_exp_avg_sq" or group.get("amsgrad"))
                            and (n != "grad_avg" or group.get("centered"))
                            and (n != "momentum_buffer" or group.get("momentum"))}
    assert set(result) == expected
    assert all(set(per_step) == {1, 3} for per_step in result.values())
