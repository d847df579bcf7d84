"""Is a new request or question the same issue as an earlier one, reworded?

Two signals. The embedding cosine says whether two sentences are about the same thing; it cannot
tell "Translate the guide into Spanish" from "... into German" (cosine 0.86), because sentences that
share most of their words embed close together. So a cheap lexical check runs first and vetoes a
match when the two sentences name a different value of the same kind: a different number or id,
a different proper name, a different member of one group (Spanish/German, production/staging,
Android/iOS, April/November), or actions of different kinds (delete vs archive, export vs import).

A third signal lowers the cosine needed when the two sentences agree on what matters: the same
specific value (a number, a name, production...) and the same kind of action (``agree``).

Measured on tests/data/same_issue_pairs.jsonl (the set the rules and thresholds were fitted on) and
tests/data/same_issue_pairs_holdout.jsonl (pairs written afterwards, never used to fit anything) by
benchmarks/bench_same_issue.py; the thresholds are kept in conversation.yaml
(``same_issue_similarity``, ``same_issue_similarity_agreeing``, ``reask_similarity``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Groups of mutually exclusive values: two sentences that each name members of one group, but not
# the same members, are about different things. Aliases of one value are joined with "|".
VALUE_GROUPS: dict[str, tuple[str, ...]] = {
    "environment": ("production|prod", "staging|stage", "development|dev"),
    "country or language": (
        "spanish|spain", "german|germany", "french|france", "italian|italy", "portuguese|portugal|brazil",
        "dutch|netherlands|holland", "japanese|japan", "chinese|china", "korean|korea", "vietnamese|vietnam",
        "mexican|mexico", "indian|india", "british|uk|england", "american|usa|(?-i:US)", "canadian|canada",
        "polish|poland", "swedish|sweden", "english", "arabic", "russian|russia", "turkish|turkey"),
    "platform": ("android", "ios|iphone|ipad", "windows", "mac|macos", "linux", "web"),
    "team": ("sales", "marketing", "finance|accounting", "hr|human resources", "legal", "engineering",
             "support team|customer support|customer service", "operations|ops"),
    "plan": ("free", "basic", "standard", "premium", "pro", "enterprise"),
    "seniority": ("junior", "senior", "principal"),
    "age": ("old|older|oldest|legacy", "new|newer|newest|latest"),
    "day": ("today", "tonight|this evening", "tomorrow", "monday", "tuesday", "wednesday", "thursday",
            "friday", "saturday", "sunday", "weekend"),
    "month": ("january", "february", "march", "april", "(?-i:May)", "june", "july", "august", "september",
              "october", "november", "december"),
    "frequency": ("hourly", "daily", "weekly", "monthly", "quarterly", "yearly|annually"),
    "file format": ("pdf", "word|docx", "excel|xlsx|spreadsheet", "csv", "json", "markdown", "html",
                    "powerpoint|pptx"),
    "relative": ("mother|mum|mom|mom's|mum's|mother's", "father|dad|dad's|father's", "sister|sister's",
                 "brother|brother's", "wife|wife's", "husband|husband's", "son|son's", "daughter|daughter's",
                 "boss|boss's|manager|manager's"),
    "database": ("postgres|postgresql", "mysql", "sqlite", "mongodb|mongo", "oracle", "redis"),
    "piece of writing": ("poem", "speech", "essay", "article", "letter", "story", "song", "toast",
                         "logo", "menu", "flyer", "poster", "brochure", "newsletter"),
}

# Kinds of action. Two sentences whose actions are all of different kinds ask for different things
# ("Archive the channels" / "Delete the channels"). Verbs are given as base forms.
ACTIONS: dict[str, tuple[str, ...]] = {
    "delete": ("delete", "remove", "drop", "wipe", "erase", "purge", "destroy", "clear", "discard", "trash"),
    "archive": ("archive",),
    "anonymise": ("anonymise", "anonymize", "pseudonymise", "redact"),
    "create": ("create", "write", "draft", "compose", "design", "build", "draw up", "put together", "produce"),
    "change": ("change", "edit", "modify", "update", "alter", "reword", "revise"),
    "send": ("send", "forward", "mail"),
    "publish": ("publish", "post"),
    "deploy": ("deploy", "ship", "roll out", "push"),
    "revert": ("roll back", "revert", "undo", "restore"),
    "back up": ("back up", "backup", "snapshot"),
    "export": ("export", "download", "dump"),
    "import": ("import", "upload"),
    "schedule": ("schedule", "book", "reserve", "set up", "arrange", "organise", "organize"),
    "cancel": ("cancel", "call off", "unsubscribe"),
    "stop": ("stop", "halt", "kill", "terminate", "turn off", "switch off", "disable", "pause", "shut down"),
    "start": ("start", "enable", "turn on", "switch on", "resume", "launch", "activate"),
    "increase": ("raise", "increase", "extend", "expand", "scale up", "boost"),
    "decrease": ("lower", "decrease", "reduce", "cut", "shrink", "scale down", "shorten"),
    "upgrade": ("upgrade",),
    "downgrade": ("downgrade",),
    "grant": ("grant", "give * access", "give * permission", "allow", "invite"),
    "revoke": ("revoke", "withdraw"),
    "lock": ("lock", "block", "suspend", "ban"),
    "unlock": ("unlock", "unblock"),
    "reset": ("reset",),
    "close": ("close", "resolve"),
    "reopen": ("reopen",),
    "merge": ("merge", "combine"),
    "buy": ("buy", "order", "purchase"),
    "sell": ("sell",),
    "refund": ("refund",),
    "translate": ("translate",),
    "summarise": ("summarise", "summarize"),
}

# Common abbreviations written out before two texts are embedded for comparison, so that "the prod
# DB" and "the production database" embed alike (the encoder does not know they mean the same).
# Only abbreviations with one everyday meaning in an agent's requests belong here.
ABBREVIATIONS: dict[str, str] = {
    "prod": "production", "db": "database", "dbs": "databases", "repo": "repository",
    "repos": "repositories", "vm": "virtual machine", "vms": "virtual machines",
    "2fa": "two-factor authentication", "ram": "memory", "env": "environment", "config": "configuration",
}
_ABBREVIATION = re.compile(r"\b(?:" + "|".join(ABBREVIATIONS) + r")\b", re.IGNORECASE)


def expand_abbreviations(text: str) -> str:
    """``text`` with the abbreviations of ABBREVIATIONS written out."""
    return _ABBREVIATION.sub(lambda m: ABBREVIATIONS[m.group(0).lower()], text)


_NUMBER_WORDS = {"zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10", "twelve": "12", "twenty": "20",
                 "fifty": "50"}
_SCALE = {"hundred": 100, "thousand": 1000, "million": 1000000}


@dataclass(frozen=True)
class Signature:
    """What the lexical check reads from one sentence."""

    numbers: frozenset[str]
    names: frozenset[str]
    groups: dict[str, frozenset[str]]
    actions: frozenset[str]


def _forms(verb: str) -> str:
    """A regex for a verb and its inflections (delete/deletes/deleted/deleting, drop/dropped).
    A "*" stands for up to three words ("give * access": "give the intern access")."""
    *head, last = verb.split()
    stem = last[:-1] if last.endswith("e") else last
    forms = {last, last + "s", last + "es", stem + "ed", stem + "ing", last + "d",
             last + last[-1] + "ed", last + last[-1] + "ing"}
    if last.endswith("y"):
        forms |= {last[:-1] + "ies", last[:-1] + "ied"}
    alternatives = "|".join(sorted(map(re.escape, forms), key=len, reverse=True))
    prefix = "".join(r"(?:[\w'-]+\s+){0,3}" if w == "*" else re.escape(w) + r"\s+" for w in head)
    return rf"\b{prefix}(?:{alternatives})\b"


@lru_cache(maxsize=1)
def _patterns() -> tuple[dict[str, re.Pattern[str]], dict[tuple[str, str], re.Pattern[str]]]:
    actions = {kind: re.compile("|".join(_forms(v) for v in verbs), re.IGNORECASE)
               for kind, verbs in ACTIONS.items()}
    values = {}
    for group, members in VALUE_GROUPS.items():
        for member in members:
            names = member.split("|")
            alternatives = "|".join(n if n.startswith("(?") else re.escape(n).replace(r"\ ", r"\s+")
                                    for n in names)
            values[(group, _plain(names[0]))] = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
    return actions, values


def _plain(name: str) -> str:
    """A value's name without its case-sensitivity marker: "(?-i:US)" -> "us"."""
    return re.sub(r"^\(\?-i:(.*)\)$", r"\1", name).lower()


_GROUP_WORDS = {w for members in VALUE_GROUPS.values() for m in members for n in m.split("|")
                for w in _plain(n).split()}


@lru_cache(maxsize=4096)
def signature(text: str) -> Signature:
    actions, values = _patterns()
    numbers = set()
    for token in re.findall(r"[\w$€£.,'-]*\d[\w.,'-]*", text):
        digits = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", token)  # 5,000 -> 5000
        numbers.add(re.sub(r"(st|nd|rd|th)$|[^\w.-]|\.$", "", digits.lower()).strip("$€£"))
    words = re.findall(r"[A-Za-z][\w'-]*", text)
    lowered = [w.lower() for w in words]
    for i, w in enumerate(lowered):  # "two hundred" -> 200; a lone number word counts as its digits
        if w in _NUMBER_WORDS and not (i + 1 < len(lowered) and lowered[i + 1] in _SCALE):
            numbers.add(_NUMBER_WORDS[w])
        elif w in _SCALE:
            base = int(_NUMBER_WORDS.get(lowered[i - 1], "1")) if i else 1
            numbers.add(str(base * _SCALE[w]))
    # proper names: capitalised words that do not open the sentence and are not in a value group
    names = {w.lower().removesuffix("'s") for i, w in enumerate(words)
             if i > 0 and (w[0].isupper() or any(c.isupper() for c in w[1:])) and w.lower() not in _GROUP_WORDS
             and w.lower().removesuffix("'s") not in _GROUP_WORDS and w not in ("I", "OK")}
    groups: dict[str, set[str]] = {}
    for (group, value), pattern in values.items():
        if pattern.search(text):
            groups.setdefault(group, set()).add(value)
    kinds = frozenset(kind for kind, pattern in actions.items() if pattern.search(text))
    return Signature(frozenset(numbers), frozenset(names), {g: frozenset(v) for g, v in groups.items()}, kinds)


def conflict(a: str, b: str) -> str | None:
    """Why ``a`` and ``b`` cannot be the same issue, or None when nothing tells them apart."""
    sa, sb = signature(a), signature(b)
    if sa.numbers and sb.numbers and sa.numbers != sb.numbers:
        return f"different numbers ({', '.join(sorted(sa.numbers ^ sb.numbers))})"
    if sa.names - sb.names and sb.names - sa.names:
        return f"different names ({', '.join(sorted(sa.names ^ sb.names))})"
    for group in sa.groups.keys() & sb.groups.keys():
        if sa.groups[group] != sb.groups[group]:
            return f"different {group} ({', '.join(sorted(sa.groups[group] ^ sb.groups[group]))})"
    if sa.actions and sb.actions and not sa.actions & sb.actions:
        return f"different actions ({', '.join(sorted(sa.actions))} / {', '.join(sorted(sb.actions))})"
    return None


def agree(a: str, b: str) -> bool:
    """Both sentences name the same specific value (a number or id, a proper name, a value of one
    group such as production or Spanish) and the same kind of action: "Delete all customer records
    older than 2019 from the production database" / "Purge customers from before 2019 in production"."""
    sa, sb = signature(a), signature(b)
    shared_value = bool(sa.numbers & sb.numbers or sa.names & sb.names
                        or any(sa.groups[g] & sb.groups[g] for g in sa.groups.keys() & sb.groups.keys()))
    return shared_value and bool(sa.actions & sb.actions)


def same_issue(a: str, va: np.ndarray, b: str, vb: np.ndarray, threshold: float,
               agreeing: float | None = None) -> bool:
    """Same issue: no lexical difference between them, and embeddings at least ``threshold``
    similar, or at least ``agreeing`` similar when both name the same specific value and the same
    kind of action (``agree``). ``agreeing`` defaults to ``threshold`` (one cosine for all pairs)."""
    if va.shape != vb.shape:
        return False  # written by another model: not comparable
    cosine = float(va @ vb)
    lower = threshold if agreeing is None else min(threshold, agreeing)
    if cosine < lower or conflict(a, b) is not None:
        return False
    return cosine >= threshold or agree(a, b)
