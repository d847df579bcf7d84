"""The conversation rules on durable state: escalate once, never re-ask, hand a
stuck task to a person, stop and lock on L4.

Every decision runs in one ``BEGIN IMMEDIATE`` transaction (check, then write), so the rules hold
for many threads and for several server processes on one SQLite file. Embeddings are computed
before the transaction opens, so the write lock is held for microseconds, not for a model call."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from . import adaptive
from . import assess as assessing
from . import preferences
from . import unusual
from . import guard_pending as pending
from . import guard_results as out
from .access import AccessError, check_agent_answer
from .answers import DEFAULT_TASK, RESPONSE_ACTIONS, respond, respond_action, unlock_task
from .ops import batches
from .queries.conversations import StoredIssue
from .matching import (Issue, PairScorer, closest, earlier_words, has_capability, minor_preference, needed_capabilities,
                       normalise_capability, stored_issue)
from .classifier import RequestClassifier, load_pair_model
from .trained import is_probability_model
from .errors import InputError, NotFoundError
from .loader import Policy
from .messages import escalation_text
from .models import (Action, Classification, DecisionAssessment, EscalationResult, EscalationType, RuleMatch, Severity,
                     StructuredAnswer)
from .ops_policy import Route
from .queries.conversations import Task
from .queries.records import RecordFilter
from .store import OPEN_STATUSES, Store, iso

L1_TYPES = (EscalationType.clarification, EscalationType.conflict, EscalationType.context)
OUT_OF_SCOPE = (EscalationType.scope, EscalationType.technical, EscalationType.compliance, EscalationType.safety)


@dataclass(frozen=True)
class Ask:
    """What one escalate/clarify/check_scope call gave, validated once; nothing changes it afterwards."""

    tool: str
    conversation_id: str
    task_id: str
    request: str
    question: str | None = None
    options: tuple[str, ...] = ()
    details: str | None = None
    missing: str | None = None
    context: dict[str, Any] = field(default_factory=dict)  # read, never changed
    insisted: EscalationType | None = None  # the agent insists this needs a person, as this type
    new_issue: bool = False  # the agent says this is not an earlier issue worded differently
    locale: str | None = None  # the language of this call's texts (argument, conversation's, server's)
    locale_given: str | None = None  # the call's own locale argument: the conversation keeps it


@dataclass(frozen=True, eq=False)
class Classified:
    """The classifier's reading of an ask, in the ask's language: the request's classification, the
    question's (when one was asked), and their vectors."""

    request: Classification
    question: Classification | None
    vector: np.ndarray  # identifies the issue: the question's when there is one, else the request's
    request_vector: np.ndarray


@dataclass(frozen=True)
class Target:
    """What an escalation is created as: its type, trigger and severity."""

    etype: EscalationType
    trigger: str
    severity: Severity


def target(etype: EscalationType, trigger: str, severity: Severity | None) -> Target | None:
    """The escalation to create, None when there is no severity (the call proceeds)."""
    return None if severity is None else Target(etype, trigger, severity)


@dataclass(frozen=True, eq=False)
class Decision:
    """What the classify step decided for an ask; the decide step reads it and changes nothing."""

    classification: Classification
    vector: np.ndarray
    request_vector: np.ndarray
    target: Target | None = None  # None: nothing to escalate (the call proceeds)
    minor: Classification | None = None  # a minor preference: proceed with its default
    in_scope: bool | None = None
    classified_as: EscalationType | None = None  # the classifier's type, when the agent insisted on another
    assessment: DecisionAssessment | None = None  # criticality, decision type, confidence to act alone

    @property
    def severity(self) -> Severity | None:
        return None if self.target is None else self.target.severity

    def issue(self, ask: Ask) -> Issue:
        asked = ask.question is not None
        return Issue(ask.request, self.request_vector, ask.question, self.vector if asked else None)


@dataclass(frozen=True)
class Preview:
    """A call's result as it would be now, with nothing kept, and whether the person in the chat
    may decide it inside the call."""

    result: EscalationResult
    person_decides: bool


class _Undone(Exception):
    """Rolls a preview's transaction back, carrying its result out."""

    def __init__(self, preview: Preview):
        super().__init__("preview")
        self.preview = preview


class ConversationGuard:
    """Library API behind the MCP and LangChain tools. Thread-safe: the store keeps a connection
    per thread and the classifier is read-only."""

    def __init__(self, policy: Policy, classifier: RequestClassifier, store: Store):
        self.policy = policy
        self.classifier = classifier
        self.store = store
        self.settings = policy.conversation
        store.redactor = policy.operations.redaction.redactor()
        self.policy_status: dict[str, Any] = {"ok": True, "problems": [], "reloads": 0}

    def swap(self, policy: Policy, classifier: RequestClassifier) -> None:
        """Serve ``policy`` from now on (hot reload); calls already running finish on the old one."""
        self.policy, self.classifier, self.settings = policy, classifier, policy.conversation
        self.store.redactor = policy.operations.redaction.redactor()

    # --- languages ---
    def speaking(self, locale: str | None) -> Policy:
        """The policy in ``locale`` (None: the server's); an unknown locale is an InputError naming those available."""
        if locale is not None and not isinstance(locale, str):
            raise InputError(f"locale must be a string such as 'en' or 'de', got {type(locale).__name__}")
        return self.policy.in_locale(locale.strip() if locale else None)

    def conversation_locale(self, conversation_id: str | None, given: str | None = None) -> str:
        """The locale of a call: its own argument, else the one its conversation chose, else the server's."""
        if given:
            return self.speaking(given).locale
        if conversation_id:
            chosen = self.store.conversation_locale(conversation_id)
            if chosen and chosen in self.policy.locales:
                return chosen
        return self.policy.locale

    def localized(self, c: Classification, locale: str | None) -> Classification:
        """``c`` with its phrase, message, options and default in ``locale`` (the classifier speaks
        the server's locale)."""
        policy = self.speaking(locale)
        if policy.locale == self.policy.locale:
            return c
        if c.type is EscalationType.none:
            default = policy.matrix.trigger(c.type, c.trigger).default if c.default is not None else None
            return c.model_copy(update={"default": default})
        severity = c.severity or policy.matrix.severity(c.type, c.trigger)
        text = escalation_text(policy.matrix, policy.phrases, c.type, c.trigger, severity, c.request)
        return c.model_copy(update={"phrase": text.phrase, "message": policy.phrases.message("md", **text.variables()),
                                    "options": text.options})

    # --- decision intelligence ---
    def assessed(self, c: Classification, context: dict[str, Any], locale: str | None,
                 request: str | None = None) -> tuple[Classification, DecisionAssessment]:
        """``c`` with the decision's assessment: a critical decision always escalates (as the policy's
        type), and a proceed below the confidence to act alone carries what to check (or escalates,
        when the policy says so)."""
        decisions = self.policy.decisions
        a = assessing.with_confidence(assessing.assess(request or c.request, context, decisions), c,
                                      decisions.autonomy)
        summary = self.speaking(locale).phrases.decisions.render(
            a.decision_type, **{**context, "request": request or c.request, "criticality": a.criticality,
                                "category": a.category, "impact": a.impact, "decision_type": a.decision_type})
        if summary is not None:
            a = a.model_copy(update={"summary": summary})
        crit = decisions.criticality
        if a.critical:  # a person decides: acting alone is not in question
            a = a.model_copy(update={"low_confidence": False, "check": []})
        if a.critical and not c.escalate:
            severity = crit.severity or self.policy.matrix.severity(crit.escalate_as, crit.trigger)
            reason = f"Criticality {a.criticality:.2f} is above {crit.escalate_above:g}: a person must decide."
            return self._override(c, crit.escalate_as, crit.trigger, severity, "criticality", reason, a.factors,
                                  locale), a.model_copy(update={"rule": "criticality"})
        if a.low_confidence and decisions.autonomy.escalate:
            etype = assessing.most_likely_escalation(c)
            trigger = self.policy.matrix.default_trigger(etype)
            reason = (f"Confidence to act alone {a.autonomy:.2f} is below "
                      f"{decisions.autonomy.min_confidence:g}.")
            return self._override(c, etype, trigger, self.policy.matrix.severity(etype, trigger),
                                  "low_confidence", reason, a.check, locale), a.model_copy(update={"rule": "low_confidence"})
        return c, a.model_copy(update={"rule": c.rule if "rule" in c.decided_by else None})

    def _unusual(self, ask: Ask, c: Classification,
                 a: DecisionAssessment) -> tuple[Classification, DecisionAssessment]:
        """The unusual pattern: the risky share of this conversation, or of the agent that owns
        it, jumped and the classifier is unsure."""
        settings = self.policy.decisions.unusual
        if not settings.enabled or c.confidence >= settings.max_confidence or c.decided_by == "rule":
            return c, a
        found = unusual.shift(self.store, ask.conversation_id, settings)
        if found is None:
            return c, a
        a = a.model_copy(update={"unusual": found.describe(), "low_confidence": False, "check": [],
                                 "rule": "unusual_pattern"})
        severity = self.policy.matrix.severity(settings.escalate_as, settings.trigger)
        reason = f"Unusual pattern with low confidence ({c.confidence:.2f}): {found.describe()}."
        evidence = [f"level {found.level}" + (f" ({found.agent})" if found.agent else ""),
                    f"history {found.history:.2f}", f"recent {found.recent:.2f}"]
        return self._override(c, settings.escalate_as, settings.trigger, severity, "unusual_pattern", reason,
                              evidence, ask.locale), a

    def _override(self, c: Classification, etype: EscalationType, trigger: str, severity: Severity,
                  name: str, reason: str, matched: list[str], locale: str | None) -> Classification:
        """``c`` escalated as ``etype`` by the decision policy, with its phrase and message in ``locale``."""
        speaking = self.speaking(locale)
        text = escalation_text(speaking.matrix, speaking.phrases, etype, trigger, severity, c.request)
        rule = RuleMatch(name=name, type=etype, trigger=trigger, severity=severity, reason=reason, matched=matched)
        return c.model_copy(update={
            "type": etype, "trigger": trigger, "severity": severity, "decided_by": name, "rule": name,
            "rules": [*c.rules, rule],
            "phrase": text.phrase, "message": speaking.phrases.message("md", **text.variables()),
            "options": text.options, "default": None})

    # --- read-only ---
    def classify(self, request: str, context: dict[str, Any] | None = None, locale: str | None = None) -> EscalationResult:
        """Records nothing but the decision itself: an evaluated request counts in the KPI denominator."""
        request = out.text(request, "request", self.settings.max_request_chars)
        locale = self.speaking(locale).locale
        facts = out.context_mapping(context)
        c = self.classifier.classify(request, facts, offsets=self.offsets())
        c, assessment = self.assessed(c, facts, locale)
        result = out.with_decision(out.from_classification(self.localized(c, locale), locale=locale), assessment)
        with self.store.transaction() as conn:
            self._record(conn, "classify", result, "proceed")
        return result

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        conversation_id = out.identifier(conversation_id, "conversation_id")
        records = self.store.find_escalations(RecordFilter(conversation_id=conversation_id), "created")
        if not records and not self.store.knows_conversation(conversation_id):
            raise NotFoundError(f"conversation {conversation_id!r} is unknown: it has made no escalate, clarify "
                                "or check_scope call; pass the conversation_id those calls used")
        return records

    # --- the agent tools ---
    def escalate(self, conversation_id: str, request: str, task_id: str | None = None, question: str | None = None,
                 options: list[str] | None = None, details: str | None = None,
                 context: dict[str, Any] | None = None, type: str | None = None, locale: str | None = None,
                 new_issue: bool | None = None) -> EscalationResult:
        """``type``: the agent insists this needs a person, as this type, whatever the classifier says.
        ``locale``: the language of the texts (e.g. 'de'); the conversation keeps it for later calls.
        ``new_issue``: the agent says this is not an earlier issue worded differently (after a result
        that named a ``matched_request``): only an earlier call worded alike is then the same issue."""
        ask = self._ask("escalate", conversation_id, request, task_id, question, options, details, None, context,
                        insisted=out.agent_type(type), locale=locale, new_issue=new_issue)
        decision = self._classify_escalation(ask)
        return self._decide(ask, decision)

    def clarify(self, conversation_id: str, request: str, question: str, task_id: str | None = None,
                options: list[str] | None = None, missing: str | None = None,
                locale: str | None = None, new_issue: bool | None = None) -> EscalationResult:
        ask = self._ask("clarify", conversation_id, request, task_id, question, options, None, missing, None,
                        question_required=True, locale=locale, new_issue=new_issue)
        decision = self._classify_clarification(ask)
        return self._decide(ask, decision)

    def preview_escalate(self, conversation_id: str, request: str, task_id: str | None = None,
                         question: str | None = None, options: list[str] | None = None, details: str | None = None,
                         context: dict[str, Any] | None = None, type: str | None = None,
                         locale: str | None = None, new_issue: bool | None = None) -> Preview:
        """What ``escalate`` would return now, and whether the person in the chat may decide it
        (``person_decides``), keeping nothing: the decision's transaction rolls back. The MCP adapter
        asks the person first and records the call once, after (an elicitation may take several
        rounds, each of which runs this again)."""
        ask = self._ask("escalate", conversation_id, request, task_id, question, options, details, None, context,
                        insisted=out.agent_type(type), locale=locale, new_issue=new_issue)
        return self._previewed(ask, self._classify_escalation(ask))

    def preview_clarify(self, conversation_id: str, request: str, question: str, task_id: str | None = None,
                        options: list[str] | None = None, missing: str | None = None,
                        locale: str | None = None, new_issue: bool | None = None) -> Preview:
        """What ``clarify`` would return now, keeping nothing (see ``preview_escalate``)."""
        ask = self._ask("clarify", conversation_id, request, task_id, question, options, None, missing, None,
                        question_required=True, locale=locale, new_issue=new_issue)
        return self._previewed(ask, self._classify_clarification(ask))

    def _previewed(self, ask: Ask, d: Decision) -> Preview:
        try:
            with self.store.transaction():
                result = self._decide(ask, d)  # joins this transaction
                raise _Undone(Preview(result, self.person_decides(result)))
        except _Undone as undone:
            return undone.preview

    def check_scope(self, request: str, conversation_id: str | None = None,
                    capabilities: list[str] | None = None, locale: str | None = None) -> EscalationResult:
        request = out.text(request, "request", self.settings.max_request_chars)
        conversation_id = out.identifier(conversation_id, "conversation_id", required=False)
        declared = None if capabilities is None else out.options_list(capabilities, self.settings)
        given = self.speaking(locale).locale if locale else None
        locale = self.conversation_locale(conversation_id, given)
        [c], vectors = self.classifier.classify_encoded([request], offsets=self.offsets())
        c = self.localized(c, locale)
        if declared is not None and c.type not in OUT_OF_SCOPE:
            lacking = needed_capabilities(request) - {normalise_capability(n) for n in declared}
            if lacking:
                c = self._as_technical(c, sorted(lacking), locale)
        in_scope = c.type not in OUT_OF_SCOPE or (
            c.type is EscalationType.technical and has_capability(request, declared or []))
        if conversation_id is None:
            if in_scope:
                result = out.proceed(c, None, None, in_scope=True, locale=locale)
            else:
                result = out.from_classification(c, in_scope=False, instruction=_scope_instruction(c.severity),
                                                 locale=locale)
            with self.store.transaction() as conn:
                self._record(conn, "check_scope", result, "proceed")  # no conversation: no record is created
            return result
        if in_scope:
            result = out.proceed(c, conversation_id, DEFAULT_TASK, in_scope=True, locale=locale)
            with self.store.transaction() as conn:
                if given:
                    self.store.set_conversation_locale(conn, conversation_id, given)
                self._record(conn, "check_scope", result, "proceed")
            return result
        ask = Ask("check_scope", conversation_id, DEFAULT_TASK, request, locale=locale, locale_given=given)
        decision = Decision(c, vectors[0], vectors[0], target(c.type, c.trigger, c.severity), in_scope=False)
        return self._decide(ask, decision)

    def _as_technical(self, c: Classification, lacking: list[str], locale: str | None = None) -> Classification:
        policy = self.speaking(locale)
        etype = EscalationType.technical
        trigger = policy.matrix.default_trigger(etype)
        severity = policy.matrix.severity(etype, trigger)
        text = escalation_text(policy.matrix, policy.phrases, etype, trigger, severity,
                               c.request, details=policy.phrases.text("lacking", capabilities=lacking))
        return c.model_copy(update={
            "type": etype, "trigger": trigger, "severity": severity, "decided_by": "capability", "rule": None,
            "phrase": text.phrase, "message": policy.phrases.message("md", **text.variables()),
            "options": text.options, "default": None})

    def respond(self, escalation_id: str, answer: str | None = None, responder: str = "operator", *,
                role: str = "operator", conversation_id: str | None = None, necessary: bool | None = None,
                action: str | None = None, change: str | None = None, to: str | None = None,
                until: str | None = None, conditions: list[str] | None = None) -> EscalationResult:
        """The person's answer: free text (``answer``), or a structured ``action`` (approve, reject,
        modify with ``change``, delegate ``to`` someone, defer ``until`` a time, conditional with
        ``conditions``; ``answer`` is then a note). Preferences learn from people's answers and from
        the local agent relaying its person's answer, not from an agent signed in over HTTP (it
        could otherwise teach another agent's person what to answer)."""
        learn = self.policy.decisions.preferences if role != "agent" or responder == "agent" else None
        if action is None:
            if answer is None:
                raise InputError("give the person's answer, or an action: " + ", ".join(RESPONSE_ACTIONS))
            return respond(self.store, escalation_id, answer, responder, self.settings.max_request_chars, role=role,
                           conversation_id=conversation_id, necessary=necessary, preferences=learn)
        from .ops.oversight_chain import check_assignee

        def check(conn: sqlite3.Connection, record: dict[str, Any], a: StructuredAnswer) -> None:
            if a.action == "delegate" and a.to:  # a suspended actor is handed nothing
                check_assignee(self.store, conn, a.to)

        return respond_action(self.store, escalation_id, action, responder, self.settings.max_request_chars,
                              role=role, conversation_id=conversation_id, change=change, to=to, until=until,
                              conditions=conditions, note=answer, necessary=necessary, check=check,
                              preferences=learn)

    def person_decides(self, result: EscalationResult) -> bool:
        """Whether the person in the chat may answer this escalate result inside the agent's call
        (elicitation): an open escalation the agent raised that the agent could relay an answer to
        (``access.check_agent_answer``: not a hand-off, not L4, not a locked task), not waiting in a
        batch, of a type the policy lists in ``elicit_types``."""
        if (result.action is not Action.escalate or result.escalation_id is None or result.batch_id is not None
                or result.type not in self.settings.elicit_types):
            return False
        with self.store.transaction() as conn:
            record = self.store.escalation(result.escalation_id, conn)
            task = None
            if record["conversation_id"] is not None:
                task = self.store.task(conn, record["conversation_id"], record["task_id"] or DEFAULT_TASK)
        if record["status"] not in OPEN_STATUSES or record.get("batch_id") is not None:
            return False
        try:
            check_agent_answer(record, task, result.conversation_id)
        except AccessError:
            return False
        return True

    def unlock_task(self, conversation_id: str, task_id: str, by: str, reason: str) -> None:
        unlock_task(self.store, conversation_id, task_id, by, reason)

    # --- internals ---
    def _ask(self, tool: str, conversation_id: Any, request: Any, task_id: Any, question: Any, options: Any,
             details: Any, missing: Any, context: Any, question_required: bool = False,
             insisted: EscalationType | None = None, locale: Any = None, new_issue: Any = None) -> Ask:
        """The call's arguments, validated (an InputError names the first one that is not valid)."""
        s = self.settings
        given = self.speaking(locale).locale if locale else None
        conversation_id = out.identifier(conversation_id, "conversation_id")
        return Ask(
            tool=tool,
            conversation_id=conversation_id,
            task_id=out.identifier(task_id, "task_id", required=False) or DEFAULT_TASK,
            request=out.text(request, "request", s.max_request_chars),
            question=out.text(question, "question", s.max_question_chars, required=question_required),
            options=tuple(out.options_list(options, s)),
            details=out.text(details, "details", s.max_request_chars, required=False),
            missing=out.text(missing, "missing", s.max_question_chars, required=False),
            context=out.context_mapping(context),
            insisted=insisted,
            new_issue=out.flag(new_issue, "new_issue"),
            locale=self.conversation_locale(conversation_id, given),
            locale_given=given,
        )

    def _classify(self, ask: Ask) -> Classified:
        texts = [ask.request] + ([ask.question] if ask.question else [])
        results, vectors = self.classifier.classify_encoded(texts, [ask.context] + ([{}] if ask.question else []),
                                                            offsets=self.offsets())
        results = [self.localized(c, ask.locale) for c in results]
        # the issue is identified by the question when there is one, else by the request
        return Classified(results[0], results[1] if ask.question else None, vectors[-1], vectors[0])

    def _classify_escalation(self, ask: Ask) -> Decision:
        found = self._classify(ask)
        rc, qc = found.request, found.question
        # the question's own type counts ("Postgres or MySQL?" is a decision even when the request
        # reads as scope); a request that stops the task (L4) always wins
        chosen = qc if qc is not None and qc.escalate and rc.severity is not Severity.L4 else rc
        chosen, assessment = self.assessed(chosen, ask.context, ask.locale, ask.request)
        insisted = ask.insisted
        if insisted is None and not chosen.escalate:
            chosen, assessment = self._unusual(ask, chosen, assessment)
        decided = Decision(chosen, found.vector, found.request_vector, assessment=assessment)
        if insisted is not None and not (rc.severity is Severity.L4 and insisted is not rc.type):
            if chosen.type is insisted:
                return replace(decided, target=target(insisted, chosen.trigger, chosen.severity))
            trigger = self.policy.matrix.default_trigger(insisted)
            return replace(decided, target=target(insisted, trigger, self.policy.matrix.trigger(insisted, trigger).severity),
                           classified_as=chosen.type)
        # a decision the policy escalated (critical, or too unsure to act alone) is no minor preference
        minor = None if chosen.decided_by in assessing.OVERRIDES else minor_preference(qc, rc)
        escalated = target(chosen.type, chosen.trigger, chosen.severity) if chosen.escalate else None
        return replace(decided, minor=minor, target=escalated)

    def _classify_clarification(self, ask: Ask) -> Decision:
        found = self._classify(ask)
        rc, qc = found.request, found.question
        decided = Decision(rc, found.vector, found.request_vector, minor=minor_preference(qc, rc))
        if rc.severity is Severity.L4:  # safety first: distress stops the task even on the L1 path
            return replace(decided, target=target(rc.type, rc.trigger, rc.severity))
        if ask.missing:
            etype = EscalationType.context
        else:
            etype = next((c.type for c in (rc, qc) if c is not None and c.type in L1_TYPES),
                         EscalationType.clarification)
        chosen = rc if rc.type is etype else (qc if qc is not None and qc.type is etype else rc)
        trigger = self._trigger(etype, chosen)
        return replace(decided, classification=chosen,
                       target=target(etype, trigger, self.policy.matrix.trigger(etype, trigger).severity))

    def _trigger(self, etype: EscalationType, c: Classification) -> str:
        return c.trigger if c.type is etype else self.policy.matrix.default_trigger(etype)

    def _decide(self, ask: Ask, d: Decision) -> EscalationResult:
        """The conversation rules applied to ``d``, in one transaction (check, then write)."""
        with self.store.transaction() as conn:
            task = self.store.task(conn, ask.conversation_id, ask.task_id)
            outcome, result = self._answer(conn, ask, d, task)
            if d.in_scope is not None:
                result = result.model_copy(update={"in_scope": d.in_scope})
            if d.classified_as is not None:
                result = result.model_copy(update={"classified_as": d.classified_as})
            if d.assessment is not None:
                result = out.with_decision(result, d.assessment)
            result = batches.annotate(self.store, conn, result)  # queued with others for the person
            notices = self._notices(conn, ask.conversation_id)
            if notices:
                result = result.model_copy(update={"notices": notices})
            if ask.locale_given:
                self.store.set_conversation_locale(conn, ask.conversation_id, ask.locale_given)
            if result.locale is None:  # a stored record keeps its own language
                result = result.model_copy(update={"locale": self.policy.locale if result.escalation_id else ask.locale})
            self._record(conn, ask.tool, result, outcome)
        return result

    def _answer(self, conn: sqlite3.Connection, ask: Ask, d: Decision, task: Task) -> tuple[str, EscalationResult]:
        """The first conversation rule that answers the call, as (outcome, result)."""
        steps: tuple[tuple[str, Callable[[], EscalationResult | None]], ...] = (
            ("refused", lambda: self._locked(conn, task)), ("refused", lambda: self._handed_off(conn, task)),
            ("refused", lambda: self._paused(conn, ask, d)), ("reasked", lambda: self._reasked(conn, ask, d)),
            # an open escalation of the same issue is returned again even when this wording classifies
            # as nothing to escalate: the rewording does not make the first one's question go away
            ("repeated", lambda: self._repeated(conn, ask, d)))
        for outcome, step in steps:
            found = step()
            if found is not None:
                return outcome, found
        if d.minor is not None:
            return "proceed", out.proceed(d.minor, ask.conversation_id, ask.task_id, locale=ask.locale)
        goal = d.target
        if goal is None:
            return "proceed", out.proceed(d.classification, ask.conversation_id, ask.task_id, locale=ask.locale)
        preferred = self._preferred(conn, ask, d, goal)
        if preferred is not None:
            return "auto_answered", preferred
        return "created", self._create(conn, ask, d, goal, task)

    def _record(self, conn: sqlite3.Connection, tool: str, result: EscalationResult, outcome: str) -> None:
        self.store.record_decision(
            conn, tool, result.type.value, result.action.value,
            severity=result.severity.value if result.severity else None,
            conversation_id=result.conversation_id, task_id=result.task_id, escalation_id=result.escalation_id,
            outcome=outcome)
        adaptive.note_decision(self.store, conn, self.policy.decisions.adaptive)

    def offsets(self) -> dict[EscalationType, float]:
        """The adaptive target's per-type threshold offsets (none when the policy turns it off)."""
        settings = self.policy.decisions.adaptive
        return adaptive.offsets(self.store, floor=settings.floor) if settings.enabled else {}

    def _locked(self, conn: sqlite3.Connection, task: Task) -> EscalationResult | None:
        if not task["locked"]:
            return None
        record = self.store.escalation(task["locked_by_escalation"] or "", conn)  # a lock names its escalation
        return out.from_record(record, Action.stop, out.LOCKED.format(id=record["id"]))

    def _handed_off(self, conn: sqlite3.Connection, task: Task) -> EscalationResult | None:
        if not task["handed_off"]:
            return None
        handoff = self.store.conversations.latest_handoff(conn, task["conversation_id"], task["task_id"])
        if handoff is None or handoff.status not in OPEN_STATUSES:  # the person closed it: the task is back
            self.store.update_task(conn, task["conversation_id"], task["task_id"], handed_off=0, escalation_count=0)
            task["escalation_count"] = 0
            return None
        record = self.store.escalation(handoff.id, conn)
        return out.from_record(record, Action.handoff, out.HANDOFF.format(id=record["id"]))

    def _paused(self, conn: sqlite3.Connection, ask: Ask, d: Decision) -> EscalationResult | None:
        """An open L3 escalation pauses its task until a person answers; only an L4 gets through."""
        if d.severity is Severity.L4:
            return None
        paused_by = self.store.conversations.oldest_open_l3(conn, ask.conversation_id, ask.task_id)
        if paused_by is None or self._open_match(conn, ask, d) is not None:  # the same issue again is a repeat
            return None
        record = self.store.escalation(paused_by, conn)
        return out.from_record(record, Action.wait, out.WAIT.format(id=paused_by))

    def _notices(self, conn: sqlite3.Connection, conversation_id: str) -> list[str]:
        return pending.notices(self.store, conn, self.policy, conversation_id)

    def pending(self, conversation_id: str) -> dict[str, Any]:
        """What the conversation is waiting for (the ``escalation://pending/{id}`` resource)."""
        return pending.pending(self.store, conversation_id)

    def _reasked(self, conn: sqlite3.Connection, ask: Ask, d: Decision) -> EscalationResult | None:
        answered = self.store.conversations.answered_issues(conn, ask.conversation_id)
        issue = d.issue(ask)
        # the pair model alone when there is one: a match hands over an answer, so precision first
        row = closest(answered, issue, self.settings.reask_similarity, exact=ask.new_issue, pair=self._pair_model())
        if row is None:
            return None
        best = row["id"]
        record = self.store.escalation(best, conn)
        instruction, matched = _matched(out.REASKED.format(id=best), issue, row)
        return out.from_record(record, Action.proceed, instruction, answer=record["answer"], task_id=ask.task_id,
                               matched_request=matched)

    def _preferred(self, conn: sqlite3.Connection, ask: Ask, d: Decision, goal: Target) -> EscalationResult | None:
        """A learned preference of the person (or organisation) the context names answers for them."""
        escalated = d.classification.decided_by in assessing.OVERRIDES or bool(d.assessment and d.assessment.critical)
        return preferences.auto_answer(
            self.store, conn, self.policy.decisions.preferences, conversation_id=ask.conversation_id,
            task_id=ask.task_id, etype=goal.etype, trigger=goal.trigger, severity=goal.severity, context=ask.context,
            issue=d.issue(ask), policy_escalated=escalated, confidence_of_type=d.classification.confidence,
            new_issue=ask.new_issue)

    def _open_match(self, conn: sqlite3.Connection, ask: Ask, d: Decision) -> str | None:
        """The open escalation of the task that is the same issue as ``ask``, if any."""
        # any type: a reworded request may classify differently and is still the same issue
        row = self._open_row(conn, ask, d)
        return None if row is None else row["id"]

    def _open_row(self, conn: sqlite3.Connection, ask: Ask, d: Decision) -> StoredIssue | None:
        candidates = self.store.conversations.open_issues(conn, ask.conversation_id, ask.task_id)
        # the pair model or the cosine thresholds: a match only returns the open escalation (shown
        # with matched_request), a miss asks the person twice and counts towards hand-off
        return closest(candidates, d.issue(ask), self.settings.same_issue_similarity,
                       self.settings.same_issue_similarity_agreeing, exact=ask.new_issue, pair=self._pair_model(),
                       or_cosine=True)

    def _pair_model(self) -> PairScorer | None:
        """The same-issue pair model when conversation.yaml chooses it and the classifier runs on the
        trained model (not on another encoder, such as the fast test one)."""
        if self.settings.same_issue_model != "pair" or not is_probability_model(getattr(self.classifier, "embedder", None)):
            return None
        return load_pair_model(self.policy.classifier)

    def _repeated(self, conn: sqlite3.Connection, ask: Ask, d: Decision) -> EscalationResult | None:
        row = self._open_row(conn, ask, d)
        if row is None:
            return None
        best = row["id"]
        self.store.conversations.count_repeat(conn, best)
        record = self.store.escalation(best, conn)
        self.store.audit(conn, "repeat", "agent", escalation_id=best, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={"request": ask.request, "question": ask.question,
                                                    "repeat_count": record["repeat_count"]})
        action = out.action_for(Severity(record["severity"]))
        instruction, matched = _matched(out.REPEATED.format(id=best), d.issue(ask), row)
        return out.from_record(record, action, instruction, repeated=True, confidence=d.classification.confidence,
                               matched_request=matched)

    def _create(self, conn: sqlite3.Connection, ask: Ask, d: Decision, goal: Target, task: Task) -> EscalationResult:
        count = task["escalation_count"] + 1
        conv, task_id = ask.conversation_id, ask.task_id
        if goal.severity is not Severity.L4 and count >= self.settings.handoff_after:
            return self._handoff(conn, ask, d, count)
        person = batches.person_for(self.policy.decisions.batching, etype=goal.etype, severity=goal.severity,
                                    critical=bool(d.assessment and d.assessment.critical),
                                    policy_escalated=d.classification.decided_by in assessing.OVERRIDES,
                                    context=ask.context)
        esc_id = self._insert(conn, ask, d, goal, ask.details, notify=person is None)
        if person is not None:  # its notification waits in the person's batch
            batches.enqueue(self.store, conn, self.policy.decisions.batching, self.policy, esc_id, person)
        if goal.severity is Severity.L4:
            self.store.update_task(conn, conv, task_id, escalation_count=count, locked=1, locked_at=self.store.now(),
                                   locked_by_escalation=esc_id, locked_reason=d.classification.trigger)
            self.store.audit(conn, "lock", "system", escalation_id=esc_id, conversation_id=conv, task_id=task_id,
                             data={"reason": goal.trigger})
            record = self.store.escalation(esc_id, conn)
            return out.from_record(record, Action.stop, out.INSTRUCTIONS[Severity.L4],
                                   confidence=d.classification.confidence)
        self.store.update_task(conn, conv, task_id, escalation_count=count)
        record = self.store.escalation(esc_id, conn)
        return out.from_record(record, Action.escalate, out.instruction_for(goal.severity),
                               confidence=d.classification.confidence)

    def _handoff(self, conn: sqlite3.Connection, ask: Ask, d: Decision, count: int) -> EscalationResult:
        earlier = self.store.conversations.escalation_ids(conn, ask.conversation_id, ask.task_id)
        latest = ask.question or ask.request
        details = self.speaking(ask.locale).phrases.text("handoff_details", earlier=earlier, latest=latest)
        pattern = EscalationType.pattern
        trigger = self.policy.matrix.default_trigger(pattern)
        esc_id = self._insert(conn, ask, d, Target(pattern, trigger, self.policy.matrix.severity(pattern, trigger)),
                              details)
        self.store.update_task(conn, ask.conversation_id, ask.task_id, escalation_count=count, handed_off=1)
        self.store.audit(conn, "handoff", "system", escalation_id=esc_id, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={"escalations": earlier, "count": count})
        record = self.store.escalation(esc_id, conn)
        return out.from_record(record, Action.handoff, out.HANDOFF.format(id=esc_id),
                               confidence=d.classification.confidence)

    def _route(self, severity: Severity) -> Route:
        """The policy's route for an agent escalation of ``severity`` (level, assignee, channels, due)."""
        return self.policy.operations.routing[severity]

    def _insert(self, conn: sqlite3.Connection, ask: Ask, d: Decision, goal: Target, details: str | None,
                notify: bool = True) -> str:
        etype, trigger, severity = goal.etype, goal.trigger, goal.severity
        speaking = self.speaking(ask.locale)
        matrix, phrases = speaking.matrix, speaking.phrases
        text = escalation_text(matrix, phrases, etype, trigger, severity, ask.request, question=ask.question,
                               options=list(ask.options) or None, missing=ask.missing, details=details)
        message = phrases.message("md", **text.variables())
        route, now = self._route(severity), self.store.clock()
        esc_id = self.store.insert_escalation(conn, {
            "conversation_id": ask.conversation_id, "task_id": ask.task_id, "issue_key": f"{etype.value}:{trigger}",
            "source": "agent", "type": etype, "trigger": trigger, "severity": severity, "level": route.level,
            "assignee": route.assignee, "due_at": iso(now + route.respond_within), "severity_at": iso(now),
            "reason": text.issue, "request": ask.request, "question": text.question, "options": text.options,
            "details": details, "phrase": text.phrase, "message": message, "context": ask.context,
            "question_vector": np.asarray(d.vector, dtype=np.float32).tobytes(),
            "request_vector": np.asarray(d.request_vector, dtype=np.float32).tobytes(),
            "agent_question": ask.question, "locale": speaking.locale,
            "assessment": assessing.stored(d.assessment, d.classification),
        })
        classified = {"classified_as": d.classified_as.value} if d.classified_as else {}
        self.store.audit(conn, "create", "agent", escalation_id=esc_id, conversation_id=ask.conversation_id,
                         task_id=ask.task_id, data={**classified, "tool": ask.tool, "type": etype.value, "trigger": trigger,
                                                    "severity": severity.value, "request": ask.request,
                                                    "question": text.question})
        if not notify:
            return esc_id
        from .ops import notify as notifying

        notifying.enqueue(self.store, conn, self.policy.operations, route.notify, "created",
                       self.store.escalation(esc_id, conn), text.issue, route.assignee)
        return esc_id


def _matched(instruction: str, issue: Issue, row: StoredIssue) -> tuple[str, str | None]:
    """The instruction for a call taken as an earlier escalation's issue, and the earlier words when
    they differ: a match by meaning can be wrong for a different issue worded alike ("read access" /
    "write access"), which the agent reading both can tell, so it is shown the earlier request."""
    earlier = earlier_words(issue, stored_issue(row))
    return out.with_match(instruction, earlier), earlier


def _scope_instruction(severity: Severity | None) -> str:
    return out.INSTRUCTIONS[severity] if severity is Severity.L4 else out.OUT_OF_SCOPE
