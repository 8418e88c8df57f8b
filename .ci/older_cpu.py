"""Run a command as if on an older CPU: NumPy's SIMD dispatch narrowed, fastopt's baseline variant.

    python .ci/older_cpu.py pytest -q tests/apps/test_train.py              # NumPy's baseline loops
    python .ci/older_cpu.py --numpy avx2 pytest -q tests/apps/test_train.py   # NumPy's AVX2 loops

NumPy compiles its loops for a baseline (x86-64-v2 in NumPy 2.4) and dispatches at run time to
the best of ``__cpu_dispatch__`` the CPU has; ``NPY_DISABLE_CPU_FEATURES`` turns dispatch targets
off. ``--numpy baseline`` (the default) turns every one off; ``--numpy avx2`` every one above
x86-64-v3 (AVX2, FMA). The names come from the NumPy installed, since it refuses a name it does
not dispatch. fastopt gets ``FASTOPT_SIMD=baseline``. Before running the command this checks, in
a fresh interpreter, that NumPy and fastopt really run that way, and fails if not.

BLAS is not narrowed: OpenBLAS picks its kernels by CPU through ``OPENBLAS_CORETYPE``, which some
machines set to avoid crashes; it is left as found. The tests compare BLAS results only between
identically laid-out calls in one process (docs/contract.md §1), whatever kernel BLAS picks.
"""
import argparse
import os
import subprocess
import sys

CHECK = """
import numpy, fastopt._dispatch as d
umath = numpy._core._multiarray_umath
on = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
want = {want!r}
assert set(on) <= set(want), f"NumPy still dispatches to {{on}}"
assert d.current == "baseline", f"fastopt runs {{d.current}}"
print(f"older CPU: NumPy dispatches to {{on or 'nothing (its baseline loops)'}}, fastopt runs "
      f"{{d.current}}", flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numpy", choices=["baseline", "avx2"], default="baseline",
                    help="the NumPy loops to leave on (default: baseline)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if not args.command:
        ap.error("give the command to run")
    import numpy
    dispatch = list(numpy._core._multiarray_umath.__cpu_dispatch__)
    # x86-64-v3 is AVX2 + FMA: NumPy 2.4 calls it X86_V3 (older NumPy 2.x: AVX2, FMA3, F16C).
    keep = {"X86_V3", "AVX2", "FMA3", "F16C", "AVX", "SSE41", "SSE42", "POPCNT", "SSSE3"}
    disable = [f for f in dispatch if args.numpy == "baseline" or f not in keep]
    env = dict(os.environ, FASTOPT_SIMD="baseline")
    if disable:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disable)
    else:
        env.pop("NPY_DISABLE_CPU_FEATURES", None)
    allowed = [f for f in dispatch if f not in disable]
    subprocess.run([sys.executable, "-c", CHECK.format(want=allowed)], env=env, check=True)
    return subprocess.run(args.command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
