"""``checkpoint.py save DIR`` (a sharded Adam after 3 steps writes DIR/ckpt.npz) and
``checkpoint.py load DIR`` (any world size, both modes: load, write it back, take 2 more steps,
and compare with one process that loaded the same file)."""
import os
import sys

import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer
from common import RANK, WORLD, done, make_params, rank_grads, reduced, same_bits, \
    same_on_every_rank

mode, directory = sys.argv[1], sys.argv[2]
HYPER = dict(lr=fastopt.schedules.ExponentialDecay(0.01, 0.5, decay_steps=2), amsgrad=True,
             max_grad_norm=2.0)
ckpt = os.path.join(directory, "ckpt.npz")
count = 0
if mode == "save":
    params = make_params(np.float64)
    opt = DistributedOptimizer(fastopt.Adam, params, shard_state=True, **HYPER)
    single_params = make_params(np.float64)
    single = fastopt.Adam(single_params, **HYPER)
    for step in range(3):
        grads = [rank_grads(params, step, r) for r in range(WORLD)]
        opt.step(grads[RANK])
        single.step(reduced(single_params, grads))
    opt.save(ckpt)
    if RANK == 0:  # the file is the single process's own checkpoint
        single.save(os.path.join(directory, "single.npz"))
    count += 1
else:
    for shard in (False, True):
        params = make_params(np.float64, seed=1)  # other values: all must come from the file
        opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, **HYPER)
        opt.load(ckpt)
        assert opt.t == 3 and same_on_every_rank(params.buffer)
        opt.save(os.path.join(directory, f"resaved-{WORLD}-{shard}.npz"))
        single_params = make_params(np.float64, seed=2)
        single = fastopt.Adam(single_params, **HYPER)
        single.load(ckpt)
        for step in range(3, 5):
            grads = [rank_grads(params, step, r) for r in range(WORLD)]
            opt.step(grads[RANK])
            single.step(reduced(single_params, grads))
        assert same_bits(params.buffer, single_params.buffer), shard
        assert same_on_every_rank(params.buffer)
        count += 1
done(f"checkpoint-{mode}", count)
