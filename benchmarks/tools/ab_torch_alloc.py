"""Does it matter who allocates the buffers? fastopt's float32 Adam on NumPy-allocated arrays
against the same arrays allocated by torch (``torch.empty(n).numpy()``), call for call.

    python benchmarks/tools/ab_torch_alloc.py                          # 1e5, 1e6, 1e7; 1 thread
    python benchmarks/tools/ab_torch_alloc.py --sizes 1e7 --threads 1,2 --rounds 60
    python benchmarks/tools/ab_torch_alloc.py --fastopt-torch          # also fastopt.torch.Adam's step

Why: NumPy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on
allocations of 4 MiB and more; torch's CPU allocator does not. Where the kernel's THP mode is
``madvise`` (this script prints it), only NumPy's buffers get 2 MiB pages, so a memory-bound
step over them takes fewer TLB misses. fastopt.torch packs each dtype's parameters, gradients
and state into one buffer per kind, allocated behind one function: this script decides which
allocator that function should use.

Each round calls ``fastopt.adam_update`` once on each set of four arrays (p, g, m, v), in
alternating order (A then B, B then A) so that neither always runs on a cache just warmed by
the other; after warm-up rounds, the median of each is printed with the ratio
``torch-allocated / NumPy-allocated`` (above 1: NumPy's allocation is faster) and how much of
each set the kernel backs with huge pages (``AnonHugePages`` of its mappings in
``/proc/self/smaps``, prorated over each mapping: approximate for arrays that share a mapping
with others, as those under 4 MiB do; Linux only).

``--fastopt-torch`` adds the same comparison one level up: ``fastopt.torch.Adam``'s
``opt.step()`` over one parameter of each size, its buffers allocated with
``fastopt.torch._buffers.ALLOCATOR`` set to ``"numpy"`` and to ``"torch"`` (the library's one
allocation function), the two optimizers stepped in alternating order.
"""
import argparse
import time

import numpy as np

import fastopt
from fastopt._apps import bench as _bench

STEP = _bench.STEADY_STATE_STEP


def thp_mode():
    """The kernel's transparent-huge-page mode (the bracketed word), or None."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()


def huge_fraction(arrays):
    """The fraction of ``arrays``' bytes that lie in huge pages, from /proc/self/smaps (None
    where it cannot be read). A mapping counts in proportion to its AnonHugePages."""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    maps, current = [], None
    for line in lines:
        head = line.split()[0] if line else ""
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            current = [lo, hi, 0]
            maps.append(current)
        elif head == "AnonHugePages:" and current is not None:
            current[2] = int(line.split()[1]) * 1024
    huge = total = 0
    for a in arrays:
        start = a.__array_interface__["data"][0]
        end = start + a.nbytes
        total += a.nbytes
        for lo, hi, anon_huge in maps:
            overlap = min(hi, end) - max(lo, start)
            if overlap > 0 and hi > lo:
                huge += anon_huge * overlap / (hi - lo)
    return huge / total if total else None


def numpy_arrays(n, seed):
    p, g = _bench.data(n, np.float32, seed)
    return [p, g, np.zeros_like(p), np.zeros_like(p)]


def torch_arrays(n, seed):
    import torch
    p, g = _bench.data(n, np.float32, seed)
    out = []
    for src in (p, g, None, None):
        a = torch.empty(n, dtype=torch.float32).numpy()
        a[...] = 0 if src is None else src
        out.append(a)
    return out


def medians(n, threads, rounds, warmup=3):
    sets = {"numpy": numpy_arrays(n, 0), "torch": torch_arrays(n, 0)}
    huge = {k: huge_fraction(v) for k, v in sets.items()}
    times = {k: [] for k in sets}
    order = list(sets)
    with fastopt.num_threads(threads):
        for i in range(rounds + warmup):
            for key in (order if i % 2 == 0 else order[::-1]):
                p, g, m, v = sets[key]
                t0 = time.perf_counter()
                fastopt.adam_update(p, g, m, v, STEP, 1e-3)
                t1 = time.perf_counter()
                if i >= warmup:
                    times[key].append(t1 - t0)
    return {k: float(np.median(x)) for k, x in times.items()}, huge


def fastopt_torch_medians(n, threads, rounds, warmup=3):
    """Median ``opt.step()`` of fastopt.torch.Adam over one tensor of ``n`` items, with its
    buffers from NumPy and from torch; and the share of each parameter buffer in huge pages."""
    import torch
    from fastopt.torch import _buffers
    saved, saved_threads = _buffers.ALLOCATOR, torch.get_num_threads()
    steps, huge = {}, {}
    try:
        for alloc in ("numpy", "torch"):
            _buffers.ALLOCATOR = alloc
            steps[alloc] = _bench.torch_optim_step("fastopt.torch", "Adam", n, np.float32)
            opt = steps[alloc].__self__
            bufs = [a for b in opt._bufs.values()
                    for a in [b.param_np, b.grad_np, *b.state_np.values()]]
            huge[alloc] = huge_fraction(bufs)
    finally:
        _buffers.ALLOCATOR = saved
    times = {k: [] for k in steps}
    order = list(steps)
    torch.set_num_threads(threads)
    try:
        with fastopt.num_threads(threads):
            for i in range(rounds + warmup):
                for key in (order if i % 2 == 0 else order[::-1]):
                    t0 = time.perf_counter()
                    steps[key]()
                    t1 = time.perf_counter()
                    if i >= warmup:
                        times[key].append(t1 - t0)
    finally:
        torch.set_num_threads(saved_threads)
    return {k: float(np.median(x)) for k, x in times.items()}, huge


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--fastopt-torch", action="store_true",
                    help="also time fastopt.torch.Adam's step with each allocator")
    args = ap.parse_args(argv)
    if not _bench.have_torch():
        raise SystemExit("torch is not installed (pip install torch==2.13.0)")
    import torch
    print(f"transparent huge pages: {thp_mode()}; fastopt SIMD path {fastopt._dispatch.current}; "
          f"torch {torch.__version__}; float32 Adam, step {STEP}, median of {args.rounds} "
          f"rounds")
    runs = [("fastopt.adam_update", medians)]
    if args.fastopt_torch:
        runs.append(("fastopt.torch.Adam.step", fastopt_torch_medians))
    for title, measure in runs:
        print(title)
        table(args, measure)


def table(args, measure):
    print(f"{'items':>6} {'thr':>3}  {'NumPy-allocated':>24}  {'torch-allocated':>24}  "
          f"torch/NumPy")
    for size in args.sizes.split(","):
        n = int(float(size))
        for threads in (int(s) for s in args.threads.split(",")):
            r, huge = measure(n, threads, args.rounds)

            def cell(k):
                pages = "?" if huge[k] is None else f"{huge[k]:.0%}"
                return (f"{r[k] * 1e3:7.3f}ms {_bench.BYTES_FLOAT32['Adam'] * n / r[k] / 1e9:5.1f}"
                        f"GB/s huge {pages:>4}")
            print(f"{size:>6} {threads:>3}  {cell('numpy'):>24}  {cell('torch'):>24}  "
                  f"{r['torch'] / r['numpy']:10.2f}x", flush=True)


if __name__ == "__main__":
    main()
