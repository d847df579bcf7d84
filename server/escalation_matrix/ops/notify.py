"""Notifications through an outbox: an event is written in the same transaction as the change it
reports, and delivered afterwards by ``deliver`` with retries and exponential back-off. A slow or
down receiver therefore never blocks or loses an escalation; a delivery that keeps failing ends as
``failed`` in the outbox and in the audit trail, where ``show``, ``notifications`` and the console
make it visible."""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from ..store import Store, equals_where, iso
from .policy import Channel, OperationsFile

log = logging.getLogger("escalation_matrix.notify")
CLAIM = timedelta(minutes=2)  # a claimed row is retried by someone else if its sender died
Sender = Callable[[str, bytes, float], None]


def payload(event: str, record: dict[str, Any], text: str, recipient: str, catch_up: bool = False) -> dict[str, Any]:
    """Slack-compatible: ``text`` plus one mrkdwn section; machine fields under ``escalation_matrix``."""
    head = f"[{record['id']}] {record['severity']} {record['type']} - {event.replace('_', ' ')}"
    body = f"*{head}*\n{text}\nFor: {recipient}. Assignee: {record.get('assignee') or 'unassigned'}."
    return {
        "text": f"{head}: {text}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
        "escalation_matrix": {
            "event": event, "escalation_id": record["id"], "severity": record["severity"],
            "level": record.get("level"), "status": record.get("status"), "assignee": record.get("assignee"),
            "recipient": recipient, "conversation_id": record.get("conversation_id"),
            "task_id": record.get("task_id"), "catch_up": catch_up,
        },
    }


def enqueue(store: Store, conn: sqlite3.Connection, ops: OperationsFile, channels: list[str], event: str,
            record: dict[str, Any], text: str, recipient: str = "assignee", catch_up: bool = False) -> int:
    """Queue one message per channel target, inside the caller's transaction. Returns rows queued.
    ``catch_up``: a fail-safe notice sent late after downtime; the log channel summarises those."""
    body = json.dumps(payload(event, record, text, recipient, catch_up), ensure_ascii=False)
    now, queued = store.now(), 0
    for name in dict.fromkeys(channels):
        channel = ops.notifications.channels[name]
        targets = [None] if channel.kind == "log" else channel.resolved_urls()
        if not targets:
            log.debug("channel %s has no webhook URL configured; skipped", name)
        for target in targets:
            conn.execute(
                "INSERT INTO outbox (escalation_id, event, channel, target, payload, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (record["id"], event, name, target, body, now, now))
            queued += 1
    return queued


def http_post(url: str, body: bytes, timeout: float) -> None:
    """POST JSON; any non-2xx answer, timeout or connection error raises."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "escalation-matrix"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL from policy)
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}")


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver(store: Store, ops: OperationsFile, now: datetime | None = None, send: Sender = http_post,
            limit: int = 200) -> DeliveryReport:
    """Try every due outbox row once. Safe to run from several processes at the same time."""
    now = now or store.clock()
    report = DeliveryReport()
    with store.transaction() as conn:
        rows = [dict(r) for r in conn.execute(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (iso(now), limit))]
        for row in rows:  # claim them so a concurrent deliverer skips them
            conn.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (iso(now + CLAIM), row["id"]))
    caught_up: list[dict[str, Any]] = []
    for row in rows:
        channel = ops.notifications.channels.get(row["channel"])
        if channel is not None and channel.kind == "log" and _is_catch_up(row):
            caught_up.append(row)  # one summary line below instead of a warning each
            continue
        try:
            _send(row, channel, send)
        except Exception as exc:  # noqa: BLE001 - any failure of a receiver is recorded, never raised
            _failed(store, ops, row, channel, now, _describe(exc), report)
        else:
            with store.transaction() as conn:
                conn.execute("UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, "
                             "last_error = NULL WHERE id = ?", (iso(now), row["id"]))
            report.sent += 1
    if caught_up:
        _log_catch_up(store, now, caught_up)
        report.sent += len(caught_up)
    return report


def _is_catch_up(row: dict[str, Any]) -> bool:
    return bool(json.loads(row["payload"]).get("escalation_matrix", {}).get("catch_up"))


def _log_catch_up(store: Store, now: datetime, rows: list[dict[str, Any]]) -> None:
    ids = list(dict.fromkeys(r["escalation_id"] for r in rows))
    stages: dict[str, int] = {}
    for r in rows:
        stages[r["event"]] = stages.get(r["event"], 0) + 1
    with store.transaction() as conn:
        conn.executemany("UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, last_error = NULL "
                         "WHERE id = ?", [(iso(now), r["id"]) for r in rows])
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    log.warning("%d overdue escalations caught up after a pause (%s): %s; `escalation-matrix show ID` has each one",
                len(ids), ", ".join(f"{n} {stage.replace('_', ' ')}" for stage, n in stages.items()), shown)


def _send(row: dict[str, Any], channel: Channel | None, send: Sender) -> None:
    if channel is None:
        raise LookupError(f"channel {row['channel']!r} is no longer in policies/operations.yaml")
    if channel.kind == "log":
        log.warning("%s", json.loads(row["payload"])["text"])
        return
    send(row["target"], row["payload"].encode("utf-8"), channel.timeout.total_seconds())


def _failed(store: Store, ops: OperationsFile, row: dict[str, Any], channel: Channel | None, now: datetime,
            error: str, report: DeliveryReport) -> None:
    attempts = row["attempts"] + 1
    retries = channel.retries if channel else 0
    report.errors.append(f"{row['channel']} {row['target'] or ''}: {error}".strip())
    with store.transaction() as conn:
        if attempts > retries:
            conn.execute("UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                         (attempts, error, row["id"]))
            store.audit(conn, "notification_failed", "notifier", escalation_id=row["escalation_id"],
                        data={"outbox_id": row["id"], "channel": row["channel"], "target": row["target"],
                              "event": row["event"], "attempts": attempts, "error": error})
            log.error("notification %s for %s via %s failed after %d attempts: %s", row["event"],
                      row["escalation_id"], row["channel"], attempts, error)
            report.failed += 1
            return
        backoff = (channel.backoff if channel else timedelta(0)) * (2 ** (attempts - 1))
        conn.execute("UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                     (attempts, error, iso(now + backoff), row["id"]))
        report.retrying += 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def outbox(store: Store, status: str | None = None, escalation_id: str | None = None) -> list[dict[str, Any]]:
    where, params = equals_where(status=status, escalation_id=escalation_id)
    rows = store._conn().execute(f"SELECT * FROM outbox WHERE {where} ORDER BY id", params)
    return [{k: v for k, v in dict(r).items() if k != "payload"} for r in rows]
