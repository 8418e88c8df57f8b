"""Data-parallel step under ``mpiexec -n 2`` (docs/contract.md §9): a smoke run of
``python -m fastopt.distributed bench``, whose table (communication and compute per step, both
modes against ``Allreduce(IN_PLACE)`` + a local step, state per rank) is the measurement; the
README has one. Skipped without mpi4py and mpiexec (``pip install ".[mpi]"``)."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

local = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(local) if local.exists() else shutil.which("mpiexec")


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                    reason="needs mpi4py and mpiexec: pip install \".[mpi]\"")
def test_distributed_bench_runs():
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "fastopt.distributed",
                           "bench", "--sizes", "1e4"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, FASTOPT_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    for mode in ("allreduce", "fixed-order", "zero-1", "cost model"):
        assert mode in proc.stdout
