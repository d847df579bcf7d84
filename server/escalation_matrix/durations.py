"""Durations, said one way everywhere.

The policy files write a duration as a number and a unit ("90s", "5m", "24h", "2d", "1w"):
``parse_duration`` reads that syntax and ``format_duration`` writes it back (policy files, JSON
data). Everything people or agents read goes through ``duration_label`` (an exact duration: a
target, a timer, a window: "2 min", "24 h", "immediately"), ``time_left`` (a countdown, rounded
down: "4 h 10 min", "under a minute") or ``measured_label`` (a measured time, one decimal:
"90 s", "12 min", "2.5 h", "3.1 d"); all three use the same unit words."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 604800


def parse_duration(value: Any) -> timedelta:
    """'90s', '5m', '24h', '2d', '1w' (or a number of seconds) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write a number and a unit, e.g. 30s, 5m, 24h, 2d, 1w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_duration(delta: timedelta) -> str:
    """The policy files' syntax, the inverse of ``parse_duration``: '5m', '24h', '1w', '90s'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", WEEK), ("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def duration_label(value: timedelta | float) -> str:
    """An exact duration for people: 'immediately', '2 min', '15 min', '24 h', '45 s', '3 d' (the
    largest unit that divides evenly; days from two days on, so a day reads '24 h')."""
    seconds = int(_seconds(value))
    if seconds == 0:
        return "immediately"
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size and seconds % size == 0 and not (unit == "d" and seconds < 2 * DAY):
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def time_left(value: timedelta | float) -> str:
    """A countdown, rounded down to the two largest units: '2 d 3 h', '4 h 10 min', '12 min',
    'under a minute'."""
    seconds = int(_seconds(value))
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes = rest // MINUTE
    parts = [f"{v} {u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "min")) if v]
    return " ".join(parts[:2]) or "under a minute"


def measured_label(value: timedelta | float | None) -> str:
    """A measured time (a median, a mean): '90 s', '12 min', '2.5 h', '3.1 d'; '-' when there is none."""
    if value is None:
        return "-"
    seconds = _seconds(value)
    if seconds < 2 * MINUTE:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / MINUTE:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} d"
