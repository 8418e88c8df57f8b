"""Adam at memory-bound sizes against torch.optim.Adam(fused=True) and a streaming pass, call for
call in one process, at 1 and 2 threads.

    python benchmarks/tools/ab_memory_bound.py                       # 1e7 float32, t = 10 and 1000
    python benchmarks/tools/ab_memory_bound.py --sizes 1e6,1e7 --rounds 40

Each round times, one after the other on the same arrays: fastopt's ``adam_update`` (at ``t``),
torch's fused Adam step over a tensor of the same size, and ``np.add(p, g, out=p)`` (NumPy's
in-place add, single-threaded: the streaming ceiling of one core). The 2-thread figures mean
something only on an otherwise idle machine: with another job on the second core, a call split
over two threads waits for the one that lost its core (both libraries split statically). The medians of the rounds are
printed with the bytes each moves per second: 28 bytes an item for Adam (read p, g, m, v; write
p, m, v; torch moves the same), 12 for the add (read p, g; write p). Interleaving the three in
every round lets the drift of a shared machine hit them alike; the ratio torch / fastopt above 1
means fastopt is faster.
"""
import argparse
import time

import numpy as np

import fastopt
from fastopt._apps import bench as _bench

ADAM_BYTES, ADD_BYTES = 28, 12


def medians(n, t, threads, rounds):
    import torch

    p, g = _bench.data(n, np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    torch_step = _bench.torch_step("Adam", n, np.float32, threads)
    q, h = _bench.data(n, np.float32)
    times = {"fastopt": [], "torch": [], "add": []}
    with fastopt.num_threads(threads):
        for i in range(rounds + 3):  # 3 warm-up rounds: fresh pages fault in on first touch
            t0 = time.perf_counter()
            fastopt.adam_update(p, g, m, v, t, 1e-3)
            t1 = time.perf_counter()
            torch_step()
            t2 = time.perf_counter()
            np.add(q, h, out=q)
            t3 = time.perf_counter()
            if i >= 3:
                for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                    times[key].append(dt)
    torch.set_num_threads(1)
    return {k: float(np.median(x)) for k, x in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e7")
    ap.add_argument("--steps", default="10,1000")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    if not _bench.have_torch():
        raise SystemExit("torch is not installed (pip install torch==2.13.0)")
    print(f"{'items':>6} {'t':>5} {'thr':>3}  {'fastopt':>16} {'torch fused':>16} "
          f"{'np.add (1 thr)':>16}  torch/fastopt")
    for size in args.sizes.split(","):
        n = int(float(size))
        for t in (int(s) for s in args.steps.split(",")):
            for threads in (int(s) for s in args.threads.split(",")):
                r = medians(n, t, threads, args.rounds)
                cell = lambda k, b: f"{r[k] * 1e3:6.2f}ms {b * n / r[k] / 1e9:5.1f}GB/s"
                print(f"{size:>6} {t:>5} {threads:>3}  {cell('fastopt', ADAM_BYTES)} "
                      f"{cell('torch', ADAM_BYTES)} {cell('add', ADD_BYTES)}  "
                      f"{r['torch'] / r['fastopt']:12.2f}x", flush=True)


if __name__ == "__main__":
    main()
