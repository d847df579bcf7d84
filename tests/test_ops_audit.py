"""The audit trail is append-only and hash-chained: ``verify`` passes on a clean chain and reports
the first bad entry after an edit, a deletion (middle or tail) or an inserted entry, made through a
raw connection to the database (SQLite or PostgreSQL) with the append-only triggers dropped."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from escalation_matrix.ops.audit import verify
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import GENESIS, Store
from clocks import T0

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends



@pytest.fixture
def filled(db_path: Path, policy) -> Path:
    """A file with a few escalations, notes, fail-safe stages and a close: a dozen audit entries."""
    moment = {"now": T0}
    store = Store(db_path, clock=lambda: moment["now"])
    ops = Operations(store, policy)
    a = ops.create("Ambiguous request", severity="L1", type="clarification", conversation_id="c1", task_id="t1",
                   source="agent")  # an agent escalation, so the fail-safe stages apply
    b = ops.create("Compliance concern", severity="L2", type="compliance", conversation_id="c1", task_id="t2")
    ops.note(a["id"], "asked the customer")
    moment["now"] = T0 + timedelta(minutes=20)
    sweep(store, policy)
    ops.close(b["id"], "refund approved", preventive_measures="rule added", lessons_learned="ask earlier")
    assert len(store.audit_entries()) >= 6
    store.close()
    return db_path


class Raw:
    """A connection that bypasses the store, as someone with write access to the database would."""

    def __init__(self, path: Path | str, drop_triggers: bool = True):
        self.pg = isinstance(path, str) and path.startswith("postgresql://")
        if self.pg:
            import psycopg
            from psycopg.rows import dict_row

            self.conn = psycopg.connect(path, autocommit=True, row_factory=dict_row)
            if drop_triggers:
                self.conn.execute("DROP TRIGGER audit_no_update ON audit")
                self.conn.execute("DROP TRIGGER audit_no_delete ON audit")
        else:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if drop_triggers:
                self.conn.execute("DROP TRIGGER audit_no_update")
                self.conn.execute("DROP TRIGGER audit_no_delete")

    def execute(self, sql: str, params: tuple = ()):
        return self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)

    def close(self) -> None:
        self.conn.close()


def raw(path: Path | str) -> Raw:
    return Raw(path)


def database_errors() -> tuple[type[Exception], ...]:
    import psycopg

    return (sqlite3.DatabaseError, psycopg.Error)


def check(path: Path):
    store = Store(path)
    try:
        return verify(store)
    finally:
        store.close()


def test_a_clean_chain_verifies(filled):
    result = check(filled)
    assert result.ok and result.first_bad_seq is None and result.problems == []
    assert result.entries >= 6 and result.head != GENESIS


def test_an_empty_trail_verifies(db_path):
    result = check(db_path)
    assert (result.ok, result.entries, result.head) == (True, 0, GENESIS)


def test_the_triggers_refuse_updates_and_deletes(filled):
    conn = Raw(filled, drop_triggers=False)
    with pytest.raises(database_errors(), match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(database_errors(), match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 2")
    conn.close()
    assert check(filled).ok


def test_an_edited_entry_is_reported_with_its_sequence_number(filled):
    conn = raw(filled)
    conn.execute("UPDATE audit SET data = '{\"text\": \"nothing to see\"}' WHERE seq = 3")
    conn.close()
    result = check(filled)
    assert not result.ok and result.first_bad_seq == 3
    assert "edited" in result.problems[0]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link_and_its_own_signature(filled):
    from escalation_matrix.store import entry_hash
    from escalation_matrix.ops.audit import FIELDS

    conn = raw(filled)
    row = dict(conn.execute("SELECT * FROM audit WHERE seq = 2").fetchone())
    row["actor"] = "mallory"
    forged = entry_hash(row["prev_hash"], {k: row[k] for k in FIELDS})
    conn.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 2", (forged,))
    conn.close()
    result = check(filled)
    # the re-hashed entry is caught by its keyed signature, the next one by its broken link
    assert not result.ok and result.first_bad_seq == 2
    assert "not signed with the audit key" in result.problems[0]
    assert any(p.startswith("entry 3:") and "prev_hash" in p for p in result.problems)


def test_a_deleted_entry_is_reported(filled):
    conn = raw(filled)
    conn.execute("DELETE FROM audit WHERE seq = 4")
    conn.close()
    result = check(filled)
    assert not result.ok and result.first_bad_seq == 5
    assert "deleted" in result.problems[0]


def test_a_deleted_last_entry_is_reported(filled):
    conn = raw(filled)
    last = conn.execute("SELECT MAX(seq) AS last FROM audit").fetchone()["last"]
    conn.execute("DELETE FROM audit WHERE seq = ?", (last,))
    conn.close()
    result = check(filled)
    assert not result.ok and result.first_bad_seq == last
    assert "deleted" in result.problems[0]


def test_verify_keeps_working_after_tampering_and_new_entries(filled, policy):
    conn = raw(filled)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    conn.close()
    store = Store(filled, clock=lambda: T0 + timedelta(hours=1))
    Operations(store, policy).create("Another one", severity="L1", type="clarification")
    result = verify(store)
    store.close()
    assert not result.ok and result.first_bad_seq == 2
