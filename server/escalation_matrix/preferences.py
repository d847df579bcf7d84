"""Preference learning: a person's answers to a recurring question become a preference of that
person (and of their organisation) that answers the question for them once it is sure enough.

A preference keeps a recency-weighted tally of the answers given to its question (each answer counts
``0.5 ** (age / half_life)``); the newest answer is the preference's answer. Its confidence:
``agree / (agree + against + 1)`` (agree: the tally of the newest answer, against: of all others; the
``+ 1`` is the doubt no history removes), raised by ``consistency_boost x agree / (agree + against)``,
never above ``cap``. So a change of mind is followed at once but answers only once the new answer
outweighs the old ones, and a one-off slip weighs as one answer against, not as a fresh start. Decay
applies when confidence is read, so a preference nobody has confirmed for a while falls below the
threshold and the person is asked again.

The rows are kept by the store's named queries (``store.preferences``)."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from . import guard_results as out
from .decisions_policy import Preferences
from .errors import InputError, NotFoundError, StateError
from .matching import Issue, closest, earlier_words, stored_issue
from .models import Action, EscalationResult, EscalationType, PreferenceUse, Severity, StructuredAnswer
from .queries.conversations import StoredIssue
from .queries.preferences import Preference
from .store import Store, parse_iso

SCOPES = ("person", "organisation")
SIMPLE_ACTIONS = ("approve", "reject")  # their answer is the action itself
NOT_ANSWERS = ("defer", "delegate")  # they keep the question open: nothing was decided
REVOKE = ("Tell the person this was answered from their preference {id}; to be asked again, they revoke it "
          "(revoke_preference tool, or `escalation-matrix preferences revoke {id}`).")
ANSWERED = "Answered from the {scope} preference {id} of {name} (confidence {confidence:.2f}, {answers} agreeing answers)"
NEXT = {"approve": "Approved: carry it out now; do not ask for confirmation.",
        "reject": "Rejected: do not do this. Continue the rest of the task without it, or offer an alternative."}
APPLY = "Apply this answer and continue the task now; do not ask the person again."
SECONDS_PER_DAY = 86400.0
MAX_ID = 2**62  # ids are SQLite integers


# --- the arithmetic ---
def decay(age_days: float, half_life_days: float) -> float:
    """The weight left to an answer ``age_days`` old."""
    return float(0.5 ** (max(age_days, 0.0) / half_life_days))


def confidence(agree: float, against: float, settings: Preferences) -> float:
    """Confidence from recency-weighted agreeing and contradicting answers (see the module text)."""
    if agree <= 0:
        return 0.0
    base = agree / (agree + against + 1.0)
    consistency = agree / (agree + against)
    return min(settings.cap, base * (1.0 + settings.consistency_boost * consistency))


def updated(tally: dict[str, float], key: str, d: float) -> dict[str, float]:
    """The tally after one more answer ``key``: earlier weights decayed by ``d``, the new answer adds
    one; answers whose weight faded below 1% are forgotten."""
    kept = {k: w * d for k, w in tally.items() if w * d >= 0.01}
    kept[key] = kept.get(key, 0.0) + 1.0
    return kept


def split(tally: dict[str, float], key: str) -> tuple[float, float]:
    """(agree, against): the weight of ``key`` and of every other answer."""
    agree = tally.get(key, 0.0)
    return agree, sum(tally.values()) - agree


def age_days(since: str, now: str) -> float:
    return (parse_iso(now) - parse_iso(since)).total_seconds() / SECONDS_PER_DAY


def confidence_now(row: Any, now: str, settings: Preferences) -> float:
    d = decay(age_days(row["updated_at"], now), settings.half_life_days)
    return confidence(row["support"] * d, row["against"] * d, settings)


def answer_key(answer: str, response_action: str | None) -> str:
    """What makes two answers the same: the action for approve and reject, else the action and the
    answer's words (case, spacing and closing punctuation aside)."""
    if response_action in SIMPLE_ACTIONS:
        return response_action
    words = re.sub(r"\s+", " ", answer.strip().lower()).rstrip(" .!")
    return f"{response_action}:{words}" if response_action else words


def scopes(context: dict[str, Any], settings: Preferences) -> list[tuple[str, str]]:
    """(scope, name) the context names, the person first."""
    found = []
    for scope, field in zip(SCOPES, (settings.person_field, settings.organisation_field)):
        name = context.get(field)
        if isinstance(name, str) and name.strip():
            found.append((scope, name.strip()[:200]))
    return found


# --- learning from answers ---
def learn(store: Store, conn: sqlite3.Connection, escalation_id: str, settings: Preferences, by: str) -> None:
    """An escalation was answered: update (or start) the preferences of the person and organisation
    its context names. Inside the answer's transaction."""
    if not settings.enabled:
        return
    record = store.escalation(escalation_id, conn)
    found = scopes(record.get("context") or {}, settings)
    if (not found or record["status"] != "answered" or not record.get("answer")
            or record.get("response_action") in NOT_ANSWERS or not answerable(record["type"], record["severity"], settings)):
        return
    row = store.preferences.issue_of(conn, escalation_id)
    if row is None:
        return
    issue, now = stored_issue(row), store.now()
    key = answer_key(record["answer"], record.get("response_action"))
    for scope, name in found:
        found_pref = _matching(store, conn, scope, name, record["type"], issue, settings)
        if found_pref is None:
            _start(store, conn, scope, name, record, row, key, by, now)
            continue
        pref = found_pref[0]
        d = decay(age_days(pref["updated_at"], now), settings.half_life_days)
        agrees = key == pref["answer_key"]
        tally = updated(json.loads(pref["tally"]), key, d)
        agree, against = split(tally, key)
        agreeing = pref["agreeing"] + 1 if agrees else 1
        changes = {"tally": json.dumps(tally, sort_keys=True), "support": agree, "against": against,
                   "agreeing": agreeing, "answers": pref["answers"] + 1, "updated_at": now,
                   "last_escalation": escalation_id, "sources": json.dumps([*json.loads(pref["sources"]), escalation_id])}
        if not agrees:
            changes.update(answer=record["answer"], answer_key=key, response_action=record.get("response_action"),
                           changes=pref["changes"] + 1)
        store.preferences.update(conn, pref["id"], changes)
        store.audit(conn, "preference_learned" if agrees else "preference_changed", by, escalation_id=escalation_id,
                    conversation_id=record["conversation_id"], task_id=record["task_id"],
                    data={"preference": pref["id"], "scope": scope, "holder": name, "agreeing": agreeing,
                          "confidence": round(confidence(agree, against, settings), 4)})


def answerable(etype: str, severity: str | None, settings: Preferences) -> bool:
    """Whether a preference may answer questions of this type and severity (never L4, never safety)."""
    if severity is None or severity == Severity.L4.value or severity > settings.max_severity.value:
        return False
    return etype in {t.value for t in settings.types} and etype != EscalationType.safety.value


def _matching(store: Store, conn: sqlite3.Connection, scope: str, name: str, etype: str, issue: Issue,
              settings: Preferences, exact: bool = False) -> tuple[Preference, str | None] | None:
    """The preference for this question, and the words it was learned from when they differ from
    the question's (``exact``: worded alike only)."""
    best = closest(store.preferences.candidates(conn, scope, name, etype), issue, settings.similarity, exact=exact)
    if best is None:
        return None
    pref = store.preferences.get(conn, best["id"])
    if pref is None:
        return None
    return pref, earlier_words(issue, stored_issue(best))


def _start(store: Store, conn: sqlite3.Connection, scope: str, name: str, record: dict[str, Any],
           row: StoredIssue, key: str, by: str, now: str) -> None:
    pref_id = store.preferences.start(
        conn, scope, name, record["type"], row, record["answer"], key, record.get("response_action"),
        json.dumps({key: 1.0}), record["id"], json.dumps([record["id"]]), now)
    store.audit(conn, "preference_created", by, escalation_id=record["id"], conversation_id=record["conversation_id"],
                task_id=record["task_id"], data={"preference": pref_id, "scope": scope, "holder": name})


# --- answering from a preference ---
def auto_answer(store: Store, conn: sqlite3.Connection, settings: Preferences, *, conversation_id: str,
                task_id: str, etype: EscalationType, trigger: str, severity: Severity | None, context: dict[str, Any],
                issue: Issue, policy_escalated: bool, confidence_of_type: float | None,
                new_issue: bool = False) -> EscalationResult | None:
    """The answer of the person's (else their organisation's) preference for this question, when
    one is at or above the threshold with enough agreeing answers; None: ask the person. The
    organisation's preference answers only when the person has none for it, or one with the same
    answer.
    ``policy_escalated``: the decision policy escalated it (critical, unusual): a person decides.
    ``new_issue``: the agent says its call is not an earlier question worded differently."""
    if (not settings.enabled or policy_escalated or severity is None
            or not answerable(etype.value, severity.value, settings) or issue.request_vector.size == 0):
        return None
    now = store.now()
    own: str | None = None  # the person's own latest answer to this question, when they have one
    for scope, name in scopes(context, settings):
        found = _matching(store, conn, scope, name, etype.value, issue, settings, exact=new_issue)
        if found is None:
            continue
        pref, earlier = found
        if scope == "person":
            own = pref["answer_key"]
        elif own is not None and pref["answer_key"] != own:
            continue  # the organisation's answer never overrides what the person said last
        if pref["agreeing"] < settings.min_answers:
            continue
        level = confidence_now(pref, now, settings)
        if level < settings.threshold:
            continue
        store.preferences.used(conn, pref["id"], now)
        store.audit(conn, "auto_answer", "system", conversation_id=conversation_id, task_id=task_id,
                    data={"preference": pref["id"], "scope": scope, "holder": name, "confidence": round(level, 4),
                          "agreeing": pref["agreeing"], "type": etype.value})
        use = PreferenceUse(id=pref["id"], scope=scope, scope_id=name, confidence=round(level, 4),
                            answers=pref["agreeing"], answer=pref["answer"], revoke=REVOKE.format(id=pref["id"]))
        action = pref["response_action"]
        step = NEXT.get(action or "", APPLY)
        said = ANSWERED.format(scope=scope, id=pref["id"], name=name, confidence=level, answers=pref["agreeing"])
        return EscalationResult(
            action=Action.proceed, type=etype, severity=severity, trigger=trigger, answer=pref["answer"],
            response=StructuredAnswer(action=action) if action in SIMPLE_ACTIONS else None,
            instruction=out.with_match(f"{said}: {step} {use.revoke}", earlier),
            conversation_id=conversation_id, task_id=task_id, confidence=confidence_of_type, preference=use,
            matched_request=earlier)
    return None


# --- listing and revoking ---
def listing(store: Store, settings: Preferences, *, scope: str | None = None, scope_id: str | None = None,
            revoked: bool = False) -> list[dict[str, Any]]:
    """Preferences (newest change first) with their confidence now and whether they answer."""
    if scope is not None and scope not in SCOPES:
        raise InputError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    scope_id = out.identifier(scope_id, "scope_id", required=False)
    now = store.now()
    found = []
    for row in store.preferences.listing(scope, scope_id, revoked):
        level = confidence_now(row, now, settings)
        found.append({**row, "confidence": round(level, 4),
                      "answers_now": row["revoked_at"] is None and settings.enabled and level >= settings.threshold
                      and row["agreeing"] >= settings.min_answers})
    return found


def revoke(store: Store, preference_id: Any, by: str, reason: str | None = None) -> dict[str, Any]:
    """Stop a preference answering for its person: they are asked again (and a new preference may
    be learned from their later answers)."""
    if isinstance(preference_id, str) and preference_id.strip().isdigit():
        preference_id = int(preference_id.strip())
    if isinstance(preference_id, bool) or not isinstance(preference_id, int) or not 0 < preference_id <= MAX_ID:
        raise InputError("preference_id must be a preference's number, e.g. 12 (see `escalation-matrix preferences list`)")
    by = out.identifier(by, "by")
    reason = out.text(reason, "reason", 2000, required=False)
    with store.transaction() as conn:
        row = store.preferences.listed(conn, preference_id)
        if row is None:
            raise NotFoundError(f"preference {preference_id} not found; `escalation-matrix preferences list` shows them")
        if row["revoked_at"] is not None:
            raise StateError(f"preference {preference_id} was already revoked at {row['revoked_at']} by {row['revoked_by']}")
        now = store.now()
        store.preferences.revoke(conn, preference_id, now, by)
        store.audit(conn, "preference_revoked", by, data={"preference": preference_id, "scope": row["scope"],
                                                            "holder": row["scope_id"], "reason": reason})
        return {**row, "revoked_at": now, "revoked_by": by}


def forget(store: Store, conn: sqlite3.Connection, escalation_ids: list[str], now: str, erased: str) -> list[int]:
    """Personal data erasure: a preference learned from any of ``escalation_ids`` holds that
    person's words, so its texts, vectors and tally are erased and it is revoked (it answers nothing
    more). Returns the ids of the preferences erased."""
    return store.preferences.forget(conn, escalation_ids, now, erased)
