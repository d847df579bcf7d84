"""Webhooks against real local receivers (raw sockets on 127.0.0.1): a total-time deadline per
delivery, delivery off the fail-safe timer's thread, at most four at once, the same on-create
notification for agent escalations, the URL kept out of everything stored or printed, and caller
text escaped for Slack."""

from __future__ import annotations

import dataclasses
import functools
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import Policy, load_policy
from escalation_matrix.ops import notify
from escalation_matrix.ops.failsafe import Sweeper
from escalation_matrix.ops_policy import OperationsFile, operations_policy
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

ROOT = Path(__file__).resolve().parents[2]


class RawReceiver:
    """Accepts connections and answers as told: ``mode`` ok (200 at once), drip (headers, then a
    byte every ``pace`` seconds) or silent (never answers). Counts connections open at once."""

    def __init__(self, mode: str = "ok", pace: float = 0.5, hold: float = 0.0):
        self.mode, self.pace, self.hold = mode, pace, hold
        self.bodies: list[bytes] = []
        self.open = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/services/T000/B000/secret-path"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
            self.bodies.append(body)
            time.sleep(self.hold)
            if self.mode == "silent":
                self._stop.wait(30)
            elif self.mode == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
                for _ in range(40):
                    conn.sendall(b"x")
                    time.sleep(self.pace)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def receivers():
    made: list[RawReceiver] = []

    def make(*args, **kwargs) -> RawReceiver:
        made.append(RawReceiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def ops_policy(url: str | None = None, timeout: str = "1s", reminder: str | None = None, **env_url: str) -> OperationsFile:
    data = yaml.safe_load((ROOT / "policies" / "operations.yaml").read_text())
    hook = data["notifications"]["channels"]["ops_webhook"]
    hook.update(urls=[url] if url else [], timeout=timeout, retries=0, **env_url)
    data["notifications"]["on_create"]["L1"] = ["log", "ops_webhook"]
    if reminder:
        data["failsafes"] = {"reminder": {"severity": "L1", "after": reminder, "notify": ["ops_webhook"]}}
    return OperationsFile.model_validate(data)


@functools.lru_cache(maxsize=1)
def _shipped() -> Policy:
    return load_policy()


def policy_with(ops: OperationsFile) -> Policy:
    """The shipped policy with ``ops`` as its operations.yaml."""
    return dataclasses.replace(_shipped(), operations=ops)


def test_a_receiver_that_drips_bytes_is_cut_off_at_the_deadline(store, receivers):
    hook = receivers("drip", pace=0.25)  # 40 bytes over 10 s, each well inside a per-read timeout
    ops = ops_policy(hook.url, timeout="1s")
    Operations(store, policy_with(ops)).create("Refund over the limit", severity="L2")
    started = time.monotonic()
    report = notify.deliver(store, ops)
    elapsed = time.monotonic() - started
    assert report.failed == 1 and "timed out" in report.errors[0]
    assert elapsed < 6, f"delivery took {elapsed:.1f} s with a 1 s deadline (the receiver drips for 10 s)"


def test_a_silent_receiver_does_not_delay_the_fail_safe_timers(db_path, receivers, policy):
    hook = receivers("silent")
    ops = ops_policy(hook.url, timeout="5s", reminder="1s")
    store = Store(db_path)
    records = Operations(store, policy_with(ops))
    # agent escalations: the fail-safe stages watch those
    ids = [records.create(f"Question {i}", severity="L1", type="clarification", source="agent")["id"] for i in range(6)]
    sweeper = Sweeper(store, policy_with(ops), interval=0.2).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fired = store._conn().execute("SELECT COUNT(*) FROM failsafe_events WHERE stage = 'reminder'").fetchone()[0]
            if fired == len(ids):
                break
            time.sleep(0.1)
        waited = time.monotonic() - (deadline - 10)
    finally:
        sweeper.stop(timeout=12)
    assert fired == len(ids)
    assert waited < 8, f"the 1 s reminders fired after {waited:.1f} s (six 5 s deliveries in a row take 30 s)"


def test_at_most_four_deliveries_run_at_once(store, receivers):
    hook = receivers("ok", hold=0.4)
    ops = ops_policy(hook.url, timeout="5s")
    for i in range(10):
        Operations(store, policy_with(ops)).create(f"Refund {i}", severity="L2")
    report = notify.deliver(store, ops)
    assert report.sent == 20 and len(hook.bodies) == 10  # 10 log + 10 webhook
    assert hook.most_open == 4  # in parallel, and never more than four


def test_an_agent_escalation_sends_the_on_create_notification(policy, fake_classifier, db_path, receivers, monkeypatch):
    hook = receivers("ok")
    monkeypatch.setenv("ESCALATION_MATRIX_WEBHOOK_URL", hook.url)
    guard = ConversationGuard(policy, fake_classifier, Store(db_path))
    made = guard.escalate("c1", "Deploy the new build to production", context={"environment": "production"})
    assert made.severity.value in ("L2", "L3")
    rows = notify.outbox(guard.store, escalation_id=made.escalation_id)
    assert {r["event"] for r in rows} == {"created"} and {r["channel"] for r in rows} == {"log", "ops_webhook"}
    notify.deliver(guard.store, operations_policy(policy))
    assert len(hook.bodies) == 1 and made.escalation_id in json.loads(hook.bodies[0])["text"]


def test_the_webhook_url_is_never_stored_audited_or_printed(db_path, receivers, tmp_path, monkeypatch):
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{down.getsockname()[1]}/services/T000/B000/very-secret-path"
    down.close()  # nobody listens: every attempt fails
    monkeypatch.setenv("ESCALATION_MATRIX_WEBHOOK_URL", url)
    policies = tmp_path / "policies"
    import shutil

    shutil.copytree(ROOT / "policies", policies)
    store = Store(db_path)
    ops = ops_policy(None, url_env="ESCALATION_MATRIX_WEBHOOK_URL")
    esc = Operations(store, policy_with(ops)).create("Refund over the limit", severity="L2")["id"]
    runner = CliRunner()
    swept = runner.invoke(main, ["--policies", str(policies), "sweep", "--db", str(db_path)])
    shown = runner.invoke(main, ["--policies", str(policies), "show", esc, "--json", "--db", str(db_path)])
    dump = "\n".join(store._conn().iterdump())
    for text in (swept.output, shown.output, dump):
        assert "very-secret-path" not in text
    assert "env:ESCALATION_MATRIX_WEBHOOK_URL" in shown.output  # the label says which setting it was


def test_caller_text_cannot_ping_a_channel_or_plant_a_link(store, receivers):
    hook = receivers("ok")
    ops = ops_policy(hook.url)
    Operations(store, policy_with(ops)).create("<!channel> <https://evil.example/login|Click here> & more", severity="L2",
                                  assigned_to="<!here>")
    notify.deliver(store, ops)
    message = json.loads(hook.bodies[0])
    shown = message["text"] + message["blocks"][0]["text"]["text"]
    assert "<!channel>" not in shown and "<https://" not in shown and "<!here>" not in shown
    assert "&lt;!channel&gt; &lt;https://evil.example/login|Click here&gt; &amp; more" in message["text"]


def test_two_deliverers_at_once_send_each_message_once(store, receivers):
    hook = receivers("ok", hold=0.3)
    ops = ops_policy(hook.url, timeout="5s")
    for i in range(6):
        Operations(store, policy_with(ops)).create(f"Refund {i}", severity="L2")
    other = Store(store.path, clock=store.clock)  # a second server process on the same file and clock
    threads = [threading.Thread(target=notify.deliver, args=(s, ops)) for s in (store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(hook.bodies) == 6
    assert len({json.loads(b)["escalation_matrix"]["escalation_id"] for b in hook.bodies}) == 6
