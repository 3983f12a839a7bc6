"""Argument checks shared by every layer (this module imports nothing of ours)."""

from __future__ import annotations

import math
import reprlib
from numbers import Real
from typing import Optional

__all__ = ["check_maxsize", "check_seconds", "describe"]


def check_seconds(name: str, value: object) -> Optional[float]:
    """Return ``value`` as a float number of seconds, or None; raise for anything else.

    Every timeout in litestream goes through here, so that all of them take
    the same values: ``None`` (no limit) or a finite real number >= 0.

    Raises:
        TypeError: ``value`` is not a real number (a string, a bool...).
        ValueError: ``value`` is negative, NaN or infinite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{name} must be a number of seconds or None, not {type(value).__name__} {value!r}"
        )
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0 or None, not {value!r}")
    return seconds


def check_maxsize(maxsize: object) -> int:
    """Return a channel's ``maxsize`` (a whole number >= 0; 0: unbounded); ValueError otherwise."""
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 0:
        raise ValueError(f"maxsize must be a whole number >= 0 (0: unbounded), not {maxsize!r}")
    return maxsize


def describe(value: object) -> str:
    """Return ``value``'s type and a short repr, to say in an error what was passed."""
    return f"{type(value).__name__} {reprlib.repr(value)}"
