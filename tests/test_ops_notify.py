"""Notifications through the outbox against a real local webhook receiver (``http.server`` on
127.0.0.1) that is up, slow, failing and down: the payload is Slack-compatible, failures are
retried with back-off and end visibly as ``failed``, and the escalation is never blocked or lost."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from escalation_matrix.loader import Policy, load_policy
from escalation_matrix.ops import notify
from escalation_matrix.ops_policy import OperationsFile
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parents[1]



class Receiver:
    """A webhook receiver on 127.0.0.1; ``delay`` makes it slow, ``status`` makes it fail."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.delay = 0.0
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.received.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                try:
                    self.send_response(receiver.status)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout) before the answer
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        # a short poll: shutdown() returns within 50 ms instead of the default half second
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def refused_url() -> str:
    """A port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def ops_policy(url: str | None, timeout: str = "5s", retries: int = 5, backoff: str = "30s") -> OperationsFile:
    """The shipped operations.yaml with the webhook pointed at ``url``."""
    data = yaml.safe_load((ROOT / "policies" / "operations.yaml").read_text())
    hook = data["notifications"]["channels"]["ops_webhook"]
    hook.update(urls=[url] if url else [], url_env=None, timeout=timeout, retries=retries, backoff=backoff)
    return OperationsFile.model_validate(data)


@functools.lru_cache(maxsize=1)
def _shipped() -> Policy:
    return load_policy()


def policy_with(ops: OperationsFile) -> Policy:
    """The shipped policy with ``ops`` as its operations.yaml."""
    return dataclasses.replace(_shipped(), operations=ops)




def create_l2(store: Store, ops: OperationsFile) -> dict:
    return Operations(store, policy_with(ops)).create("Compliance concern on a refund", severity="L2", type="compliance",
                                         conversation_id="c1", task_id="t1", assigned_to="ed@example.com")


def webhook_rows(store: Store, esc_id: str) -> list[dict]:
    return [r for r in notify.outbox(store, escalation_id=esc_id) if r["channel"] == "ops_webhook"]


def test_a_receiver_that_is_up_gets_a_slack_compatible_json_post(store, clock, receiver):
    ops = ops_policy(receiver.url)
    esc = create_l2(store, ops)
    report = notify.deliver(store, ops, clock.moment)
    assert (report.sent, report.retrying, report.failed) == (2, 0, 0)  # log + webhook
    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert esc["id"] in message["text"] and "Compliance concern" in message["text"]
    assert message["blocks"][0]["type"] == "section"
    assert message["blocks"][0]["text"]["type"] == "mrkdwn" and esc["id"] in message["blocks"][0]["text"]["text"]
    assert message["escalation_matrix"]["escalation_id"] == esc["id"]
    assert message["escalation_matrix"]["assignee"] == "ed@example.com"
    assert [(r["status"], r["attempts"]) for r in webhook_rows(store, esc["id"])] == [("sent", 1)]
    assert notify.deliver(store, ops, clock.moment + timedelta(hours=1)).sent == 0  # nothing sent twice


def test_the_log_channel_writes_the_message_to_the_log(store, clock, caplog):
    ops = ops_policy(None)
    esc = Operations(store, policy_with(ops)).create("Ambiguous request", severity="L1", type="clarification")
    with caplog.at_level(logging.WARNING, logger="escalation_matrix.notify"):
        assert notify.deliver(store, ops, clock.moment).sent == 1
    assert any(esc["id"] in r.getMessage() and "Ambiguous request" in r.getMessage() for r in caplog.records)


def test_a_webhook_without_a_url_is_skipped_not_queued(store, monkeypatch):
    monkeypatch.delenv("ESCALATION_MATRIX_WEBHOOK_URL", raising=False)
    ops = ops_policy(None)
    esc = create_l2(store, ops)
    assert [r["channel"] for r in notify.outbox(store, escalation_id=esc["id"])] == ["log"]


def test_the_webhook_url_can_come_from_the_environment(store, clock, receiver, monkeypatch):
    monkeypatch.setenv("ESCALATION_MATRIX_WEBHOOK_URL", receiver.url)
    data = yaml.safe_load((ROOT / "policies" / "operations.yaml").read_text())
    ops = OperationsFile.model_validate(data)
    create_l2(store, ops)
    notify.deliver(store, ops, clock.moment)
    assert len(receiver.received) == 1


def test_a_slow_receiver_times_out_and_is_retried_later_with_back_off(store, clock, receiver):
    ops = ops_policy(receiver.url, timeout="0.3s", retries=3, backoff="30s")
    receiver.delay = 1.5
    esc = create_l2(store, ops)
    report = notify.deliver(store, ops, clock.moment)
    assert (report.retrying, report.failed) == (1, 0)
    [row] = webhook_rows(store, esc["id"])
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "timed out" in row["last_error"]
    assert row["next_attempt_at"] == "2026-03-02T09:00:30Z"
    record = store.escalation(esc["id"])
    assert (record["status"], record["severity"]) == ("open", "L2")  # the escalation is unaffected

    assert notify.deliver(store, ops, clock.moment + timedelta(seconds=20)).retrying == 0  # not due yet
    notify.deliver(store, ops, clock.moment + timedelta(seconds=30))
    [row] = webhook_rows(store, esc["id"])
    assert (row["attempts"], row["next_attempt_at"]) == (2, "2026-03-02T09:01:30Z")  # back-off doubled

    receiver.delay = 0
    assert notify.deliver(store, ops, clock.moment + timedelta(seconds=90)).sent == 1
    [row] = webhook_rows(store, esc["id"])
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)


def test_a_receiver_answering_500_is_retried(store, clock, receiver):
    ops = ops_policy(receiver.url, retries=1)
    receiver.status = 500
    esc = create_l2(store, ops)
    assert notify.deliver(store, ops, clock.moment).retrying == 1
    assert webhook_rows(store, esc["id"])[0]["last_error"] == "HTTP 500"
    receiver.status = 200
    assert notify.deliver(store, ops, clock.moment + timedelta(seconds=30)).sent == 1


def test_a_down_receiver_is_retried_then_marked_failed_and_the_failure_is_visible(store, clock):
    ops = ops_policy(refused_url(), retries=2, backoff="30s")
    esc = create_l2(store, ops)
    assert store.escalation(esc["id"])["status"] == "open"  # creation did not wait for the receiver
    outcomes = []
    for seconds in (0, 30, 90, 600, 3600):
        r = notify.deliver(store, ops, clock.moment + timedelta(seconds=seconds))
        outcomes.append((r.retrying, r.failed))
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    [row] = webhook_rows(store, esc["id"])
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert row["last_error"].startswith("unreachable")
    shown = Operations(store, policy_with(ops)).show(esc["id"])
    assert any(n["status"] == "failed" for n in shown["notifications"])
    failed = [a for a in shown["audit"] if a["action"] == "notification_failed"]
    assert len(failed) == 1 and failed[0]["data"]["attempts"] == 3
    assert notify.outbox(store, status="failed") == [row]
    record = store.escalation(esc["id"])  # the record is intact and still open for a person
    assert (record["status"], record["reason"]) == ("open", "Compliance concern on a refund")


def test_a_down_receiver_does_not_block_later_escalations_or_the_log_channel(store, clock):
    ops = ops_policy(refused_url(), retries=0)
    ids = [create_l2(store, ops)["id"] for _ in range(3)]
    report = notify.deliver(store, ops, clock.moment)
    assert (report.sent, report.failed) == (3, 3)  # three log messages out, three webhook failures
    assert [store.escalation(i)["status"] for i in ids] == ["open"] * 3
    assert ids == ["ESC-2026-001", "ESC-2026-002", "ESC-2026-003"]


def test_two_replicas_delivering_the_same_outbox_send_each_notification_once(db_path, clock, receiver):
    """Every replica runs a deliverer; a row is claimed inside the write transaction, so two
    deliverers on one database (two stores: two pools, as two replicas have) never both send it."""
    ops = ops_policy(receiver.url)
    stores = [Store(db_path, clock=clock) for _ in range(2)]
    ids = [Operations(stores[0], policy_with(ops)).create(f"Compliance concern {i}", severity="L2", type="compliance",
                                             conversation_id=f"c{i}", task_id="t1")["id"] for i in range(6)]
    barrier = threading.Barrier(2)
    sent: list[int] = []

    def run(store: Store) -> None:
        barrier.wait()
        for _ in range(3):
            sent.append(notify.deliver(store, ops, clock.moment).sent)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert sorted(m["escalation_matrix"]["escalation_id"] for m in receiver.received) == sorted(ids)
    assert sum(sent) == 12  # the log line and the webhook of each escalation, once each
