"""What the console shows at scale: the open queue filtered, searched and paged; the history of
finished escalations; one escalation's full history; the metrics dashboard. Read-only queries
over the store; ``console`` turns them into pages.

Only the cards of the page being shown are rendered, so a queue of thousands stays a small page."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import urlencode

from markupsafe import Markup

from .models import EscalationType, Severity
from .ops.records import Operations
from .render import render
from .store import OPEN_STATUSES as OPEN_STATUSES  # console.py reads it from here
from .queries.records import RecordFilter
from .store import STATUSES

PAGE_SIZE = 25
FINISHED_STATUSES = tuple(s for s in STATUSES if s not in OPEN_STATUSES)
VIEWS = {"open": OPEN_STATUSES, "history": FINISHED_STATUSES}
SEARCHED = ("id", "reason", "request", "question", "details", "assignee", "conversation_id", "task_id", "answer",
            "resolution", "type", "trigger")


@dataclass(frozen=True)
class Filters:
    """The query string of a console list page, checked."""

    view: str = "open"
    severity: str = ""
    status: str = ""
    type: str = ""
    assignee: str = ""
    overdue: bool = False
    q: str = ""
    page: int = 1
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str], view: str = "open") -> "Filters":
        """Unknown values are dropped with a line saying so, never a 500: the page still shows."""
        problems: list[str] = []

        def pick(name: str, allowed: tuple[str, ...]) -> str:
            value = (params.get(name) or "").strip()
            if value and value not in allowed:
                problems.append(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
                return ""
            return value

        page_text = (params.get("page") or "1").strip()
        page = int(page_text) if page_text.isdigit() and int(page_text) > 0 else 1
        if page_text != str(page):
            problems.append(f"page {page_text!r} is not a page number; showing page 1")
        return cls(
            view=view,
            severity=pick("severity", tuple(s.value for s in Severity)),
            status=pick("status", VIEWS[view]),
            type=pick("type", tuple(t.value for t in EscalationType if t is not EscalationType.none)),
            assignee=" ".join((params.get("assignee") or "").split())[:120],
            overdue=(params.get("overdue") or "") in ("1", "on", "true") and view == "open",
            q=" ".join((params.get("q") or "").split())[:200],
            page=page,
            problems=tuple(problems),
        )

    @property
    def narrowed(self) -> bool:
        return any((self.severity, self.status, self.type, self.assignee, self.overdue, self.q))

    def query(self, **changes: Any) -> str:
        """The query string for a link to this list with ``changes`` (the page resets unless given)."""
        changed = replace(self, **{"page": 1, **changes})
        pairs = [(k, getattr(changed, k)) for k in ("severity", "status", "type", "assignee", "q")]
        pairs = [(k, v) for k, v in pairs if v]
        if changed.overdue:
            pairs.append(("overdue", "1"))
        if changed.page > 1:
            pairs.append(("page", str(changed.page)))
        return ("?" + urlencode(pairs)) if pairs else ""


def _match(f: Filters) -> RecordFilter:
    return RecordFilter(statuses=(f.status,) if f.status else VIEWS[f.view], severity=f.severity or None,
                        type=f.type or None, assignee_any_case=f.assignee or None,
                        words=tuple(f.q.split()[:8]), searched=SEARCHED)  # every word in one of the text fields


@dataclass(frozen=True)
class Paged:
    """One page of a list and where it sits in the whole."""

    items: list[Any]
    total: int
    page: int
    pages: int

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0


def _page(items: list[Any], page: int) -> Paged:
    pages = max(1, math.ceil(len(items) / PAGE_SIZE))
    page = min(page, pages)
    return Paged(items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], len(items), page, pages)


def open_page(ops: Operations, f: Filters, now: datetime, entry: Any) -> tuple[Paged, int]:
    """The open escalations matching ``f``, most urgent first (L4 first, then the least time
    left), one page of them with their cards rendered; plus how many of all open ones are overdue."""
    from .console import SEVERITY_ORDER, deadline

    records = ops.store.find_escalations(_match(f), "newest")
    rank = {s.value: i for i, s in enumerate(SEVERITY_ORDER)}
    timed = []
    for record in records:
        due, target = deadline(record, ops)
        left = int((due - now).total_seconds())
        if f.overdue and left >= 0:
            continue
        timed.append((rank[record["severity"]], left, record, due, target))
    timed.sort(key=lambda t: (t[0], t[1]))
    paged = _page(timed, f.page)
    locked = _locked_tasks(ops, [t[2] for t in paged.items])
    entries = []
    for _, left, record, due, target in paged.items:
        record = {**record, "task_locked": locked.get((record.get("conversation_id"), record.get("task_id")))}
        raise_to = [(n, lvl.name) for n, lvl in sorted(ops.ops.levels.items()) if n > record["level"]]
        html = Markup(render(record, "html", ops.policy))  # the template escaped every field
        entries.append(entry(record, html, due, left, target, raise_to))
    return replace(paged, items=entries), sum(1 for t in timed if t[1] < 0)


def _locked_tasks(ops: Operations, records: list[dict[str, Any]]) -> dict[tuple[str, str], bool]:
    pairs = {(r["conversation_id"], r["task_id"]) for r in records if r.get("conversation_id") and r.get("task_id")}
    if not pairs:
        return {}
    return ops.store.conversations.locked(pairs)


def history_page(ops: Operations, f: Filters) -> Paged:
    """Finished escalations (answered, resolved, expired, closed), most recently finished first."""
    match = _match(f)
    total = ops.store.count_escalations(match)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(f.page, pages)
    rows = ops.store.find_escalations(match, "recently_updated", limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return Paged(rows, total, page, pages)


def counts_by_status(ops: Operations) -> dict[str, int]:
    return ops.store.counts_by_status()
