"""Thread count for the kernels: ``FASTOPT_NUM_THREADS``, ``set_num_threads``, ``num_threads``.

One process-wide setting, read by every kernel at call time. Kernels split work over threads only
above a size they measured as worth it; the result never depends on the count (each element is
computed the same way wherever the split falls).

A serial build (compiled without OpenMP: ``fastopt.show_config()`` says so) runs every kernel on
one thread. ``set_num_threads(n)`` and ``FASTOPT_NUM_THREADS`` are still validated and accepted,
so that the same code runs on every build, but ``get_num_threads()`` reports 1 there.

Limits. A count must be from 1 to :func:`max_threads` (1024, or OpenMP's ``OMP_THREAD_LIMIT``
when lower): a larger one is refused with a ValueError, not clamped, from the function and the
environment variable alike, because asking for 100000 threads is a mistake worth hearing about
(it used to crash the process at the next large update). The kernels refuse it too.
"""
import contextlib
import os

from . import _dispatch
from . import _validation as _v

ENV_VAR = "FASTOPT_NUM_THREADS"


def _machine_cores():
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_threads():
    """The largest thread count accepted: 1024, or OpenMP's ``OMP_THREAD_LIMIT`` if lower.

    Returns
    -------
    int
    """
    return min(module.MAX_THREADS for module in _dispatch.MODULES.values())


HARD_MAX = _dispatch.kernels.HARD_MAX_THREADS


def _default():
    return min(_machine_cores(), max_threads())


def _from_environment():
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return _default()
    return _v.check_num_threads_text(text, ENV_VAR, max_threads(), _default())


def set_num_threads(n):
    """Set how many threads large kernels may use (process-wide).

    Parameters
    ----------
    n : int
        From 1 to :func:`max_threads`. The default is ``FASTOPT_NUM_THREADS`` if set, else the
        cores this process may use.

    Raises
    ------
    TypeError, ValueError
        ``n`` is not an integer, or is out of range (the count is then unchanged).
    """
    _set_everywhere(_v.check_num_threads(n, "n", max_threads(), _machine_cores()))


def _set_everywhere(n):
    for module in _dispatch.MODULES.values():  # each variant keeps its own count
        module.set_num_threads(n if module.OPENMP else 1)


def get_num_threads():
    """Return the number of threads large kernels may use."""
    return _dispatch.kernels.get_num_threads()


@contextlib.contextmanager
def num_threads(n):
    """Context manager: use ``n`` threads inside the block, then restore the previous count.

    Examples
    --------
    >>> import fastopt
    >>> with fastopt.num_threads(1):
    ...     fastopt.get_num_threads()
    1
    """
    previous = get_num_threads()
    set_num_threads(n)  # validated before the block runs
    try:
        yield
    finally:
        _set_everywhere(previous)


_set_everywhere(_from_environment())
