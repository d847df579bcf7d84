"""A clock the tests move by hand, for timers, reports and response targets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


class Clock:
    """Callable like ``utcnow``; ``at(minutes=16)`` jumps to T0 plus that much."""

    def __init__(self, moment: datetime = T0):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def at(self, **delta: float) -> datetime:
        self.moment = T0 + timedelta(**delta)
        return self.moment
