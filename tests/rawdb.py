"""Reading what a test's database holds without the product's code: a SQLite file through sqlite3,
a PostgreSQL database (a ``postgresql://`` URL) through psycopg."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def is_url(db: object) -> bool:
    return isinstance(db, str) and db.startswith("postgresql://")


def exists(db: Path | str) -> bool:
    return True if is_url(db) else Path(db).exists()


def query(db: Path | str, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
    """Rows as tuples; ``?`` placeholders on both."""
    if is_url(db):
        import psycopg

        with psycopg.connect(str(db), autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]  # type: ignore[arg-type]
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dump(db: Path | str) -> str:
    """Every value of every table, as text (what someone who copies the database would read)."""
    if not is_url(db):
        conn = sqlite3.connect(db)
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    tables = [r[0] for r in query(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
    return "\n".join(f"{table}: {row!r}" for table in sorted(tables) for row in query(db, f'SELECT * FROM "{table}"'))
