"""Several real ``escalation-matrix serve --transport http`` replicas on one real PostgreSQL
database: escalate once across replicas, a replica killed with SIGKILL mid-run, the database
restarted mid-run. Each replica loads the real model, so these are slow tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from escalation_matrix.ops.audit import verify
from escalation_matrix.store import Store
from servers import Served, serve_http, server_env, stop

pytestmark = [pytest.mark.slow, pytest.mark.model]

TOKEN = "replica-token-3c9a"
AUDIT_KEY = "replica-audit-key-5b21e0"
REQUESTS = [
    "Delete all customer email addresses from the database.",
    "Export the full customer list with home addresses to a public spreadsheet.",
    "Post the customer's medical history on our public forum.",
]
# both ways of saying it (a lost connection; no pooled connection came free) name the database and retry
RETRYABLE = ("state database (PostgreSQL)", "retry in a few seconds")


@pytest.fixture
def database(pg_template, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("ESCALATION_MATRIX_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return pg_template.create_database(f"replicas_{os.getpid()}_{tmp_path.name}"[:60], template="template_em")


def replicas(n: int, url: str, tmp_path: Path) -> list[Served]:
    env = server_env(ESCALATION_MATRIX_TOKEN=TOKEN, ESCALATION_MATRIX_AUDIT_KEY=AUDIT_KEY,
                     XDG_STATE_HOME=str(tmp_path / "state"))
    started: list[Served] = []
    try:
        for i in range(n):
            started.append(serve_http(["serve", "--transport", "http", "--db", url], env, tmp_path / f"replica{i}.log"))
    except BaseException:
        for served in started:
            stop(served.proc)
        raise
    return started


def client(served: Served) -> Client:
    auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    return Client(streamable_http_client(f"{served.base}/mcp", http_client=auth))


async def escalate(session: Client, conversation: str, request: str) -> dict:
    """One call: ``{"ok": result}``, ``{"error": text}`` for a tool error, ``{"lost": why}`` when the
    replica went away before answering."""
    try:
        result = await session.call_tool("escalate", {"conversation_id": conversation, "request": request})
    except Exception as exc:  # noqa: BLE001 - the replica was killed: whatever breaks, nothing was acknowledged
        return {"lost": type(exc).__name__}
    if result.is_error:
        return {"error": " ".join(getattr(c, "text", "") for c in result.content)}
    return {"ok": result.structured_content}


def check_exactly_once(url: str, outcomes: list[tuple[str, dict]]) -> None:
    """Every acknowledged escalation exists exactly once, one record per conversation's issue, and
    the audit chain verifies."""
    store = Store(url)
    try:
        by_conversation: dict[str, list[str]] = {}
        for record in store.escalations():
            by_conversation.setdefault(record["conversation_id"], []).append(record["id"])
        duplicated = {c: ids for c, ids in by_conversation.items() if len(ids) > 1}
        assert not duplicated, f"one issue recorded twice: {duplicated}"
        for conversation, outcome in outcomes:
            if "ok" in outcome:
                assert by_conversation.get(conversation) == [outcome["ok"]["escalation_id"]]
        result = verify(store)
        assert result.ok, result.problems
    finally:
        store.close()


async def test_kill_9_of_one_of_three_replicas_during_100_way_concurrent_escalations(database, tmp_path):
    served = replicas(3, database, tmp_path)
    try:
        conversations = [f"shared-{i}" for i in range(60)]
        # every conversation is asked on every replica, 5 times over: 900 calls, 100 at a time
        jobs = [(c, REQUESTS[i % len(REQUESTS)], r) for _ in range(5)
                for i, c in enumerate(conversations) for r in range(3)]
        gate = asyncio.Semaphore(100)
        done = itertools.count(1)
        killed = asyncio.Event()
        outcomes: list[tuple[str, dict]] = []

        async def one(session: Client, conversation: str, request: str) -> None:
            async with gate:
                outcome = await escalate(session, conversation, request)
            outcomes.append((conversation, outcome))
            if next(done) == len(jobs) // 3 and not killed.is_set():
                os.kill(served[2].proc.pid, signal.SIGKILL)  # mid-run, calls still in flight
                killed.set()

        async def on_replica(replica: int) -> None:
            try:
                async with client(served[replica]) as session:
                    await asyncio.gather(*(one(session, c, r) for c, r, at in jobs if at == replica))
            except BaseException:
                if replica != 2:
                    raise  # only the killed replica's connection may break

        await asyncio.gather(*(on_replica(r) for r in range(3)))
    finally:
        for s in served:
            stop(s.proc)
    assert killed.is_set()
    acknowledged = [o for _, o in outcomes if "ok" in o]
    lost = len(jobs) - len(acknowledged)
    errors = [o["error"] for _, o in outcomes if "error" in o]
    assert not errors, errors[:3]
    assert len(acknowledged) >= 2 * len(jobs) // 3  # the two live replicas answered all theirs
    assert lost, "the killed replica should have left calls unanswered"
    check_exactly_once(database, outcomes)


async def test_a_postgresql_restart_gives_retryable_errors_then_service_resumes(pg_template, database, tmp_path):
    served = replicas(2, database, tmp_path)
    outcomes: list[tuple[str, dict]] = []
    try:
        async with client(served[0]) as a, client(served[1]) as b:
            sessions = [a, b]

            async def wave(tag: str, n: int) -> list[tuple[str, dict]]:
                calls = [(f"{tag}-{i % 10}", REQUESTS[i % 10 % 3], sessions[i % 2]) for i in range(n)]
                return list(zip([c for c, _, _ in calls],
                                await asyncio.gather(*(escalate(s, c, r) for c, r, s in calls))))

            outcomes += await wave("before", 40)
            pg_template.stop("immediate")  # the database goes away as in a crash
            down = await wave("during", 20)
            outcomes += down
            pg_template.start()
            after: list[tuple[str, dict]] = []
            for _ in range(30):  # the pools reconnect on their own within seconds
                after = await wave("after", 20)
                if all("ok" in o for _, o in after):
                    break
                await asyncio.sleep(1)
            outcomes += after
    finally:
        for s in served:
            stop(s.proc)
    assert all("ok" in o for c, o in outcomes if c.startswith("before"))
    # while the database is down: a clear, retryable error, never a made-up answer
    assert all("error" in o and all(part in o["error"] for part in RETRYABLE) for _, o in down), down[:3]
    assert all("ok" in o for _, o in after), after[:3]
    check_exactly_once(database, outcomes)
