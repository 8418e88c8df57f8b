"""Argument types for the command lines (``python -m fastopt`` and its subcommands,
``python -m fastopt.distributed``): one wording for every number a user types."""
import argparse
import math


def _parse(text, convert, what):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _whole(text):
    try:
        return int(text)
    except ValueError:
        value = float(text)  # "1e5"; "2.5", "inf" and "nan" are refused below
        if not value.is_integer():
            raise
        return int(value)


def positive_int(text):
    """A whole number >= 1; ``1e5`` is accepted (sizes are often typed that way)."""
    value = _parse(text, _whole, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
