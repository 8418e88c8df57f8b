"""``python -m fastopt train``: the MLP, its data, the course-style loop it is compared with
(bit for bit), and the command line. Small layers and data sets keep the file to a few seconds."""
import builtins
import importlib.util

import numpy as np
import pytest

import fastopt
from fastopt._apps import course as _course, datasets as _datasets, mlp as _mlp
from fastopt._apps import loops as _loops, registry as _registry
from fastopt.__main__ import main

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

TINY = ["--layers", "20", "16", "12", "5", "--train-size", "700", "--test-size", "150",
        "--quiet"]  # 700 = 10 batches of 64 + one of 60: the short last batch is exercised
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


def tiny_data(seed=0, n_train=700, n_test=150):
    return _datasets.synthetic(seed, n_train, n_test, n_features=20, n_classes=5)


def hide_module(monkeypatch, name):
    """Make ``import name`` (and its submodules) fail, as if it were not installed."""
    real_import = builtins.__import__

    def fake_import(module, *args, **kwargs):
        if module == name or module.startswith(name + "."):
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# --- registry ---------------------------------------------------------------------------------

def test_registry_has_every_exported_optimizer():
    found = _registry.optimizers()
    exported = {n for n in fastopt.__all__ if isinstance(getattr(fastopt, n), type)
                and issubclass(getattr(fastopt, n), fastopt.Optimizer)
                and getattr(fastopt, n) is not fastopt.Optimizer}
    assert {cls.__name__ for cls in found.values()} == exported
    assert {"sgd", "momentum", "rmsprop", "adam"} <= set(found)


def test_registry_picks_up_a_new_optimizer(monkeypatch):
    class Newcomer(fastopt.Adam):
        pass

    monkeypatch.setattr(fastopt, "Newcomer", Newcomer, raising=False)
    monkeypatch.setattr(fastopt, "__all__", fastopt.__all__ + ["Newcomer"])
    assert _registry.optimizers()["newcomer"] is Newcomer
    assert _registry.default_lr(Newcomer) == 0.001


# --- data and network -------------------------------------------------------------------------

def test_synthetic_data_is_deterministic_and_shaped():
    a, b = tiny_data(3), tiny_data(3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    X, y, X_test, y_test = a
    assert X.shape == (20, 700) and X.dtype == np.float32 and X.flags.c_contiguous
    assert X_test.shape == (20, 150) and y.dtype == np.int64 and y_test.shape == (150,)
    assert set(np.unique(y)) == set(range(5))  # every class occurs
    assert not np.array_equal(tiny_data(4)[0], X)


def test_forward_backward_matches_the_course_functions_bit_for_bit():
    X, y, _, _ = tiny_data()
    params = _mlp.init_params([20, 16, 12, 5], seed=0)
    net = _mlp.Network(params)
    for bk in (64, 60, 1):  # a full batch, the last short one, a single example
        xb, yb = np.ascontiguousarray(X[:, :bk]), y[:bk]
        loss_sum, correct = net.forward_backward(xb, yb)
        Y = _course.one_hot(yb, 5)
        # The same layout on both sides (docs/contract.md §1): BLAS may round a product of the
        # strided view X[:, :bk] differently from this contiguous copy (it does on AVX-512).
        AL, caches = _course.forward_propagation(xb.copy(), params)
        grads = _course.backward_propagation(AL, Y, caches)
        assert loss_sum == _course.compute_cost(AL, Y)
        assert correct == int(np.count_nonzero(np.argmax(AL, axis=0) == yb))
        for k in params:
            np.testing.assert_array_equal(net.grads[k], grads["d" + k], err_msg=f"{k} bk={bk}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_products_do_not_depend_on_where_the_operands_start(dtype):
    """The one assumption behind the loops' bit-for-bit comparisons (docs/contract.md §1): the
    same np.dot on operands of the same shape, strides and values gives the same bits wherever
    in memory they start (fastopt's parameters are views into one packed buffer, the course's
    are arrays of their own). Strides are another matter: this test never compares a strided
    operand with a contiguous one, which do differ on AVX-512 CPUs. If this fails on a CPU, the
    training-loop comparisons below are not sound there and the contract must say so."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal((16, 20)).astype(dtype)   # a layer's weights
    X = rng.standard_normal((20, 64)).astype(dtype)   # a contiguous batch
    dZ = rng.standard_normal((16, 64)).astype(dtype)  # the layer's output gradient
    products = {"W @ X": lambda w, x, dz: np.dot(w, x),
                "dZ @ X.T": lambda w, x, dz: np.dot(dz, x.T),
                "W.T @ dZ": lambda w, x, dz: np.dot(w.T, dz)}
    want = {name: f(W, X, dZ) for name, f in products.items()}
    for offset in range(1, 17):  # every start modulo 64 bytes, an item at a time
        moved = []
        for a in (W, X, dZ):
            b = np.empty(a.size + 16, dtype)[offset:offset + a.size].reshape(a.shape)
            b[...] = a
            moved.append(b)
        for name, f in products.items():
            np.testing.assert_array_equal(f(*moved), want[name], err_msg=f"{name} at +{offset}")


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    params = {k: v.astype(np.float64) for k, v in _mlp.init_params([4, 6, 3], 1).items()}
    params["b1"] += 0.1  # no ReLU exactly at 0
    X = rng.standard_normal((4, 8))
    y = rng.integers(0, 3, 8)
    AL, caches = _course.forward_propagation(X, params)
    grads = _course.backward_propagation(AL, _course.one_hot(y, 3).astype(np.float64), caches)

    def loss(p):
        return _course.compute_cost(_course.forward_propagation(X, p)[0],
                                    _course.one_hot(y, 3).astype(np.float64)) / 8

    for k in ("W1", "b2"):
        for idx in [(0, 0), (1, 0), (2, 0)]:
            up, down = {**params}, {**params}
            up[k], down[k] = params[k].copy(), params[k].copy()
            up[k][idx] += 1e-6
            down[k][idx] -= 1e-6
            numeric = (loss(up) - loss(down)) / 2e-6
            assert abs(numeric - grads["d" + k][idx]) < 1e-6


def test_course_batches_are_the_assignments():
    # The course loop's random_mini_batches is the assignment's function, its permutation
    # drawn from a generator instead of the reseeded global one: given NumPy's global
    # generator reseeded as the assignment reseeds it, the same strided views of the same
    # shuffled copy.
    import assignment
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((4, 75)), (rng.random((1, 75)) > 0.5).astype(float)
    want = assignment.random_mini_batches(X, Y, 16, seed=12)
    np.random.seed(12)
    got = _course.random_mini_batches(X, Y, 16, np.random)
    assert len(got) == len(want) == 5
    for (gx, gy), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)
        assert gx.strides == wx.strides and gy.shape == wy.shape


def test_both_loops_draw_the_same_batches():
    X, y, _, _ = tiny_data()
    loader = fastopt.MiniBatches(X, y, batch_size=64, seed=_loops.batch_rng(7), axis=1)
    rng = _loops.batch_rng(7)
    Y = _course.one_hot(y, 5)
    for epoch in range(3):
        course = _course.random_mini_batches(X, Y, 64, rng)
        ours = [(xb.copy(), yb.copy()) for xb, yb in loader]
        assert len(course) == len(ours) == 11
        for (cx, cy), (fx, fy) in zip(course, ours):
            np.testing.assert_array_equal(cx, fx)
            np.testing.assert_array_equal(np.argmax(cy, axis=0), fy)


# --- the two loops, bit for bit ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(_registry.optimizers()))
def test_fastopt_and_course_loops_are_bit_identical(name, capsys):
    cls = _registry.optimizers()[name]
    data = tiny_data()
    params0 = _mlp.init_params([20, 16, 12, 5], seed=0)
    fast_loop = _loops.FastoptLoop(params0, data, cls, _registry.default_lr(cls), 64, 0)
    fast = fast_loop.run(2, None, None)
    course_loop = _loops.CourseLoop(params0, data, cls, fast_loop.opt.hyperparameters, 64, 0)
    course = course_loop.run(2, None, None)
    for k in params0:
        np.testing.assert_array_equal(fast.params[k], course.params[k], err_msg=k)
    assert not np.array_equal(fast.params["W1"], params0["W1"])  # it did train
    np.testing.assert_array_equal(fast.batch_losses, course.batch_losses)
    assert [e["test_acc"] for e in fast.epochs] == [e["test_acc"] for e in course.epochs]


def test_optimizer_without_course_form_is_compared_with_the_reference(monkeypatch, capsys):
    monkeypatch.delitem(_course.COURSE_FORMS, fastopt.Momentum)
    assert main(["train", "--optimizer", "momentum", "--epochs", "2", "--compare", *TINY]) == 0
    out = capsys.readouterr().out
    assert "fastopt.reference.Momentum (no course form" in out
    assert "bit-identical to the course loop" in out


def test_a_mismatch_is_reported_and_fails(monkeypatch, capsys):
    real = _course.update_parameters_with_adam

    def off_by_one_ulp(parameters, grads, state, t, *args):
        real(parameters, grads, state, t, *args)
        if t == 3:
            parameters["b1"] = np.nextafter(parameters["b1"], np.float32(np.inf))

    monkeypatch.setitem(_course.COURSE_FORMS, fastopt.Adam,
                        (_course.COURSE_FORMS[fastopt.Adam][0], off_by_one_ulp,
                         ("beta1", "beta2", "eps")))
    assert main(["train", "--epochs", "1", "--compare", *TINY]) == 1
    out = capsys.readouterr().out
    assert "final parameters: NOT bit-identical to the course loop: " in out and "b1 (" in out


# --- the command line -------------------------------------------------------------------------

def test_cli_prints_a_line_per_epoch_and_a_summary(capsys):
    assert main(["train", "--epochs", "3", "--optimizer", "sgd", "--lr", "0.1",
                 *TINY[:-1]]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("fastopt train: layers 20-16-12-5 (605 float32 parameters), "
                               "SGD lr 0.1")
    epochs = [line for line in lines if line.startswith("fastopt  epoch")]
    assert [line.split()[2] for line in epochs] == ["1/3", "2/3", "3/3"]
    for line in epochs:
        assert "loss" in line and "train acc" in line and "test acc" in line
        assert line.endswith(" s")
    assert lines[-1].startswith("done: 3 epochs in")
    assert "fastopt: epoch 1/3 (11 batches)" in err  # progress on stderr


def test_cli_compare_table(capsys):
    assert main(["train", "--epochs", "2", "--compare", *TINY]) == 0
    out = capsys.readouterr().out
    assert "course   epoch 2/2" in out
    header = next(line for line in out.splitlines() if line.startswith("s per epoch"))
    for phase in ("batches", "forward+backward", "optimizer step", "total"):
        assert phase in header
    speedup = next(line for line in out.splitlines() if "speed-up over course" in line)
    assert len([c for c in speedup.split() if c.endswith("x")]) == 4
    assert "course: the course's update_parameters_with_adam" in out
    assert "fastopt: MiniBatches, packed Adam.step" in out
    assert "final parameters: bit-identical to the course loop (605 float32 values in 6 arrays" \
        in out


def test_cli_learns_on_the_synthetic_data(capsys):
    # A bigger slice of the real problem: accuracy must rise well above chance (1 in 10).
    assert main(["train", "--layers", "784", "64", "10", "--train-size", "6000", "--test-size",
                 "1000", "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    last = [line for line in out.splitlines() if line.startswith("fastopt  epoch 2/2")][0]
    assert float(last.split("test acc")[1].split()[0]) > 0.4


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_cli_plot_writes_png(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--plot", str(tmp_path / "fig"), *TINY]) == 0
    png = tmp_path / "fig" / "train.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out


def test_cli_plot_without_matplotlib_fails_before_training(monkeypatch, capsys, tmp_path):
    hide_module(monkeypatch, "matplotlib")
    with pytest.raises(SystemExit, match="pip install 'fastopt\\[plot\\]'"):
        main(["train", "--plot", str(tmp_path), *TINY])
    assert "epoch" not in capsys.readouterr().out


def test_cli_digits_without_sklearn_says_how_to_install(monkeypatch, capsys):
    hide_module(monkeypatch, "sklearn")
    assert main(["train", "--data", "digits", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--data digits needs scikit-learn" in err and "pip install scikit-learn" in err


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn not installed")
def test_cli_digits(capsys):
    assert main(["train", "--data", "digits", "--epochs", "3", "--compare", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "layers 64-256-256-10" in out and "digits data (1,438 train / 359 test" in out
    assert "bit-identical to the course loop" in out
    assert main(["train", "--data", "digits", "--layers", "784", "10", "--quiet"]) == 2
    assert "use --layers 64 10" in capsys.readouterr().err


def test_cli_torch_missing_says_so(monkeypatch, capsys):
    hide_module(monkeypatch, "torch")
    assert main(["train", "--compare", "torch", *TINY]) == 2
    assert "--compare torch needs torch" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_cli_compare_torch(capsys):
    assert main(["train", "--epochs", "2", "--compare", "torch", *TINY]) == 0
    out = capsys.readouterr().out
    assert "torch    epoch 2/2" in out
    assert "torch: torch.nn, torch.optim.Adam(fused=True)" in out
    assert "speed-up over torch" in out
    assert "torch: not bit-identical, and not meant to be" in out
    assert "bit-identical to the course loop" in out


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "must be finite and > 0"),
    (["--batch-size", "0"], "must be at least 1"),
    (["--optimizer", "lion"], "invalid choice"),
    (["--seed", "-1"], "must be >= 0"),
])
def test_cli_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_one_class(capsys):
    assert main(["train", "--layers", "20", "1", *TINY[5:]]) == 2
    assert "at least 2 classes" in capsys.readouterr().err


def test_threads_are_restored(capsys):
    before = fastopt.get_num_threads()
    assert main(["train", "--epochs", "1", "--threads", "1", *TINY]) == 0
    assert fastopt.get_num_threads() == before


def test_blas_threads_without_threadpoolctl_sets_and_restores(monkeypatch):
    from fastopt._apps import blas as _blas
    hide_module(monkeypatch, "threadpoolctl")
    functions = _blas._openblas_functions()
    if functions is None:
        pytest.skip("no OpenBLAS found in this process")
    get, _ = functions
    before = get()
    with _blas.blas_threads(1) as done:
        assert done and get() == 1
    assert get() == before


# --- --dtype (issue 24) -----------------------------------------------------------------------

HALF_KINDS = ["bfloat16", "float16"]


def half_loop(loop_cls, kind, cls=fastopt.Adam, lr=1e-3, epochs=2):
    data = tiny_data()
    params0 = _loops.rounded(_mlp.init_params([20, 16, 12, 5], seed=0), kind)
    loop = loop_cls(params0, data, cls, lr, 64, 0, kind)
    return loop, loop.run(epochs, None, None), params0


@pytest.mark.parametrize("kind", HALF_KINDS)
def test_master_run_is_the_reference_bits(kind):
    # fastopt's compiled master step and fastopt.reference's, on the same 16-bit gradients:
    # the same 16-bit weights, bit for bit, after 2 epochs of 11 batches.
    fast, run, params0 = half_loop(_loops.MasterLoop, kind)
    ref, ref_run, _ = half_loop(_loops.MasterLoop, kind, cls=fastopt.reference.Adam)
    for k in params0:
        assert fast.params16[k].dtype == _loops.half_dtype(kind)
        np.testing.assert_array_equal(fastopt._half.bits(fast.params16[k]),
                                      fastopt._half.bits(ref.params16[k]), err_msg=k)
        np.testing.assert_array_equal(run.params[k].view(np.uint32),
                                      ref_run.params[k].view(np.uint32), err_msg=k)
    np.testing.assert_array_equal(run.batch_losses, ref_run.batch_losses)
    assert not np.array_equal(run.params["W1"], params0["W1"])  # it did train


# Pure float16 Adam: squared gradients below 2**-24 are 0 in the float16 second moment, the
# update m / (sqrt(0) + eps) is huge, and some example's probability underflows (log(0)).
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("kind", HALF_KINDS)
def test_pure_run_keeps_weights_and_state_in_16_bits(kind):
    loop, run, params0 = half_loop(_loops.PureLoop, kind)
    assert set(loop.state16) == set(loop.opt.state_names) == {"m", "v"}
    for s, arrays in loop.state16.items():
        for k, v in arrays.items():
            assert v.dtype == np.uint16
            # The float32 state the step left behind rounds to the stored 16 bits.
            np.testing.assert_array_equal(fastopt._half.narrow(loop.opt.state(s)[k], kind), v)
    for k, p in loop.params16.items():  # the run's final weights are the 16-bit ones widened
        np.testing.assert_array_equal(
            fastopt._half.widen(fastopt._half.bits(p), kind).reshape(p.shape), run.params[k])
    assert not np.array_equal(run.params["W1"], params0["W1"])


def test_pure_run_loses_updates_below_the_16_bit_spacing_and_the_master_does_not():
    # lr 1e-6: Adam's update (~1e-6) is far below half the bfloat16 spacing of weights ~0.1,
    # so pure bfloat16 never moves W1; the master weights do, and so, eventually, would the
    # 16-bit copies.
    pure, _, params0 = half_loop(_loops.PureLoop, "bfloat16", lr=1e-6, epochs=1)
    master, _, _ = half_loop(_loops.MasterLoop, "bfloat16", lr=1e-6, epochs=1)
    big = np.abs(params0["W1"]) > 0.1
    assert big.sum() > 50
    np.testing.assert_array_equal(pure.parameters()["W1"][big], params0["W1"][big])
    assert (master.opt.master["W1"][big] != params0["W1"][big]).all()


def test_half_dtype_without_ml_dtypes_is_uint16_bits(monkeypatch):
    pytest.importorskip("ml_dtypes")
    assert _loops.half_dtype("bfloat16").name == "bfloat16"
    assert _loops.half_dtype("float16") == np.float16
    hide_module(monkeypatch, "ml_dtypes")
    assert _loops.half_dtype("bfloat16") == np.uint16
    loop, run, _ = half_loop(_loops.MasterLoop, "bfloat16", epochs=1)
    assert loop.params16["W1"].dtype == np.uint16 and np.isfinite(run.params["W1"]).all()


def test_pure_step_is_close_to_torch_fused_adam_on_bfloat16():
    # torch's fused CPU Adam on bfloat16 parameters keeps no master either: the same weights
    # move, and nearly all end on the same bfloat16 value (loops.pure_step's docstring has
    # the counts: 34 of 200,704 differ, by 1 ulp but one by 3). No bit claim: torch forms
    # its float32 update its own way.
    torch = pytest.importorskip("torch")
    half = fastopt._half
    rng = np.random.default_rng(0)
    w0 = half.narrow((rng.standard_normal((256, 784)) * 0.05).astype(np.float32), "bfloat16")
    grads = [half.narrow((rng.standard_normal(w0.shape) * 1e-3).astype(np.float32), "bfloat16")
             for _ in range(10)]
    tw = torch.from_numpy(w0.view(np.int16).copy()).view(torch.bfloat16).requires_grad_()
    topt = torch.optim.Adam([tw], lr=1e-4, fused=True)
    params32, grads32 = {"w": half.widen(w0, "bfloat16")}, {"w": np.zeros(w0.shape, np.float32)}
    opt = fastopt.Adam(params32, lr=1e-4)
    state16, params16 = _loops.pure_state(opt, "bfloat16"), {"w": w0.copy()}
    for g in grads:
        tw.grad = torch.from_numpy(g.view(np.int16).copy()).view(torch.bfloat16)
        topt.step()
        _loops.pure_step(opt, state16, params16, {"w": g}, params32, grads32, "bfloat16")
    theirs = tw.detach().view(torch.int16).numpy().view(np.uint16)
    ours = params16["w"]
    ulps = np.abs(theirs.astype(np.int32) - ours.astype(np.int32))
    assert np.count_nonzero(ulps) <= w0.size // 1000 and ulps.max() <= 4
    moved_theirs, moved_ours = theirs != w0, ours != w0
    assert 0.2 < moved_ours.mean() < 0.8  # many updates lost, many not
    assert np.count_nonzero(moved_theirs != moved_ours) <= w0.size // 1000


@pytest.mark.parametrize("kind", HALF_KINDS)
def test_cli_dtype_16_bit_prints_the_three_runs(kind, tmp_path, capsys):
    argv = ["train", "--dtype", kind, "--epochs", "2", *TINY]
    if HAVE_MPL:
        argv += ["--plot", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"fastopt train: layers 20-16-12-5 (605 parameters; three runs: "
                               f"float32, {kind} with fastopt's float32 master weights, pure "
                               f"{kind}), Adam lr 0.0001")
    for name in ("float32", "master", "pure"):
        assert [line.split()[2] for line in lines if line.startswith(f"{name:<8} epoch")] == \
            ["1/2", "2/2"]
    i = next(i for i, line in enumerate(lines) if line.startswith("run "))
    assert lines[i].split() == ["run", "weights", "optimizer", "state", "final", "loss", "test",
                                "acc", "time"]
    rows = [line.split() for line in lines[i + 1:i + 4]]
    assert [r[0] for r in rows] == ["float32", "master", "pure"]
    assert lines[i + 3].split()[1:3] == [kind, kind]  # pure: 16-bit weights and state
    for r in rows:
        float(r[-4]), float(r[-3])  # final loss, test accuracy
        assert r[-1] == "s"
    if HAVE_MPL:
        png = tmp_path / "train.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {png}" in out


@pytest.mark.parametrize("argv, message", [
    (["--dtype", "bfloat16", "--compare"], "--dtype bfloat16 trains three runs of its own"),
    (["--dtype", "float16", "--compare", "torch"], "--compare takes --dtype float32 or float64"),
    (["--dtype", "bfloat16", "--distributed"], "--distributed takes --dtype float32 or float64"),
])
def test_cli_dtype_16_bit_refuses_compare_and_distributed(argv, message, capsys):
    assert main(["train", *argv, *TINY]) == 2
    out, err = capsys.readouterr()
    assert message in err and out == ""


def test_cli_dtype_rejects_other_names(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dtype", "int8", *TINY])
    assert exc.value.code == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_cli_dtype_float64_trains_in_float64_bit_identical_to_the_course(capsys):
    assert main(["train", "--dtype", "float64", "--epochs", "2", "--compare", *TINY]) == 0
    out = capsys.readouterr().out
    assert "(605 float64 parameters)" in out
    assert "final parameters: bit-identical to the course loop (605 float64 values in 6 " \
        "arrays" in out
