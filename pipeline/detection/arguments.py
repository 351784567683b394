"""Checks for the detectors' arguments, so that every bad value gets a message naming the
argument and what was expected (instead of a raw ``TypeError`` from deep inside).

Each function returns the value in its checked form (a float, a tuple of floats) or raises
``ValueError``. Booleans are refused where a number is expected: ``True`` is an int in Python,
but ``min_face_size=True`` is surely a mistake.
"""

from __future__ import annotations

import numbers


def _describe(value) -> str:
    kind = type(value).__name__
    return f"{value!r} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def number(name: str, value) -> float:
    """value as a float, if it is a real number (int, float, NumPy scalar), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number; got {_describe(value)}")
    return float(value)


def positive(name: str, value, unit: str = "") -> float:
    """A number > 0 (``unit`` is named in the message, e.g. "pixels")."""
    value = number(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0{' ' + unit if unit else ''}; got {value!r}")
    return value


def fraction(name: str, value) -> float:
    """A number strictly between 0 and 1 (e.g. the pyramid factor)."""
    value = number(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive); got {value!r}")
    return value


def probabilities(name: str, values, count: int = 3) -> tuple[float, ...]:
    """A sequence of ``count`` numbers in [0, 1], one per stage, as a tuple of floats."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be {count} probabilities, one per stage, e.g. (0.6, 0.7, 0.7); "
                         f"got {_describe(values)}")
    if len(values) != count:
        raise ValueError(f"{name} must be {count} probabilities, one per stage; got {len(values)}: {values!r}")
    checked = tuple(number(f"{name}[{i}]", v) for i, v in enumerate(values))
    for i, v in enumerate(checked):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}[{i}] must be a probability between 0 and 1; got {v!r}")
    return checked


def positive_int_or_none(name: str, value) -> int | None:
    """None, or an integer >= 1 (e.g. a number of worker threads)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be None or an integer >= 1; got {_describe(value)}")
    return int(value)
