"""Matching used by the conversation guard: the same issue or question (cosine of stored
embeddings), minor preferences, and the capabilities that bring a technical request into scope."""

from __future__ import annotations

import re
import sqlite3

import numpy as np

from .models import Classification, EscalationType

# check_scope(capabilities=[...]): what the agent can do. A request that needs a known capability
# the agent lacks is a technical limitation; a technical limitation that needs a capability the
# agent has is in scope. Known names have a pattern; any other name matches its own words
# (e.g. "calendar_access" matches "calendar").
CAPABILITY_HINTS = {
    "database_access": r"\b(sql|database|db|quer(y|ies)|tables?)\b",
    "web_access": r"\b(browse|browsing|websites?|web ?pages?|urls?|internet|online)\b",
    "file_access": r"\b(files?|folders?|directory|directories|disk)\b",
    "email": r"\b(e-?mails?|inbox|mailbox)\b",
    "code_execution": r"\b(run|execute)\b.*\b(code|scripts?|programs?|commands?|notebooks?)\b",
    "booking_access": (r"\b(make|book|schedule)\s+(me\s+)?an?\s+(appointment|reservation|booking)\b|"
                       r"\b(call|phone|ring)\s+(the|my)\s+(dentist|doctor|bank|restaurant|landlord|plumber|school|pharmacy)\b"),
}


def minor_preference(qc: Classification | None, rc: Classification) -> Classification | None:
    """A minor preference (seed 002 §12) is never escalated. The question decides when there is
    one, and only a policy rule may call it minor: an agent that chose to ask deserves more than an
    embedding's guess before its question is swallowed."""
    def minor(c: Classification) -> bool:
        return c.type is EscalationType.none and bool(c.default)

    if qc is None:
        return rc if minor(rc) else None
    if qc.escalate:
        return None
    return next((c for c in (qc, rc) if minor(c) and "rule" in c.decided_by), None)


def most_similar(rows: list[sqlite3.Row], vector: np.ndarray, threshold: float) -> str | None:
    best, best_sim = None, threshold
    for row in rows:
        stored = np.frombuffer(row["question_vector"], dtype=np.float32)
        if stored.shape != vector.shape:
            continue  # written by another model: not comparable
        sim = float(stored @ vector)
        if sim >= best_sim:
            best, best_sim = row["id"], sim
    return best


def needed_capabilities(request: str) -> set[str]:
    """The known capabilities (CAPABILITY_HINTS) a request mentions."""
    return {name for name, pattern in CAPABILITY_HINTS.items() if re.search(pattern, request, re.IGNORECASE)}


def normalise_capability(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def has_capability(request: str, capabilities: list[str]) -> bool:
    """True when the request needs one of ``capabilities`` (known names by pattern, others by their words)."""
    for name in capabilities:
        key = normalise_capability(name)
        pattern = CAPABILITY_HINTS.get(key)
        if pattern is None:
            words = [w for w in key.split("_") if w and w not in ("access", "tool", "tools")]
            pattern = r"\b(" + "|".join(re.escape(w) for w in words) + r")\b" if words else None
        if pattern and re.search(pattern, request, re.IGNORECASE):
            return True
    return False
