"""Matching used by the conversation guard: the same issue or question (cosine of stored
embeddings), minor preferences, and the capabilities that bring a technical request into scope."""

from __future__ import annotations

import re
import sqlite3

import numpy as np

from .models import Classification, EscalationType

# check_scope: a technical limitation is in scope when the agent declares a capability the request
# needs. Known capability names have a pattern; any other name matches its own words
# (e.g. "calendar_access" matches "calendar").
CAPABILITY_HINTS = {
    "database_access": r"\b(sql|database|db|quer(y|ies)|tables?)\b",
    "web_access": r"\b(browse|browsing|websites?|web ?pages?|urls?|internet|online)\b",
    "file_access": r"\b(files?|folders?|directory|directories|disk)\b",
    "email": r"\b(e-?mails?|inbox|mailbox)\b",
    "code_execution": r"\b(run|execute)\b.*\b(code|scripts?|programs?|commands?|notebooks?)\b",
}


def minor_preference(qc: Classification | None, rc: Classification) -> Classification | None:
    """A minor preference (seed 002 §12) is never escalated: the question decides when there is one."""
    if qc is not None:
        if qc.type is EscalationType.none and qc.default:
            return qc
        if qc.escalate:
            return None
    return rc if rc.type is EscalationType.none and rc.default else None


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


def has_capability(request: str, capabilities: list[str]) -> bool:
    for name in capabilities:
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        pattern = CAPABILITY_HINTS.get(key)
        if pattern is None:
            words = [w for w in key.split("_") if w and w not in ("access", "tool", "tools")]
            pattern = r"\b(" + "|".join(re.escape(w) for w in words) + r")\b" if words else None
        if pattern and re.search(pattern, request, re.IGNORECASE):
            return True
    return False
