"""The adaptive escalation target: per-type threshold offsets that move, in
bounded steps, towards a target escalation rate, from the rate measured over the last requests and
from outcomes (a person or operator marks an escalation necessary or unnecessary; an operator
reports a missed one). Types on the policy's floor (safety) never move. Every change is recorded
with its before and after value and the reason, written to the audit trail, and can be reverted.

``plan`` is the pure rule (the replay benchmark drives it directly); the other functions keep the
offsets, outcomes and changes in the store (its named queries: ``store.thresholds``)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .decisions_policy import Adaptive
from .errors import InputError, NotFoundError
from .models import EscalationType
from .queries.thresholds import PENDING as PENDING
from .queries.thresholds import Outcome, OutcomeMark, ThresholdChange
from .store import Store

OUTCOME_KINDS = ("necessary", "unnecessary", "missed")
ADJUSTABLE = tuple(t for t in EscalationType if t not in (EscalationType.none, EscalationType.pattern))
ROUND = 4


@dataclass
class Window:
    """What one adjustment looks at: the decisions of the window and the outcomes since the last one."""

    decisions: int = 0
    escalations: Counter[EscalationType] = field(default_factory=Counter)
    necessary: Counter[EscalationType] = field(default_factory=Counter)
    unnecessary: Counter[EscalationType] = field(default_factory=Counter)
    missed: Counter[EscalationType] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return sum(self.escalations.values()) / self.decisions if self.decisions else 0.0


@dataclass(frozen=True)
class Change:
    type: EscalationType
    before: float
    after: float
    reason: str


def plan(window: Window, current: dict[EscalationType, float], settings: Adaptive) -> list[Change]:
    """The offset changes one adjustment makes. Too many escalations raise the offsets of the types
    that escalated (most for the most frequent), too few lower them; outcomes weigh in per type
    (mostly unnecessary pushes up, necessary or missed pushes down), a type with a missed report
    never goes up, each step is at most ``step`` and every offset stays within ``max_offset``."""
    if not settings.enabled or not window.decisions:
        return []
    rate, target = window.rate, settings.target_rate
    pressure = 1 if rate > target + settings.tolerance else (-1 if rate < target - settings.tolerance else 0)
    busiest = max(window.escalations.values(), default=0)
    changes = []
    for etype in ADJUSTABLE:
        if etype in settings.floor:
            continue
        n, u, m = window.necessary[etype], window.unnecessary[etype], window.missed[etype]
        evidence = (u - n - 2 * m) / (n + u + m) if n + u + m >= settings.min_outcomes else 0.0
        if pressure > 0:
            share = window.escalations[etype] / busiest if busiest else 0.0
            drive = share + evidence if share else 0.0
        elif pressure < 0:
            drive = -1.0 + evidence
        else:
            drive = min(evidence, 0.0) if m else 0.0  # on target: only a missed escalation moves it
        if m:
            drive = min(drive, 0.0)
        drive = max(-1.0, min(1.0, drive))
        before = current.get(etype, 0.0)
        after = round(max(-settings.max_offset, min(settings.max_offset, before + settings.step * drive)), ROUND)
        if abs(after - before) < 1e-9:
            continue
        reason = (f"rate {rate:.3f} vs target {target:g} over {window.decisions} requests; outcomes "
                  f"necessary {n}, unnecessary {u}, missed {m}")
        changes.append(Change(etype, before, after, reason))
    return changes


# --- offsets ---
def offsets(store: Store, conn: sqlite3.Connection | None = None,
            floor: tuple[EscalationType, ...] | list[EscalationType] = ()) -> dict[EscalationType, float]:
    """The current per-type offsets (types on the floor left out: their threshold never moves)."""
    stored = store.thresholds.offsets(conn)
    return {EscalationType(t): v for t, v in stored.items() if EscalationType(t) not in floor and v}


def _set(store: Store, conn: sqlite3.Connection, change: Change, by: str, *, reverts: int | None = None,
         window: Window | None = None) -> int:
    now = store.now()
    store.thresholds.set_offset(conn, change.type.value, change.after, now)
    change_id = store.thresholds.record_change(
        conn, now, change.type.value, change.before, change.after, change.reason, by, reverts,
        round(window.rate, ROUND) if window else None, window.decisions if window else None)
    store.audit(conn, "threshold_change", by, data={"change": change_id, "type": change.type.value,
                                                     "before": change.before, "after": change.after,
                                                     "reason": change.reason, "reverts": reverts})
    return change_id


def _type(value: Any, what: str = "type") -> EscalationType:
    names = ", ".join(t.value for t in ADJUSTABLE)
    try:
        etype = EscalationType(value)
    except ValueError:
        raise InputError(f"{what} {value!r} is not an escalation type; use one of {names}") from None
    if etype not in ADJUSTABLE:
        raise InputError(f"{what} {etype.value!r} has no threshold; use one of {names}")
    return etype


def set_offset(store: Store, etype: str, value: float, by: str, settings: Adaptive,
               reason: str = "set by an operator") -> ThresholdChange:
    """An operator sets one type's offset (within +/- max_offset; never a floor type)."""
    chosen = _type(etype)
    if chosen in settings.floor:
        raise InputError(f"the {chosen.value} threshold is on the floor in decisions.yaml (adaptive.floor): it "
                         "never moves")
    if abs(value) > settings.max_offset:
        raise InputError(f"offset {value:g} is outside +/- {settings.max_offset:g} (adaptive.max_offset)")
    with store.transaction() as conn:
        before = offsets(store, conn).get(chosen, 0.0)
        change_id = _set(store, conn, Change(chosen, before, round(value, ROUND), reason), by)
    return change(store, change_id)


def revert(store: Store, change_id: int, by: str) -> ThresholdChange:
    """Undo one change: the type's offset goes back to the change's ``before`` (a new, audited change)."""
    with store.transaction() as conn:
        row = store.thresholds.change(change_id, conn)
        if row is None:
            raise NotFoundError(f"threshold change {change_id} not found; list them with `thresholds history`")
        if row["reverted_by"] is not None:
            raise InputError(f"threshold change {change_id} was already reverted by change {row['reverted_by']}")
        etype = EscalationType(row["type"])
        now_value = offsets(store, conn).get(etype, 0.0)
        new_id = _set(store, conn, Change(etype, now_value, float(row["before"]), f"revert of change {change_id}"),
                      by, reverts=change_id)
        store.thresholds.mark_reverted(conn, change_id, new_id)
    return change(store, new_id)


def change(store: Store, change_id: int) -> ThresholdChange:
    row = store.thresholds.change(change_id)
    if row is None:
        raise NotFoundError(f"threshold change {change_id} not found")
    return row


def history(store: Store, limit: int = 50) -> list[ThresholdChange]:
    return store.thresholds.history(limit)


# --- outcomes ---
def agrees_with_default(record: dict[str, Any], answer: str) -> bool:
    """The person chose what the agent would have done anyway: the recommendation the agent gave in
    its context (``recommendation`` or ``default``), else the first option it offered."""
    context = record.get("context") or {}
    default = context.get("recommendation") or context.get("default")
    if not default:
        options = record.get("options") or []
        default = options[0] if options else None
    return isinstance(default, str) and default.strip().casefold() == answer.strip().casefold()


def record_outcome(store: Store, conn: sqlite3.Connection, outcome: str, by: str, *,
                   escalation_id: str | None = None, etype: str | None = None, note: str | None = None,
                   replace: bool = True) -> None:
    """``necessary`` / ``unnecessary`` for an escalation (a later mark replaces an earlier one; with
    ``replace=False`` a second mark is refused), or ``missed`` for a request that should have
    escalated as ``etype`` and did not."""
    if outcome not in OUTCOME_KINDS:
        raise InputError(f"outcome {outcome!r} is not one of {', '.join(OUTCOME_KINDS)}")
    if outcome == "missed":
        if etype is None:
            raise InputError("a missed escalation needs the type it should have had (e.g. decision)")
        kind = _type(etype)
        escalation_id = None
    else:
        if escalation_id is None:
            raise InputError(f"{outcome} needs the escalation id")
        kind = EscalationType(store.escalation(escalation_id, conn)["type"])
        earlier = None if replace else recorded_outcome(store, escalation_id, conn)
        if earlier is not None:
            raise InputError(f"{escalation_id} is already marked {earlier['outcome']} by {earlier['by']} at "
                             f"{earlier['at']}; an operator changes it with `escalation-matrix outcome "
                             f"{escalation_id} necessary|unnecessary`")
    note = store.redactor.value(note) if note else None  # free text: secrets and personal data redacted
    store.thresholds.record_outcome(conn, store.now(), escalation_id, kind.value, outcome, by, note)
    store.audit(conn, "outcome", by, escalation_id=escalation_id,
                data={"outcome": outcome, "type": kind.value, "note": note})


def recorded_outcome(store: Store, escalation_id: str,
                     conn: sqlite3.Connection | None = None) -> OutcomeMark | None:
    """The outcome marked for one escalation (outcome, by, at, note), or None."""
    return store.thresholds.outcome_of(escalation_id, conn)


def outcomes(store: Store, since: str | None = None) -> list[Outcome]:
    return store.thresholds.outcomes(since)


# --- adjustments ---
def window(store: Store, conn: sqlite3.Connection, size: int) -> Window:
    """The last ``size`` evaluated requests, and the outcomes not yet used by an adjustment."""
    w = Window()
    for type_, outcome in store.thresholds.latest_decisions(conn, size):
        w.decisions += 1
        if outcome == "created" and type_ in {t.value for t in ADJUSTABLE}:
            w.escalations[EscalationType(type_)] += 1
    for type_, outcome in store.thresholds.unused_outcomes(conn):
        getattr(w, outcome)[EscalationType(type_)] += 1
    return w


def adjust(store: Store, settings: Adaptive, by: str = "adaptive",
           conn: sqlite3.Connection | None = None) -> list[ThresholdChange]:
    """One adjustment now: measure, plan, apply and audit; the outcomes used are marked."""
    if conn is None:
        with store.transaction() as own:
            ids = _adjust(store, own, settings, by)
    else:
        ids = _adjust(store, conn, settings, by)
    return store.thresholds.changes(ids, conn)


def _adjust(store: Store, conn: sqlite3.Connection, settings: Adaptive, by: str) -> list[int]:
    w = window(store, conn, settings.window)
    ids = [_set(store, conn, c, by, window=w) for c in plan(w, offsets(store, conn), settings)]
    store.thresholds.use_outcomes(conn, ids[-1] if ids else 0)
    store.thresholds.reset_pending(conn)
    return ids


def note_decision(store: Store, conn: sqlite3.Connection, settings: Adaptive) -> None:
    """Count one evaluated request; every ``window`` of them, adjust automatically."""
    if not settings.enabled:
        return
    if store.thresholds.count_pending(conn) >= settings.window:
        _adjust(store, conn, settings, "adaptive")
