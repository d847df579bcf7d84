"""Preferences learned from answers (``preferences``): the recurring question a person (or an
organisation) answered, the recency-weighted tally of their answers, the escalations it learned
from, its use and its revocation. The arithmetic lives in ``preferences.py``; here is only how
the rows are found and kept. Writes run in the caller's transaction (the answer that teaches a
preference, the call it answers, the revocation) beside their audit entries."""

from __future__ import annotations

from typing import Any, TypedDict

from .base import Connection, Queries, Row
from .conversations import ISSUE_COLUMNS, IssueText, StoredIssue, stored_issue_row

LISTED = ("id, scope, scope_id, type, request, agent_question, answer, response_action, support, against, agreeing, "
          "answers, changes, auto_answers, last_escalation, created_at, updated_at, last_used_at, revoked_at, "
          "revoked_by")
UPDATABLE = {"tally", "support", "against", "agreeing", "answers", "updated_at", "last_escalation", "sources",
             "answer", "answer_key", "response_action", "changes"}


class PreferenceIssue(IssueText):
    """A preference's question, as same-issue matching reads it."""

    id: int


class ListedPreference(TypedDict):
    """A preference as listings show it (without its vectors, tally and sources)."""

    id: int
    scope: str
    scope_id: str
    type: str
    request: str | None
    agent_question: str | None
    answer: str
    response_action: str | None
    support: float
    against: float
    agreeing: int
    answers: int
    changes: int
    auto_answers: int
    last_escalation: str | None
    created_at: str
    updated_at: str
    last_used_at: str | None
    revoked_at: str | None
    revoked_by: str | None


class Preference(ListedPreference):
    """A whole preference row: also its question, the answer's key, the tally (JSON: answer key ->
    weight) and the escalations it learned from (JSON list of ids)."""

    question: str | None
    answer_key: str
    tally: str
    sources: str


class PreferenceQueries(Queries):
    def issue_of(self, conn: Connection, escalation_id: str) -> StoredIssue | None:
        """The issue of an answered escalation a preference may learn from (None without a vector)."""
        row = conn.execute(f"SELECT {ISSUE_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,)).fetchone()
        return None if row is None or row["question_vector"] is None else stored_issue_row(row)

    def candidates(self, conn: Connection, scope: str, scope_id: str, etype: str) -> list[PreferenceIssue]:
        """The holder's live (not revoked) preferences of this type, to match a question against."""
        rows = conn.execute(f"SELECT {ISSUE_COLUMNS} FROM preferences WHERE scope = ? AND scope_id = ? AND type = ? "
                            "AND revoked_at IS NULL", (scope, scope_id, etype)).fetchall()
        return [PreferenceIssue(id=row["id"], request=row["request"], question=row["question"],
                                agent_question=row["agent_question"], question_vector=row["question_vector"],
                                request_vector=row["request_vector"]) for row in rows]

    def get(self, conn: Connection, preference_id: int) -> Preference | None:
        row = conn.execute("SELECT * FROM preferences WHERE id = ?", (preference_id,)).fetchone()
        return None if row is None else _preference(row)

    def start(self, conn: Connection, scope: str, scope_id: str, etype: str, issue: StoredIssue, answer: str,
              answer_key: str, response_action: str | None, tally: str, escalation_id: str, sources: str,
              at: str) -> int:
        """A new preference from its first answer (one agreeing answer of weight 1); its id."""
        row = conn.execute(
            "INSERT INTO preferences (scope, scope_id, type, request, question, agent_question, request_vector, "
            "question_vector, answer, answer_key, response_action, tally, support, against, agreeing, answers, "
            "last_escalation, sources, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1.0, 0.0, 1, 1, ?, ?, ?, ?) RETURNING id",
            (scope, scope_id, etype, issue["request"], issue["question"], issue["agent_question"],
             issue["request_vector"], issue["question_vector"], answer, answer_key, response_action, tally,
             escalation_id, sources, at, at)).fetchone()
        return int(row[0])

    def update(self, conn: Connection, preference_id: int, fields: dict[str, Any]) -> None:
        """Set these columns (one of ``UPDATABLE`` each) after one more answer."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not an updatable preference column: {', '.join(sorted(unknown))}")
        sets = ", ".join(f"{column} = ?" for column in fields)
        conn.execute(f"UPDATE preferences SET {sets} WHERE id = ?", (*fields.values(), preference_id))

    def used(self, conn: Connection, preference_id: int, at: str) -> None:
        """The preference answered a call."""
        conn.execute("UPDATE preferences SET auto_answers = auto_answers + 1, last_used_at = ? WHERE id = ?",
                     (at, preference_id))

    def listing(self, scope: str | None = None, scope_id: str | None = None, revoked: bool = False,
                conn: Connection | None = None) -> list[ListedPreference]:
        """Preferences (of this scope / holder; revoked ones only when asked), newest change first."""
        where, params = ["1=1"], []
        if scope:
            where.append("scope = ?")
            params.append(scope)
        if scope_id:
            where.append("scope_id = ?")
            params.append(scope_id)
        if not revoked:
            where.append("revoked_at IS NULL")
        rows = self._read(conn).execute(f"SELECT {LISTED} FROM preferences WHERE {' AND '.join(where)} "
                                        "ORDER BY updated_at DESC, id DESC", params).fetchall()
        return [_listed(row) for row in rows]

    def listed(self, conn: Connection, preference_id: int) -> ListedPreference | None:
        row = conn.execute(f"SELECT {LISTED} FROM preferences WHERE id = ?", (preference_id,)).fetchone()
        return None if row is None else _listed(row)

    def revoke(self, conn: Connection, preference_id: int, at: str, by: str) -> None:
        conn.execute("UPDATE preferences SET revoked_at = ?, revoked_by = ? WHERE id = ?", (at, by, preference_id))

    def forget(self, conn: Connection, escalation_ids: list[str], at: str, erased: str) -> list[int]:
        """Erase the texts, vectors and tally of every preference learned from any of
        ``escalation_ids`` (they hold that person's words) and revoke it; the ids erased."""
        found: set[int] = set()
        for esc_id in escalation_ids:
            found.update(int(r[0]) for r in conn.execute("SELECT id FROM preferences WHERE sources LIKE ?",
                                                         (f'%"{esc_id}"%',)))
        for pref_id in sorted(found):
            conn.execute(
                "UPDATE preferences SET request = ?, question = NULL, agent_question = NULL, request_vector = NULL, "
                "question_vector = NULL, answer = ?, answer_key = ?, tally = '{}', "
                "revoked_at = COALESCE(revoked_at, ?), revoked_by = COALESCE(revoked_by, 'erasure') WHERE id = ?",
                (erased, erased, erased, at, pref_id))
        return sorted(found)


def _listed(row: Row) -> ListedPreference:
    return ListedPreference(
        id=row["id"], scope=row["scope"], scope_id=row["scope_id"], type=row["type"], request=row["request"],
        agent_question=row["agent_question"], answer=row["answer"], response_action=row["response_action"],
        support=row["support"], against=row["against"], agreeing=row["agreeing"], answers=row["answers"],
        changes=row["changes"], auto_answers=row["auto_answers"], last_escalation=row["last_escalation"],
        created_at=row["created_at"], updated_at=row["updated_at"], last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"], revoked_by=row["revoked_by"])


def _preference(row: Row) -> Preference:
    return Preference(**_listed(row), question=row["question"], answer_key=row["answer_key"], tally=row["tally"],
                      sources=row["sources"])
