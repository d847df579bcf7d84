"""The conversation guard's queries: the open and answered escalations of a conversation that a
new call may repeat or re-ask, the task states, and the fail-safe news not yet told to the agent.
The guard runs them inside its decision's transaction (check, then write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from .base import OPEN_STATUSES, Connection, Queries, Row, marks

ISSUE_COLUMNS = "id, request, question, agent_question, question_vector, request_vector"


class IssueText(TypedDict):
    """What identifies a stored issue: its texts and vectors (``matching.stored_issue`` reads it)."""

    request: str | None
    question: str | None
    agent_question: str | None
    question_vector: bytes
    request_vector: bytes | None


class StoredIssue(IssueText):
    """A stored escalation's issue."""

    id: str


class Task(TypedDict):
    """A conversation's task and its state (``Store.task``); the guard updates ``escalation_count``
    on its copy as it decides."""

    conversation_id: str
    task_id: str
    escalation_count: int
    locked: int
    locked_reason: str | None
    locked_by_escalation: str | None
    locked_at: str | None
    handed_off: int
    awaiting_guidance: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class EscalationStatus:
    id: str
    status: str


@dataclass(frozen=True)
class UntoldStage:
    """A fail-safe stage that fired on an open escalation of the conversation, not yet told to the agent."""

    escalation_id: str
    stage: str
    task_id: str


@dataclass(frozen=True)
class TaskState:
    task_id: str
    locked: bool
    locked_by_escalation: str | None
    handed_off: bool
    awaiting_guidance: bool


class ConversationQueries(Queries):
    def latest_handoff(self, conn: Connection, conversation_id: str, task_id: str) -> EscalationStatus | None:
        """The task's newest hand-off (``pattern``) escalation and its status, if it has one."""
        row = conn.execute(
            "SELECT id, status FROM escalations WHERE conversation_id = ? AND task_id = ? AND type = 'pattern' "
            "ORDER BY year DESC, seq DESC LIMIT 1", (conversation_id, task_id)).fetchone()
        return None if row is None else EscalationStatus(row["id"], row["status"])

    def oldest_open_l3(self, conn: Connection, conversation_id: str, task_id: str) -> str | None:
        """The id of the task's oldest open L3 escalation (not a hand-off): it pauses the task."""
        row = conn.execute(
            f"SELECT id FROM escalations WHERE conversation_id = ? AND task_id = ? AND severity = 'L3' "
            f"AND type != 'pattern' AND status IN ({marks(OPEN_STATUSES)}) ORDER BY year, seq LIMIT 1",
            (conversation_id, task_id, *OPEN_STATUSES)).fetchone()
        return None if row is None else str(row["id"])

    def answered_issues(self, conn: Connection, conversation_id: str) -> list[StoredIssue]:
        """The conversation's answered escalations, newest answer first (a new call may re-ask one)."""
        rows = conn.execute(
            f"SELECT {ISSUE_COLUMNS} FROM escalations WHERE conversation_id = ? AND answer IS NOT NULL "
            "AND question_vector IS NOT NULL ORDER BY answered_at DESC", (conversation_id,)).fetchall()
        return [stored_issue_row(row) for row in rows]

    def open_issues(self, conn: Connection, conversation_id: str, task_id: str) -> list[StoredIssue]:
        """The task's open escalations of any type but hand-off (a new call may repeat one)."""
        rows = conn.execute(
            f"SELECT {ISSUE_COLUMNS} FROM escalations WHERE conversation_id = ? AND task_id = ? "
            f"AND type != 'pattern' AND status IN ({marks(OPEN_STATUSES)}) AND question_vector IS NOT NULL",
            (conversation_id, task_id, *OPEN_STATUSES)).fetchall()
        return [stored_issue_row(row) for row in rows]

    def count_repeat(self, conn: Connection, escalation_id: str) -> None:
        """The agent asked about this open escalation again."""
        conn.execute("UPDATE escalations SET repeat_count = repeat_count + 1, updated_at = ? WHERE id = ?",
                     (self._now(), escalation_id))

    def escalation_ids(self, conn: Connection, conversation_id: str, task_id: str) -> list[str]:
        """The ids of every escalation of the task, oldest first."""
        rows = conn.execute("SELECT id FROM escalations WHERE conversation_id = ? AND task_id = ? ORDER BY year, seq",
                            (conversation_id, task_id))
        return [str(row[0]) for row in rows]

    def untold_stages(self, conn: Connection, conversation_id: str) -> list[UntoldStage]:
        """Fail-safe stages fired on the conversation's open escalations and not yet told, in the order they fired."""
        rows = conn.execute(
            f"SELECT f.escalation_id, f.stage, e.task_id FROM failsafe_events f JOIN escalations e "
            f"ON e.id = f.escalation_id WHERE e.conversation_id = ? AND f.told_at IS NULL "
            f"AND e.status IN ({marks(OPEN_STATUSES)}) ORDER BY f.at, f.rowid",
            (conversation_id, *OPEN_STATUSES)).fetchall()
        return [UntoldStage(row["escalation_id"], row["stage"], row["task_id"]) for row in rows]

    def mark_told(self, conn: Connection, escalation_id: str, stage: str) -> None:
        conn.execute("UPDATE failsafe_events SET told_at = ? WHERE escalation_id = ? AND stage = ?",
                     (self._now(), escalation_id, stage))

    def find_task(self, conn: Connection, conversation_id: str, task_id: str) -> TaskState | None:
        """One task of the conversation, if any call named it."""
        row = conn.execute(
            "SELECT task_id, locked, locked_by_escalation, handed_off, awaiting_guidance FROM tasks "
            "WHERE conversation_id = ? AND task_id = ?", (conversation_id, task_id)).fetchone()
        return None if row is None else _task(row)

    def locked(self, pairs: set[tuple[str, str]], conn: Connection | None = None) -> dict[tuple[str, str], bool]:
        """Whether each (conversation, task) is locked (an unknown task is not)."""
        reader, found = self._read(conn), {}
        for conversation_id, task_id in pairs:
            row = reader.execute("SELECT locked FROM tasks WHERE conversation_id = ? AND task_id = ?",
                                 (conversation_id, task_id)).fetchone()
            found[(conversation_id, task_id)] = bool(row and row[0])
        return found

    def tasks(self, conversation_id: str, conn: Connection | None = None) -> list[TaskState]:
        """The conversation's tasks, by task id."""
        rows = self._read(conn).execute(
            "SELECT task_id, locked, locked_by_escalation, handed_off, awaiting_guidance FROM tasks "
            "WHERE conversation_id = ? ORDER BY task_id", (conversation_id,))
        return [_task(row) for row in rows]


def task_row(row: Row) -> Task:
    return Task(conversation_id=row["conversation_id"], task_id=row["task_id"],
                escalation_count=row["escalation_count"], locked=row["locked"], locked_reason=row["locked_reason"],
                locked_by_escalation=row["locked_by_escalation"], locked_at=row["locked_at"],
                handed_off=row["handed_off"], awaiting_guidance=row["awaiting_guidance"],
                created_at=row["created_at"], updated_at=row["updated_at"])


def _task(row: Row) -> TaskState:
    return TaskState(row["task_id"], bool(row["locked"]), row["locked_by_escalation"], bool(row["handed_off"]),
                     bool(row["awaiting_guidance"]))


def stored_issue_row(row: Row) -> StoredIssue:
    return StoredIssue(id=row["id"], request=row["request"], question=row["question"],
                       agent_question=row["agent_question"], question_vector=row["question_vector"],
                       request_vector=row["request_vector"])
