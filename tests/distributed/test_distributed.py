"""Data parallelism (docs/contract.md §9).

The MPI tests start real processes: ``mpiexec -n 1``, ``-n 2`` and ``-n 3`` (an uneven split of
the buffer and of the batches, and more ranks than this machine's 2 cores) on the scripts in
``tests/distributed/mpi/``, which abort the job on the first failed check, and on ``python -m fastopt train
--distributed --check``. They are skipped, with the
reason, when mpi4py or mpiexec is missing (``pip install ".[mpi]"`` brings both). The
mini-batch split and the optional import run everywhere.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastopt
import fastopt.reference

# Markers (pyproject.toml): bits: compares bits (.ci/run selects by them).
pytestmark = pytest.mark.bits

SCRIPTS = Path(__file__).parent / "mpi"
TIMEOUT = 120  # seconds per mpiexec run; each takes 1-5 s here


def _mpiexec():
    """The mpiexec next to this Python (the mpich wheel's, in the virtual environment) first,
    then the one on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    return shutil.which("mpiexec")


MPIEXEC = _mpiexec()
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIEXEC),
    reason="needs mpi4py and mpiexec: pip install \".[mpi]\" (mpi4py + the mpich wheel)")


def run_mpi(n, *args, cwd=SCRIPTS):
    """Run ``mpiexec -n n python *args``; return rank 0's output, failing on any error."""
    env = dict(os.environ, FASTOPT_NUM_THREADS="1")  # n ranks share 2 cores
    proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("script", ["parity", "nonfinite"])
def test_same_bits_as_one_process(script, n):
    out = run_mpi(n, f"{script}.py")
    assert f"OK {script} world={n}" in out


@needs_mpi
@pytest.mark.parametrize("n", [1, 3])
def test_arguments(n):
    assert f"OK arguments world={n}" in run_mpi(n, "arguments.py")


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_mismatched_parameters_raise_on_every_rank(n):
    assert f"OK mismatch world={n}" in run_mpi(n, "mismatch.py")


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_rank_decides_together_whether_a_step_proceeds(n):
    # A gradient refused on one rank raises on every rank (no rank left in Alltoallv, no step
    # paired with another's next one); hyperparameters or t assigned on one rank only raise on
    # every rank naming the ranks and the field. A hang is aborted by common.py's watchdog.
    assert f"OK agreement world={n}" in run_mpi(n, "agreement.py")


@needs_mpi
def test_checkpoint_moves_between_world_sizes(tmp_path):
    run_mpi(2, "checkpoint.py", "save", str(tmp_path))
    ckpt = tmp_path / "ckpt.npz"
    # The file is the one a single process writes after the same steps on the same sums.
    with np.load(ckpt) as a, np.load(tmp_path / "single.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert a[key].tobytes() == b[key].tobytes(), key
    # A plain single-process fastopt.Adam loads it (world 1, no MPI at all).
    sys.path.insert(0, str(SCRIPTS))
    try:
        from shapes import SHAPES as shapes
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(5)
    params = fastopt.pack({k: rng.standard_normal(s) for k, s in shapes.items()})
    opt = fastopt.Adam(params, amsgrad=True)
    opt.load(ckpt)
    assert opt.t == 3 and opt.max_grad_norm == 2.0
    for n in (3, 1):
        assert f"OK checkpoint-load world={n}" in run_mpi(n, "checkpoint.py", "load",
                                                          str(tmp_path))
        for shard in (False, True):  # written back from world n: the same arrays
            with np.load(ckpt) as a, np.load(tmp_path / f"resaved-{n}-{shard}.npz") as b:
                for key in a.files:
                    assert a[key].tobytes() == b[key].tobytes(), (n, shard, key)


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_training_resumes_bit_for_bit_mid_epoch_with_its_loader(n, tmp_path):
    # save(path, batches=) mid-epoch, load(path, batches=) into fresh objects: the same bits
    # as the run never interrupted, last_grad_norm included.
    assert f"OK resume world={n}" in run_mpi(n, "resume.py", str(tmp_path))


def readme_mpi_example():
    """The README's data-parallel example: its one code block that builds a
    DistributedOptimizer (fenced ``py``: it runs under mpiexec, not in test_docs)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```py(?:thon)?\n(.*?)```", text, re.S)
              if "DistributedOptimizer(" in b and "mpiexec" in b]
    assert len(blocks) == 1, "expected one data-parallel example in the README"
    return blocks[0]


@needs_mpi
def test_readme_data_parallel_example_runs_under_mpiexec(tmp_path):
    # As written: under mpiexec -n 2, in an empty directory; its checkpoint is the file of a
    # single-process AdamW after 5 epochs of 4 batches, with the loader's position.
    (tmp_path / "train.py").write_text(readme_mpi_example())
    run_mpi(2, "train.py", cwd=tmp_path)
    params = fastopt.pack({"w": np.ones((1, 20), np.float32), "b": np.ones((1, 1), np.float32)})
    opt = fastopt.AdamW(params)
    loader = fastopt.MiniBatches(np.zeros((20, 1000), np.float32), batch_size=64)
    opt.load(tmp_path / "ckpt.npz", batches=loader)
    assert opt.t == 20 and opt.lr == 1e-2 and opt.max_grad_norm == 1.0
    assert loader.batch_size == 256 and loader.state_dict()["epoch"] is None
    assert np.isfinite(params.buffer).all() and params.buffer.any()


@needs_mpi
def test_train_check_is_bit_identical():
    out = run_mpi(3, "-m", "fastopt.distributed", "train", "--epochs", "20",
                  "--print-every", "10", "--shard-state", "--max-grad-norm", "0.5",
                  "--check", cwd=None)
    assert "epoch     0  cost" in out and "epoch    19  cost" in out
    assert "bit-identical to one process: yes" in out


# --- python -m fastopt train --distributed ------------------------------------------------------

# 193 = 3 batches of 64 and one of 1: at world 2 and 3 some ranks' part of the last batch is
# empty, and at world 3 the 404 parameters leave rank 0 no slice of its own (shard_bounds).
TRAIN = ["-m", "fastopt", "train", "--distributed", "--layers", "20", "16", "4", "--epochs",
         "2", "--train-size", "193", "--test-size", "50", "--quiet"]


@needs_mpi
@pytest.mark.parametrize("n,options", [(2, ["--optimizer", "adam"]),
                                       (3, ["--optimizer", "momentum", "--shard-state"])])
def test_train_distributed_check_is_bit_identical(n, options):
    out = run_mpi(n, *TRAIN, "--check", *options, cwd=None)
    lines = out.splitlines()
    assert f"data-parallel over {n} ranks" in out
    assert f"shard_state={'--shard-state' in options}" in out
    # Rank 0 alone prints: one header, one line per epoch.
    assert sum(line.startswith("fastopt train: layers 20-16-4") for line in lines) == 1
    assert [line.split()[2] for line in lines if line.startswith("fastopt  epoch")] == \
        ["1/2", "2/2"]
    assert lines[-1].startswith("--check: final parameters bit-identical to one process that "
                                "computes the same per-part gradients and sums them in rank "
                                "order")
    assert "404 float32 values in 4 arrays" in lines[-1]


@needs_mpi
def test_train_distributed_check_in_float64():
    out = run_mpi(2, *TRAIN, "--check", "--dtype", "float64", cwd=None)
    assert "(404 float64 parameters)" in out
    last = out.splitlines()[-1]
    assert last.startswith("--check: final parameters bit-identical")
    assert "404 float64 values in 4 arrays" in last


@needs_mpi
def test_train_distributed_at_world_1_is_train():
    # One rank: the whole batch, a step on the gradient itself: the figures of plain train.
    def figures(out):
        return [line.rsplit("  ", 1)[0] for line in out.splitlines()
                if line.startswith("fastopt  epoch")]
    distributed = run_mpi(1, *TRAIN, "--check", cwd=None)
    single = subprocess.run([sys.executable, *TRAIN[:3], *TRAIN[4:]], capture_output=True,
                            text=True, timeout=TIMEOUT, check=True).stdout
    assert figures(distributed) == figures(single) and len(figures(single)) == 2
    assert "--check: final parameters bit-identical" in distributed


@needs_mpi
def test_train_distributed_check_reports_a_difference():
    # The reference off by one ulp in one value: rank 0 says which array, exit status 1.
    code = ("import sys, numpy as np\n"
            "from fastopt._apps import train_distributed as td\n"
            "from fastopt.__main__ import main\n"
            "real = td.one_process\n"
            "def off(*args):\n"
            "    params = real(*args)\n"
            "    params['b2'][0, 0] = np.nextafter(params['b2'][0, 0], np.float32(1))\n"
            "    return params\n"
            "td.one_process = off\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, FASTOPT_NUM_THREADS="1")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code, *TRAIN[2:],
                           "--check"], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode != 0
    assert ("--check: final parameters NOT bit-identical to one process that computes the "
            "same per-part gradients and sums them in rank order (docs/contract.md §9): "
            "b2 (1 of 4 values)") in proc.stdout


def test_an_empty_part_has_zero_gradients():
    # A rank's part of a batch with fewer examples than ranks: no mean over no example.
    from fastopt._apps import mlp as _mlp
    net = _mlp.Network(_mlp.init_params([20, 16, 4], 0))
    net.grads.buffer[:] = 1.0
    assert net.forward_backward(np.empty((20, 0), np.float32), np.empty(0, np.int64)) == (0.0, 0)
    assert not net.grads.buffer.any()


def test_train_distributed_without_mpi4py_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from fastopt.__main__ import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, *TRAIN[2:]], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("train --distributed: fastopt.distributed needs mpi4py")
    assert 'pip install "fastopt[mpi]"' in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--check"], "--check and --shard-state apply to --distributed only"),
    (["--shard-state"], "--check and --shard-state apply to --distributed only"),
    (["--distributed", "--compare"], "--compare does not go with --distributed: use --check"),
])
def test_train_distributed_options_are_checked_before_mpi(argv, message, capsys):
    from fastopt.__main__ import main
    assert main(["train", *argv, *TRAIN[4:]]) == 2
    assert message in capsys.readouterr().err


def test_import_without_mpi4py_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "try:\n    import fastopt.distributed\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert 'pip install "fastopt[mpi]"' in out


def test_nothing_else_imports_mpi4py():
    code = ("import sys, fastopt, fastopt.reference, fastopt.lab, fastopt.reference.lab\n"
            "print('mpi4py' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert out.strip() == "False"


# --- mini-batches split over ranks (no MPI needed) -----------------------------------------------

@pytest.mark.parametrize("impl", [fastopt, fastopt.reference], ids=["fastopt", "reference"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("m,batch_size,world,drop_last",
                         [(37, 8, 3, False), (37, 8, 3, True), (10, 4, 3, False),
                          (5, 2, 3, False), (64, 64, 2, False), (7, 1, 3, False)])
def test_minibatch_parts_make_the_global_batch(impl, axis, m, batch_size, world, drop_last):
    rng = np.random.default_rng(m)
    X = rng.standard_normal((3, m) if axis == 1 else (m, 3)).astype(np.float32)
    Y = rng.integers(0, 9, m)
    whole = impl.MiniBatches(X, Y, batch_size, seed=7, axis=axis, drop_last=drop_last,
                             copy=True)
    parts = [impl.MiniBatches(X, Y, batch_size, seed=7, axis=axis, drop_last=drop_last,
                              rank=r, world=world) for r in range(world)]
    assert all(len(p) == len(whole) for p in parts)
    for _ in range(2):  # two epochs: new permutations, reused buffers
        iters = [iter(p) for p in parts]
        for xg, yg in whole:
            got = [next(it) for it in iters]
            expected = np.array_split(np.arange(yg.shape[0]), world)
            for (xb, yb), idx in zip(got, expected):
                assert np.array_equal(yb, yg[idx])
                assert np.array_equal(xb, np.take(xg, idx, axis=axis))
                assert xb.flags.c_contiguous
        assert all(next(it, None) is None for it in iters)


def test_minibatch_rank_world_are_validated_and_read_only():
    X = np.ones((2, 5))
    batches = fastopt.MiniBatches(X, rank=1, world=2)
    assert (batches.rank, batches.world) == (1, 2)
    with pytest.raises(AttributeError):
        batches.rank = 0
    with pytest.raises(ValueError, match="rank must be < world"):
        fastopt.MiniBatches(X, rank=2, world=2)
    with pytest.raises(ValueError, match="world must be an integer >= 1"):
        fastopt.MiniBatches(X, world=0)
    with pytest.raises(TypeError, match="rank must be an integer"):
        fastopt.MiniBatches(X, rank=0.0, world=2)
    # A global batch smaller than the world: the last ranks get empty parts, same shapes.
    empty = list(fastopt.MiniBatches(X, np.arange(5), batch_size=2, rank=2, world=3))
    assert [xb.shape for xb, _ in empty] == [(2, 0)] * 3 and empty[0][1].shape == (0,)
