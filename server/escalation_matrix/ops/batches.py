"""Batching: escalations that can wait, for one person, are queued in an open batch and delivered
together, as one notification, when the batch holds ``max_items`` or ``window_seconds`` after its
first item (policy ``batching`` in decisions.yaml). A critical decision, a decision the policy
escalated, safety, an L3 or an L4 is never batched: it is sent at once, as before.

A queued escalation is an ordinary record (escalate once and never re-ask hold for it as for any
other); only its notification is held. The batch is delivered inside a store transaction whose
``UPDATE ... WHERE status = 'open'`` only one caller wins, so every server replica may run the
sweep (``deliver_due``) and a batch still goes out once. Items of one task, type and resource are
grouped in the notification, the console, the CLI and the card.

The person answers a batch with ``answer_batch``: approve (or reject) all of its open items or the
ones they select, each through the structured-answer path (one audit entry per item) and one
``batch_answer`` audit entry for the batch."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any, Callable

from ..answers import respond_action
from ..decisions_policy import Batching
from ..errors import InputError, NotFoundError, StateError
from ..models import EscalationResult, EscalationType, Severity
from ..queries.records import RecordFilter
from ..store import OPEN_STATUSES, Store, iso, parse_iso

MAX_ID = 2**62
BATCH_ACTIONS = ("approve", "reject")
SEVERITIES = ("L1", "L2", "L3", "L4")
ITEM_COLUMNS = ("id", "ref", "type", "severity", "trigger", "status", "question", "request", "conversation_id",
                "task_id", "assignee", "created_at", "answer", "response_action", "context", "options")


def person_for(settings: Batching, *, etype: EscalationType, severity: Severity | None, critical: bool,
               policy_escalated: bool, context: dict[str, Any]) -> str | None:
    """The person whose batch this escalation waits in, or None when it is sent at once: batching
    off, a type or severity that never waits, a critical decision or one the policy escalated, or a
    context that names no person."""
    if not settings.enabled or severity is None or critical or policy_escalated:
        return None
    if etype not in settings.types or etype in (EscalationType.safety, EscalationType.pattern, EscalationType.none):
        return None
    if SEVERITIES.index(severity.value) > SEVERITIES.index(settings.max_severity.value) or severity.value in ("L3", "L4"):
        return None
    person = context.get(settings.person_field)
    if not isinstance(person, str) or not person.strip():
        return None
    return person.strip()[:200]


def enqueue(store: Store, conn: sqlite3.Connection, settings: Batching, policy: Any, escalation_id: str,
            person: str) -> dict[str, Any]:
    """Put a new escalation in ``person``'s open batch (opening one when there is none); a batch
    that reaches ``max_items`` is delivered at once. Returns the batch row."""
    now = store.clock()
    current = store.batches.open_for(conn, person)
    if current is None:
        deliver_by = now + timedelta(seconds=settings.window_seconds)
        batch_id = store.batches.open(conn, person, iso(now), iso(deliver_by))
    else:
        batch_id = current["id"]
    store.batches.add(conn, batch_id, escalation_id)
    batch = _batch(store, conn, batch_id)
    record = store.escalation(escalation_id, conn)
    store.audit(conn, "batch_queued", "system", escalation_id=escalation_id, conversation_id=record["conversation_id"],
                task_id=record["task_id"], data={"batch_id": batch_id, "items": batch["items"],
                                                 "deliver_by": batch["deliver_by"]})
    if batch["items"] >= settings.max_items:
        deliver(store, conn, settings, policy, batch_id, "full")
        batch = _batch(store, conn, batch_id)
    return batch


def _batch(store: Store, conn: sqlite3.Connection | None, batch_id: int) -> dict[str, Any]:
    """The batch row as a plain dict (callers add its items and shown state to it)."""
    batch = store.batches.get(batch_id, conn)
    if batch is None:
        raise NotFoundError(f"batch {batch_id} not found; `escalation-matrix batch list` lists the batches")
    return dict(batch)


def deliver(store: Store, conn: sqlite3.Connection, settings: Batching, policy: Any, batch_id: int,
            why: str, at: str | None = None) -> bool:
    """Deliver one open batch (at ``at``, default now): a single notification listing its open
    items, grouped. False when another caller delivered it first (or it is not open)."""
    now = at or store.now()
    if not store.batches.mark_delivered(conn, batch_id, now, why):
        return False
    items = _items(store, conn, batch_id)
    waiting = [i for i in items if i["status"] in OPEN_STATUSES]
    _start_clocks(store, conn, [i["id"] for i in waiting], now)
    person = _batch(store, conn, batch_id)["person"]
    store.audit(conn, "batch_delivered", "system", data={
        "batch_id": batch_id, "why": why, "items": [i["id"] for i in waiting],
        "groups": len(groups(waiting, settings)), "recipient": person})
    if not waiting:
        return True
    from ..ops_policy import operations_policy
    from . import notify

    ops = operations_policy(policy)
    highest = max((Severity(i["severity"]) for i in waiting), key=lambda s: SEVERITIES.index(s.value))
    channels = ops.notifications.on_create.get(highest, [])
    record = {**store.escalation(waiting[0]["id"], conn), "severity": highest.value, "type": "batch"}
    notify.enqueue(store, conn, ops, channels, "batch_delivered", record, notification_text(batch_id, waiting, settings),
                   person)
    return True


def _start_clocks(store: Store, conn: sqlite3.Connection, ids: list[str], now: str) -> None:
    """The fail-safe clock of a delivered question starts now, when its person gets it: its
    severity clock and its due time move by the time it waited in the batch."""
    for esc_id in ids:
        record = store.escalation(esc_id, conn)
        started = parse_iso(record.get("severity_at") or record["created_at"])
        waited = parse_iso(now) - started
        if waited.total_seconds() <= 0:
            continue
        due = iso(parse_iso(record["due_at"]) + waited) if record.get("due_at") else None
        store.batches.move_clock(conn, esc_id, now, due)


def queued_ids(store: Store, conn: sqlite3.Connection) -> set[str]:
    """Escalations still waiting in an open batch: their person has not got them yet."""
    return store.batches.queued_ids(conn)


def deliver_due(store: Store, conn: sqlite3.Connection, settings: Batching, policy: Any,
                now: datetime | None = None) -> list[int]:
    """Deliver every open batch whose window has ended (the fail-safe sweep calls this in its
    transaction). Returns the ids delivered by this call."""
    moment = iso(now or store.clock())
    due = store.batches.due(conn, moment)
    return [b for b in due if deliver(store, conn, settings, policy, b, "window", moment)]


def _items(store: Store, conn: sqlite3.Connection | None, batch_id: int) -> list[dict[str, Any]]:
    rows = store.find_escalations(RecordFilter(batch_id=batch_id), "created", conn=conn)
    return [{k: r.get(k) for k in ITEM_COLUMNS} for r in rows]


def resource_of(item: dict[str, Any], settings: Batching) -> str | None:
    if "context" not in item:
        return item.get("resource")
    value = (item.get("context") or {}).get(settings.resource_field)
    return None if value is None else str(value)


def groups(items: list[dict[str, Any]], settings: Batching) -> list[dict[str, Any]]:
    """Related items together: one group per task (a conversation's task), type and resource, in
    the order first seen."""
    found: dict[tuple[str | None, str, str, str | None], dict[str, Any]] = {}
    for item in items:
        key = (item.get("conversation_id"), item.get("task_id") or "default", item["type"], resource_of(item, settings))
        group = found.setdefault(key, {"conversation_id": key[0], "task_id": key[1], "type": key[2],
                                       "resource": key[3], "items": []})
        group["items"].append(item["id"])
    return list(found.values())


def notification_text(batch_id: int, items: list[dict[str, Any]], settings: Batching) -> str:
    """What the person reads: how many questions, then each group with its questions."""
    by_id = {i["id"]: i for i in items}
    parts = [f"Batch {batch_id}: {len(items)} question{'s' if len(items) != 1 else ''} waiting for you."]
    for g in groups(items, settings):
        where = f"{g['conversation_id']} task {g['task_id']}, {g['type']}" + (f", {g['resource']}" if g["resource"] else "")
        asked = "; ".join(f"{i} {by_id[i]['question'] or by_id[i]['request']}" for i in g["items"])
        parts.append(f"[{where}] {asked}")
    parts.append(f"Approve all or the ones you select: `escalation-matrix batch approve {batch_id}`, or the console.")
    return " ".join(parts)


def annotate(store: Store, conn: sqlite3.Connection, result: EscalationResult) -> EscalationResult:
    """An agent result for a queued escalation: ``queued`` while its batch waits, the ``batch_id``,
    and an instruction that says so."""
    if result.escalation_id is None or result.action.value not in ("escalate",):
        return result
    batch = store.batches.of_escalation(conn, result.escalation_id)
    if batch is None:
        return result
    queued = batch.status == "open"
    if queued:
        told = (f"Queued with other questions for {batch.person} in batch {batch.id}, delivered to them by "
                f"{batch.deliver_by} or sooner when the batch is full: do not ask them yourself and do not ask "
                "again; continue with work that does not depend on it and wait for the answer.")
    else:
        told = (f"Delivered to {batch.person} with other questions in batch {batch.id}: do not ask again; "
                "wait for the answer.")
    return result.model_copy(update={"queued": queued, "batch_id": batch.id, "instruction": told})


def forget(store: Store, conn: sqlite3.Connection, ids: list[str], erased: str) -> None:
    """Erasing escalations: a batch notification lists the questions of several of them, so every
    batch notification of their batches loses its text (the erasure module calls this)."""
    store.batches.forget_notifications(conn, ids, erased)


# --- reading and answering, for the MCP tools, the CLI and the console ---
def status_of(batch: dict[str, Any], items: list[dict[str, Any]]) -> str:
    """open (collecting), delivered (waiting for answers) or answered (no item open any more)."""
    if batch["status"] != "open" and items and not any(i["status"] in OPEN_STATUSES for i in items):
        return "answered"
    return str(batch["status"])


def _batch_id(batch_id: Any) -> int:
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or not 1 <= batch_id <= MAX_ID:
        raise InputError(f"batch_id must be a positive whole number, got {batch_id!r}")
    return batch_id


def show(store: Store, batch_id: int, settings: Batching) -> dict[str, Any]:
    """One batch: its state, its items (with what the person was asked) and their groups."""
    batch_id = _batch_id(batch_id)
    batch = _batch(store, None, batch_id)
    items = _items(store, None, batch_id)
    for item in items:
        item["resource"] = resource_of(item, settings)
        item["open"] = item["status"] in OPEN_STATUSES
        item.pop("context", None)
    batch["status"] = status_of(batch, items)
    batch["open_items"] = sum(1 for i in items if i["open"])
    batch["items"] = items
    batch["groups"] = groups(items, settings)
    return batch


def listing(store: Store, settings: Batching, status: str | None = None, person: str | None = None,
            limit: int = 200) -> list[dict[str, Any]]:
    """Batches, newest first, with their item counts (``status`` filters on the shown state)."""
    out = []
    for row in store.batches.listing(person, limit):
        batch: dict[str, Any] = dict(row)
        items = _items(store, None, batch["id"])
        batch["status"] = status_of(batch, items)
        batch["open_items"] = sum(1 for i in items if i["status"] in OPEN_STATUSES)
        batch["groups"] = len(groups(items, settings))
        if status is None or batch["status"] == status:
            out.append(batch)
    return out


def answer_batch(store: Store, batch_id: int, by: str, settings: Batching, *, items: list[str] | None = None,
                 action: str = "approve", note: str | None = None, max_chars: int = 8000,
                 learn: Any = None, role: str = "operator",
                 check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Approve (or reject) every open item of a batch, or only ``items`` (ids or refs of its items).
    Each item is answered through the structured-answer path (its own audit entry, outcome and
    preference learning; ``role="agent"``: the agent's checks of ``access.check_agent_answer``); one
    ``batch_answer`` entry records the batch operation."""
    if action not in BATCH_ACTIONS:
        raise InputError(f"action {action!r} is not one of {', '.join(BATCH_ACTIONS)}")
    batch = show(store, batch_id, settings)
    if check is not None:
        check(batch)
    by_name = {i["id"]: i for i in batch["items"]} | {i["ref"]: i for i in batch["items"] if i["ref"]}
    if items is not None:
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise InputError("items must be a non-empty list of escalation ids of the batch; omit it to answer all")
        unknown = [i for i in items if i.strip() not in by_name]
        if unknown:
            named = ", ".join(repr(u[:60]) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise InputError(f"{named} {'is' if len(unknown) == 1 else 'are'} not in batch {batch_id}; "
                             f"its items are {', '.join(i['id'] for i in batch['items'])}")
        chosen = list(dict.fromkeys(by_name[i.strip()]["id"] for i in items))
    else:
        chosen = [i["id"] for i in batch["items"] if i["open"]]
    closed = [i for i in chosen if not by_name[i]["open"]]
    if items is not None and closed:
        raise StateError(f"{', '.join(closed)} already answered; select open items of batch {batch_id}")
    if not chosen:
        raise StateError(f"batch {batch_id} has no open item left to {action}")
    done: list[str] = []
    for esc_id in chosen:
        respond_action(store, esc_id, action, by, max_chars, role=role, note=note, preferences=learn)
        done.append(esc_id)
    with store.transaction() as conn:
        left = store.batches.open_items(conn, batch_id)
        if left == 0:
            # answered before it went out: nothing is left to deliver
            store.batches.mark_answered(conn, batch_id)
        store.audit(conn, "batch_answer", by, data={"batch_id": batch_id, "action": action, "items": done,
                                                    "selected": items is not None, "open_left": int(left)})
    return {"batch_id": batch_id, "action": action, "answered": done, "open_left": int(left),
            "status": show(store, batch_id, settings)["status"]}


def efficiency(store: Store, start: str, end: str) -> dict[str, Any]:
    """Batch efficiency of a period: batches delivered, their items, items per batch and the
    notifications saved (one per batch instead of one per item)."""
    delivered = store.batches.delivered_between(start, end)
    batches, items = delivered.batches, delivered.items
    return {"batches_delivered": batches, "batched_items": items,
            "items_per_batch": round(items / batches, 3) if batches else None,
            "notifications_saved": items - batches}
