"""Durable state: escalation records, tasks, notes, the decision log used for KPI rates, and the
hash-chained audit trail. In one SQLite file (WAL) by default; in a PostgreSQL database shared by
several server replicas when the database is named by a ``postgresql://`` URL (``PostgresStore``).

Every write runs inside ``Store.transaction()``: a ``BEGIN IMMEDIATE`` transaction on SQLite, a
transaction holding one advisory lock on PostgreSQL. Either way check-then-insert sequences are
atomic across threads, processes and replicas."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from . import pgsql
from .errors import NotFoundError
from .queries.audit import AuditQueries
from .queries.base import OPEN_STATUSES as OPEN_STATUSES
from .queries.base import STATUSES as STATUSES
from .queries.base import equals_where
from .queries.batches import BatchQueries
from .queries.conversations import ConversationQueries, Task, task_row
from .queries.counters import CounterQueries
from .queries.decisions import DecisionQueries
from .queries.erasure import ErasureQueries
from .queries.failsafe import FailsafeQueries
from .queries.notes import NoteQueries
from .queries.outbox import OutboxQueries
from .queries.oversight import OversightQueries
from .queries.pipeline import PipelineQueries
from .queries.preferences import PreferenceQueries
from .queries.records import ALL_RECORDS, ORDERS, Order, RecordFilter
from .queries.reports import ReportQueries
from .queries.thresholds import ThresholdQueries

Clock = Callable[[], datetime]
OUTCOMES = ("created", "repeated", "reasked", "refused", "proceed", "auto_answered")
GENESIS = "0" * 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def default_db_path() -> Path:
    """The SQLite file used when no database is named (ESCALATION_MATRIX_DB names a file or a
    ``postgresql://`` URL; a URL is handled by ``Store`` itself)."""
    env = os.environ.get("ESCALATION_MATRIX_DB")
    if env and not pgsql.is_url(env):
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "escalation-matrix" / "escalations.db"


@dataclass(frozen=True)
class Migration:
    """One schema change: a name recorded when it is applied (a database migrated by another list of
    migrations is refused, not guessed at) and its statements in SQLite's dialect (PostgreSQL runs
    them translated: ``postgres_statements``)."""

    name: str
    sql: str


# applied in order, each once, inside the migrating transaction; append new ones at the end
MIGRATIONS: list[Migration] = [
    # 1: the initial schema
    Migration("initial_schema", """
    CREATE TABLE escalations (
        id TEXT PRIMARY KEY, year INTEGER NOT NULL, seq INTEGER NOT NULL,
        conversation_id TEXT, task_id TEXT, issue_key TEXT,
        source TEXT NOT NULL DEFAULT 'agent',
        type TEXT NOT NULL, trigger TEXT NOT NULL, severity TEXT NOT NULL,
        level INTEGER NOT NULL DEFAULT 1, assignee TEXT,
        status TEXT NOT NULL, reason TEXT,
        request TEXT, question TEXT, options TEXT NOT NULL DEFAULT '[]', details TEXT,
        phrase TEXT, message TEXT, context TEXT NOT NULL DEFAULT '{}',
        question_vector BLOB,
        answer TEXT, answered_by TEXT, answered_at TEXT,
        repeat_count INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, due_at TEXT,
        reminded_at TEXT, raised_at TEXT, blocked_at TEXT,
        resolution TEXT, resolution_method TEXT, preventive_measures TEXT, lessons_learned TEXT,
        closed_at TEXT, closed_by TEXT,
        UNIQUE (year, seq)
    );
    CREATE INDEX escalations_conversation ON escalations (conversation_id, task_id, status);
    CREATE INDEX escalations_status ON escalations (status, severity, created_at);
    CREATE INDEX escalations_created ON escalations (created_at);
    CREATE TABLE tasks (
        conversation_id TEXT NOT NULL, task_id TEXT NOT NULL,
        escalation_count INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0, locked_reason TEXT, locked_by_escalation TEXT, locked_at TEXT,
        handed_off INTEGER NOT NULL DEFAULT 0, awaiting_guidance INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (conversation_id, task_id)
    );
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY, escalation_id TEXT NOT NULL REFERENCES escalations(id),
        author TEXT, text TEXT NOT NULL, created_at TEXT NOT NULL
    );
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, tool TEXT NOT NULL,
        conversation_id TEXT, task_id TEXT, type TEXT NOT NULL, severity TEXT, action TEXT NOT NULL,
        escalation_id TEXT
    );
    CREATE INDEX decisions_at ON decisions (at);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        escalation_id TEXT, conversation_id TEXT, task_id TEXT, data TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """),
    # 2: operations: fail-safe clock and once-only stages, notification outbox,
    # pipeline items, and the audit length kept by a trigger so a deleted tail entry is detected
    Migration("operations", """
    ALTER TABLE escalations ADD COLUMN severity_at TEXT;
    CREATE TABLE failsafe_events (
        escalation_id TEXT NOT NULL, stage TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (escalation_id, stage)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, escalation_id TEXT, event TEXT NOT NULL, channel TEXT NOT NULL,
        target TEXT, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL, last_error TEXT,
        created_at TEXT NOT NULL, sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE TABLE pipeline_items (
        item_id TEXT PRIMARY KEY, iterations INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0, confidence REAL, last_error TEXT,
        escalation_id TEXT, updated_at TEXT NOT NULL
    );
    CREATE INDEX escalations_closed ON escalations (closed_at);
    CREATE TRIGGER audit_length AFTER INSERT ON audit
        BEGIN INSERT OR REPLACE INTO counters VALUES ('audit-length', NEW.seq); END;
    INSERT OR REPLACE INTO counters SELECT 'audit-length', COALESCE(MAX(seq), 0) FROM audit;
    """),
    # 3: security: which agent principal owns a conversation; a keyed MAC per audit entry (the key
    # lives outside the database, see audit_key)
    Migration("owners_and_audit_mac", """
    CREATE TABLE conversation_owners (
        conversation_id TEXT PRIMARY KEY, principal TEXT NOT NULL, created_at TEXT NOT NULL
    );
    ALTER TABLE audit ADD COLUMN mac TEXT;
    ALTER TABLE escalations ADD COLUMN erased_at TEXT;
    """),
    # 4: same-issue matching: the request's own vector beside the issue's, and the
    # question the agent asked (null when it gave none and the type's default question was used);
    # what each decision did (KPIs count created records, not calls); when a person first answered
    # or resolved the escalation; when the agent was told of a fail-safe stage
    Migration("same_issue_and_outcomes", """
    ALTER TABLE escalations ADD COLUMN request_vector BLOB;
    ALTER TABLE escalations ADD COLUMN agent_question TEXT;
    ALTER TABLE decisions ADD COLUMN outcome TEXT;
    ALTER TABLE escalations ADD COLUMN resolved_at TEXT;
    ALTER TABLE failsafe_events ADD COLUMN told_at TEXT;
    """),
    # 5: actor oversight: the agent's suggestion on a record, each actor's scored decisions, its
    # rolling score, the tickets a low score opened and the suspensions with their stand-in
    Migration("actor_oversight", """
    ALTER TABLE escalations ADD COLUMN suggestion TEXT;
    CREATE TABLE actors (
        name TEXT PRIMARY KEY, score REAL NOT NULL DEFAULT 100, decisions INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE actor_decisions (
        id INTEGER PRIMARY KEY, actor TEXT NOT NULL, at TEXT NOT NULL, escalation_id TEXT UNIQUE,
        suggestion TEXT NOT NULL, choice TEXT NOT NULL, delta INTEGER NOT NULL, score REAL NOT NULL
    );
    CREATE INDEX actor_decisions_actor ON actor_decisions (actor, id);
    CREATE INDEX actor_decisions_at ON actor_decisions (at);
    CREATE TABLE oversight_tickets (
        escalation_id TEXT PRIMARY KEY, actor TEXT NOT NULL, rule TEXT NOT NULL, team TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0, step_at TEXT NOT NULL, score REAL NOT NULL, opened_at TEXT NOT NULL
    );
    CREATE INDEX oversight_tickets_actor ON oversight_tickets (actor);
    CREATE TABLE actor_suspensions (
        id INTEGER PRIMARY KEY, actor TEXT NOT NULL, ticket TEXT, replacement TEXT NOT NULL, reason TEXT,
        suspended_by TEXT NOT NULL, suspended_at TEXT NOT NULL, until TEXT NOT NULL,
        moved TEXT NOT NULL DEFAULT '[]', reinstated_at TEXT, reinstated_by TEXT
    );
    CREATE INDEX actor_suspensions_actor ON actor_suspensions (actor, reinstated_at);
    """),
    # 6: languages: the locale an escalation's text was written in; the locale a conversation
    # chose (a call's `locale` argument), used by its later calls that name none
    Migration("locales", """
    ALTER TABLE escalations ADD COLUMN locale TEXT;
    CREATE TABLE conversation_locales (
        conversation_id TEXT PRIMARY KEY, locale TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    """),
    # 7: security: an unguessable reference per escalation (128 random bits), the name agents over HTTP
    # give it; records made before this migration get one here (SQLite's randomblob: a CSPRNG seeded
    # from the operating system), new ones from ``secrets`` in insert_escalation
    Migration("escalation_refs", """
    ALTER TABLE escalations ADD COLUMN ref TEXT;
    UPDATE escalations SET ref = lower(hex(randomblob(16))) WHERE ref IS NULL;
    CREATE UNIQUE INDEX escalations_ref ON escalations (ref);
    """),
    # 8: the adaptive escalation target: outcomes of escalations (necessary, unnecessary) and missed
    # ones reported by operators; per-type threshold offsets and every change made to them (before,
    # after, why, by whom; a revert points at the change it undoes)
    Migration("adaptive_target", """
    CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, escalation_id TEXT, type TEXT NOT NULL,
        outcome TEXT NOT NULL, by TEXT NOT NULL, note TEXT, adjustment INTEGER
    );
    CREATE UNIQUE INDEX outcomes_escalation ON outcomes (escalation_id) WHERE escalation_id IS NOT NULL;
    CREATE TABLE threshold_offsets (type TEXT PRIMARY KEY, value REAL NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE threshold_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, type TEXT NOT NULL, before REAL NOT NULL,
        after REAL NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL, reverts INTEGER, reverted_by INTEGER,
        rate REAL, decisions INTEGER
    );
    """),
    # 9: structured answers: the action a person took (approve, reject, modify, delegate, defer,
    # conditional) and, for a deferred escalation, until when
    Migration("structured_answers", """
    ALTER TABLE escalations ADD COLUMN response_action TEXT;
    ALTER TABLE escalations ADD COLUMN deferred_until TEXT;
    """),
    # 10: preference learning: what a person (or an organisation) answers to one recurring question
    # (its type, texts and vectors, as an escalation keeps them), the newest answer, the
    # recency-weighted tally of every answer given (and its agreeing / contradicting sums), the
    # escalations it learned from (erasing one of them erases it), and when it was revoked
    Migration("preferences", """
    CREATE TABLE preferences (
        id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, scope_id TEXT NOT NULL, type TEXT NOT NULL,
        request TEXT, question TEXT, agent_question TEXT, request_vector BLOB, question_vector BLOB,
        answer TEXT NOT NULL, answer_key TEXT NOT NULL, response_action TEXT, tally TEXT NOT NULL,
        support REAL NOT NULL, against REAL NOT NULL, agreeing INTEGER NOT NULL, answers INTEGER NOT NULL,
        changes INTEGER NOT NULL DEFAULT 0, auto_answers INTEGER NOT NULL DEFAULT 0,
        last_escalation TEXT, sources TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_used_at TEXT,
        revoked_at TEXT, revoked_by TEXT
    );
    CREATE INDEX preferences_scope ON preferences (scope, scope_id, type, revoked_at);
    """),
    # 11: batching: non-critical escalations for one person wait in an open batch (its items are
    # the escalations with its batch_id) and go out in one notification when it is full or due
    Migration("batches", """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT, person TEXT NOT NULL, status TEXT NOT NULL, opened_at TEXT NOT NULL,
        deliver_by TEXT NOT NULL, items INTEGER NOT NULL DEFAULT 0, delivered_at TEXT, delivered_why TEXT,
        answered_at TEXT
    );
    CREATE INDEX batches_open ON batches (status, person);
    ALTER TABLE escalations ADD COLUMN batch_id INTEGER;
    """),
    # 12: decision intelligence: why the guard escalated, as a JSON object (criticality, decision type,
    # category, confidence to act alone, the rule that escalated); null on records made before
    Migration("decision_assessment", """
    ALTER TABLE escalations ADD COLUMN assessment TEXT;
    """),
    # 13: the unusual-pattern check reads a conversation's latest decisions on every call: an index
    # instead of a scan of the whole decision log
    Migration("decisions_by_conversation", """
    CREATE INDEX IF NOT EXISTS decisions_conversation ON decisions (conversation_id, id);
    """),
]

JSON_FIELDS = ("options", "context", "assessment")
NULLABLE_JSON = ("assessment",)  # stored as NULL when absent (the others as an empty list or object)
# columns that hold what people wrote: redacted before they are stored
TEXT_FIELDS = ("request", "question", "details", "answer", "reason", "message", "resolution", "suggestion",
               "preventive_measures", "lessons_learned", "options", "context", "assessment")
# audit data fields whose text stays out of the append-only trail: a keyed digest refers to it
PERSONAL_AUDIT_FIELDS = ("request", "question", "answer", "text", "details")
AUDIT_IDENTITY_FIELDS = ("assignee", "recipient", "by", "escalations", "actor", "replacement", "holder")
AUDIT_KEY_ENV = "ESCALATION_MATRIX_AUDIT_KEY"


class Store:
    """One SQLite file; a connection per thread; schema migrated on open. Named by a
    ``postgresql://`` URL (or ESCALATION_MATRIX_DB holding one), it is a ``PostgresStore``."""

    path: Path | str  # the SQLite file; PostgresStore's database URL

    def __new__(cls, path: str | Path | None = None, clock: Clock = utcnow) -> "Store":
        if cls is Store and pgsql.is_url(path if path is not None else os.environ.get("ESCALATION_MATRIX_DB")):
            return super().__new__(PostgresStore)
        return super().__new__(cls)

    def __init__(self, path: str | Path | None = None, clock: Clock = utcnow):
        self._file = Path(path).expanduser() if path else default_db_path()
        self.path = self._file
        if str(self._file) != ":memory:":
            self._file.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._local = threading.local()
        self._audit_key: bytes | None = None
        from .redact import DEFAULT

        self.redactor = DEFAULT  # set from the policy by the guard and Operations
        self._migrate()

    @property
    def location(self) -> str:
        """Where the state is, for logs and status lines (never a password)."""
        return str(self.path)

    # --- the audit key and anchor, kept outside the database ---
    @property
    def anchor_path(self) -> Path | None:
        return None if str(self._file) == ":memory:" else self._file.with_name(self._file.name + ".audit-anchor")

    @property
    def audit_key(self) -> bytes:
        """$ESCALATION_MATRIX_AUDIT_KEY, else the key file beside the database (created once, mode 0600).
        Keep it where whoever can write the database cannot: then edits cannot be re-signed."""
        if self._audit_key is None:
            env = os.environ.get(AUDIT_KEY_ENV)
            if env:
                self._audit_key = env.encode()
            elif str(self._file) == ":memory:":
                self._audit_key = os.urandom(32)
            else:
                self._audit_key = key_from_file(self._file.with_name(self._file.name + ".audit-key"))
        return self._audit_key

    def digest(self, text: str) -> str:
        """A keyed reference to a text kept out of the audit trail (not reversible without the key)."""
        return "hmac-sha256:" + hmac.new(self.audit_key, text.encode("utf-8"), "sha256").hexdigest()[:32]

    def _flush_anchor(self) -> None:
        pending = getattr(self._local, "anchor", None)
        self._local.anchor = []
        if not pending or self.anchor_path is None:
            return
        lines = "".join(f"{seq} {digest} {mac}\n" for seq, digest, mac in pending).encode()
        fd = os.open(self.anchor_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, lines)  # one append: lines from several processes never interleave
        finally:
            os.close(fd)

    # --- connections and transactions ---
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self._file), timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def count(self, table: str) -> int:
        """How many rows a table holds (``table`` is one of the store's own names, never user input)."""
        return int(self._conn().execute(f"SELECT COUNT(*) FROM {_table(table)}").fetchone()[0])

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table in the order written (for inspection and tests)."""
        order = "seq" if table == "audit" else "id"
        return [dict(r) for r in self._conn().execute(f"SELECT * FROM {_table(table)} ORDER BY {order}")]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.anchor = []
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            self._local.anchor = []
            raise
        conn.execute("COMMIT")
        self._flush_anchor()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, "
                         "name TEXT)")
            if "name" not in {row[1] for row in conn.execute("PRAGMA table_info(migrations)")}:
                conn.execute("ALTER TABLE migrations ADD COLUMN name TEXT")  # databases from before names
            for version, migration in pending_migrations(conn):
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations (version, applied_at, name) VALUES (?, ?, ?)",
                             (version, iso(self.clock()), migration.name))

    def now(self) -> str:
        return iso(self.clock())

    # --- named queries, one group per concern (see the ``queries`` package) ---
    @property
    def audit_trail(self) -> AuditQueries:
        """The audit trail read back in order, for verification."""
        return AuditQueries(self._conn, self.now)

    @property
    def conversations(self) -> ConversationQueries:
        """The conversation guard's queries: issues a call may repeat or re-ask, tasks, untold stages."""
        return ConversationQueries(self._conn, self.now)

    @property
    def batches(self) -> BatchQueries:
        """Batches of questions for one person: opened, filled, delivered once, answered."""
        return BatchQueries(self._conn, self.now)

    @property
    def counters(self) -> CounterQueries:
        """Named counters shared by every server on the database."""
        return CounterQueries(self._conn, self.now)

    @property
    def decisions(self) -> DecisionQueries:
        """The decision log read back by agent behaviour (the unusual-pattern check)."""
        return DecisionQueries(self._conn, self.now)

    @property
    def erasure(self) -> ErasureQueries:
        """Erasing personal data in place."""
        return ErasureQueries(self._conn, self.now)

    @property
    def failsafe(self) -> FailsafeQueries:
        """The fail-safe stages fired on escalations, each once."""
        return FailsafeQueries(self._conn, self.now)

    @property
    def notes(self) -> NoteQueries:
        """Operators' notes on escalation records."""
        return NoteQueries(self._conn, self.now)

    @property
    def outbox(self) -> OutboxQueries:
        """The notification outbox: queued, claimed, sent, retried and failed messages."""
        return OutboxQueries(self._conn, self.now)

    @property
    def oversight(self) -> OversightQueries:
        """Actor oversight: actors and scored decisions, tickets, suspensions."""
        return OversightQueries(self._conn, self.now)

    @property
    def pipeline(self) -> PipelineQueries:
        """Pipeline items and the escalation each raised."""
        return PipelineQueries(self._conn, self.now)

    @property
    def preferences(self) -> PreferenceQueries:
        """Preferences learned from answers: matched, started, updated, used, listed, revoked, erased."""
        return PreferenceQueries(self._conn, self.now)

    @property
    def reports(self) -> ReportQueries:
        """The figures of a period's report (read-only)."""
        return ReportQueries(self._conn, self.now)

    @property
    def thresholds(self) -> ThresholdQueries:
        """The adaptive target: threshold offsets, their changes, outcomes, the window an adjustment measures."""
        return ThresholdQueries(self._conn, self.now)

    # --- escalation records ---
    def next_escalation_id(self, conn: sqlite3.Connection, year: int) -> tuple[str, int]:
        name = f"escalation-{year}"
        conn.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (name,))
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
        seq = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]
        return f"ESC-{year}-{seq:03d}", seq

    def insert_escalation(self, conn: sqlite3.Connection, fields: dict[str, Any]) -> str:
        now = self.now()
        year = self.clock().year
        esc_id, seq = self.next_escalation_id(conn, year)
        row = {"id": esc_id, "year": year, "seq": seq, "created_at": now, "updated_at": now,
               "status": "awaiting_response", **_encode(self._redacted(fields)), "ref": new_ref()}
        columns = ", ".join(row)
        conn.execute(f"INSERT INTO escalations ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        return esc_id

    def update_escalation(self, conn: sqlite3.Connection, esc_id: str, **fields: Any) -> None:
        fields = {**_encode(self._redacted(fields)), "updated_at": self.now()}
        assignments = ", ".join(f"{k} = ?" for k in fields)
        cur = conn.execute(f"UPDATE escalations SET {assignments} WHERE id = ?", [*fields.values(), esc_id])
        if cur.rowcount == 0:
            raise NotFoundError(f"escalation {esc_id!r} not found; list them with `escalation-matrix list`")

    def _redacted(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {k: self.redactor.value(v) if k in TEXT_FIELDS and v is not None else v for k, v in fields.items()}

    def resolve(self, name: str, conn: sqlite3.Connection | None = None) -> str:
        """The id of the escalation named by its id (``ESC-2026-001``) or by its reference (``ref``);
        a name that is neither comes back as it is (the lookup that follows says it is unknown)."""
        row = (conn or self._conn()).execute("SELECT id FROM escalations WHERE ref = ?", (name,)).fetchone()
        return row[0] if row is not None else name

    def escalation(self, esc_id: str, conn: sqlite3.Connection | None = None) -> dict[str, Any]:
        row = (conn or self._conn()).execute("SELECT * FROM escalations WHERE id = ?", (esc_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"escalation {esc_id!r} not found; ids look like ESC-2026-001")
        return _decode(row)

    def escalations(self, where: str = "1=1", params: tuple[Any, ...] | list[Any] = (), order: str = "created_at",
                    limit: int | None = None, conn: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM escalations WHERE {where} ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_decode(r) for r in (conn or self._conn()).execute(sql, params)]

    def find_escalations(self, match: RecordFilter = ALL_RECORDS, order: Order = "created", *,
                         limit: int | None = None, offset: int = 0,
                         conn: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        """The records ``match`` selects, in a named order (``queries.records.ORDERS``), a page of
        them when ``limit`` is given."""
        where, params = match.where()
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit else ""
        return self.escalations(where, params, order=ORDERS[order] + page, conn=conn)

    def count_escalations(self, match: RecordFilter = ALL_RECORDS, conn: sqlite3.Connection | None = None) -> int:
        """How many records ``match`` selects."""
        where, params = match.where()
        row = (conn or self._conn()).execute(f"SELECT COUNT(*) FROM escalations WHERE {where}", params).fetchone()
        return int(row[0])

    def counts_by_status(self, conn: sqlite3.Connection | None = None) -> dict[str, int]:
        """How many records are in each status (statuses without records are left out)."""
        rows = (conn or self._conn()).execute("SELECT status, COUNT(*) FROM escalations GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    # --- tasks ---
    def task(self, conn: sqlite3.Connection, conversation_id: str, task_id: str) -> Task:
        """The task, created (unlocked, no escalations) when no call named it before."""
        now = self.now()
        conn.execute(
            "INSERT INTO tasks (conversation_id, task_id, created_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", (conversation_id, task_id, now, now))
        row = conn.execute("SELECT * FROM tasks WHERE conversation_id = ? AND task_id = ?",
                           (conversation_id, task_id)).fetchone()
        return task_row(row)

    def knows_conversation(self, conversation_id: str) -> bool:
        """Whether any escalate, clarify or check_scope call has named this conversation."""
        return self._conn().execute("SELECT 1 FROM tasks WHERE conversation_id = ? LIMIT 1",
                                    (conversation_id,)).fetchone() is not None

    def conversation_locale(self, conversation_id: str, conn: sqlite3.Connection | None = None) -> str | None:
        """The locale a conversation chose with a call's ``locale`` argument, if any."""
        row = (conn or self._conn()).execute(
            "SELECT locale FROM conversation_locales WHERE conversation_id = ?", (conversation_id,)).fetchone()
        return row[0] if row else None

    def set_conversation_locale(self, conn: sqlite3.Connection, conversation_id: str, locale: str) -> None:
        conn.execute("INSERT INTO conversation_locales VALUES (?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE "
                     "SET locale = excluded.locale, updated_at = excluded.updated_at",
                     (conversation_id, locale, self.now()))

    def update_task(self, conn: sqlite3.Connection, conversation_id: str, task_id: str, **fields: Any) -> None:
        self.task(conn, conversation_id, task_id)
        fields["updated_at"] = self.now()
        assignments = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE tasks SET {assignments} WHERE conversation_id = ? AND task_id = ?",
                     [*fields.values(), conversation_id, task_id])

    # --- decision log (KPI denominators) ---
    def record_decision(self, conn: sqlite3.Connection, tool: str, type_: str, action: str,
                        severity: str | None = None, conversation_id: str | None = None,
                        task_id: str | None = None, escalation_id: str | None = None,
                        outcome: str | None = None) -> None:
        """One evaluated request. ``outcome``: created (a new escalation record), repeated (an open
        one returned), reasked (an earlier answer returned), refused (a locked or handed-off task)
        or proceed; by default created when the action is not proceed."""
        outcome = outcome or ("proceed" if action == "proceed" else "created")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        conn.execute(
            "INSERT INTO decisions (at, tool, conversation_id, task_id, type, severity, action, escalation_id, "
            "outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.now(), tool, conversation_id, task_id, type_, severity, action, escalation_id, outcome))

    # --- audit trail ---
    def audit(self, conn: sqlite3.Connection, action: str, actor: str = "system", *,
              escalation_id: str | None = None, conversation_id: str | None = None,
              task_id: str | None = None, data: dict[str, Any] | None = None) -> int:
        last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        kept = self._audit_data(data or {})
        entry = {"seq": seq, "at": self.now(), "actor": actor, "action": action, "escalation_id": escalation_id,
                 "conversation_id": conversation_id, "task_id": task_id,
                 "data": json.dumps(kept, sort_keys=True, ensure_ascii=False)}
        digest = entry_hash(prev, entry)
        mac = entry_mac(self.audit_key, digest)
        conn.execute("INSERT INTO audit (seq, at, actor, action, escalation_id, conversation_id, task_id, data, "
                     "prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*entry.values(), prev, digest, mac))
        self._local.anchor = [*getattr(self._local, "anchor", []), (seq, digest, mac)]
        return seq

    def _audit_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """What people wrote stays out of the trail (a keyed reference instead); other free text is
        redacted; who did what (actors, assignees) is kept as it is."""
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if key in PERSONAL_AUDIT_FIELDS and isinstance(value, str):
                kept[key] = {"ref": self.digest(value)}
            elif isinstance(value, dict):
                kept[key] = self._audit_data(value)
            elif key in AUDIT_IDENTITY_FIELDS:
                kept[key] = value
            else:
                kept[key] = self.redactor.value(value)
        return kept

    def audit_entries(self, escalation_id: str | None = None, conversation_id: str | None = None) -> list[dict[str, Any]]:
        where, params = equals_where(escalation_id=escalation_id, conversation_id=conversation_id)
        rows = self._conn().execute(f"SELECT * FROM audit WHERE {where} ORDER BY seq", params)
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


def _table(name: str) -> str:
    if not re.fullmatch(r"[a-z_]+", name):
        raise ValueError(f"not a table name: {name!r}")
    return name


def pending_migrations(conn: Any) -> list[tuple[int, Migration]]:
    """The migrations this database still needs, in order. Applied ones from before migrations had
    names get their name recorded; a database migrated by a newer version, or by a different list,
    is refused with a message saying so (guessing would corrupt it)."""
    from .errors import StateError

    applied = {int(row[0]): row[1] for row in conn.execute("SELECT version, name FROM migrations")}
    newer = sorted(v for v in applied if v > len(MIGRATIONS))
    if newer:
        raise StateError(f"the state database has migration {newer[-1]}, which this version of escalation-matrix "
                         f"does not know (it knows {len(MIGRATIONS)}): upgrade escalation-matrix to open it")
    for version, name in applied.items():
        expected = MIGRATIONS[version - 1].name
        if name is None:
            conn.execute("UPDATE migrations SET name = ? WHERE version = ?", (expected, version))
        elif name != expected:
            raise StateError(f"the state database's migration {version} is {name!r}, this version's is {expected!r}: "
                             "it was made by a different build of escalation-matrix; open it with that one")
    return [(v, m) for v, m in enumerate(MIGRATIONS, 1) if v not in applied]


def new_ref() -> str:
    """An escalation's reference: 128 random bits as 32 lowercase hex digits (URL-safe, unguessable)."""
    return secrets.token_hex(16)


def key_from_file(key_file: Path) -> bytes:
    """The audit key kept in ``key_file``, created on first use with a random value and readable
    by its owner only. The key is written to a private temporary file that is then linked into
    place, so the key file never exists half-written, and processes starting at once all read the
    one linked first."""
    if not key_file.exists():
        fd, tmp = tempfile.mkstemp(dir=key_file.parent, prefix=key_file.name + ".")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(os.urandom(32).hex())
                out.flush()
                os.fsync(out.fileno())
            os.link(tmp, key_file)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return key_file.read_text().strip().encode()


def entry_mac(key: bytes, digest: str) -> str:
    """The entry's hash signed with the audit key: without the key, a re-hashed chain cannot be re-signed."""
    return hmac.new(key, digest.encode("ascii"), "sha256").hexdigest()


def entry_hash(prev: str, entry: dict[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()


# Migration statements only SQLite understands, and what PostgreSQL runs instead (keyed by how the
# statement begins). Every other statement runs on both, its column types renamed (pgsql.ddl).
_APPEND_ONLY = ("CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit trail is append-only'; END $$")
POSTGRES_INSTEAD: dict[str, list[str]] = {
    "CREATE TRIGGER audit_no_update": [
        _APPEND_ONLY,
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT "
        "EXECUTE FUNCTION audit_append_only()"],
    "CREATE TRIGGER audit_no_delete": [
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()"],
    "CREATE TABLE failsafe_events": [],  # filled below: the table plus an insertion order (SQLite's rowid)
    "CREATE TRIGGER audit_length": [
        "CREATE OR REPLACE FUNCTION audit_length() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO counters VALUES ('audit-length', NEW.seq) ON CONFLICT (name) DO UPDATE SET value = excluded.value; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER audit_length AFTER INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_length()"],
    "INSERT OR REPLACE INTO counters SELECT 'audit-length'": [
        "INSERT INTO counters SELECT 'audit-length', COALESCE(MAX(seq), 0) FROM audit "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value"],
    "UPDATE escalations SET ref = lower(hex(randomblob(16)))": [
        "UPDATE escalations SET ref = replace(gen_random_uuid()::text, '-', '') WHERE ref IS NULL"],
}


def postgres_statements(script: str) -> list[str]:
    """A migration as PostgreSQL runs it."""
    out: list[str] = []
    for statement in _statements(script):
        text = " ".join(statement.split()).rstrip(";")
        key = next((k for k in POSTGRES_INSTEAD if text.startswith(k)), None)
        if key == "CREATE TABLE failsafe_events":
            out += [pgsql.ddl(text), "ALTER TABLE failsafe_events ADD COLUMN rowid BIGSERIAL"]
        elif key is not None:
            out += POSTGRES_INSTEAD[key]
        else:
            out.append(pgsql.ddl(text))
    return out


def _statements(script: str) -> list[str]:
    """Split a migration on ';' outside trigger bodies (BEGIN ... END)."""
    out, buf, depth = [], [], 0
    for line in script.strip().splitlines():
        buf.append(line)
        upper = line.upper()
        depth += upper.count(" BEGIN ") + upper.strip().startswith("BEGIN")
        if upper.rstrip().endswith("END;"):
            depth = 0
        if line.rstrip().endswith(";") and depth == 0:
            out.append("\n".join(buf))
            buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf))
    return out


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if key in NULLABLE_JSON and value is None:
            pass
        elif key in JSON_FIELDS and not isinstance(value, str):
            value = json.dumps(value if value is not None else ([] if key == "options" else {}), ensure_ascii=False)
        elif hasattr(value, "value") and not isinstance(value, (str, bytes)):
            value = value.value  # enums
        out[key] = value
    return out


def _decode(row: Any) -> dict[str, Any]:
    record = dict(row)
    for key in JSON_FIELDS:
        if key in record and isinstance(record[key], str):
            record[key] = json.loads(record[key])
    record.pop("question_vector", None)
    record.pop("request_vector", None)
    return record


class PostgresStore(Store):
    """The store in a PostgreSQL database (``postgresql://user:password@host:port/name``), shared by
    any number of server replicas. Each process keeps a pool of connections
    (ESCALATION_MATRIX_DB_POOL, default 10); each write transaction holds one advisory lock, so the
    rules that hold for processes sharing a SQLite file hold for replicas sharing the database.
    A database that cannot be reached gives ``UnavailableError`` (retry later), never a wrong answer.

    The audit key comes from ESCALATION_MATRIX_AUDIT_KEY (give every replica the same one), else a
    key file in the per-user state folder; the anchor file is kept there too, one per machine."""

    def __init__(self, path: str | Path | None = None, clock: Clock = utcnow):
        url = str(path if path is not None else os.environ["ESCALATION_MATRIX_DB"])
        self.path = url
        self.clock = clock
        self._local = threading.local()
        self._tx = pgsql.TransactionState()
        self._audit_key = None
        from .redact import DEFAULT

        self.redactor = DEFAULT
        self._pool = pgsql.open_pool(url, int(os.environ.get("ESCALATION_MATRIX_DB_POOL", "10")))
        self._migrate()

    @property
    def location(self) -> str:
        return pgsql.masked(str(self.path))

    def _state_file(self, suffix: str) -> Path:
        parts = urlsplit(str(self.path))
        name = f"postgres-{parts.hostname or 'local'}-{parts.port or 5432}-{parts.path.strip('/') or 'db'}"
        folder = default_db_path().parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder / (re.sub(r"[^\w.-]", "_", name) + suffix)

    @property
    def anchor_path(self) -> Path | None:
        return self._state_file(".audit-anchor")

    @property
    def audit_key(self) -> bytes:
        if self._audit_key is None and not os.environ.get(AUDIT_KEY_ENV):
            self._audit_key = key_from_file(self._state_file(".audit-key"))
        return super().audit_key

    def _conn(self) -> Any:
        return self._tx.conn or pgsql.AutoCommit(self._pool)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self._tx.conn is not None:  # nested use joins the outer transaction
            yield self._tx.conn
            return
        self._local.anchor = []
        with pgsql.reporting_unavailable(), self._pool.connection() as raw, raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (pgsql.WRITE_LOCK,))
            self._tx.conn = pgsql.Connection(raw)
            try:
                yield self._tx.conn
            except BaseException:
                self._local.anchor = []
                raise
            finally:
                self._tx.conn = None
        self._flush_anchor()

    def close(self) -> None:
        self._pool.close()

    def _migrate(self) -> None:
        with pgsql.reporting_unavailable(), self._pool.connection() as raw, raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (pgsql.WRITE_LOCK,))
            raw.execute("CREATE TABLE IF NOT EXISTS migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, "
                        "name TEXT)")
            conn = pgsql.Connection(raw)
            for version, migration in pending_migrations(conn):
                for statement in postgres_statements(migration.sql):
                    raw.execute(statement)
                conn.execute("INSERT INTO migrations (version, applied_at, name) VALUES (?, ?, ?)",
                             (version, iso(self.clock()), migration.name))
