"""A non-finite gradient on the last rank only: with nonfinite="skip" every rank skips, with
"raise" every rank raises, before anything changes; clipping's norm path and the plain path."""
import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer
from common import RANK, WORLD, done, make_params, rank_grads, same_bits, same_on_every_rank

count = 0
for shard in (False, True):
    for clip in (None, 1.0):
        for bad in (np.nan, np.inf):
            params = make_params(np.float32)
            opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, lr=0.01,
                                       nonfinite="skip", max_grad_norm=clip)
            grads = rank_grads(params, 0, RANK)
            assert opt.step(grads) is True
            before = params.buffer.copy()
            grads = rank_grads(params, 1, RANK)
            if RANK == WORLD - 1:
                grads["W"][3, 4] = bad  # one rank, one element: in rank 0's slice or not
            assert opt.step(grads) is False, (shard, clip, bad)
            assert opt.skipped == 1 and opt.t == 1
            assert same_bits(params.buffer, before)
            assert opt.step(rank_grads(params, 2, RANK)) is True and opt.t == 2
            assert same_on_every_rank(params.buffer)
            count += 1
    params = make_params(np.float64)
    opt = DistributedOptimizer(fastopt.SGD, params, shard_state=shard, lr=0.1,
                               nonfinite="raise")
    grads = rank_grads(params, 0, RANK)
    if RANK == WORLD - 1:
        grads["V"][-1] = -np.inf
    before = params.buffer.copy()
    try:
        opt.step(grads)
    except fastopt.NonFiniteGradientError:
        pass
    else:
        raise AssertionError("every rank must raise")
    assert same_bits(params.buffer, before) and opt.t == 0
    count += 1
done("nonfinite", count)
