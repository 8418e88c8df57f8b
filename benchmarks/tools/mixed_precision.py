"""Adam on 16-bit parameters (docs/contract.md §14): the fused kernel against float32 Adam, the
old three-pass step and torch's fused Adam on bfloat16 parameters, at 1 and 2 threads.

    python benchmarks/tools/mixed_precision.py                    # 1e5, 1e6, 1e7 items
    python benchmarks/tools/mixed_precision.py --sizes 1e6 --rounds 9
    python benchmarks/tools/mixed_precision.py --chunks 512,1024,2048,4096   # the buffer chunk

Each round times every step in turn on its own arrays (``fastopt._apps.bench.interleaved_best``:
batches of calls lasting >= 50 ms, the best batch of ``--rounds``), so that the drift of a
shared machine hits them alike. Adam at step ``--t`` (1000 by default: steady state, only the
second bias division left), the kernels called through ``fastopt._dispatch.table`` (no
validation, as the optimizers call them). The steps:

* ``float32``: Adam on float32 p, g, m, v. Reads p, g, m, v and writes p, m, v: 28 bytes an item.
* ``bf16 fused`` / ``f16 fused``: the 16-bit kernel: reads the float32 master, the 16-bit
  gradient, m and v, writes master, m, v and the 16-bit copy: 4+2+4+4 + 4+4+4+2 = 28 bytes an
  item counted this way: float32's traffic, 2 bytes saved on the gradient and 2 spent on the copy
  (issue 24's "24 bytes" leaves the copy out). The copy is written without being read, so
  a write-allocating cache also reads its line first: 30 bytes of memory traffic an item.
* ``bf16 3-pass``: the placeholder this kernel replaced: the gradient widened by
  ``fastopt._half.widen`` into a new float32 array, float32 Adam, the master rounded by
  ``fastopt._half.narrow`` (NumPy, integer arithmetic, several temporaries).
* ``torch bf16``: ``torch.optim.Adam(fused=True)`` on a bfloat16 parameter with a bfloat16
  gradient: torch keeps bfloat16 m and v and no master (reads p, g, m, v, writes p, m, v: 14
  bytes an item), so it moves half the bytes and rounds every state to bfloat16 each step.

GB/s is (bytes an item as above) x items / time. The last columns are the time ratios: above
1, the fused kernel is faster.
"""
import argparse

import numpy as np

import fastopt
from fastopt import _dispatch, _half
from fastopt._apps import bench as _bench

BYTES = {"float32": 28, "bf16 fused": 28, "f16 fused": 28, "bf16 3-pass": 28, "torch bf16": 14}
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


def _adam_scalars(t):
    return (LR, BETA1, BETA2, EPS, 1 - BETA1 ** t, 1 - BETA2 ** t, 0.0, False, False, 1.0)


def steps(n, t=1000, torch_threads=None):
    """Zero-argument steps over ``n`` items, each on its own arrays: name -> callable."""
    p, g = _bench.data(n, np.float32)
    scal = _adam_scalars(t)
    f32 = np.dtype(np.float32)
    out = {}

    def arrays():
        return p.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)

    p32, m32, v32 = arrays()
    g32 = g.copy()
    out["float32"] = lambda: _dispatch.table["adam", f32](p32, g32, m32, v32, None, *scal)
    for kind, label in ((_half.BF16, "bf16 fused"), (_half.F16, "f16 fused")):
        master, m, v = arrays()
        gbits, pbits = _half.narrow(g, kind), _half.narrow(p, kind)
        out[label] = (lambda master=master, gbits=gbits, m=m, v=v, pbits=pbits, kind=kind:
                      _dispatch.table["adam", kind](master, gbits, m, v, None, *scal, pbits))
    master, m, v = arrays()
    gbits, pbits = _half.narrow(g, _half.BF16), _half.narrow(p, _half.BF16)

    def three_pass():
        _dispatch.table["adam", f32](master, _half.widen(gbits, _half.BF16), m, v, None, *scal)
        _half.narrow(master, _half.BF16, out=pbits)
    out["bf16 3-pass"] = three_pass
    if torch_threads is not None and _bench.have_torch():
        import torch
        torch.set_num_threads(torch_threads)
        tp = torch.from_numpy(p.copy()).to(torch.bfloat16)
        tp.grad = torch.from_numpy(g.copy()).to(torch.bfloat16)
        opt = torch.optim.Adam([tp], lr=LR, betas=(BETA1, BETA2), eps=EPS, fused=True)
        opt.step()
        out["torch bf16"] = opt.step
    return out


def table(sizes, threads_list, rounds, t):
    rows = []
    for n in sizes:
        for threads in threads_list:
            with fastopt.num_threads(threads):
                fns = steps(n, t, torch_threads=threads)
                best = _bench.interleaved_best(fns, repeat=rounds)
            rows.append((n, threads, best))
    names = list(rows[0][2])
    print(f"Adam, step t={t}; time per step (us) and GB/s (bytes an item: "
          + ", ".join(f"{k} {BYTES[k]}" for k in names) + ")")
    head = f"{'n':>9} {'thr':>3} " + " ".join(f"{k:>22}" for k in names)
    ratios = [k for k in names if k != "bf16 fused"]
    head += "   " + " ".join(f"{k + '/bf16':>16}" for k in ratios)
    print(head)
    for n, threads, best in rows:
        cells = [f"{best[k] * 1e6:10.1f} us {BYTES[k] * n / best[k] / 1e9:6.2f} GB/s"
                 for k in names]
        line = f"{n:9.0e} {threads:3d} " + " ".join(f"{c:>22}" for c in cells)
        line += "   " + " ".join(f"{best[k] / best['bf16 fused']:16.2f}" for k in ratios)
        print(line)


def chunks(sizes, values, rounds, t):
    module = _dispatch.kernels
    saved = module.MIXED_CHUNK
    print(f"bf16 fused Adam, t={t}, 1 thread: time per step (us) by buffer chunk (items)")
    print(f"{'n':>9} " + " ".join(f"{c:>9}" for c in values))
    for n in sizes:
        fn = steps(n, t)["bf16 fused"]
        fns = {}
        for c in values:
            def timed(c=c):
                module._set_mixed_chunk(c)
                fn()
            fns[c] = timed
        with fastopt.num_threads(1):
            best = _bench.interleaved_best(fns, repeat=rounds)
        print(f"{n:9.0e} " + " ".join(f"{best[c] * 1e6:9.1f}" for c in values))
    module._set_mixed_chunk(saved)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--t", type=int, default=1000)
    ap.add_argument("--chunks", default="", help="time these buffer chunk sizes instead")
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    info = _bench.machine()
    print(f"{info['cpu']}, {info['cores']} cores, variant {info['simd']}, "
          f"load average {info.get('load_average')}, torch {info.get('torch')}")
    if args.chunks:
        chunks(sizes, [int(c) for c in args.chunks.split(",")], args.rounds, args.t)
    else:
        table(sizes, [int(k) for k in args.threads.split(",")], args.rounds, args.t)


if __name__ == "__main__":
    main()
