"""Argument errors (raised on every rank alike, before anything is written), attribute
forwarding to this rank's optimizer, and shard boundaries on clipping blocks."""
import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer, shard_bounds
from fastopt.reference._ops import SUMSQ_BLOCK
from common import RANK, WORLD, done, make_params, rank_grads, same_bits


def raises(kind, part, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except kind as exc:
        assert part in str(exc), str(exc)
        return
    raise AssertionError(f"expected {kind.__name__} mentioning {part!r}")


params = make_params(np.float32)
raises(TypeError, "optimizer_class", DistributedOptimizer, "adam", params)
raises(TypeError, "PackedArrays", DistributedOptimizer, fastopt.Adam, dict(params))
raises(TypeError, "comm", DistributedOptimizer, fastopt.Adam, params, comm=1)
raises(TypeError, "shard_state", DistributedOptimizer, fastopt.Adam, params, shard_state=1)
# 16-bit parameters (issue 24): refused, master_dtype or a 16-bit packed buffer alike.
raises(TypeError, "master_dtype", DistributedOptimizer, fastopt.Adam, params,
       master_dtype=np.float32)
half = fastopt.pack({k: v.astype(np.float16) for k, v in params.items()})
raises(TypeError, "16-bit", DistributedOptimizer, fastopt.Adam, half, master_dtype=np.float32)
raises(TypeError, "16-bit", DistributedOptimizer, fastopt.Adam, half)
opt = DistributedOptimizer(fastopt.Adam, params, shard_state=True, lr=0.01)
before = params.buffer.copy()
raises(TypeError, "PackedArrays", opt.step, dict(rank_grads(params, 0, RANK)))
raises(ValueError, "layout", opt.step, fastopt.pack({"x": np.ones(3, np.float32)}))
raises(TypeError, "dtype", opt.step, rank_grads(make_params(np.float64), 0, RANK))
raises(ValueError, "shares memory", opt.step, params)
assert same_bits(params.buffer, before) and opt.t == 0
# Hyperparameters are attributes, set on this rank's optimizer with its checks.
opt.lr = 0.5
assert opt.lr == 0.5 == opt.optimizer.lr and opt.hyperparameters["lr"] == 0.5
raises(ValueError, "lr", setattr, opt, "lr", -1.0)
raises(AttributeError, "amsgrad", setattr, opt, "amsgrad", True)
raises(AttributeError, "settable", setattr, opt, "world", 3)
assert opt.world == WORLD and opt.rank == RANK and opt.state_names == ("m", "v")
# Slices: contiguous, covering, on block starts of the entries, within 512 of an even split.
for world in range(1, 8):
    b = shard_bounds(params.layout, world)
    starts = {o + k for _, s, o in params.layout for k in range(0, int(np.prod(s)), SUMSQ_BLOCK)}
    assert b[0] == 0 and b[-1] == params.buffer.size and b == sorted(b)
    assert all(x in starts or x == params.buffer.size for x in b[1:-1]), (world, b)
    assert all(abs(b[r] - r * params.buffer.size / world) <= 512 for r in range(world))
lo, hi = opt.shard
assert (lo, hi) == tuple(shard_bounds(params.layout, WORLD)[RANK:RANK + 2])
assert opt.state_nbytes == 2 * 4 * (hi - lo)
done("arguments", 1)
