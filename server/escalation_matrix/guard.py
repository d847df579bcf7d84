"""The conversation rules of seed 002 §5 on durable state: escalate once, never re-ask, hand a
stuck task to a person, stop and lock on L4.

Every decision runs in one ``BEGIN IMMEDIATE`` transaction (check, then write), so the rules hold
for many threads and for several server processes on one SQLite file. Embeddings are computed
before the transaction opens, so the write lock is held for microseconds, not for a model call."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import guard_pending as pending
from . import guard_results as out
from .access import check_agent_answer
from .matching import (Issue, has_capability, minor_preference, most_similar, needed_capabilities,
                       normalise_capability)
from .classifier import Classifier
from .errors import NotFoundError, StateError
from .loader import Policy
from .messages import escalation_text
from .models import Action, Classification, EscalationResult, EscalationType, Severity
from .store import OPEN_STATUSES, Store, iso

DEFAULT_TASK = "default"
L1_TYPES = (EscalationType.clarification, EscalationType.conflict, EscalationType.context)
MATCH_COLUMNS = "id, request, question, agent_question, question_vector, request_vector"
OUT_OF_SCOPE = (EscalationType.scope, EscalationType.technical, EscalationType.compliance, EscalationType.safety)
@dataclass
class Ask:
    """One escalation request, fully worked out before the transaction opens."""

    tool: str
    conversation_id: str
    task_id: str
    request: str
    classification: Classification
    vector: np.ndarray
    request_vector: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    question: str | None = None
    options: list[str] = field(default_factory=list)
    details: str | None = None
    missing: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    minor: Classification | None = None
    etype: EscalationType = EscalationType.none
    trigger: str = "clear_request"
    severity: Severity | None = None
    in_scope: bool | None = None
    classified_as: EscalationType | None = None  # the classifier's type, when the agent insisted on another

    def issue(self) -> Issue:
        asked = self.question is not None
        return Issue(self.request, self.request_vector, self.question, self.vector if asked else None)


class ConversationGuard:
    """Library API behind the MCP and LangChain tools. Thread-safe: the store keeps a connection
    per thread and the classifier is read-only."""

    def __init__(self, policy: Policy, classifier: Classifier, store: Store):
        self.policy = policy
        self.classifier = classifier
        self.store = store
        self.settings = policy.conversation
        from .ops.policy import operations_policy

        store.redactor = operations_policy(policy).redaction.redactor()
        self.policy_status: dict[str, Any] = {"ok": True, "problems": [], "reloads": 0}

    def swap(self, policy: Policy, classifier: Classifier) -> None:
        """Serve ``policy`` from now on (hot reload); calls already running finish on the old one."""
        from .ops.policy import operations_policy

        self.policy, self.classifier, self.settings = policy, classifier, policy.conversation
        self.store.redactor = operations_policy(policy).redaction.redactor()

    # --- read-only ---
    def classify(self, request: str, context: dict | None = None) -> EscalationResult:
        """Records nothing but the decision itself: an evaluated request counts in the KPI denominator."""
        request = out.text(request, "request", self.settings.max_request_chars)
        result = out.from_classification(self.classifier.classify(request, out.context_mapping(context)))
        with self.store.transaction() as conn:
            self._record(conn, "classify", result, "proceed")
        return result

    def history(self, conversation_id: str) -> list[dict]:
        conversation_id = out.identifier(conversation_id, "conversation_id")
        records = self.store.escalations("conversation_id = ?", (conversation_id,), order="created_at, year, seq")
        if not records and not self.store.db["tasks"].count_where("conversation_id = ?", [conversation_id]):
            raise NotFoundError(f"conversation {conversation_id!r} is unknown: it has made no escalate, clarify "
                                "or check_scope call; pass the conversation_id those calls used")
        return records

    # --- the agent tools ---
    def escalate(self, conversation_id: str, request: str, task_id: str | None = None, question: str | None = None,
                 options: list[str] | None = None, details: str | None = None,
                 context: dict | None = None, type: str | None = None) -> EscalationResult:
        """``type``: the agent insists this needs a person, as this type, whatever the classifier says."""
        insisted = out.agent_type(type)
        ask = self._ask("escalate", conversation_id, request, task_id, question, options, details, None, context)
        rc, qc = self._classify(ask)
        # the question's own type counts ("Postgres or MySQL?" is a decision even when the request
        # reads as scope); a request that stops the task (L4) always wins
        chosen = qc if qc is not None and qc.escalate and rc.severity is not Severity.L4 else rc
        ask.classification = chosen
        if insisted is not None and not (rc.severity is Severity.L4 and insisted is not rc.type):
            ask.etype = insisted
            ask.trigger = chosen.trigger if chosen.type is insisted else self.policy.matrix.default_trigger(insisted)
            ask.severity = (chosen.severity if chosen.type is insisted
                            else self.policy.matrix.trigger(insisted, ask.trigger).severity)
            if chosen.type is not insisted:
                ask.classified_as = chosen.type
            return self._decide(ask)
        ask.minor = minor_preference(qc, rc)
        if chosen.escalate:
            ask.etype, ask.trigger, ask.severity = chosen.type, chosen.trigger, chosen.severity
        return self._decide(ask)

    def clarify(self, conversation_id: str, request: str, question: str, task_id: str | None = None,
                options: list[str] | None = None, missing: str | None = None) -> EscalationResult:
        ask = self._ask("clarify", conversation_id, request, task_id, question, options, None, missing, None,
                        question_required=True)
        rc, qc = self._classify(ask)
        ask.minor = minor_preference(qc, rc)
        if rc.severity is Severity.L4:  # safety first: distress stops the task even on the L1 path
            ask.classification, ask.etype, ask.trigger, ask.severity = rc, rc.type, rc.trigger, rc.severity
            return self._decide(ask)
        if ask.missing:
            etype = EscalationType.context
        else:
            etype = next((c.type for c in (rc, qc) if c is not None and c.type in L1_TYPES),
                         EscalationType.clarification)
        ask.classification = rc if rc.type is etype else (qc if qc is not None and qc.type is etype else rc)
        ask.etype, ask.trigger = etype, self._trigger(etype, ask.classification)
        ask.severity = self.policy.matrix.trigger(etype, ask.trigger).severity
        return self._decide(ask)

    def check_scope(self, request: str, conversation_id: str | None = None,
                    capabilities: list[str] | None = None) -> EscalationResult:
        request = out.text(request, "request", self.settings.max_request_chars)
        conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
        declared = None if capabilities is None else out.options_list(capabilities, self.settings)
        [c], vectors = self.classifier.classify_encoded([request])
        if declared is not None and c.type not in OUT_OF_SCOPE:
            lacking = needed_capabilities(request) - {normalise_capability(n) for n in declared}
            if lacking:
                c = self._as_technical(c, sorted(lacking))
        in_scope = c.type not in OUT_OF_SCOPE or (
            c.type is EscalationType.technical and has_capability(request, declared or []))
        if conversation_id is None:
            if in_scope:
                result = out.proceed(c, None, None, in_scope=True)
            else:
                result = out.from_classification(c, in_scope=False, instruction=_scope_instruction(c.severity))
            with self.store.transaction() as conn:
                self._record(conn, "check_scope", result, "proceed")  # no conversation: no record is created
            return result
        if in_scope:
            result = out.proceed(c, conversation_id, DEFAULT_TASK, in_scope=True)
            with self.store.transaction() as conn:
                self._record(conn, "check_scope", result, "proceed")
            return result
        ask = Ask("check_scope", conversation_id, DEFAULT_TASK, request, c, vectors[0], vectors[0], etype=c.type,
                  trigger=c.trigger, severity=c.severity, in_scope=False)
        return self._decide(ask)

    def _as_technical(self, c: Classification, lacking: list[str]) -> Classification:
        etype = EscalationType.technical
        trigger = self.policy.matrix.default_trigger(etype)
        severity = self.policy.matrix.trigger(etype, trigger).severity
        text = escalation_text(self.policy.matrix, self.policy.phrases, etype, trigger, severity,  # type: ignore[arg-type]
                               c.request, details=f"This needs {', '.join(lacking)}, which I do not have.")
        return c.model_copy(update={
            "type": etype, "trigger": trigger, "severity": severity, "decided_by": "capability",
            "phrase": text.phrase, "message": self.policy.phrases.message("md", **text.variables()),
            "options": text.options, "default": None})

    def respond(self, escalation_id: str, answer: str, responder: str = "operator", *, role: str = "operator",
                conversation_id: str | None = None) -> EscalationResult:
        return respond(self.store, escalation_id, answer, responder, self.settings.max_request_chars, role=role,
                       conversation_id=conversation_id)

    def unlock_task(self, conversation_id: str, task_id: str, by: str, reason: str) -> None:
        unlock_task(self.store, conversation_id, task_id, by, reason)

    # --- internals ---
    def _ask(self, tool: str, conversation_id: Any, request: Any, task_id: Any, question: Any, options: Any,
             details: Any, missing: Any, context: Any, question_required: bool = False) -> Ask:
        s = self.settings
        ask = Ask(
            tool=tool,
            conversation_id=out.identifier(conversation_id, "conversation_id"),  # type: ignore[arg-type]
            task_id=out.identifier(task_id, "task_id", required=False) or DEFAULT_TASK,
            request=out.text(request, "request", s.max_request_chars),  # type: ignore[arg-type]
            classification=None,  # type: ignore[arg-type]  (set by the caller)
            vector=np.zeros(0, dtype=np.float32),
            question=out.text(question, "question", s.max_question_chars, required=question_required),
            options=out.options_list(options, s),
            details=out.text(details, "details", s.max_request_chars, required=False),
            missing=out.text(missing, "missing", s.max_question_chars, required=False),
            context=out.context_mapping(context),
        )
        return ask

    def _classify(self, ask: Ask) -> tuple[Classification, Classification | None]:
        texts = [ask.request] + ([ask.question] if ask.question else [])
        results, vectors = self.classifier.classify_encoded(texts, [ask.context] + ([{}] if ask.question else []))
        # the issue is identified by the question when there is one, else by the request
        ask.vector, ask.request_vector = vectors[-1], vectors[0]
        return results[0], (results[1] if ask.question else None)

    def _trigger(self, etype: EscalationType, c: Classification) -> str:
        return c.trigger if c.type is etype else self.policy.matrix.default_trigger(etype)

    def _decide(self, ask: Ask) -> EscalationResult:
        with self.store.transaction() as conn:
            task = self.store.task(conn, ask.conversation_id, ask.task_id)
            steps: tuple[tuple[str, Callable[[], EscalationResult | None]], ...] = (
                ("refused", lambda: self._locked(conn, task)), ("refused", lambda: self._handed_off(conn, task)),
                ("refused", lambda: self._paused(conn, ask)), ("reasked", lambda: self._reasked(conn, ask)),
                ("proceed", lambda: self._proceed(ask)), ("repeated", lambda: self._repeated(conn, ask)),
                ("created", lambda: self._create(conn, ask, task)))
            for outcome, step in steps:
                found = step()
                if found is not None:
                    result = found
                    break
            if ask.in_scope is not None:
                result = result.model_copy(update={"in_scope": ask.in_scope})
            if ask.classified_as is not None:
                result = result.model_copy(update={"classified_as": ask.classified_as})
            notices = self._notices(conn, ask.conversation_id)
            if notices:
                result = result.model_copy(update={"notices": notices})
            self._record(conn, ask.tool, result, outcome)
        return result

    def _record(self, conn: sqlite3.Connection, tool: str, result: EscalationResult, outcome: str) -> None:
        self.store.record_decision(
            conn, tool, result.type.value, result.action.value,
            severity=result.severity.value if result.severity else None,
            conversation_id=result.conversation_id, task_id=result.task_id, escalation_id=result.escalation_id,
            outcome=outcome)

    def _locked(self, conn: sqlite3.Connection, task: dict) -> EscalationResult | None:
        if not task["locked"]:
            return None
        record = self.store.escalation(task["locked_by_escalation"], conn)
        return out.from_record(record, Action.stop, out.LOCKED.format(id=record["id"]))

    def _handed_off(self, conn: sqlite3.Connection, task: dict) -> EscalationResult | None:
        if not task["handed_off"]:
            return None
        row = conn.execute(
            "SELECT id, status FROM escalations WHERE conversation_id = ? AND task_id = ? AND type = 'pattern' "
            "ORDER BY year DESC, seq DESC LIMIT 1", (task["conversation_id"], task["task_id"])).fetchone()
        if row is None or row["status"] not in OPEN_STATUSES:  # the person closed it: the task is back
            self.store.update_task(conn, task["conversation_id"], task["task_id"], handed_off=0, escalation_count=0)
            task["escalation_count"] = 0
            return None
        record = self.store.escalation(row["id"], conn)
        return out.from_record(record, Action.handoff, out.HANDOFF.format(id=record["id"]))

    def _paused(self, conn: sqlite3.Connection, ask: Ask) -> EscalationResult | None:
        """An open L3 escalation pauses its task until a person answers; only an L4 gets through."""
        if ask.severity is Severity.L4:
            return None
        marks = ", ".join("?" * len(OPEN_STATUSES))
        row = conn.execute(
            f"SELECT id FROM escalations WHERE conversation_id = ? AND task_id = ? AND severity = 'L3' "
            f"AND type != 'pattern' AND status IN ({marks}) ORDER BY year, seq LIMIT 1",
            (ask.conversation_id, ask.task_id, *OPEN_STATUSES)).fetchone()
        if row is None or self._open_match(conn, ask) is not None:  # the same issue again is a repeat
            return None
        record = self.store.escalation(row["id"], conn)
        return out.from_record(record, Action.wait, out.WAIT.format(id=row["id"]))

    def _notices(self, conn: sqlite3.Connection, conversation_id: str) -> list[str]:
        return pending.notices(self.store, conn, self.policy, conversation_id)

    def pending(self, conversation_id: str) -> dict[str, Any]:
        """What the conversation is waiting for (the ``escalation://pending/{id}`` resource)."""
        return pending.pending(self.store, conversation_id)

    def _reasked(self, conn: sqlite3.Connection, ask: Ask) -> EscalationResult | None:
        rows = conn.execute(
            f"SELECT {MATCH_COLUMNS} FROM escalations WHERE conversation_id = ? AND answer IS NOT NULL "
            "AND question_vector IS NOT NULL ORDER BY answered_at DESC", (ask.conversation_id,)).fetchall()
        best = most_similar(rows, ask.issue(), self.settings.reask_similarity)
        if best is None:
            return None
        record = self.store.escalation(best, conn)
        return out.from_record(record, Action.proceed, out.REASKED.format(id=best), answer=record["answer"],
                               task_id=ask.task_id)

    def _proceed(self, ask: Ask) -> EscalationResult | None:
        if ask.minor is not None:
            return out.proceed(ask.minor, ask.conversation_id, ask.task_id)
        if ask.severity is None:
            return out.proceed(ask.classification, ask.conversation_id, ask.task_id)
        return None

    def _open_match(self, conn: sqlite3.Connection, ask: Ask) -> str | None:
        """The open escalation of the task that is the same issue as ``ask``, if any."""
        marks = ", ".join("?" * len(OPEN_STATUSES))
        # any type: a reworded request may classify differently and is still the same issue
        rows = conn.execute(
            f"SELECT {MATCH_COLUMNS} FROM escalations WHERE conversation_id = ? AND task_id = ? "
            f"AND type != 'pattern' AND status IN ({marks}) AND question_vector IS NOT NULL",
            (ask.conversation_id, ask.task_id, *OPEN_STATUSES)).fetchall()
        return most_similar(rows, ask.issue(), self.settings.same_issue_similarity)

    def _repeated(self, conn: sqlite3.Connection, ask: Ask) -> EscalationResult | None:
        best = self._open_match(conn, ask)
        if best is None:
            return None
        conn.execute("UPDATE escalations SET repeat_count = repeat_count + 1, updated_at = ? WHERE id = ?",
                     (self.store.now(), best))
        record = self.store.escalation(best, conn)
        self.store.audit(conn, "repeat", "agent", escalation_id=best, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={"request": ask.request, "question": ask.question,
                                                    "repeat_count": record["repeat_count"]})
        action = out.action_for(Severity(record["severity"]))
        return out.from_record(record, action, out.REPEATED.format(id=best), repeated=True,
                               confidence=ask.classification.confidence)

    def _create(self, conn: sqlite3.Connection, ask: Ask, task: dict) -> EscalationResult:
        count = task["escalation_count"] + 1
        conv, task_id = ask.conversation_id, ask.task_id
        if ask.severity is not Severity.L4 and count >= self.settings.handoff_after:
            return self._handoff(conn, ask, count)
        esc_id = self._insert(conn, ask, ask.etype, ask.trigger, ask.severity, ask.details)  # type: ignore[arg-type]
        if ask.severity is Severity.L4:
            self.store.update_task(conn, conv, task_id, escalation_count=count, locked=1, locked_at=self.store.now(),
                                   locked_by_escalation=esc_id, locked_reason=ask.classification.trigger)
            self.store.audit(conn, "lock", "system", escalation_id=esc_id, conversation_id=conv, task_id=task_id,
                             data={"reason": ask.trigger})
            record = self.store.escalation(esc_id, conn)
            return out.from_record(record, Action.stop, out.INSTRUCTIONS[Severity.L4],
                                   confidence=ask.classification.confidence)
        self.store.update_task(conn, conv, task_id, escalation_count=count)
        record = self.store.escalation(esc_id, conn)
        return out.from_record(record, Action.escalate, out.instruction_for(ask.severity),  # type: ignore[arg-type]
                               confidence=ask.classification.confidence)

    def _handoff(self, conn: sqlite3.Connection, ask: Ask, count: int) -> EscalationResult:
        earlier = [r[0] for r in conn.execute(
            "SELECT id FROM escalations WHERE conversation_id = ? AND task_id = ? ORDER BY year, seq",
            (ask.conversation_id, ask.task_id))]
        latest = ask.question or ask.request
        details = f"Escalations on this task so far: {', '.join(earlier) or 'none'}. Latest issue: {latest}"
        pattern = EscalationType.pattern
        trigger = self.policy.matrix.default_trigger(pattern)
        severity = self.policy.matrix.trigger(pattern, trigger).severity
        esc_id = self._insert(conn, ask, pattern, trigger, severity, details)  # type: ignore[arg-type]
        self.store.update_task(conn, ask.conversation_id, ask.task_id, escalation_count=count, handed_off=1)
        self.store.audit(conn, "handoff", "system", escalation_id=esc_id, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={"escalations": earlier, "count": count})
        record = self.store.escalation(esc_id, conn)
        return out.from_record(record, Action.handoff, out.HANDOFF.format(id=esc_id),
                               confidence=ask.classification.confidence)

    def _route(self, severity: Severity) -> Any:
        """The policy's route for an agent escalation of ``severity`` (level, assignee, channels, due)."""
        from .ops.policy import operations_policy

        return operations_policy(self.policy).routing[severity]

    def _insert(self, conn: sqlite3.Connection, ask: Ask, etype: EscalationType, trigger: str,
                severity: Severity, details: str | None) -> str:
        matrix, phrases = self.policy.matrix, self.policy.phrases
        text = escalation_text(matrix, phrases, etype, trigger, severity, ask.request, question=ask.question,
                               options=ask.options or None, missing=ask.missing, details=details)
        message = phrases.message("md", **text.variables())
        route, now = self._route(severity), self.store.clock()
        esc_id = self.store.insert_escalation(conn, {
            "conversation_id": ask.conversation_id, "task_id": ask.task_id, "issue_key": f"{etype.value}:{trigger}",
            "source": "agent", "type": etype, "trigger": trigger, "severity": severity, "level": route.level,
            "assignee": route.assignee, "due_at": iso(now + route.respond_within), "severity_at": iso(now),
            "reason": text.issue, "request": ask.request, "question": text.question, "options": text.options,
            "details": details, "phrase": text.phrase, "message": message, "context": ask.context,
            "question_vector": np.asarray(ask.vector, dtype=np.float32).tobytes(),
            "request_vector": np.asarray(ask.request_vector, dtype=np.float32).tobytes(),
            "agent_question": ask.question,
        })
        classified = {"classified_as": ask.classified_as.value} if ask.classified_as else {}
        self.store.audit(conn, "create", "agent", escalation_id=esc_id, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={**classified, "tool": ask.tool, "type": etype.value, "trigger": trigger,
                                                    "severity": severity.value, "request": ask.request,
                                                    "question": text.question})
        from .ops import notify
        from .ops.policy import operations_policy

        notify.enqueue(self.store, conn, operations_policy(self.policy), route.notify, "created",
                       self.store.escalation(esc_id, conn), text.issue, route.assignee)
        return esc_id


def respond(store: Store, escalation_id: str, answer: str, responder: str = "operator",
            max_chars: int = 8000, *, role: str = "operator", conversation_id: str | None = None) -> EscalationResult:
    """Record a person's answer (agent tool, operator CLI or console alike): the escalation is
    answered, a handed-off task comes back to the agent, and the agent is told to proceed.
    ``role="agent"`` applies ``access.check_agent_answer`` (an agent never answers a hand-off, an L4
    escalation or another conversation's or an operator's record)."""
    escalation_id = out.identifier(escalation_id, "escalation_id")
    answer = out.text(answer, "answer", max_chars)
    responder = out.identifier(responder, "responder")
    conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
    with store.transaction() as conn:
        escalation_id = store.resolve(escalation_id, conn)  # an agent may name it by its ref
        record = store.escalation(escalation_id, conn)
        if role == "agent":
            task = None
            if record["conversation_id"] is not None:
                task = store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
            check_agent_answer(record, task, conversation_id)
        if record["status"] not in OPEN_STATUSES:
            when = f" at {record['answered_at']}" if record.get("answered_at") else ""
            raise StateError(f"escalation {escalation_id} is already {record['status']}{when}; "
                             "if something changed, raise a new question with clarify or escalate")
        now = store.now()
        store.update_escalation(conn, escalation_id, answer=answer, answered_by=responder,
                                answered_at=now, status="answered", resolved_at=record.get("resolved_at") or now)
        store.audit(conn, "answer", responder, escalation_id=escalation_id,
                    conversation_id=record["conversation_id"], task_id=record["task_id"], data={"answer": answer})
        locked = False
        if record["conversation_id"] is not None:
            task = store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
            locked = bool(task["locked"])
            if task["awaiting_guidance"] and record["severity"] == Severity.L3.value:
                store.update_task(conn, task["conversation_id"], task["task_id"], awaiting_guidance=0)
            if record["type"] == EscalationType.pattern.value and task["handed_off"]:
                store.update_task(conn, task["conversation_id"], task["task_id"], handed_off=0,
                                  escalation_count=0)
                store.audit(conn, "hand_back", responder, escalation_id=escalation_id,
                            conversation_id=task["conversation_id"], task_id=task["task_id"])
        record = store.escalation(escalation_id, conn)
    if locked:
        return out.from_record(record, Action.stop, out.ANSWERED_LOCKED, answer=answer)
    return out.from_record(record, Action.proceed, out.ANSWERED, answer=answer)


def unlock_task(store: Store, conversation_id: str, task_id: str, by: str, reason: str) -> None:
    """A person reviewed an L4 escalation: let the agent work on the task again (no model needed)."""
    conversation_id = out.identifier(conversation_id, "conversation_id")  # type: ignore[assignment]
    task_id = out.identifier(task_id, "task_id")  # type: ignore[assignment]
    by = out.identifier(by, "by")  # type: ignore[assignment]
    reason = out.text(reason, "reason", 2000)  # type: ignore[assignment]
    with store.transaction() as conn:
        row = conn.execute("SELECT * FROM tasks WHERE conversation_id = ? AND task_id = ?",
                           (conversation_id, task_id)).fetchone()
        if row is None:
            raise NotFoundError(f"task {task_id!r} of conversation {conversation_id!r} not found; "
                                "check both ids (the task id is 'default' when the agent gave none)")
        if not row["locked"]:
            raise StateError(f"task {task_id!r} of conversation {conversation_id!r} is not locked; nothing to unlock")
        store.update_task(conn, conversation_id, task_id, locked=0, locked_reason=None, locked_at=None,
                          locked_by_escalation=None)
        store.audit(conn, "unlock", by, escalation_id=row["locked_by_escalation"], conversation_id=conversation_id,
                    task_id=task_id, data={"reason": reason})


def _scope_instruction(severity: Severity | None) -> str:
    return out.INSTRUCTIONS[severity] if severity is Severity.L4 else out.OUT_OF_SCOPE
