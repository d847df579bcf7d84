"""PostgreSQL for the store: the SQL the store writes (SQLite's dialect) translated once per
statement, connections from a pool, rows that behave like ``sqlite3.Row``, and every lost
connection reported as :class:`~escalation_matrix.errors.UnavailableError` (retry later) instead of
an internal error.

Several server replicas share one database. Every write transaction first takes one
transaction-scoped advisory lock, so writes are serialised across replicas exactly as SQLite's
``BEGIN IMMEDIATE`` serialises them across processes: a check-then-insert (is this issue already
open? is this fail-safe stage already fired? which audit entry is last?) sees every committed write
and no other writer can interleave. Reads take no lock."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from .errors import UnavailableError

# the advisory lock every write transaction takes ("ESMX" as an integer)
WRITE_LOCK = 0x45534D58
# how long a call waits for a pooled connection (PostgreSQL down or every connection busy)
CONNECT_TIMEOUT_S = 5.0
URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(db: object) -> bool:
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def masked(url: str) -> str:
    """The URL without its password (for logs and status lines)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# --- rows ---
class Row:
    """A result row read like ``sqlite3.Row``: by position, by column name, ``dict(row)``, ``keys()``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]):
        self._values = values
        self._index = index

    def keys(self) -> list[str]:
        return list(self._index)

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self._values == other._values and self._index == other._index

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


def _plain(value: Any) -> Any:
    """SUM and AVG give numeric (Decimal) where SQLite gives int or float; bytea may come as memoryview."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


def row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return lambda values: values
    index = {column.name: i for i, column in enumerate(description)}
    return lambda values: Row(tuple(_plain(v) for v in values), index)


# --- the dialect ---
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"])*\"|\?|%|[^'\"?%]+", re.S)
_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)", re.I)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.I)
_LIKE = re.compile(r"\bLIKE\b", re.I)


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """One statement in SQLite's dialect as PostgreSQL runs it: ``?`` placeholders become ``%s`` (a
    literal ``%`` is doubled), ``json_extract(col, '$.key')`` becomes ``col::jsonb ->> 'key'``, and
    ``INSERT OR IGNORE`` becomes ``INSERT … ON CONFLICT DO NOTHING``, and ``LIKE`` becomes ``ILIKE``
    (SQLite's LIKE ignores case; PostgreSQL's does not). The store's SQL otherwise keeps
    to what both databases share (``ON CONFLICT``, ``RETURNING``, ``COALESCE``)."""
    sql = _JSON_EXTRACT.sub(r"(\1::jsonb ->> '\2')", sql)
    ignore = bool(_INSERT_OR_IGNORE.match(sql))
    if ignore:
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
    out = []
    for token in _TOKENS.findall(sql):
        if token == "?":
            out.append("%s")
        elif token == "%" or (token[0] in "'\"" and "%" in token):
            out.append(token.replace("%", "%%"))
        elif token[0] in "'\"":
            out.append(token)
        else:
            out.append(_LIKE.sub("ILIKE", token))
    text = "".join(out)
    if ignore:
        text = text.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return text


_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", re.I), "id BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
]


def ddl(statement: str) -> str:
    """A migration statement's column types as PostgreSQL names them (an ``id INTEGER PRIMARY KEY``
    is generated in SQLite, so it becomes a BIGSERIAL)."""
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


# --- connections ---
def _unavailable(exc: BaseException) -> UnavailableError:
    return UnavailableError(
        "the state database (PostgreSQL) cannot be reached right now; retry in a few seconds. An "
        "escalation sent again is matched to the one already recorded, never duplicated "
        f"({type(exc).__name__})")


@contextmanager
def reporting_unavailable() -> Iterator[None]:
    """Lost connections, a database that is down or restarting, a pool with no free connection:
    all become UnavailableError, which every adapter shows as a clear, retryable error."""
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        yield
    except PoolTimeout as exc:
        raise UnavailableError(
            f"no connection to the state database (PostgreSQL) came free within {CONNECT_TIMEOUT_S:.0f} s: it is "
            "down, or every pooled connection is busy (ESCALATION_MATRIX_DB_POOL sets how many); retry in a few "
            "seconds. An escalation sent again is matched to the one already recorded, never duplicated") from exc
    except psycopg.OperationalError as exc:
        raise _unavailable(exc) from exc


class Cursor:
    """A statement's result, read in full (so the pooled connection goes back at once)."""

    def __init__(self, rows: list[Any], rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class Connection:
    """One pooled connection inside a write transaction (the store's ``conn``)."""

    in_transaction = True

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        with reporting_unavailable():
            cur = self.raw.execute(translate(sql), _params(params))
            rows = cur.fetchall() if cur.description is not None else []
            return Cursor(rows, cur.rowcount)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        with reporting_unavailable(), self.raw.cursor() as cur:
            cur.executemany(translate(sql), [_params(p) for p in seq])


class AutoCommit:
    """Reads (and single statements) outside a transaction: each borrows a pooled connection."""

    in_transaction = False

    def __init__(self, pool: Any):
        self.pool = pool

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        with reporting_unavailable(), self.pool.connection() as raw:
            cur = raw.execute(translate(sql), _params(params))
            rows = cur.fetchall() if cur.description is not None else []
            return Cursor(rows, cur.rowcount)


def _params(params: Sequence[Any] | dict[str, Any]) -> Any:
    if isinstance(params, dict):
        raise TypeError("named parameters are not used by the store; pass a sequence")
    return [int(v) if isinstance(v, bool) else v for v in params]


def open_pool(url: str, size: int) -> Any:
    """A psycopg connection pool: autocommit connections (a transaction is an explicit block),
    checked before each use so a connection lost to a restart is replaced, not handed out."""
    try:
        import psycopg  # noqa: F401
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        from .errors import DependencyError

        raise DependencyError("a postgresql:// database needs psycopg: pip install 'escalation-matrix[postgres]'") from exc
    pool = ConnectionPool(url, min_size=1, max_size=size, open=False, timeout=CONNECT_TIMEOUT_S,
                          kwargs={"autocommit": True, "row_factory": row_factory, "connect_timeout": 5},
                          check=ConnectionPool.check_connection,
                          name="escalation-matrix")
    pool.open(wait=False)
    return pool


class TransactionState(threading.local):
    conn: Connection | None = None
