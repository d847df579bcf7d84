"""The store's SQL, grouped by concern: one module per group of tables, each a class of named,
documented queries returning typed records (frozen dataclasses) instead of raw rows.

How it fits together:

- ``Store`` (``store.py``) owns the connections, transactions, migrations, the escalation records
  and the audit trail. It exposes each group here as a property bound to its connection and
  clock: ``conversations`` (what the guard checks), ``failsafe``, ``notes``, ``outbox``,
  ``batches``, ``oversight``, ``reports``, ``erasure``, ``audit_trail``, ``pipeline``,
  ``counters``, ``thresholds`` (the adaptive target), ``preferences`` and ``decisions`` (the
  decision log read back by the unusual-pattern check). ``owners`` is plain functions over a connection (the access checks get only the
  tool call's connection); ``records`` describes a list of escalations (``RecordFilter``, ``Order``)
  for ``Store.find_escalations``.
- A group is a small class rather than more methods on ``Store``: each file holds the SQL of one
  concern next to the record types it returns, and ``store.py`` stays about connections and the
  records every concern shares.
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
