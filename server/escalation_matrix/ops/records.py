"""Operator operations on escalation records: create a manual escalation,
assign, add notes, raise a level, answer, resolve, close, list and show. Every change is one
transaction that also writes the audit entry and queues its notifications."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InputError, StateError
from ..models import EscalationType, Severity
from ..queries.records import RecordFilter
from ..store import OPEN_STATUSES, STATUSES, Store, iso, parse_iso
from ..adaptive import record_outcome, recorded_outcome
from ..answers import respond, respond_action
from . import notify
from ..ops_policy import OperationsFile

if TYPE_CHECKING:
    from ..loader import Policy

class Operations:
    """What an operator (CLI, console, pipeline) does to escalation records."""

    def __init__(self, store: Store, policy: Policy):
        self.store = store
        self.policy = policy
        self.ops: OperationsFile = policy.operations
        store.redactor = self.ops.redaction.redactor()

    # --- create ---
    def create(self, reason: str, *, level: int | None = None, details: str | None = None, assigned_to: str | None = None,
               by: str = "operator", type: str = "decision", trigger: str | None = None,
               severity: str | None = None, conversation_id: str | None = None, task_id: str | None = None,
               source: str = "manual", request: str | None = None, question: str | None = None,
               suggestion: str | None = None) -> dict[str, Any]:
        if not reason or not reason.strip():
            raise InputError("give a --reason: one sentence saying why this needs a person")
        etype = _enum(EscalationType, type, "type")
        if etype is EscalationType.none:
            raise InputError("type 'none' means proceed; pick an escalation type such as decision or technical")
        trigger = trigger or self._default_trigger(etype)
        sev = _enum(Severity, severity, "severity") if severity else self._default_severity(etype, trigger)
        now = self.store.clock()
        if source == "agent":  # an agent escalation recorded here follows the routing table and its stages
            route = self.ops.routing[sev]
            level, assignee, due = level or route.level, assigned_to or route.assignee, now + route.respond_within
            self.ops.level(level)
        else:  # manual and pipeline records follow their level's response time
            level = level or 1
            target = self.ops.level(level)
            assignee, due = assigned_to or target.assignee, now + target.response_target
        fields = {
            "conversation_id": conversation_id, "task_id": task_id, "source": source, "type": etype.value,
            "trigger": trigger, "severity": sev.value, "level": level, "assignee": assignee,
            "status": "open", "reason": reason.strip(), "details": details, "request": request or details or reason,
            "question": question, "due_at": iso(due), "severity_at": iso(now),
            "suggestion": (suggestion or "").strip() or None,
        }
        with self.store.transaction() as conn:
            from .oversight_chain import current_suspension  # a suspended actor's replacement takes new items

            held = current_suspension(self.store, conn, fields["assignee"]) if fields["assignee"] else None
            if held:
                fields["assignee"] = held["replacement"]
            esc_id = self.store.insert_escalation(conn, fields)
            if conversation_id and task_id:
                self.store.task(conn, conversation_id, task_id)
            self.store.audit(conn, "escalation_created", by, escalation_id=esc_id, conversation_id=conversation_id,
                             task_id=task_id, data={"source": source, "reason": fields["reason"], "level": level,
                                                    "severity": sev.value, "assignee": fields["assignee"]})
            record = self.store.escalation(esc_id, conn)
            notify.announce(self.store, conn, self.ops, esc_id, fields["reason"])
            from .failsafe import apply_due  # L4 locks the task at once, not at the next sweep

            apply_due(self.store, conn, self.ops, record, now)
            return self.store.escalation(esc_id, conn)

    def _default_trigger(self, etype: EscalationType) -> str:
        return self.policy.matrix.default_trigger(etype)

    def _default_severity(self, etype: EscalationType, trigger: str) -> Severity:
        matrix = self.policy.matrix
        spec = matrix.types[etype].triggers.get(trigger)
        if spec is None:
            raise InputError(f"{trigger!r} is not a trigger of type {etype.value}; use one of "
                             f"{sorted(matrix.types[etype].triggers)}")
        return spec.severity or Severity.L2

    # --- changes ---
    def assign(self, esc_id: str, assignee: str, by: str = "operator", level: int | None = None) -> dict[str, Any]:
        if not assignee.strip():
            raise InputError("give the assignee, e.g. --assigned-to ed.allison@example.com")
        with self.store.transaction() as conn:
            record = self._open(conn, esc_id, "assign")
            from .oversight_chain import check_assignee

            check_assignee(self.store, conn, assignee.strip())
            changes: dict[str, Any] = {"assignee": assignee.strip()}
            if level is not None and level != record["level"]:
                target = self.ops.level(level)
                changes.update(level=level, due_at=iso(parse_iso(record["created_at"]) + target.response_target))
            return self._change(conn, record, "assigned", by, changes, f"assigned to {assignee.strip()}")

    def note(self, esc_id: str, text: str, by: str = "operator") -> dict[str, Any]:
        if not text.strip():
            raise InputError("the note is empty; write what you found")
        with self.store.transaction() as conn:
            record = self.store.escalation(esc_id, conn)
            self.store.notes.add(conn, esc_id, by, self.store.redactor.text(text.strip()))
            self.store.update_escalation(conn, esc_id)
            self.store.audit(conn, "note_added", by, escalation_id=esc_id, data={"text": text.strip()})
            return self.store.escalation(record["id"], conn)

    def raise_level(self, esc_id: str, new_level: int, reason: str, by: str = "operator",
                    assigned_to: str | None = None) -> dict[str, Any]:
        if not reason.strip():
            raise InputError("give a --reason for raising the level")
        with self.store.transaction() as conn:
            record = self._open(conn, esc_id, "raise")
            if new_level <= record["level"]:
                raise StateError(f"{esc_id} is already at level {record['level']}; --new-level must be higher "
                                 f"(levels: {sorted(self.ops.levels)})")
            target = self.ops.level(new_level)
            changes = {"level": new_level, "status": "raised", "raised_at": self.store.now(),
                       "assignee": assigned_to or target.assignee,
                       "due_at": iso(self.store.clock() + target.response_target)}
            return self._change(conn, record, "raised", by, changes,
                                f"raised to level {new_level} ({target.name}): {reason.strip()}",
                                extra={"reason": reason.strip()})

    def answer(self, esc_id: str, answer: str, by: str = "operator", necessary: bool | None = None,
               response_action: str | None = None) -> dict[str, Any]:
        """The same path as the agent's ``respond`` tool (a handed-off task comes back, the agent's
        next call proceeds with the answer), then the change is notified."""
        if not answer.strip():
            raise InputError("the answer is empty; write the decision the agent should apply")
        from .oversight import Oversight
        from .oversight_chain import check_answerer

        with self.store.transaction() as conn:
            self._open(conn, esc_id, "answer")
            check_answerer(self.store, conn, by, esc_id)
            respond(self.store, esc_id, answer, by, necessary=necessary,  # joins this transaction
                    response_action=response_action,
                    preferences=getattr(getattr(self.policy, "decisions", None), "preferences", None))
            updated = self.store.escalation(esc_id, conn)
            Oversight(self.store, self.policy).score_answer(conn, updated)  # the agent's suggestion vs this answer
            notify.enqueue(self.store, conn, self.ops, self.ops.notifications.on_change, "answered", updated,
                           f"answered by {by}: {answer.strip()}", updated.get("assignee") or "assignee")
            return updated

    def hold(self, esc_id: str, action: str, *, by: str = "operator", to: str | None = None,
             until: str | None = None, note: str | None = None) -> Any:
        """Defer or delegate an open escalation (it stays open and the agent waits), with the checks
        and the notification an answer gets: a suspended actor neither answers nor is handed the
        item, and the (new) assignee is told."""
        from .oversight_chain import check_answerer, check_assignee

        def check(conn: sqlite3.Connection, record: dict[str, Any], a: Any) -> None:
            check_answerer(self.store, conn, by, record["id"])
            if a.action == "delegate":
                check_assignee(self.store, conn, a.to)

        def then(conn: sqlite3.Connection, record: dict[str, Any], a: Any) -> None:
            event, text = (("delegated", f"delegated by {by} to {a.to}") if a.action == "delegate"
                           else ("deferred", f"deferred by {by} until {a.until}"))
            if a.note:
                text += f": {a.note}"
            notify.enqueue(self.store, conn, self.ops, self.ops.notifications.on_change, event, record, text,
                           record.get("assignee") or "assignee")

        return respond_action(self.store, esc_id, action, by, to=to, until=until, note=note, check=check, then=then)

    def resolve(self, esc_id: str, resolution: str, *, preventive_measures: str | None = None,
                lessons_learned: str | None = None, method: str | None = None, by: str = "operator",
                close: bool = False) -> dict[str, Any]:
        with self.store.transaction() as conn:
            record = self.store.escalation(esc_id, conn)
            if record.get("source") == "oversight":
                from .oversight_chain import check_answerer

                check_answerer(self.store, conn, by, esc_id)
            if record["status"] == "closed":
                raise StateError(f"{esc_id} is already closed (by {record['closed_by']} at {record['closed_at']})")
            resolution = (resolution or record.get("resolution") or "").strip()
            if not resolution:
                raise InputError("give a --resolution: what was done to resolve it")
            changes: dict[str, Any] = {
                "resolution": resolution, "resolution_method": method or record.get("resolution_method") or "manual",
                "preventive_measures": preventive_measures or record.get("preventive_measures"),
                "lessons_learned": lessons_learned or record.get("lessons_learned"),
                "status": "closed" if close else "resolved",
            }
            if close:
                changes.update(closed_at=self.store.now(), closed_by=by)
            if not record.get("resolved_at"):
                changes["resolved_at"] = self.store.now()
            event = "closed" if close else "resolved"
            return self._change(conn, record, event, by, changes, f"{event}: {resolution}")

    def close(self, esc_id: str, resolution: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.resolve(esc_id, resolution or "", close=True, **kwargs)

    def _open(self, conn: sqlite3.Connection, esc_id: str, verb: str) -> dict[str, Any]:
        record = self.store.escalation(esc_id, conn)
        if record["status"] not in OPEN_STATUSES:
            raise StateError(f"cannot {verb} {esc_id}: it is {record['status']}; only open escalations "
                             f"({', '.join(OPEN_STATUSES)}) can be changed this way")
        return record

    def _change(self, conn: sqlite3.Connection, record: dict[str, Any], event: str, by: str,
                changes: dict[str, Any], text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        self.store.update_escalation(conn, record["id"], **changes)
        before = {k: record.get(k) for k in changes if k not in ("raised_at", "answered_at", "closed_at")}
        self.store.audit(conn, f"escalation_{event}", by, escalation_id=record["id"],
                         conversation_id=record.get("conversation_id"), task_id=record.get("task_id"),
                         data={"before": before, "after": {k: changes[k] for k in before}, **(extra or {})})
        updated = self.store.escalation(record["id"], conn)
        notify.enqueue(self.store, conn, self.ops, self.ops.notifications.on_change, event, updated, text,
                       updated.get("assignee") or "assignee")
        return updated

    # --- queries ---
    def list(self, *, status: str | None = None, level: int | None = None, type: str | None = None,
             assignee: str | None = None, severity: str | None = None, older_than: timedelta | None = None,
             now: datetime | None = None, limit: int | None = 200) -> list[dict[str, Any]]:
        statuses: tuple[str, ...] | None = None
        if status == "active":
            statuses = OPEN_STATUSES
        elif status:
            if status not in STATUSES:
                raise InputError(f"unknown status {status!r}; use one of active, {', '.join(STATUSES)}")
            statuses = (status,)
        match = RecordFilter(
            statuses=statuses, level=level, assignee=assignee,
            type=_enum(EscalationType, type, "type").value if type else None,
            severity=_enum(Severity, severity, "severity").value if severity else None,
            created_by=iso((now or self.store.clock()) - older_than) if older_than is not None else None)
        return self.store.find_escalations(match, "newest", limit=limit)

    def show(self, esc_id: str) -> dict[str, Any]:
        """The record with its notes, fail-safe stages, notifications and audit entries."""
        record = self.store.escalation(esc_id)
        record["notes"] = self.store.notes.of_escalation(esc_id)
        record["failsafes"] = self.store.failsafe.of_escalation(esc_id)
        record["notifications"] = notify.outbox(self.store, escalation_id=esc_id)
        record["audit"] = [{k: e[k] for k in ("seq", "at", "actor", "action", "data")}
                           for e in self.store.audit_entries(escalation_id=esc_id)]
        record["outcome"] = recorded_outcome(self.store, esc_id)  # necessary / unnecessary, once marked
        if record.get("source") == "oversight":  # the actor, rule and chain position of an oversight ticket
            from .oversight import Oversight

            record["oversight"] = Oversight(self.store, self.policy).ticket(esc_id)
        return record

    def mark_outcome(self, esc_id: str, verdict: str, by: str, note: str | None = None) -> None:
        """Mark whether asking a person was needed (necessary / unnecessary), once: a second mark is
        refused (an operator changes one with `escalation-matrix outcome`)."""
        if verdict not in ("necessary", "unnecessary"):
            raise InputError(f"the outcome must be necessary or unnecessary, got {verdict!r}")
        with self.store.transaction() as conn:
            record_outcome(self.store, conn, verdict, by, escalation_id=esc_id, note=note, replace=False)


def _enum(kind: Any, value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InputError(f"unknown {what} {value!r}; use one of {', '.join(m.value for m in kind)}") from None
