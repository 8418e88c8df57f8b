"""``resume.py DIR``: data-parallel training saved mid-epoch with its loader
(``save(path, batches=)``) and resumed in fresh objects (``load(path, batches=)``) ends with the
same bits as the run that was never interrupted, ``last_grad_norm`` included; both modes."""
import os
import sys

import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer
from common import RANK, WORLD, done, same_on_every_rank

directory = sys.argv[1]
rng = np.random.default_rng(0)
X, Y = rng.standard_normal((6, 50)), rng.standard_normal(50)
STEPS, SAVE_AT = 20, 10  # 7 batches of 8 an epoch: step 10 is mid-epoch


def fresh(shard):
    params = fastopt.pack({"W": np.zeros((1, 6)), "b": np.zeros((1, 1))})
    opt = DistributedOptimizer(fastopt.Adam, params, shard_state=shard, lr=0.05,
                               max_grad_norm=1.0)
    batches = fastopt.MiniBatches(X, Y, batch_size=8, seed=np.random.SeedSequence(3),
                                  rank=RANK, world=WORLD)
    return params, opt, batches


def train(params, opt, batches, steps, path=None):
    grads, taken = fastopt.pack_like(params), 0
    while True:
        for xb, yb in batches:
            err = params["W"] @ xb + params["b"] - yb  # this rank's part: summed, not averaged
            grads["W"], grads["b"] = err @ xb.T, err.sum(axis=1, keepdims=True)
            opt.step(grads)
            taken += 1
            if taken == SAVE_AT and path is not None:
                opt.save(path, batches=batches)
            if taken == steps:
                return


count = 0
for shard in (False, True):
    path = os.path.join(directory, f"resume-{shard}.npz")
    params, opt, batches = fresh(shard)
    train(params, opt, batches, STEPS, path)
    params2, opt2, batches2 = fresh(shard)
    opt2.load(path, batches=batches2)
    assert opt2.t == SAVE_AT
    train(params2, opt2, batches2, STEPS - SAVE_AT)
    assert params2.buffer.tobytes() == params.buffer.tobytes(), shard
    assert opt2.last_grad_norm == opt.last_grad_norm is not None
    assert same_on_every_rank(params2.buffer)
    count += 1
done("resume", count)
