"""Argument types for the command lines (``python -m fastopt`` and its subcommands,
``python -m fastopt.distributed``): one wording for every number and name a user types.

Every bad argument is reported by argparse (``usage: ...`` and ``error: argument --x: ...``,
exit status 2), never by a traceback from deep inside: numbers are bounded here by what the
program can do with them (an array size by this machine's memory, a thread count by its cores),
and names are matched in any letter case.
"""
import argparse
import math
import os

from .. import _threads
from .._validation import MAX_COUNT

# MAX_COUNT: the largest array dimension NumPy takes (a C ssize_t on 64-bit platforms), the
# library's own bound on counts; a count beyond it can only fail later, inside NumPy or a
# kernel, with an OverflowError.
# More kernel threads than cores only time-slice them (each thread gets an equal share of the
# array), and OpenMP runtimes crash when asked for 100,000; 4x the cores leaves room to measure
# oversubscription.
THREADS_PER_CORE = 4


def _parse(text, convert, what):
    try:
        return convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _whole(text):
    try:
        return int(text)
    except ValueError:
        value = float(text)  # "1e5"; "2.5", "inf" and "nan" are refused below
        if not value.is_integer():
            raise
        return int(value)


def _count(text, maximum, why):
    value = _parse(text, _whole, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"must be at most {maximum:,} ({why}), got {text}")
    return value


def positive_int(text):
    """A whole number >= 1; ``1e5`` is accepted (sizes are often typed that way)."""
    return _count(text, MAX_COUNT, "the largest array size NumPy takes")


def physical_memory():
    """This machine's memory in bytes, or None where the platform does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(nbytes):
    return f"{nbytes / 2 ** 30:,.1f} GiB"


def array_items(bytes_per_item, what):
    """The type of a size whose arrays take ``bytes_per_item`` bytes per item in all (``what``
    says which): a whole number >= 1 whose arrays fit in this machine's memory."""
    memory = physical_memory()
    if memory is None:
        maximum, why = MAX_COUNT // bytes_per_item, "the largest array size NumPy takes"
    else:
        maximum = memory // bytes_per_item
        why = f"{what} take {bytes_per_item} bytes per item; this machine has {_gib(memory)}"

    def items(text):
        return _count(text, maximum, why)
    items.__name__ = "size"  # argparse names the type in some messages
    return items


def at_most(maximum, why):
    """The type of a whole number from 1 to ``maximum`` (``why`` says where the bound comes
    from)."""
    def count(text):
        return _count(text, maximum, why)
    return count


def max_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads(text):
    """A thread count: a whole number from 1 to ``THREADS_PER_CORE`` times the cores, and no
    more than fastopt starts (:func:`fastopt._threads.max_threads`)."""
    cores, most = max_cores(), _threads.max_threads()
    if most < THREADS_PER_CORE * cores:
        return _count(text, most, "the most threads fastopt starts here, set by OMP_THREAD_LIMIT")
    return _count(text, THREADS_PER_CORE * cores,
                  f"{THREADS_PER_CORE} x the {cores} cores this process may use; more threads "
                  f"only share them")


def seed(text):
    """A whole number >= 0."""
    value = _parse(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_real(text):
    """A finite number > 0."""
    value = _parse(text, float, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
    return value


def one_of(names):
    """The type of a name out of ``names`` (optimizers, runs, functions), in any letter case.

    Returns the name as ``names`` spells it; any other text is returned as typed, for
    argparse's ``choices=names`` to refuse with the list of names.
    """
    by_lower = {name.lower(): name for name in names}

    def name(text):
        return by_lower.get(text.lower(), text)
    return name


def at_least(n, what):
    """An ``action`` for a ``nargs="+"`` option that needs at least ``n`` values (``what``
    says why), refused by argparse like any bad value."""
    class AtLeast(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if len(values) < n:
                parser.error(f"argument {option_string}: needs at least {n} values ({what}), "
                             f"got {len(values)}: {' '.join(map(str, values))}")
            setattr(namespace, self.dest, values)
    return AtLeast
