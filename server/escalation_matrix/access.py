"""Who may do what. Three principals: the **agent** (an MCP or LangChain client: classifies,
escalates, relays the person's answer to its own conversation's open questions), the **person**
(answers inside the agent's call through elicitation or the chat frontend) and **operators**
(console and CLI: answer anything open, assign, raise, close, unlock, resolve hand-offs).

The rules here are pure functions over stored records, so every adapter applies the same ones."""

from __future__ import annotations

import hmac
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from .errors import StateError
from .queries import owners
from .queries.conversations import Task

Role = Literal["agent", "person", "operator"]
ROLES: tuple[str, ...] = ("agent", "person", "operator")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a name (written to the audit trail) and a role."""

    name: str
    role: Role
    personal: bool = True  # False for a token a team shares: the name is then a role, not a person

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


PRINCIPAL_KEY = "escalation_matrix.principal"  # where the HTTP layer puts the caller in the ASGI scope
LOCAL_AGENT = Principal("local-agent", "agent")  # stdio / in-process: the one agent that started the server


class AccessError(StateError):
    """The caller's role may not do this; the message says who can."""


def check_agent_answer(record: dict[str, Any], task: Task | None, conversation_id: str | None) -> None:
    """An agent relays the person's answer only to an open question of its own conversation that the
    agent itself raised; hand-offs, L4 escalations, locked tasks and operator/pipeline records are
    answered by a person in the console or with `escalation-matrix answer`."""
    esc = record["id"]
    if conversation_id is not None and record.get("conversation_id") != conversation_id:
        raise AccessError(f"escalation {esc} does not belong to conversation {conversation_id!r}; "
                          "an agent answers only its own conversation's questions")
    if record.get("source") != "agent":
        raise AccessError(f"escalation {esc} was raised by {record.get('source')}, not by an agent; "
                          "an operator answers it in the console or with `escalation-matrix answer`")
    if record.get("type") == "pattern":
        raise AccessError(f"escalation {esc} is a hand-off: the task went to a person, who answers it in the "
                          "console or with `escalation-matrix answer`; stop working on the task")
    if record.get("severity") == "L4" or (task is not None and task.get("locked")):
        raise AccessError(f"escalation {esc} is on a locked task (L4): only a person who reviewed it may answer "
                          "or unlock it; take no action on the task")


def check_reference(record: dict[str, Any], given: str) -> None:
    """An agent over HTTP names an escalation by its ``ref`` (128 random bits, returned with the
    escalation), never by its sequential id: ids that leave the server cannot be enumerated."""
    if not record.get("ref") or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                        record["ref"].encode("ascii")):
        raise AccessError(f"name the escalation by its ref (the `ref` field returned with it), not by {given!r}: "
                          "over HTTP an agent's references are unguessable; operators use the ESC id in the "
                          "console or the CLI")


def claim_conversation(conn: sqlite3.Connection, conversation_id: str, principal: Principal, now: str) -> None:
    """The first agent principal to use a conversation owns it; another agent principal is refused.
    Operators may act on every conversation."""
    if principal.is_operator:
        return
    if owners.claim(conn, conversation_id, principal.name, now) != principal.name:
        raise AccessError(f"conversation {conversation_id!r} belongs to another agent; use your own conversation "
                          "ids (each agent token has its own conversations)")


def check_owner(conn: sqlite3.Connection, conversation_id: str | None, principal: Principal) -> None:
    """Reading or answering inside a conversation: only its owner (or an operator)."""
    if principal.is_operator or conversation_id is None:
        return
    found = owners.owner(conn, conversation_id)
    owner = found if found is not None else LOCAL_AGENT.name  # made by the library itself, not over a token
    if owner != principal.name:
        raise AccessError(f"conversation {conversation_id!r} belongs to another agent; an agent reads and "
                          "answers only its own conversations")
