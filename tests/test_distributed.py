"""Data parallelism (docs/contract.md §9).

The MPI tests start real processes: ``mpiexec -n 1``, ``-n 2`` and ``-n 3`` (an uneven split of
the buffer and of the batches, and more ranks than this machine's 2 cores) on the scripts in
``tests/mpi/``, which abort the job on the first failed check. They are skipped, with the
reason, when mpi4py or mpiexec is missing (``pip install ".[mpi]"`` brings both). The
mini-batch split and the optional import run everywhere.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastopt
import fastopt.reference

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
def test_train_check_is_bit_identical():
    out = run_mpi(3, "-m", "fastopt.distributed", "train", "--epochs", "20",
                  "--print-every", "10", "--shard-state", "--max-grad-norm", "0.5",
                  "--check", cwd=None)
    assert "epoch     0  cost" in out and "epoch    19  cost" in out
    assert "bit-identical to one process: yes" in out


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
