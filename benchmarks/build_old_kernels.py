"""Build an earlier commit's kernels as the module ``old_kernels``, for before/after benchmarks in
one process (benchmarks/test_options.py reads ``FASTOPT_OLD_KERNELS``).

    python benchmarks/build_old_kernels.py REV DIR       # e.g. REV = cefd447
    FASTOPT_OLD_KERNELS=DIR pytest benchmarks/test_options.py -k default_adam

The old ``_kernels.pyx`` is compiled with this build's release flags and AVX2 (as the dispatch
would pick here), outside the package, so both builds can be imported side by side.
"""
import os
import subprocess
import sys


def main(rev, directory):
    os.makedirs(directory, exist_ok=True)
    source = subprocess.run(["git", "show", f"{rev}:fastopt/_kernels.pyx"], check=True,
                            capture_output=True, text=True).stdout
    with open(os.path.join(directory, "old_kernels.pyx"), "w") as f:
        f.write(source)
    script = (
        "import numpy\n"
        "from Cython.Build import cythonize\n"
        "from setuptools import Extension, setup\n"
        "setup(script_args=['build_ext', '--inplace'], ext_modules=cythonize([Extension(\n"
        "    'old_kernels', ['old_kernels.pyx'], include_dirs=[numpy.get_include()],\n"
        "    extra_compile_args=['-O3', '-ffp-contract=off', '-fno-math-errno', '-fopenmp',\n"
        "                        '-mavx2'], extra_link_args=['-fopenmp'])],\n"
        "    compiler_directives={'language_level': 3, 'boundscheck': False,\n"
        "                         'wraparound': False, 'initializedcheck': False,\n"
        "                         'cdivision': True}))\n")
    subprocess.run([sys.executable, "-c", script], cwd=directory, check=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
