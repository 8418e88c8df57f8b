"""Parameters (or hyperparameters) that differ across ranks: every rank raises a ValueError
that names the ranks differing from rank 0."""
import numpy as np

import fastopt
from fastopt.distributed import DistributedOptimizer
from common import RANK, WORLD, done, make_params


def expect(message_part, **kwargs):
    params = kwargs.pop("params")
    try:
        DistributedOptimizer(fastopt.Adam, params, **kwargs)
    except ValueError as exc:
        assert message_part in str(exc), str(exc)
        return str(exc)
    raise AssertionError("every rank must raise")


params = make_params(np.float32)
if RANK == 1:
    params["V"][17] = np.nextafter(params["V"][17], np.float32(np.inf))  # one ulp, one item
msg = expect("rank(s) [1]", params=params, lr=0.01)
assert "values" in msg and "from the same seed or broadcast them" in msg
# Each difference says what to make equal (hyperparameters were once told to "build the
# parameters from the same seed").
params = make_params(np.float32)
msg = expect(f"rank(s) {list(range(1, WORLD))}", params=params, lr=0.01 * (1 + RANK))
assert "hyperparameters" in msg and "pass the same hyperparameters" in msg, msg
assert "seed" not in msg, msg
params = make_params(np.float32 if RANK == 0 else np.float64)
msg = expect(f"rank(s) {list(range(1, WORLD))}", params=params, lr=0.01)
assert "layout and dtype" in msg and "pack the same arrays" in msg and "seed" not in msg, msg
# A bad hyperparameter on one rank: it raises its own error, every other rank hears of it
# instead of waiting.
params = make_params(np.float32)
expect("lr must be" if RANK == 0 else "rank(s) [0]", params=params,
       lr=-1.0 if RANK == 0 else 0.01)
# The same values on every rank: fine.
DistributedOptimizer(fastopt.Adam, make_params(np.float32), lr=0.01)
done("mismatch", 4)
