"""What the build says about itself is true: OpenMP or serial, sanitizer, version.

.ci/run builds the kernels more than once (release with OpenMP, serial with FASTOPT_OPENMP=0,
debug with AddressSanitizer) and sets FASTOPT_EXPECT_SERIAL=1 / FASTOPT_EXPECT_SANITIZE=address
for the passes that need them, so that a stale build cannot let a pass test the wrong thing.
"""
import importlib.metadata
import io
import os
import pathlib
import re

import pytest

import fastopt
from fastopt import _config, _dispatch

# Markers (pyproject.toml): asan: runs under ASan (.ci/run selects by them).
pytestmark = pytest.mark.asan


def _openmp_flag(cflags):
    return "-fopenmp" in cflags.split() or "/openmp" in cflags.split()


@pytest.mark.parametrize("variant", _dispatch.available())
def test_openmp_flag_matches_the_compiled_code(variant):
    module = _dispatch.MODULES[variant]
    assert module.OPENMP == _openmp_flag(module.CFLAGS)
    assert (module.omp_num_procs() >= 1) == module.OPENMP


def test_every_variant_is_built_the_same_way():
    assert len({m.OPENMP for m in _dispatch.MODULES.values()}) == 1


def test_the_build_ci_asked_for():
    config = _config.config()
    if os.environ.get("FASTOPT_EXPECT_SERIAL") == "1":
        assert not config["openmp"], f"expected a serial build, got {config['compile_flags']}"
    sanitizer = os.environ.get("FASTOPT_EXPECT_SANITIZE")
    if sanitizer:
        for module in _dispatch.MODULES.values():
            assert f"-fsanitize={sanitizer}" in module.CFLAGS.split(), module.CFLAGS


def test_thread_count_of_this_build():
    with fastopt.num_threads(2):
        assert fastopt.get_num_threads() == (2 if _config.config()["openmp"] else 1)
    # Accepted and validated on every build, so code runs unchanged on a serial one.
    with pytest.raises(ValueError):
        fastopt.set_num_threads(0)


def test_show_config_says_whether_the_build_is_serial():
    out = io.StringIO()
    fastopt.show_config(file=out)
    serial = "serial build" in out.getvalue()
    assert serial != _config.config()["openmp"]


def test_one_version():
    """fastopt/_version.py is the only place the version is written; the installed metadata
    (from pyproject's dynamic version) agrees."""
    assert fastopt.__version__ == importlib.metadata.version("fastopt")


def test_show_config_reports_the_cpu_simd_features():
    """show_config names AVX2+FMA and AVX-512 support as the CPU (and the OS) report them, and
    whether this build has an avx512 variant; the dispatch only offers variants the CPU runs."""
    out = io.StringIO()
    fastopt.show_config(file=out)
    cpu = next(line for line in out.getvalue().splitlines() if line.strip().startswith("CPU"))
    baseline = _dispatch.MODULES["baseline"]
    assert (f"AVX2+FMA {'yes' if baseline.cpu_has_avx2() else 'no'}") in cpu
    assert ("AVX-512 yes" in cpu) == baseline.cpu_has_avx512()
    assert ("the avx512 variant is built" in cpu) == ("avx512" in _dispatch.available())
    if baseline.cpu_has_avx512():
        assert baseline.cpu_has_avx2()  # the avx512 variant is built with -mavx2 -mfma too
    for variant, supported in (("avx2", baseline.cpu_has_avx2),
                               ("avx512", baseline.cpu_has_avx512)):
        if variant in _dispatch.available():
            assert supported()


@pytest.mark.parametrize("variant", _dispatch.available())
def test_the_clipping_blocks_are_the_references(variant):
    # The block size is written in three places that cannot import one another: the compiled
    # kernels (fastopt/_pxi/clipping.pxi; they import no fastopt module), the reference (which
    # must not import the kernels it is the oracle of) and the plain-C known-answer reader
    # (tests/conformance/c/kat_rules.h). Python code reads the reference's; this holds the
    # three together.
    from fastopt.reference import _ops as reference_ops
    assert _dispatch.MODULES[variant].SUMSQ_BLOCK == reference_ops.SUMSQ_BLOCK == 1024
    header = pathlib.Path(__file__).resolve().parents[1] / "conformance" / "c" / "kat_rules.h"
    (c_block,) = re.findall(r"^#define KAT_SUMSQ_BLOCK (\d+)$", header.read_text(), re.M)
    assert int(c_block) == reference_ops.SUMSQ_BLOCK


@pytest.mark.parametrize("variant", _dispatch.available())
def test_one_table_of_thread_thresholds(variant):
    # Every kernel that can split over threads has its threshold in threads.pxi's one table,
    # and set_thread_threshold changes exactly that entry.
    module = _dispatch.MODULES[variant]
    saved = module.thread_thresholds()
    assert set(saved) == {"sgd", "momentum", "rmsprop", "adam", "adagrad", "sumsq",
                          "columns_into", "take_rows"}
    try:
        for name in saved:
            module.set_thread_threshold(name, 12345)
            assert module.thread_thresholds() == {**saved, name: 12345}
            module.set_thread_threshold(name, saved[name])
        with pytest.raises(KeyError):
            module.set_thread_threshold("nothing", 1)
    finally:
        for name, value in saved.items():
            module.set_thread_threshold(name, value)
    assert module.thread_thresholds() == saved
