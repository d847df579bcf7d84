"""The operator web console at ``/console``: open escalations by severity with the time left to
their response target, each shown as its card (the locale's HTML template, escaped), with forms to
answer, assign, raise, note and close, and on an escalation's page a form to mark whether it was needed. Plain server-rendered HTML; every action is a POST followed
by a redirect back (Post/Redirect/Get) and a one-line flash of what happened, kept in the
server-side session (never in a cookie, so a neighbouring page cannot plant one).

Access: ``http_security.HttpSecurity`` guards every path (Host and Origin checks, tokens, operator
principals only); a browser opens ``/console?token=...`` once and keeps a server-side session.
Forms carry that session's CSRF token (hidden field, compared in constant time with the session's,
never with a cookie a neighbouring page could plant). Actions are signed with the session's
operator: the token's principal, or the name the holder of a shared token gave for this session.

``routes(guard)`` is what ``escalation-matrix serve --transport http`` mounts."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from . import console_actors, console_batches, console_charts, console_preferences, console_views
from .console_actions import Back, perform
from .durations import duration_label, measured_label, time_left
from .errors import EscalationMatrixError, InputError
from .http_security import Session, session_of
from .models import Severity
from .ops.records import Operations
from .render import render
from .store import OPEN_STATUSES, parse_iso

log = logging.getLogger(__name__)

PREFIX = "/console"
DEFAULT_OPERATOR = "operator"
MAX_FIELD = 8000  # characters in one form field (an answer, a note, a resolution)
MAX_BODY = 64 * 1024  # bytes in one posted form
SEVERITY_ORDER = (Severity.L4, Severity.L3, Severity.L2, Severity.L1)
SEVERITY_NAMES = {Severity.L4: "stop: task locked", Severity.L3: "pause: specialist",
                  Severity.L2: "wait for an operator", Severity.L1: "quick answer"}
L4_UNLOCKED = "critical: reviewed, no task locked"  # the L4 heading once no task of the group is locked
PAGE_HEADERS = {"Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "console_templates"),
                        autoescape=True, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Entry:
    """One open escalation as the console shows it."""

    record: dict[str, Any]
    card_html: Markup
    due_at: datetime
    seconds_left: int
    target: str
    raise_to: list[tuple[int, str]]

    @property
    def time_left(self) -> str:
        if self.seconds_left >= 0:
            return f"{time_left(self.seconds_left)} left"
        return f"overdue by {time_left(-self.seconds_left)}"


@dataclass(frozen=True)
class Group:
    severity: Severity
    name: str
    entries: list[Entry]


def deadline(record: dict[str, Any], ops: Operations) -> tuple[datetime, str]:
    """When a response is due, and the target it comes from: an agent escalation's severity route,
    a record's routing level (``due_at``), else the severity's response target as the card shows it."""
    if record.get("due_at") and record.get("source") == "agent":  # routed by severity (operations.yaml routing)
        start = parse_iso(record.get("severity_at") or record["created_at"])
        due = parse_iso(record["due_at"])
        return due, f"{record['severity']} target {duration_label(due - start)}"
    if record.get("due_at"):
        level = ops.ops.levels.get(record["level"])
        name = f"level {record['level']} ({level.name}) target" if level else f"level {record['level']} target"
        created = parse_iso(record["created_at"])
        due = parse_iso(record["due_at"])
        return due, f"{name} {duration_label(due - created)}"
    severity = Severity(record["severity"])
    target = ops.policy.response_targets[severity]
    start = parse_iso(record.get("severity_at") or record["created_at"])
    return start + timedelta(seconds=target.seconds), f"{severity.value} target {target.label}"


def group_entries(entries: list[Entry]) -> list[Group]:
    """Entries (already most urgent first) under their severity heading. The L4 heading says the
    task is locked only while one of its tasks still is."""
    by_severity: dict[Severity, list[Entry]] = {s: [] for s in SEVERITY_ORDER}
    for e in entries:
        by_severity[Severity(e.record["severity"])].append(e)
    groups = []
    for s in SEVERITY_ORDER:
        if by_severity[s]:
            name = SEVERITY_NAMES[s]
            if s is Severity.L4 and not any(e.record.get("task_locked") for e in by_severity[s]):
                name = L4_UNLOCKED
            groups.append(Group(s, name, by_severity[s]))
    return groups


def open_groups(ops: Operations, now: datetime) -> list[Group]:
    """Open escalations grouped by severity (L4 first), most urgent first inside each group."""
    records = ops.list(status="active", limit=None)
    entries: dict[Severity, list[Entry]] = {s: [] for s in SEVERITY_ORDER}
    for record in records:
        due, target = deadline(record, ops)
        raise_to = [(n, lvl.name) for n, lvl in sorted(ops.ops.levels.items()) if n > record["level"]]
        html = Markup(render(record, "html", ops.policy))  # the template escaped every field
        entries[Severity(record["severity"])].append(
            Entry(record, html, due, int((due - now).total_seconds()), target, raise_to))
    return [Group(s, SEVERITY_NAMES[s], sorted(entries[s], key=lambda e: e.seconds_left))
            for s in SEVERITY_ORDER if entries[s]]


# --- actions: form fields in, one Operations call, the flash line out ---
def _field(form: dict[str, str], name: str, what: str) -> str:
    value = (form.get(name) or "").strip()
    if not value:
        raise InputError(f"{what} is empty; fill it in and submit again")
    return value


def _answer(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    # an option button posts `choice`; the text box posts `answer`
    answer = (form.get("choice") or "").strip() or _field(form, "answer", "the answer")
    ops.answer(esc_id, answer, by=by)
    return f"{esc_id} answered by {by}; the agent's next call proceeds with the answer."


def _assign(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    record = ops.assign(esc_id, _field(form, "assignee", "the assignee"), by=by)
    return f"{esc_id} assigned to {record['assignee']}."


def _raise(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    level = _field(form, "level", "the new level")
    if not level.isdigit():
        raise InputError(f"the new level must be a number, got {level!r}")
    record = ops.raise_level(esc_id, int(level), _field(form, "reason", "the reason"), by=by)
    return f"{esc_id} raised to level {record['level']}, assigned to {record['assignee']}."


def _note(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    ops.note(esc_id, _field(form, "note", "the note"), by=by)
    return f"Note added to {esc_id}."


def _close(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    ops.close(esc_id, _field(form, "resolution", "the resolution"),
              preventive_measures=(form.get("preventive_measures") or "").strip() or None,
              lessons_learned=(form.get("lessons_learned") or "").strip() or None, by=by)
    return f"{esc_id} closed by {by}."


def _outcome(ops: Operations, esc_id: str, form: dict[str, str], by: str) -> str:
    verdict = _field(form, "outcome", "the outcome")
    ops.mark_outcome(esc_id, verdict, by, note=(form.get("note") or "").strip() or None)
    return f"{esc_id} marked {verdict} by {by}; the adaptive escalation target learns from it."


ACTIONS: dict[str, Callable[[Operations, str, dict[str, str], str], str]] = {
    "answer": _answer, "assign": _assign, "raise": _raise, "note": _note, "close": _close, "outcome": _outcome,
}


# --- HTTP ---
def routes(guard: Any) -> list[Route]:
    """The console's routes over the guard's store and policy (mounted next to /mcp)."""
    ops = Operations(guard.store, guard.policy)
    return Console(ops).routes()


class Console:
    def __init__(self, ops: Operations):
        self.ops = ops

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX, self.index, methods=["GET"], name="console"),
            Route(f"{PREFIX}/history", self.history, methods=["GET"]),
            Route(f"{PREFIX}/dashboard", self.dashboard, methods=["GET"]),
            Route(PREFIX + "/escalations/{esc_id}", self.escalation, methods=["GET"]),
            Route(f"{PREFIX}/operator", self.set_operator, methods=["POST"]),
            Route(f"{PREFIX}/logout", self.logout, methods=["POST"]),
            Route(PREFIX + "/escalations/{esc_id}/{action}", self.act, methods=["POST"]),
            *console_actors.routes(self),
            *console_preferences.routes(self),
            *console_batches.routes(self),
        ]

    async def index(self, request: Request) -> Response:
        now = self.ops.store.clock()
        filters = console_views.Filters.parse(request.query_params)
        paged, overdue = await run_in_threadpool(console_views.open_page, self.ops, filters, now, Entry)
        groups = group_entries(paged.items)
        session = session_of(request)
        if session is None:  # the security layer opens one for every page view
            return HTMLResponse(_EXPIRED, status_code=403)
        flash = _take_flash(session)
        page = TEMPLATES.get_template("console.html.j2").render(
            groups=groups, csrf=session.csrf, flash=flash, operator=session.operator,
            operator_fixed=session.principal.personal, now=now,
            total=paged.total, overdue=overdue, prefix=PREFIX, filters=filters, paged=paged, **_choices(self.ops))
        return HTMLResponse(page, headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                           "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})

    async def history(self, request: Request) -> Response:
        """Answered, resolved, expired and closed escalations, newest first, filtered and paged."""
        filters = console_views.Filters.parse(request.query_params, view="history")
        paged = await run_in_threadpool(console_views.history_page, self.ops, filters)
        return _html(TEMPLATES.get_template("history.html.j2").render(
            paged=paged, filters=filters, prefix=PREFIX, now=self.ops.store.clock(), **_choices(self.ops)))

    async def escalation(self, request: Request) -> Response:
        """One escalation's whole history: the card, its fields, notes, fail-safe stages,
        notifications and audit entries."""
        esc_id = request.path_params["esc_id"]
        try:
            record = await run_in_threadpool(self.ops.show, esc_id)
        except EscalationMatrixError as exc:
            return missing_page(str(exc))
        now = self.ops.store.clock()
        due, target = deadline(record, self.ops)
        card = Markup(render(record, "html", self.ops.policy))
        session = session_of(request)
        return _html(TEMPLATES.get_template("escalation.html.j2").render(
            r=record, card=card, prefix=PREFIX, now=now, due=due, target=target,
            csrf=session.csrf if session is not None else None,
            seconds_left=int((due - now).total_seconds()), is_open=record["status"] in OPEN_STATUSES,
            span=time_left))

    async def dashboard(self, request: Request) -> Response:
        """Escalation rate against the target and response times by level, as SVG charts."""
        from datetime import date

        from .ops.reports import PERIODS, build_report

        period = request.query_params.get("period") or "weekly"
        problems = []
        if period not in PERIODS:
            problems.append(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
            period = "weekly"
        day = None
        if request.query_params.get("date"):
            try:
                day = date.fromisoformat(request.query_params["date"])
            except ValueError:
                problems.append(f"date {request.query_params['date']!r} is not YYYY-MM-DD; showing today")
        report = await run_in_threadpool(build_report, self.ops.store, self.ops.policy, period, day)
        return _html(TEMPLATES.get_template("dashboard.html.j2").render(
            report=report, prefix=PREFIX, now=self.ops.store.clock(), period=period, periods=PERIODS,
            problems=problems, counts=console_views.counts_by_status(self.ops), duration=measured_label,
            rate_chart=console_charts.rate_chart(report),
            rate_bars=console_charts.target_bars(console_charts.rate_rows(report), "Rate per severity against target"),
            response_bars=console_charts.target_bars(console_charts.response_rows(report),
                                                     "Response time by severity and routing level against target")))

    async def set_operator(self, request: Request) -> Response:
        """With a token a team shares, the holder gives the name that signs this session's actions
        (kept in the server-side session). A personal token's name cannot be changed."""
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        session, form = posted.session, posted.form
        if session.principal.personal:
            return _back(session, "error", f"you are signed in as {session.principal.name}; that name signs your actions")
        name = " ".join((form.get("operator") or "").split())[:80]
        if name:
            session.operator_name = name
        return _back(session, "ok", f"Working as {name}." if name else "Give your name to sign your actions.")

    async def logout(self, request: Request) -> Response:
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        posted.session.ended = True
        response = HTMLResponse("<!doctype html><title>Signed out</title><p>Signed out of the escalation console. "
                                f'<a href="{PREFIX}">Open it again</a> (with your token).</p>')
        response.delete_cookie("escalation_matrix_session", path=PREFIX)
        return response

    async def act(self, request: Request) -> Response:
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        esc_id, action = request.path_params["esc_id"], request.path_params["action"]
        session, form = posted.session, posted.form
        handler = ACTIONS.get(action)
        if handler is None:
            return _back(session, "error", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        return await perform(_back, session, f"{action} on {esc_id}", handler, self.ops, esc_id, form,
                             session.operator)

    async def _form(self, request: Request) -> Posted | Response:
        """The posted fields and their session, or a 403 when the CSRF field is not this session's
        token; a body over ``MAX_BODY`` bytes is refused before it is read, a field over ``MAX_FIELD``
        characters after."""
        session = session_of(request)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return HTMLResponse(f"<!doctype html><title>Too large</title><p>A console form is at most {MAX_BODY:,} "
                                "bytes; shorten the text and submit again.</p>", status_code=413)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        given = form.get("csrf", "").encode("utf-8", "replace")
        if session is None or not hmac.compare_digest(given, session.csrf.encode()):
            return HTMLResponse(_EXPIRED, status_code=403)
        too_long = next((k for k, v in form.items() if len(v) > MAX_FIELD), None)
        if too_long is not None:
            return _back(session, "error", f"the {too_long} field has {len(form[too_long]):,} characters; "
                                           f"the limit is {MAX_FIELD:,}: shorten it and submit again")
        return Posted(session, form)


@dataclass(frozen=True)
class Posted:
    """A console form that passed the checks: the session that sent it (its operator signs the
    action) and the fields."""

    session: Session
    form: dict[str, str]


def _html(page: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)


def session_page(request: Request, template: str, **context: Any) -> Response:
    """A page for the request's console session (403 without one) with what every page's forms and
    header need: the CSRF field, the signing operator, the flash line (shown once), the prefix."""
    session = session_of(request)
    if session is None:  # the security layer opens one for every page view
        return HTMLResponse(_EXPIRED, status_code=403)
    return _html(TEMPLATES.get_template(template).render(
        csrf=session.csrf, operator=session.operator, flash=_take_flash(session), prefix=PREFIX, **context))


def missing_page(message: str) -> Response:
    return _html(TEMPLATES.get_template("missing.html.j2").render(prefix=PREFIX, message=message), 404)


def _choices(ops: Operations) -> dict[str, Any]:
    """What the filter form offers."""
    from .models import EscalationType

    return {"severities": [s.value for s in SEVERITY_ORDER],
            "types": [t.value for t in EscalationType if t is not EscalationType.none],
            "open_statuses": console_views.VIEWS["open"], "finished_statuses": console_views.VIEWS["history"],
            "assignees": sorted({lvl.assignee for lvl in ops.ops.levels.values()})}


_EXPIRED = ("<!doctype html><title>Form expired</title><p>This form is out of date or came from another site. "
            f'<a href="{PREFIX}">Reload the console</a> and submit again.</p>')


def back_to(path: str) -> Back:
    """Redirect to ``path`` (Post/Redirect/Get) with a flash line for the session's next page view."""

    def back(session: Session, kind: str, text: str) -> Response:
        session.flash = ("error" if kind == "error" else "ok", text[:500])
        return RedirectResponse(path, status_code=303)

    return back


_back = back_to(PREFIX)


def _take_flash(session: Session) -> dict[str, str] | None:
    """The session's flash line, shown once."""
    flash, session.flash = session.flash, None
    return {"kind": flash[0], "text": flash[1]} if flash else None


__all__ = ["ACTIONS", "Console", "deadline", "open_groups", "routes"]
