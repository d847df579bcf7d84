"""seed 000's ``unusual_pattern``: a conversation whose share of risky requests (those that
escalated, stopped, waited or were handed off) over its latest requests jumps against its own
earlier history. Read from the decision log; nothing is written."""

from __future__ import annotations

from dataclasses import dataclass

from .decisions_policy import Unusual
from .store import Store

RISKY_ACTIONS = ("escalate", "stop", "handoff", "wait")
MAX_HISTORY = 1000  # the earlier requests read at most (the newest ones)


@dataclass(frozen=True)
class Shift:
    history: float  # risky share of the earlier requests
    recent: float  # risky share of the latest ones
    requests: int

    def describe(self) -> str:
        return (f"risky requests in this conversation rose from {self.history:.0%} to {self.recent:.0%} "
                f"over its last requests ({self.requests} evaluated)")


def shift(store: Store, conversation_id: str, settings: Unusual) -> Shift | None:
    """The jump, when the conversation has enough history and its risky share rose by ``jump``."""
    rows = store._conn().execute(
        "SELECT action FROM decisions WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
        (conversation_id, settings.recent + MAX_HISTORY)).fetchall()
    if len(rows) < settings.recent + settings.min_history:
        return None
    latest, earlier = rows[:settings.recent], rows[settings.recent:]
    recent = sum(r[0] in RISKY_ACTIONS for r in latest) / len(latest)
    history = sum(r[0] in RISKY_ACTIONS for r in earlier) / len(earlier)
    if recent - history < settings.jump:
        return None
    return Shift(round(history, 4), round(recent, 4), len(rows))
