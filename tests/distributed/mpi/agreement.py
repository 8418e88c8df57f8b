"""Every rank decides together whether a step may proceed (item: MPI hangs and paired steps).

A gradient refused on one rank: that rank raises its own error, every other rank a RankError
naming it, nothing is exchanged or written, and the next step is the same step everywhere (the
run ends bit for bit where one process stepping on the same sums ends). Hyperparameters or step
counts assigned on one rank only: every rank raises a RankError naming the ranks and the field.
Without the agreement, the first case leaves the other ranks in Alltoallv forever (the
watchdog of common.py aborts the job) and the second goes on silently."""
import os
import shutil
import tempfile

import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer, RankError
from common import COMM, RANK, WORLD, done, make_params, rank_grads, reduced, same_bits, \
    same_on_every_rank

LAST = WORLD - 1
# A folder of rank 0's for the checkpoints, shared with the others (one machine).
DIRECTORY = COMM.bcast(tempfile.mkdtemp(prefix="fastopt-agreement-") if RANK == 0 else None)
count = 0


def refused(fn, mine, others, *args):
    """``fn(*args)`` raises on every rank: ``mine`` (type, text) on the last rank, a RankError
    with every text of ``others`` elsewhere."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - checked just below
        if RANK == LAST and mine is not None:
            assert isinstance(exc, mine[0]) and mine[1] in str(exc), repr(exc)
        else:
            assert type(exc) is RankError, repr(exc)
            assert all(t in str(exc) for t in others), str(exc)
        return str(exc)
    raise AssertionError(f"rank {RANK}: the step must raise on every rank")


for shard in (False, True):
    for dtype in (np.float32, np.float64):
        hyper = dict(lr=fastopt.schedules.ExponentialDecay(0.01, 0.9), max_grad_norm=1.0)
        params, single_params = make_params(dtype), make_params(dtype)
        opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, **hyper)
        single = fastopt.Adam(single_params, **hyper)
        other = np.float64 if dtype == np.float32 else np.float32
        step = 0

        def good_step():
            global step
            grads = [rank_grads(params, step, r) for r in range(WORLD)]
            assert opt.step(grads[RANK]) is True
            single.step(reduced(single_params, grads))
            step += 1

        good_step()
        before = params.buffer.copy()
        # 1. The wrong dtype on the last rank only (the float64 gradients on rank 1).
        bad = rank_grads(make_params(other), step, RANK) if RANK == LAST \
            else rank_grads(params, step, RANK)
        msg = refused(opt.step, (TypeError, "grads has dtype"),
                      [f"rank(s) [{LAST}] could not take step 2", "grads has dtype"], bad)
        assert same_bits(params.buffer, before) and opt.t == 1, msg
        good_step()  # caught: the next step is step 2 on every rank, paired with step 2
        # 2. Another layout, and a gradient sharing the parameters' memory, on one rank.
        for bad in (fastopt.pack({"x": np.ones(3, dtype)}), params):
            if RANK != LAST:
                bad = rank_grads(params, step, RANK)
            refused(opt.step, (ValueError, ""), [f"rank(s) [{LAST}]", "could not take step 3"],
                    bad)
        # 3. The parameters made read-only after construction, on one rank.
        if RANK == LAST:
            params.buffer.flags.writeable = False
        refused(opt.step, (ValueError, "read-only"), [f"rank(s) [{LAST}]", "read-only"],
                rank_grads(params, step, RANK))
        params.buffer.flags.writeable = True
        # ... or one parameter's view of it (the inner step's own check, run before the
        # exchange so that every rank hears of it).
        key = next(iter(params))
        if RANK == LAST:
            params[key].flags.writeable = False
        refused(opt.step, (ValueError, "read-only"), [f"rank(s) [{LAST}]", "read-only"],
                rank_grads(params, step, RANK))
        params[key].flags.writeable = True
        good_step()
        # 4. A hyperparameter assigned on one rank only: every rank names the rank and field
        # (with more than one rank).
        before, t = params.buffer.copy(), opt.t
        if WORLD > 1:
            if RANK == LAST:
                opt.lr = 0.5
            refused(opt.step, None, [f"lr is {hyper['lr']!r} on rank 0 but 0.5 on rank {LAST}",
                                     "optimizers differ"], rank_grads(params, step, RANK))
            opt.lr = hyper["lr"]
            if RANK == LAST:
                opt.beta2 = 0.99
                opt.t = 100
            msg = refused(opt.step, None, [f"t is {t} on rank 0 but 100 on rank {LAST}",
                                           f"beta2 is 0.999 on rank 0 but 0.99 on rank {LAST}"],
                          rank_grads(params, step, RANK))
            assert msg.index("t is") < msg.index("beta2 is")  # the fields in a fixed order
            opt.t, opt.beta2 = t, 0.999
            if RANK == 0:  # skipped counts too; every other rank differs
                opt.skipped = 3
            refused(opt.step, None, ["skipped is 3 on rank 0 but 0 on rank 1"],
                    rank_grads(params, step, RANK))
            opt.skipped = 0
            assert same_bits(params.buffer, before) and opt.t == t
        # 5. Another thread of this rank inside step, save or load (held here by taking the
        # object's guard, as such a call does): refused locally, before any collective, so
        # the ranks' collectives still pair (the good steps below would hang otherwise).
        with opt._busy:
            for call, args in ((opt.step, (rank_grads(params, step, RANK),)),
                               (opt.save, ("unused.npz",)), (opt.load, ("unused.npz",))):
                try:
                    call(*args)
                except RuntimeError as exc:
                    assert "another thread is inside step, save or load" in str(exc), exc
                else:
                    raise AssertionError(f"rank {RANK}: {call.__name__} ran beside another thread")
        # 5b. The inner optimizer busy in another thread of the last rank (copying it, its
        # state_dict, a save from a checkpointing thread hold its step lock): that rank's vote
        # against the step, every rank raises before any exchange, and the next step pairs.
        before, t = params.buffer.copy(), opt.t
        if RANK == LAST:
            opt.optimizer._busy.acquire()
        try:
            refused(opt.step, (RuntimeError, "another thread is inside"),
                    [f"rank(s) [{LAST}]", "another thread is inside"],
                    rank_grads(params, step, RANK))
        finally:
            if RANK == LAST:
                opt.optimizer._busy.release()
        assert same_bits(params.buffer, before) and opt.t == t
        # 5c. A load with the parameters made read-only on the last rank: every rank refuses
        # it, nothing changes, no rank waits in a broadcast (it hung there).
        path = os.path.join(DIRECTORY, f"agreement-{shard}-{dtype.__name__}.npz")
        opt.save(path)
        if RANK == LAST:
            params.buffer.flags.writeable = False
        refused(opt.load, (ValueError, "read-only"), [f"rank(s) [{LAST}]", "read-only"], path)
        params.buffer.flags.writeable = True
        assert same_bits(params.buffer, before) and opt.t == t
        # 6. The same assignment on every rank: fine.
        opt.beta1 = 0.8
        single.beta1 = 0.8
        good_step()
        good_step()
        what = f"shard_state={shard} {dtype.__name__}"
        assert opt.t == single.t == step, what
        assert same_bits(params.buffer, single_params.buffer), what
        assert same_on_every_rank(params.buffer), what
        count += 1
COMM.Barrier()
if RANK == 0:
    shutil.rmtree(DIRECTORY)
done("agreement", count)
