"""Matching used by the conversation guard: the same issue or question (cosine of stored
embeddings plus the lexical check of ``sameissue``), minor preferences, and the capabilities that
bring a technical request into scope."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence, TypeVar

import numpy as np

from .models import Classification, EscalationType
from .queries.conversations import IssueText
from .sameissue import same_issue

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


# the pair model reads at most this many stored issues per call, the closest by cosine: its cost
# grows with each one (about 7 ms), a long conversation stores many, and a rewording is nearly
# always among the closest (of 462 rewordings in the training pairs, 2 fall out of the first 8 when
# the 8 most similar other texts of all training pairs stand beside them)
PAIR_CANDIDATES = 8


def minor_preference(qc: Classification | None, rc: Classification) -> Classification | None:
    """A minor preference (formatting, wording or capitalisation the agent can choose) is never
    escalated. The question decides when there is one, and only a policy rule may call it minor: an
    agent that chose to ask deserves more than an embedding's guess before its question is swallowed."""
    def minor(c: Classification) -> bool:
        return c.type is EscalationType.none and bool(c.default)

    if qc is None:
        return rc if minor(rc) else None
    if qc.escalate:
        return None
    return next((c for c in (qc, rc) if minor(c) and "rule" in c.decided_by), None)


@dataclass(frozen=True)
class Issue:
    """What identifies the issue of one escalate/clarify/check_scope call."""

    request: str
    request_vector: np.ndarray
    question: str | None = None
    question_vector: np.ndarray | None = None


Stored = TypeVar("Stored", bound=IssueText)


def stored_issue(row: IssueText) -> Issue:
    """The issue of a stored escalation. Records written before request vectors were kept hold
    one vector: the agent's question when it asked one, else the request."""
    issue_vector = np.frombuffer(row["question_vector"], dtype=np.float32)
    if row["request_vector"] is None:
        return Issue(row["question"] or row["request"] or "", issue_vector)
    request_vector = np.frombuffer(row["request_vector"], dtype=np.float32)
    asked = row["agent_question"]
    return Issue(row["request"] or "", request_vector, asked, issue_vector if asked else None)


def same_issue_as(new: Issue, old: Issue, threshold: float, agreeing: float | None = None) -> bool:
    """When both calls carry the agent's question, the questions decide (one request may raise
    several issues); otherwise the requests do, so a question asked about a request that was
    escalated and answered without one is that same issue, whatever its wording."""
    if new.question and old.question and new.question_vector is not None and old.question_vector is not None:
        return same_issue(new.question, new.question_vector, old.question, old.question_vector, threshold, agreeing)
    return same_issue(new.request, new.request_vector, old.request, old.request_vector, threshold, agreeing)


def compared(new: Issue, old: Issue) -> tuple[str, str]:
    """The two texts ``same_issue_as`` compares: the questions when both calls asked one, else the requests."""
    if new.question and old.question:
        return new.question, old.question
    return new.request, old.request


def compared_vectors(new: Issue, old: Issue) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of the two texts ``compared`` returns."""
    if new.question and old.question and new.question_vector is not None and old.question_vector is not None:
        return new.question_vector, old.question_vector
    return new.request_vector, old.request_vector


def worded_alike(new: Issue, old: Issue) -> bool:
    """The two calls say the same words (case, spacing and end punctuation aside), compared as
    ``same_issue_as`` compares them."""
    return same_words(*compared(new, old))


def same_words(a: str, b: str) -> bool:
    """The same words, case, spacing and end punctuation aside."""
    return _words(a) == _words(b)


def _words(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(" .!?")


def earlier_words(new: Issue, old: Issue) -> str | None:
    """The earlier call's words (question or request, as compared) when they are not ``new``'s:
    what a call matched by meaning is shown, so the agent can tell a different issue worded alike."""
    if worded_alike(new, old):
        return None
    return compared(new, old)[1] or ""


class PairScorer(Protocol):
    """The same-issue pair model (``pairmodel.PairModel``)."""

    threshold: float

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


def closest(rows: Sequence[Stored], issue: Issue, threshold: float, agreeing: float | None = None,
            *, exact: bool = False, pair: PairScorer | None = None, or_cosine: bool = False) -> Stored | None:
    """The stored issue (an escalation's, a preference's) that is the same issue as ``issue``, the
    closest when several are (``agreeing``: the lower cosine for sentences that agree on values and
    action, see ``same_issue``; ``exact``: worded alike only, when the agent says its call is a new issue).
    ``pair``: the pair model decides instead of the cosine thresholds (one pass over the stored
    issues, at most ``PAIR_CANDIDATES``, the closest by cosine; a call worded alike is always the
    same issue), and the most likely match wins;
    ``or_cosine``: what the cosine thresholds take for the same issue counts too."""
    if pair is not None and not exact and rows:
        olds = [stored_issue(row) for row in rows]
        alike = next((row for row, old in zip(rows, olds) if worded_alike(issue, old)), None)
        if alike is not None:  # the same words: no model pass needed
            return alike
        near = np.argsort([-float(np.dot(*compared_vectors(issue, old))) for old in olds], kind="stable")
        scores = np.zeros(len(olds), np.float32)
        read = near[:PAIR_CANDIDATES]
        scores[read] = pair.scores([compared(issue, olds[i]) for i in read])
        found = [(float(s), row) for s, row, old in zip(scores, rows, olds)
                 if s >= pair.threshold
                 or (or_cosine and same_issue_as(issue, old, threshold, agreeing))]
        return max(found, key=lambda f: f[0])[1] if found else None
    best: Stored | None = None
    best_sim = -1.0
    for row in rows:
        old = stored_issue(row)
        if not (worded_alike(issue, old) if exact else same_issue_as(issue, old, threshold, agreeing)):
            continue
        asked, old_asked = issue.question_vector, old.question_vector
        sim = float(asked @ old_asked if asked is not None and old_asked is not None
                    else issue.request_vector @ old.request_vector)
        if sim > best_sim:
            best, best_sim = row, sim
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
