"""Notifications through an outbox: an event is written in the same transaction as the change it
reports, and delivered afterwards by ``deliver`` with retries and exponential back-off. A slow or
down receiver therefore never blocks or loses an escalation; a delivery that keeps failing ends as
``failed`` in the outbox and in the audit trail, where ``show``, ``notifications`` and the console
make it visible.

Each delivery has a total-time deadline (the channel's timeout, for connecting, sending and reading
together: a receiver that drips a byte at a time is cut off), at most ``CONCURRENCY`` run at once,
and in the server they run on their own thread (``Dispatcher``), never on the fail-safe timer's.
Webhook URLs are secrets: the outbox, the audit trail and every message name the channel and a
label (``urls[0]``, ``env:NAME``); the URL is read from the configuration when sending. Every field a
caller wrote is escaped for Slack mrkdwn, so text cannot ping a channel or plant a link."""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import sqlite3
import threading
import urllib.error
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from ..models import Severity
from ..queries.outbox import OutboxEntry, OutboxStatus
from ..store import Store, iso
from ..ops_policy import Channel, OperationsFile

log = logging.getLogger("escalation_matrix.notify")
CLAIM_MARGIN = timedelta(seconds=30)  # a claimed row is retried by someone else only if its sender died
CONCURRENCY = 4  # deliveries at once
Sender = Callable[[str, bytes, float], None]


def mrkdwn(value: Any) -> str:
    """Text shown literally by Slack: its control characters ``&``, ``<`` and ``>`` escaped, so no
    ``<!channel>`` ping and no ``<url|label>`` link; line breaks become spaces."""
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(event: str, record: dict[str, Any], text: str, recipient: str, catch_up: bool = False) -> dict[str, Any]:
    """Slack-compatible: ``text`` plus one mrkdwn section; machine fields under ``escalation_matrix``.
    Every value is escaped (``mrkdwn``) and redacted (``redact.redact``) before it leaves."""
    from ..redact import redact

    text, recipient = redact(text), redact(recipient)
    assignee = record.get("assignee") or "unassigned"
    head = (f"[{mrkdwn(record['id'])}] {mrkdwn(record['severity'])} {mrkdwn(record['type'])} - "
            f"{mrkdwn(event.replace('_', ' '))}")
    body = f"*{head}*\n{mrkdwn(text)}\nFor: {mrkdwn(recipient)}. Assignee: {mrkdwn(assignee)}."
    return {
        "text": f"{head}: {mrkdwn(text)}",
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
        targets = [None] if channel.kind == "log" else [label for label, _ in channel.targets()]
        if not targets:
            log.debug("channel %s has no webhook URL configured; skipped", name)
        for target in targets:
            store.outbox.queue(conn, record["id"], event, name, target, body, now)
            queued += 1
    return queued


def announce(store: Store, conn: sqlite3.Connection, ops: OperationsFile, esc_id: str, text: str) -> int:
    """Queue the on-create notification of a new escalation, whatever made it (agent, operator, pipeline)."""
    record = store.escalation(esc_id, conn)
    channels = ops.notifications.on_create.get(Severity(record["severity"]), [])
    return enqueue(store, conn, ops, channels, "created", record, text, record.get("assignee") or "assignee")


def http_post(url: str, body: bytes, timeout: float) -> None:
    """POST JSON within ``timeout`` seconds in total (connect, send, read); any non-2xx answer,
    timeout or connection error raises. A watchdog closes the socket at the deadline, so a receiver
    that answers one byte at a time cannot hold the sender."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the webhook URL must start with http:// or https://")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=timeout)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(timeout, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        path = parts.path or "/"
        conn.request("POST", path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers={"Content-Type": "application/json", "User-Agent": "escalation-matrix"})
        response = conn.getresponse()
        response.read(65536)
        if expired.is_set():
            raise TimeoutError("deadline passed")
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(path, response.status, response.reason, response.headers, None)
    except OSError as exc:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:g} s") from None
        raise exc
    finally:
        watchdog.cancel()
        conn.close()


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
        rows = store.outbox.due(conn, iso(now), limit)
        # claim them so a concurrent deliverer skips them, for longer than this run can take: every
        # delivery ends by its deadline and CONCURRENCY run at once
        longest = max((c.timeout for c in ops.notifications.channels.values()), default=timedelta(seconds=5))
        claim = longest * (math.ceil(len(rows) / CONCURRENCY) + 1) + CLAIM_MARGIN
        store.outbox.claim(conn, [row["id"] for row in rows], iso(now + claim))
    caught_up: list[OutboxEntry] = []
    to_send: list[OutboxEntry] = []
    for row in rows:
        channel = ops.notifications.channels.get(row["channel"])
        if channel is not None and channel.kind == "log" and _is_catch_up(row):
            caught_up.append(row)  # one summary line below instead of a warning each
        else:
            to_send.append(row)
    if to_send:
        with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(to_send)), thread_name_prefix="notify") as pool:
            outcomes = list(pool.map(lambda row: _attempt(row, ops, send), to_send))
        for row, error in zip(to_send, outcomes):
            channel = ops.notifications.channels.get(row["channel"])
            if error is not None:
                _failed(store, ops, row, channel, now, error, report)
                continue
            with store.transaction() as conn:
                store.outbox.sent(conn, [row["id"]], iso(now))
            report.sent += 1
    if caught_up:
        _log_catch_up(store, now, caught_up)
        report.sent += len(caught_up)
    return report


def _is_catch_up(row: OutboxEntry) -> bool:
    return bool(json.loads(row["payload"]).get("escalation_matrix", {}).get("catch_up"))


def _log_catch_up(store: Store, now: datetime, rows: list[OutboxEntry]) -> None:
    ids = list(dict.fromkeys(r["escalation_id"] or "" for r in rows))
    stages: dict[str, int] = {}
    for r in rows:
        stages[r["event"]] = stages.get(r["event"], 0) + 1
    with store.transaction() as conn:
        store.outbox.sent(conn, [r["id"] for r in rows], iso(now))
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    log.warning("%d overdue escalations caught up after a pause (%s): %s; `escalation-matrix show ID` has each one",
                len(ids), ", ".join(f"{n} {stage.replace('_', ' ')}" for stage, n in stages.items()), shown)


def _attempt(row: OutboxEntry, ops: OperationsFile, send: Sender) -> str | None:
    """Send one row; None when it went out, else what went wrong (never the URL)."""
    channel = ops.notifications.channels.get(row["channel"])
    url = None
    try:
        url = _send(row, channel, send)
    except Exception as exc:  # noqa: BLE001 - any failure of a receiver is recorded, never raised
        error = _describe(exc)
        return error.replace(url, row["target"] or "") if url else error
    return None


def _send(row: OutboxEntry, channel: Channel | None, send: Sender) -> str | None:
    if channel is None:
        raise LookupError(f"channel {row['channel']!r} is no longer in policies/operations.yaml")
    if channel.kind == "log":
        log.warning("%s", json.loads(row["payload"])["text"])
        return None
    url = channel.url_for(row["target"] or "")  # a webhook row always names its target
    if url is None:
        raise LookupError(f"channel {row['channel']!r} has no {row['target']} any more")
    try:
        send(url, row["payload"].encode("utf-8"), channel.timeout.total_seconds())
    except Exception as exc:
        if url in str(exc):  # the error names the target, never the secret URL
            raise type(exc)(str(exc).replace(url, row["target"] or "")) from None
        raise
    return url


def _failed(store: Store, ops: OperationsFile, row: OutboxEntry, channel: Channel | None, now: datetime,
            error: str, report: DeliveryReport) -> None:
    attempts = row["attempts"] + 1
    retries = channel.retries if channel else 0
    report.errors.append(f"{row['channel']} {row['target'] or ''}: {error}".strip())
    with store.transaction() as conn:
        if attempts > retries:
            store.outbox.failed(conn, row["id"], attempts, error)
            store.audit(conn, "notification_failed", "notifier", escalation_id=row["escalation_id"],
                        data={"outbox_id": row["id"], "channel": row["channel"], "target": row["target"],
                              "event": row["event"], "attempts": attempts, "error": error})
            log.error("notification %s for %s via %s failed after %d attempts: %s", row["event"],
                      row["escalation_id"], row["channel"], attempts, error)
            report.failed += 1
            return
        backoff = (channel.backoff if channel else timedelta(0)) * (2 ** (attempts - 1))
        store.outbox.retry(conn, row["id"], attempts, error, iso(now + backoff))
        report.retrying += 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, (ConnectionError, socket.gaierror)):
        return f"unreachable: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class Dispatcher:
    """Delivers the outbox on its own thread, so a slow receiver never delays a fail-safe timer:
    ``wake()`` after each sweep (or on a change); it also runs every ``interval``."""

    def __init__(self, store: Store, ops: OperationsFile, interval: float = 30.0):
        self.store, self.ops, self.interval = store, ops, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalation-notifier", daemon=True)

    def start(self) -> "Dispatcher":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                deliver(self.store, self.ops)
            except Exception:  # the notifier must survive a bad round
                log.exception("notification delivery failed; retrying in %.0f s", self.interval)


def outbox(store: Store, status: str | None = None, escalation_id: str | None = None) -> list[OutboxStatus]:
    """The outbox rows without their payloads (all, or those with this status / of this escalation)."""
    return store.outbox.entries(status=status, escalation_id=escalation_id)
