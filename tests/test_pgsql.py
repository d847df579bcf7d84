"""The PostgreSQL dialect layer without a server: statement translation, migration DDL, rows that
read like sqlite3.Row, the URL shown without its password, and Store picking the backend by name."""

from __future__ import annotations

from decimal import Decimal

import pytest

from escalation_matrix import pgsql
from escalation_matrix.store import MIGRATIONS, PostgresStore, Store, postgres_statements


def test_placeholders_become_psycopg_ones_and_literal_percent_signs_are_doubled():
    assert pgsql.translate("SELECT * FROM t WHERE a = ? AND b LIKE '50%' AND c = '?'") == \
        "SELECT * FROM t WHERE a = %s AND b ILIKE '50%%' AND c = '?'"
    assert pgsql.translate("SELECT 'LIKE' FROM t WHERE \"like\" LIKE ? ESCAPE '\\'") == \
        "SELECT 'LIKE' FROM t WHERE \"like\" ILIKE %s ESCAPE '\\'"


def test_json_extract_and_insert_or_ignore_are_rewritten():
    assert pgsql.translate("SELECT json_extract(context, '$.suggestion') FROM escalations") == \
        "SELECT (context::jsonb ->> 'suggestion') FROM escalations"
    assert pgsql.translate("INSERT OR IGNORE INTO x VALUES (?)") == "INSERT INTO x VALUES (%s) ON CONFLICT DO NOTHING"


def test_migration_types_are_renamed_and_sqlite_only_statements_replaced():
    every = [s for m in MIGRATIONS for s in postgres_statements(m.sql)]
    text = "\n".join(every)
    assert "BLOB" not in text and "AUTOINCREMENT" not in text and "randomblob" not in text
    assert "INSERT OR REPLACE" not in text and "RAISE(ABORT" not in text
    assert any("id BIGSERIAL PRIMARY KEY" in s and "CREATE TABLE notes" in s for s in every)
    assert "audit_append_only" in text and "BEFORE TRUNCATE ON audit" in text
    assert "ALTER TABLE failsafe_events ADD COLUMN rowid BIGSERIAL" in every
    assert all(s.count(";") <= 2 for s in every)  # one statement each (function bodies hold their own)


def test_rows_read_like_sqlite_rows_and_numbers_come_back_as_python_numbers():
    index = {"n": 0, "avg": 1, "blob": 2}
    make = pgsql.row_factory(type("C", (), {"description": [type("D", (), {"name": k})() for k in index]})())
    row = make((Decimal(3), Decimal("2.5"), memoryview(b"xy")))
    assert row[0] == 3 and isinstance(row["n"], int) and row["avg"] == 2.5 and row["blob"] == b"xy"
    assert dict(row) == {"n": 3, "avg": 2.5, "blob": b"xy"} and row.keys() == ["n", "avg", "blob"]
    assert list(row) == [3, 2.5, b"xy"] and len(row) == 3


def test_the_url_is_shown_without_its_password():
    assert pgsql.masked("postgresql://em:s3cret@db.internal:5432/escalations") == \
        "postgresql://em:***@db.internal:5432/escalations"
    assert pgsql.masked("postgresql://db/escalations") == "postgresql://db/escalations"


def test_store_picks_the_backend_from_the_name(tmp_path, monkeypatch):
    assert type(Store(tmp_path / "a.db")) is Store
    monkeypatch.setenv("ESCALATION_MATRIX_DB", str(tmp_path / "b.db"))
    assert type(Store()) is Store and Store().path == tmp_path / "b.db"
    opened: list[str] = []
    monkeypatch.setattr(PostgresStore, "__init__", lambda self, path=None, clock=None: opened.append(path))
    assert isinstance(Store("postgresql://em@db/escalations"), PostgresStore)
    monkeypatch.setenv("ESCALATION_MATRIX_DB", "postgresql://em@db/other")
    assert isinstance(Store(), PostgresStore)
    assert opened == ["postgresql://em@db/escalations", None]


def test_bools_are_sent_as_integers_and_named_parameters_are_refused():
    assert pgsql._params([True, False, 2, "x"]) == [1, 0, 2, "x"]
    with pytest.raises(TypeError):
        pgsql._params({"a": 1})


def test_migrations_are_recorded_by_name_and_a_foreign_or_newer_database_is_refused(tmp_path):
    import sqlite3

    from escalation_matrix.errors import StateError

    path = tmp_path / "state.db"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY version")]
    assert names == [m.name for m in MIGRATIONS]
    conn.execute("UPDATE migrations SET name = NULL")  # a database from before migrations had names
    Store(path).close()
    assert [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY version")] == names
    conn.execute("UPDATE migrations SET name = 'something_else' WHERE version = 2")
    with pytest.raises(StateError, match="migration 2 is 'something_else'"):
        Store(path)
    conn.execute("UPDATE migrations SET name = ? WHERE version = 2", (names[1],))
    conn.execute("INSERT INTO migrations VALUES (?, 'now', 'from_the_future')", (len(MIGRATIONS) + 1,))
    with pytest.raises(StateError, match="upgrade escalation-matrix"):
        Store(path)
    conn.close()


def test_a_lost_connection_and_a_pool_with_no_free_connection_are_told_apart():
    import psycopg
    from psycopg_pool import PoolTimeout

    from escalation_matrix.errors import UnavailableError

    with pytest.raises(UnavailableError, match="cannot be reached right now; retry") as lost, \
            pgsql.reporting_unavailable():
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    assert lost.value.retryable
    with pytest.raises(UnavailableError, match="every pooled connection is busy .*ESCALATION_MATRIX_DB_POOL"), \
            pgsql.reporting_unavailable():
        raise PoolTimeout("couldn't get a connection after 5.00 sec")
