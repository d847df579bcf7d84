"""Verify the hash-chained audit trail: every entry's hash covers the previous hash and the entry's
canonical JSON (``store.entry_hash``), sequence numbers run without gaps, and the length kept by the
``audit_length`` trigger matches, so an edited, inserted or deleted entry (the last one included) is
reported with its sequence number.

Against someone who can write the database file, two more checks: each entry's hash is signed with
the audit key kept outside the database (``store.entry_mac``), so a chain re-hashed after an edit
fails; and every (seq, hash, mac) was appended to the anchor file beside the database as it was
written, so a truncated trail, or one rebuilt with a stolen key, no longer matches its anchor."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

import hmac

from ..queries.audit import HASHED_FIELDS
from ..store import GENESIS, Store, entry_hash, entry_mac

FIELDS = HASHED_FIELDS
MAX_PROBLEMS = 20


class AuditCheck(BaseModel):
    """The outcome of ``audit verify``."""

    ok: bool = Field(description="True when the whole chain verifies.")
    entries: int = Field(description="Entries checked.")
    head: str = Field(description="Hash of the last entry (GENESIS zeros when empty).")
    first_bad_seq: int | None = Field(default=None, description="Sequence number of the first broken entry.")
    problems: list[str] = Field(default_factory=list, description="What is wrong, entry by entry.")
    anchored: int = Field(default=0, description="Entries confirmed by the anchor file.")
    unsigned: int = Field(default=0, description="Entries written before the chain was keyed (no MAC to check).")


def verify(store: Store) -> AuditCheck:
    prev, expected_seq, count = GENESIS, 1, 0
    problems: list[str] = []
    first_bad: int | None = None

    def bad(seq: int, message: str) -> None:
        nonlocal first_bad
        first_bad = seq if first_bad is None else first_bad
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"entry {seq}: {message}")

    key = store.audit_key
    hashes: dict[int, str] = {}
    unsigned = 0
    for row in store.audit_trail.in_order():
        count += 1
        seq = row.seq
        if seq != expected_seq:
            bad(seq, f"expected entry {expected_seq} here; entries {expected_seq}-{seq - 1} were deleted")
        if row.prev_hash != prev:
            bad(seq, "prev_hash does not match the previous entry's hash (an entry before it was changed or removed)")
        if entry_hash(row.prev_hash, row.hashed()) != row.hash:
            bad(seq, "content does not match its hash (the entry was edited)")
        if row.mac is None:
            unsigned += 1
        elif not hmac.compare_digest(row.mac, entry_mac(key, row.hash)):
            bad(seq, "its hash is not signed with the audit key (the entry was re-hashed or the key changed)")
        hashes[seq] = row.hash
        prev, expected_seq = row.hash, seq + 1
    length = store.audit_trail.recorded_length()
    if length is not None and length != expected_seq - 1:
        bad(expected_seq, f"the trail should end at entry {length} but ends at {expected_seq - 1} "
                          "(entries at the end were deleted)")
    anchored = _check_anchor(store, hashes, bad)
    return AuditCheck(ok=first_bad is None, entries=count, head=prev, first_bad_seq=first_bad, problems=problems,
                      anchored=anchored, unsigned=unsigned)


def _check_anchor(store: Store, hashes: dict[int, str], bad: Any) -> int:
    """Every anchored (seq, hash) must still be in the trail, unchanged; returns how many matched."""
    path = store.anchor_path
    if path is None or not path.exists():
        return 0
    matched = 0
    for number, line in enumerate(path.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit():
            bad(0, f"anchor line {number} is unreadable: {line[:80]!r}")
            continue
        seq, digest = int(parts[0]), parts[1]
        if seq not in hashes:
            bad(seq, f"the anchor records entry {seq} but the trail has no such entry (entries were deleted)")
        elif not hmac.compare_digest(hashes[seq], digest):
            bad(seq, "the entry differs from its anchored hash (the trail was rewritten)")
        else:
            matched += 1
    return matched
