"""The store's SQL, grouped by concern: one module per group of tables, each a class of named,
documented queries returning typed records (frozen dataclasses) instead of raw rows.

How it fits together:

- ``Store`` (``store.py``) owns the connections, transactions, migrations, the escalation records
  and the audit trail. It exposes each group here as a property (``store.conversations``,
  ``store.failsafe``, ``store.outbox`` ...), bound to its connection and clock.
- Every query takes the transaction's connection as its first argument when it writes or when it
  must see the caller's uncommitted writes (``with store.transaction() as conn:
  store.failsafe.fired(conn, ...)``), so a caller's statements stay one atomic transaction. Reads
  that need no transaction take ``conn=None`` and use the store's own connection.
- The modules here sit below ``store`` in the import layers: they import neither the store nor
  anything above it (guard, operations, adapters), only the connection type and plain values.
- The SQL is portable: it runs on SQLite as written and on PostgreSQL through ``pgsql.translate``
  (no rowid outside ``failsafe_events``, no SQLite-only functions).

Callers outside the store layer never run SQL themselves and never reach into ``Store._conn()``
(``tests/test_store_layer.py`` checks this)."""
