"""The ``unusual_pattern`` rule: a conversation, or the agent that owns it, whose share of risky
requests (those that escalated, stopped, waited or were handed off) over its latest requests jumps
against its own earlier history. The agent level reads every conversation the agent principal owns
(``conversation_owners``; a conversation with no owner is the local agent's). Read from the decision
log; nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .access import LOCAL_AGENT
from .decisions_policy import Unusual
from .store import Store

RISKY_ACTIONS = ("escalate", "stop", "handoff", "wait")
MAX_HISTORY = 1000  # the earlier requests read at most (the newest ones)

Level = Literal["conversation", "agent"]


@dataclass(frozen=True)
class Shift:
    history: float  # risky share of the earlier requests
    recent: float  # risky share of the latest ones
    requests: int
    level: Level = "conversation"  # which one jumped
    agent: str | None = None  # the agent principal, for the agent level

    def describe(self) -> str:
        where = ("this conversation" if self.level == "conversation"
                 else f"all conversations of agent {self.agent!r}")
        return (f"risky requests in {where} rose from {self.history:.0%} to {self.recent:.0%} "
                f"over its last requests ({self.requests} evaluated)")


def shift(store: Store, conversation_id: str, settings: Unusual) -> Shift | None:
    """The jump, when one level the policy watches (``scope``) has enough history and its risky
    share rose by ``jump``: the conversation first, then its agent."""
    if settings.scope in ("conversation", "both"):
        found = conversation_shift(store, conversation_id, settings)
        if found is not None:
            return found
    if settings.scope in ("agent", "both"):
        return agent_shift(store, conversation_id, settings)
    return None


def conversation_shift(store: Store, conversation_id: str, settings: Unusual) -> Shift | None:
    actions = store.decisions.conversation_actions(conversation_id, settings.recent + MAX_HISTORY)
    return _jump(actions, settings.recent, settings.min_history, settings.jump, "conversation")


def agent_shift(store: Store, conversation_id: str, settings: Unusual) -> Shift | None:
    """The agent principal that owns ``conversation_id``, over its latest requests in all its
    conversations against its own earlier ones."""
    owner = store.decisions.owner(conversation_id)
    agent = owner if owner is not None else LOCAL_AGENT.name
    actions = store.decisions.agent_actions(agent, LOCAL_AGENT.name, settings.agent_recent + MAX_HISTORY)
    found = _jump(actions, settings.agent_recent, settings.agent_min_history, settings.jump, "agent")
    return found if found is None else Shift(found.history, found.recent, found.requests, "agent", agent)


def _jump(actions: list[str], recent: int, min_history: int, jump: float, level: Level) -> Shift | None:
    """``actions`` newest first: the latest ``recent`` against the rest, when there are at least
    ``min_history`` of those and the risky share rose by ``jump``."""
    if len(actions) < recent + min_history:
        return None
    latest, earlier = actions[:recent], actions[recent:]
    now = sum(a in RISKY_ACTIONS for a in latest) / len(latest)
    before = sum(a in RISKY_ACTIONS for a in earlier) / len(earlier)
    if now - before < jump:
        return None
    return Shift(round(before, 4), round(now, 4), len(actions), level)
