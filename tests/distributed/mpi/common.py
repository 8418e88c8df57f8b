"""Shared by the scripts that tests/distributed/test_distributed.py runs under ``mpiexec``: abort the whole
job on the first failure (so that no rank waits forever in a collective), deterministic
parameters and per-rank gradients, and the single-process run each rank compares itself to."""
import sys
import threading
import traceback
import zlib

import numpy as np
from mpi4py import MPI

import fastopt
from shapes import SHAPES

COMM = MPI.COMM_WORLD
RANK, WORLD = COMM.Get_rank(), COMM.Get_size()


def _abort(kind, value, tb):
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    COMM.Abort(1)


sys.excepthook = _abort

# A rank left waiting in a collective must fail the test, not hang it: after WATCHDOG seconds
# the job is aborted from a timer thread (mpi4py initialises MPI with MPI_THREAD_MULTIPLE).
# The scripts take 1-5 s here; tests/distributed/test_distributed.py's own timeout is longer still.
WATCHDOG = 90


def _watchdog():
    print(f"rank {RANK}: no end after {WATCHDOG} s: a rank is waiting for the others "
          f"(a hang); aborting", file=sys.stderr, flush=True)
    COMM.Abort(3)


_timer = threading.Timer(WATCHDOG, _watchdog)
_timer.daemon = True
_timer.start()


def make_params(dtype, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return fastopt.pack({k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()})


def rank_grads(params, step, rank, scale=3.0):
    """Rank ``rank``'s gradient at ``step``: any rank can make any rank's."""
    g = fastopt.pack_like(params)
    rng = np.random.default_rng([step, rank])
    g.buffer[:] = (rng.standard_normal(g.buffer.size) * scale).astype(g.buffer.dtype)
    return g


def reduced(params, grads, average=True):
    """One process forming the rank-ordered sum itself, as docs/contract.md §9 says."""
    total = grads[0].buffer
    for g in grads[1:]:
        total = total + g.buffer
    if average:
        total = total * (1 / len(grads))
    out = fastopt.pack_like(params)
    out.buffer[:] = total
    return out


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_on_every_rank(buffer):
    crcs = COMM.allgather(zlib.crc32(buffer.data))
    return all(c == crcs[0] for c in crcs)


def done(name, count):
    COMM.Barrier()
    if RANK == 0:
        print(f"OK {name} world={WORLD} cases={count}", flush=True)
