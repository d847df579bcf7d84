"""Verify the hash-chained audit trail: every entry's hash covers the previous hash and the entry's
canonical JSON (``store.entry_hash``), sequence numbers run without gaps, and the length kept by the
``audit_length`` trigger matches, so an edited, inserted or deleted entry (the last one included) is
reported with its sequence number."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..store import GENESIS, Store, entry_hash

FIELDS = ("seq", "at", "actor", "action", "escalation_id", "conversation_id", "task_id", "data")
MAX_PROBLEMS = 20


class AuditCheck(BaseModel):
    """The outcome of ``audit verify``."""

    ok: bool = Field(description="True when the whole chain verifies.")
    entries: int = Field(description="Entries checked.")
    head: str = Field(description="Hash of the last entry (GENESIS zeros when empty).")
    first_bad_seq: int | None = Field(default=None, description="Sequence number of the first broken entry.")
    problems: list[str] = Field(default_factory=list, description="What is wrong, entry by entry.")


def verify(store: Store) -> AuditCheck:
    conn = store._conn()
    prev, expected_seq, count = GENESIS, 1, 0
    problems: list[str] = []
    first_bad: int | None = None

    def bad(seq: int, message: str) -> None:
        nonlocal first_bad
        first_bad = seq if first_bad is None else first_bad
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"entry {seq}: {message}")

    for row in conn.execute("SELECT * FROM audit ORDER BY seq"):
        count += 1
        seq = row["seq"]
        if seq != expected_seq:
            bad(seq, f"expected entry {expected_seq} here; entries {expected_seq}-{seq - 1} were deleted")
        if row["prev_hash"] != prev:
            bad(seq, "prev_hash does not match the previous entry's hash (an entry before it was changed or removed)")
        entry = {name: row[name] for name in FIELDS}
        if entry_hash(row["prev_hash"], entry) != row["hash"]:
            bad(seq, "content does not match its hash (the entry was edited)")
        prev, expected_seq = row["hash"], seq + 1
    length = conn.execute("SELECT value FROM counters WHERE name = 'audit-length'").fetchone()
    if length is not None and length[0] != expected_seq - 1:
        bad(expected_seq, f"the trail should end at entry {length[0]} but ends at {expected_seq - 1} "
                          "(entries at the end were deleted)")
    return AuditCheck(ok=first_bad is None, entries=count, head=prev, first_bad_seq=first_bad, problems=problems)
