"""Every optimizer class, both modes, float32 and float64: after several steps every rank holds
the same bits, equal to one process stepping on the rank-ordered sum (docs/contract.md §9)."""
import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer
from common import (COMM, RANK, WORLD, done, make_params, rank_grads, reduced, same_bits,
                    same_on_every_rank)

sched = fastopt.schedules.LinearWarmup(fastopt.schedules.CosineDecay(0.05, 10), 2)
CASES = [
    (fastopt.SGD, dict(lr=sched, momentum=0.9, nesterov=True)),
    (fastopt.Momentum, dict(lr=0.05, beta=0.9, weight_decay=0.01)),
    (fastopt.RMSProp, dict(lr=1e-3, centered=True, momentum=0.5)),
    (fastopt.Adam, dict(lr=1e-2, max_grad_norm=1.0)),
    (fastopt.AdamW, dict(lr=1e-2, amsgrad=True, max_grad_norm=1e3,
                         nonfinite="skip")),  # 1e3: a step that does not clip
    (fastopt.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1,
                           nonfinite="raise")),
]
STEPS = 4
count = 0
for dtype in (np.float32, np.float64):
    for shard in (False, True):
        for cls, hyper in CASES:
            params = make_params(dtype)
            opt = DistributedOptimizer(cls, params, shard_state=shard, **hyper)
            single_params = make_params(dtype)
            single = cls(single_params, **hyper)
            for step in range(STEPS):
                grads = [rank_grads(params, step, r) for r in range(WORLD)]
                assert opt.step(grads[RANK]) is True
                assert single.step(reduced(single_params, grads)) is True
            what = f"{cls.__name__} {dtype.__name__} shard_state={shard}"
            assert same_bits(params.buffer, single_params.buffer), what
            assert same_on_every_rank(params.buffer), what
            assert opt.t == single.t == STEPS, what
            if hyper.get("max_grad_norm") is not None:
                assert opt.last_grad_norm == single.last_grad_norm, what
            # The state this rank holds is the single process's, on its slice.
            lo, hi = opt.shard if shard else (0, params.buffer.size)
            for s in single.state_names:
                mine = np.concatenate([a.reshape(-1) for a in
                                       (opt.optimizer.state(s).values() if not shard
                                        else opt.optimizer.state(s))])
                theirs = np.concatenate([a.reshape(-1) for a in single.state(s).values()])
                assert same_bits(mine, theirs[lo:hi]), (what, s)
            count += 1

# average=False: the plain rank-ordered sum.
for shard in (False, True):
    params, single_params = make_params(np.float32), make_params(np.float32)
    opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, average=False, lr=0.01)
    single = fastopt.Adam(single_params, lr=0.01)
    for step in range(2):
        grads = [rank_grads(params, step, r) for r in range(WORLD)]
        opt.step(grads[RANK])
        single.step(reduced(single_params, grads, average=False))
    assert same_bits(params.buffer, single_params.buffer)
    count += 1

# A buffer with fewer clipping blocks than ranks: some ranks own an empty slice.
tiny = {"w": (7,), "b": (3,)}
for shard in (False, True):
    params, single_params = make_params(np.float64, tiny), make_params(np.float64, tiny)
    opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, lr=0.1,
                               max_grad_norm=0.5)
    single = fastopt.Adam(single_params, lr=0.1, max_grad_norm=0.5)
    for step in range(3):
        grads = [rank_grads(params, step, r) for r in range(WORLD)]
        opt.step(grads[RANK])
        single.step(reduced(single_params, grads))
    assert same_bits(params.buffer, single_params.buffer)
    assert same_on_every_rank(params.buffer)
    count += 1
done("parity", count)
