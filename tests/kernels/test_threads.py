"""Thread counts are validated against what the runtime supports (issue item 3).

``set_num_threads(n)`` and ``FASTOPT_NUM_THREADS`` refuse a count above
``fastopt._threads.max_threads()`` with a ValueError naming the argument and the maximum, before
the count changes; the kernels refuse it too (the second line). A count that used to be accepted
and then crashed the process (100000 threads: a segmentation fault in the OpenMP runtime at the
next large update) runs in a subprocess with a timeout.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastopt
from fastopt import _dispatch, _threads

TIMEOUT = 120


def _run(code, **env):
    environ = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, env=environ)


def test_the_maximum_is_sane():
    limit = _threads.max_threads()
    assert isinstance(limit, int)
    assert 1 <= limit <= _threads.HARD_MAX
    assert fastopt.get_num_threads() <= limit


@pytest.mark.parametrize("n", [2**40, 2**63, 2**64 + 1, 100_000])
def test_set_num_threads_refuses_more_than_the_runtime_supports(n):
    before = fastopt.get_num_threads()
    with pytest.raises(ValueError, match=r"n must be an integer from 1 to \d+"):
        fastopt.set_num_threads(n)
    assert fastopt.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with fastopt.num_threads(n):
            pass  # pragma: no cover
    assert fastopt.get_num_threads() == before


def test_the_maximum_itself_is_accepted():
    before = fastopt.get_num_threads()
    limit = _threads.max_threads()
    with fastopt.num_threads(limit):
        expected = limit if _dispatch.kernels.OPENMP else 1
        assert fastopt.get_num_threads() == expected
    assert fastopt.get_num_threads() == before


@pytest.mark.parametrize("variant", _dispatch.available())
@pytest.mark.parametrize("n", [0, -1, 2**40, 2**31, 100_000])
def test_the_kernels_refuse_a_bad_count_themselves(variant, n):
    module = _dispatch.MODULES[variant]
    before = module.get_num_threads()
    with pytest.raises(ValueError, match="n must be an integer from 1 to"):
        module.set_num_threads(n)
    assert module.get_num_threads() == before


@pytest.mark.parametrize("variant", _dispatch.available())
@pytest.mark.parametrize("n", [2.0, "2", True, None])
def test_the_kernels_refuse_a_non_integer_count(variant, n):
    with pytest.raises(TypeError, match="n must be an integer"):
        _dispatch.MODULES[variant].set_num_threads(n)


def test_many_threads_then_a_large_update_does_not_crash():
    # Before: set_num_threads(100000) was accepted and the next 1e7 update died with SIGSEGV.
    code = (
        "import numpy as np, fastopt\n"
        "try:\n"
        "    fastopt.set_num_threads(100000)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
        "p = np.zeros(10**7, np.float32); g = np.ones_like(p)\n"
        "fastopt.SGD([p], lr=1.0).step([g])\n"
        "assert (p == -1).all()\n"
        # The most accepted is safe: from the main thread, and from a thread with a 256 KiB
        # stack (the OpenMP runtime puts per-thread data on the starting thread's stack).
        "import threading\n"
        "from fastopt import _threads\n"
        "fastopt.set_num_threads(_threads.max_threads())\n"
        "fastopt.SGD([p], lr=1.0).step([g])\n"
        "threading.stack_size(256 * 1024)\n"
        "t = threading.Thread(target=lambda: fastopt.SGD([p], lr=1.0).step([g]))\n"
        "t.start(); t.join()\n"
        "assert (p == -3).all()\n"
        "print('ok')\n")
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: n must be an integer from 1 to" in done.stdout
    assert done.stdout.rstrip().endswith("ok")


@pytest.mark.parametrize("value", ["100000", str(2**40), "0", "two"])
def test_a_bad_environment_variable_is_refused_with_its_name(value):
    done = _run("import fastopt", FASTOPT_NUM_THREADS=value)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "ValueError: FASTOPT_NUM_THREADS must be a whole number from 1 to" in done.stderr


def test_a_good_environment_variable_is_used():
    done = _run("import fastopt; print(fastopt.get_num_threads())", FASTOPT_NUM_THREADS="2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == (2 if _dispatch.kernels.OPENMP else 1)
