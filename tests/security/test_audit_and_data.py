"""The audit chain against someone who can write the database file (keyed MACs, an anchor file),
and personal data: redacted before storing, logging and notifying, request text kept out of the
audit trail, `erase` and the retention policy, with the chain still verifiable."""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
import sqlite3
from datetime import timedelta

import httpx2
import pytest
import rawdb
from click.testing import CliRunner
from serving import OPERATOR_TOKEN

from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.ops.audit import FIELDS, verify
from escalation_matrix.ops.erase import erase_conversation, erase_expired
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store, entry_hash, entry_mac, key_from_file

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
SECRET_REQUEST = "Charge card 4111 1111 1111 1111 for Ana Ruiz, ana.ruiz@example.com, then deploy to production"


@pytest.fixture
def guard(policy, fake_classifier, store):
    return ConversationGuard(policy, fake_classifier, store)


@pytest.fixture
def filled(guard, policy, clock):
    ops = Operations(guard.store, policy)
    for i in range(3):
        esc = ops.create(f"Refund {i} over the limit", severity="L2")["id"]
        ops.note(esc, f"checked ledger {i}")
    guard.escalate("c1", SECRET_REQUEST, context={"environment": "production"})
    assert verify(guard.store).ok
    return guard.store


def raw(store: Store) -> sqlite3.Connection:
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def rehash_from(conn: sqlite3.Connection, seq: int, key: bytes | None = None) -> None:
    """What an attacker does after an edit: recompute every later hash (and MAC, given the key)."""
    prev = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq - 1,)).fetchone()
    prev = prev[0] if prev else "0" * 64
    for row in conn.execute("SELECT * FROM audit WHERE seq >= ? ORDER BY seq", (seq,)).fetchall():
        digest = entry_hash(prev, {k: row[k] for k in FIELDS})
        mac = entry_mac(key, digest) if key else row["mac"]
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ?, mac = ? WHERE seq = ?", (prev, digest, mac, row["seq"]))
        prev = digest


# --- point 12 ---
@pytest.mark.sqlite_only  # through sqlite3 on the file; tests/test_ops_audit.py tampers on both backends
def test_an_edit_with_every_later_hash_recomputed_is_detected(filled):
    conn = raw(filled)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    rehash_from(conn, 2)
    conn.close()
    result = verify(Store(filled.path))
    assert not result.ok and result.first_bad_seq == 2
    assert "not signed with the audit key" in result.problems[0]


@pytest.mark.sqlite_only  # through sqlite3 on the file; tests/test_ops_audit.py tampers on both backends
def test_a_deleted_tail_with_the_counter_fixed_is_detected(filled):
    conn = raw(filled)
    last = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE seq >= ?", (last - 1,))
    conn.execute("UPDATE counters SET value = ? WHERE name = 'audit-length'", (last - 2,))
    conn.close()
    result = verify(Store(filled.path))
    assert not result.ok
    assert any("the anchor records entry" in p and "deleted" in p for p in result.problems)


@pytest.mark.sqlite_only  # through sqlite3 on the file; tests/test_ops_audit.py tampers on both backends
def test_a_rewrite_with_the_stolen_key_is_still_caught_by_the_anchor(filled):
    key = filled.audit_key
    conn = raw(filled)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    rehash_from(conn, 2, key)
    conn.close()
    result = verify(Store(filled.path))
    assert not result.ok and "differs from its anchored hash" in " ".join(result.problems)


@pytest.mark.sqlite_only  # through sqlite3 on the file; tests/test_ops_audit.py tampers on both backends
def test_the_key_and_the_anchor_live_outside_the_database(filled):
    dump = "\n".join(sqlite3.connect(filled.path).iterdump())
    assert filled.audit_key.decode() not in dump
    assert filled.anchor_path.exists() and filled.anchor_path != filled.path
    assert (filled.path.with_name(filled.path.name + ".audit-key").stat().st_mode & 0o077) == 0


def test_processes_starting_at_once_share_one_whole_audit_key(tmp_path):
    key_file = tmp_path / "state.db.audit-key"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        keys = pool.map(key_from_file, [key_file] * 24)
    assert len(set(keys)) == 1 and re.fullmatch(rb"[0-9a-f]{64}", keys[0]), keys
    assert [p.name for p in tmp_path.iterdir()] == [key_file.name]  # no temporary file left behind
    assert key_file.stat().st_mode & 0o077 == 0


@pytest.mark.sqlite_only  # through sqlite3 on the file; tests/test_ops_audit.py tampers on both backends
def test_audit_verify_exits_1_on_a_rehashed_trail(filled):
    conn = raw(filled)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    rehash_from(conn, 3)
    conn.close()
    result = CliRunner().invoke(main, ["audit", "verify", "--db", str(filled.path)])
    assert result.exit_code == 1 and "entry 3" in result.output


# --- point 13 ---
def everything_stored(store: Store) -> str:
    return rawdb.dump(store.path)


def test_card_numbers_and_emails_are_redacted_before_they_are_stored(filled):
    stored = everything_stored(filled)
    assert CARD not in stored and CARD_DIGITS not in stored and "ana.ruiz@example.com" not in stored
    assert "[card number]" in stored and "[email]" in stored


def test_request_text_stays_out_of_the_audit_trail(filled):
    created = [e for e in filled.audit_entries() if e["action"] == "create"][0]
    assert set(created["data"]["request"]) == {"ref"} and created["data"]["request"]["ref"].startswith("hmac-sha256:")
    assert "Ana Ruiz" not in json.dumps(filled.audit_entries())


def test_an_operator_answer_is_redacted_in_storage_and_in_notifications(guard, policy, caplog):
    ops = Operations(guard.store, policy)
    esc = ops.create("Refund over the limit", severity="L2")["id"]
    with caplog.at_level(logging.INFO):
        ops.answer(esc, f"Use card {CARD}, key sk-live-4eC39HqLyjWDarjtT1zdp7dc, call +44 20 7946 0958")
        from escalation_matrix.ops.notify import deliver
        from escalation_matrix.ops_policy import operations_policy

        deliver(guard.store, operations_policy(policy))
    stored = everything_stored(guard.store)
    for secret in (CARD, "sk-live-4eC39HqLyjWDarjtT1zdp7dc", "7946 0958"):
        assert secret not in stored and secret not in caplog.text
    assert "[card number]" in guard.store.escalation(esc)["answer"]


def test_erase_removes_a_conversations_text_and_the_chain_still_verifies(filled):
    erased = erase_conversation(filled, "c1", by="dpo", reason="erasure request 2026-17")
    assert erased == 1
    [record] = filled.escalations("conversation_id = 'c1'")
    assert record["request"] == "[erased]" and record["context"] == {} and record["erased_at"]
    assert "Ana Ruiz" not in everything_stored(filled)
    check = verify(filled)
    assert check.ok, check.problems
    assert filled.audit_entries()[-1]["action"] == "erased"


def test_the_erase_command(filled):
    result = CliRunner().invoke(main, ["erase", "c1", "--by", "dpo", "--reason", "request 17", "--db", str(filled.path)])
    assert result.exit_code == 0, result.output
    assert "erased the personal data of 1 escalations" in result.output
    missing = CliRunner().invoke(main, ["erase", "nobody", "--by", "dpo", "--reason", "x", "--db", str(filled.path)])
    assert missing.exit_code == 1 and "has no escalations" in missing.output


def test_retention_erases_what_was_closed_long_enough_ago(guard, policy, clock):
    ops = Operations(guard.store, policy)
    old = ops.create("Refund for Ana Ruiz", severity="L2")["id"]
    ops.close(old, "refunded Ana Ruiz")
    still_open = ops.create("Refund for Bo Lin", severity="L2")["id"]
    assert erase_expired(guard.store, policy) == 0
    clock.moment += timedelta(days=91)
    assert erase_expired(guard.store, policy) == 1
    assert guard.store.escalation(old)["erased_at"] and guard.store.escalation(still_open)["erased_at"] is None
    assert verify(guard.store).ok


@pytest.mark.slow
def test_the_real_server_keeps_a_card_number_out_of_its_log_and_database(serve):
    served = serve()
    esc = Operations(Store(served.db), load_policy()).create("Refund over the limit", severity="L2")["id"]
    client = httpx2.Client(base_url=served.base, timeout=10)
    client.get(f"/console?token={OPERATOR_TOKEN}", follow_redirects=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/console").text).group(1)
    client.post(f"/console/escalations/{esc}/answer", data={"csrf": csrf, "answer": f"refund to card {CARD}"})
    served.proc.terminate()
    served.proc.wait(timeout=15)
    assert "answered" in Store(served.db).escalation(esc)["status"]
    assert CARD not in served.stderr() and CARD not in everything_stored(Store(served.db))
