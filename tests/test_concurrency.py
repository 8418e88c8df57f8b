"""Kernels release the GIL: two Python threads stepping two optimizers at once get the same bits
as one after the other (and both may split their work over OpenMP threads meanwhile)."""
import threading

import numpy as np
import pytest

import fastopt
from fastopt.testing import assert_ulp_equal

N = 200_000  # large enough that each kernel call runs long with the GIL released


def make(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(N).astype(dtype),
            "b": rng.standard_normal((50, 20)).astype(dtype)}


def grads_for(seed, dtype=np.float32, steps=30):
    rng = np.random.default_rng(seed + 100)
    return [{"w": (rng.standard_normal(N) * 0.1).astype(dtype),
             "b": (rng.standard_normal((50, 20)) * 0.1).astype(dtype)} for _ in range(steps)]


def run_in_threads(jobs):
    barrier = threading.Barrier(len(jobs))
    errors = []

    def worker(job):
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("name", ["SGD", "Momentum", "RMSProp", "Adam"])
@pytest.mark.parametrize("packed", [False, True])
def test_two_optimizers_concurrently_equal_sequentially(name, packed):
    def build(seed):
        params = make(seed)
        return getattr(fastopt, name)(fastopt.pack(params) if packed else params, lr=0.01)

    def stepper(opt, seed):
        gs = grads_for(seed)
        if packed:
            packed_grads = [fastopt.pack_like(opt._packed) for _ in gs]
            for pg, g in zip(packed_grads, gs):
                pg.update(g)
            gs = packed_grads
        return lambda: [opt.step(g) for g in gs]

    seq = [build(1), build(2)]
    for opt, seed in zip(seq, (1, 2)):
        stepper(opt, seed)()
    con = [build(1), build(2)]
    run_in_threads([stepper(opt, seed) for opt, seed in zip(con, (1, 2))])
    for a, b in zip(seq, con):
        for k in ("w", "b"):
            assert_ulp_equal(b.params[k], a.params[k])
        for s in a._state_names:
            for x, y in zip(a._state[s], b._state[s]):
                assert_ulp_equal(y, x)


def test_array_level_ewa_and_minibatches_concurrently():
    x = np.random.default_rng(0).standard_normal(300_000)
    X = np.random.default_rng(1).standard_normal((40, 5000)).astype(np.float32)
    want_ewa = fastopt.ewa(x, 0.9, True)
    want_batches = [b.copy() for b in fastopt.MiniBatches(X, batch_size=64, seed=3)]
    p = make(5)["w"]
    g = grads_for(5, steps=1)[0]["w"]
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_seq, m_seq, v_seq = p.copy(), m.copy(), v.copy()
    for t in range(1, 21):
        fastopt.adam_update(p_seq, g, m_seq, v_seq, t, 0.01)
    got = {}

    def adam():
        for t in range(1, 21):
            fastopt.adam_update(p, g, m, v, t, 0.01)

    def smooth():
        for _ in range(5):
            got["ewa"] = fastopt.ewa(x, 0.9, True)

    def batches():
        got["batches"] = [b.copy() for b in fastopt.MiniBatches(X, batch_size=64, seed=3)]

    run_in_threads([adam, smooth, batches])
    assert_ulp_equal(p, p_seq)
    assert_ulp_equal(v, v_seq)
    assert_ulp_equal(got["ewa"], want_ewa)
    for a, b in zip(got["batches"], want_batches):
        assert_ulp_equal(a, b)
