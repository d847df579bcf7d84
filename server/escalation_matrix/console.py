"""The operator web console at ``/console``: open escalations by severity with the time left to
their response target, each shown as its card (the locale's HTML template, escaped), with forms to
answer, assign, raise, note and close. Plain server-rendered HTML; every action is a POST followed
by a redirect back (Post/Redirect/Get) and a one-line flash of what happened.

Access: the HTTP server's bearer-token middleware guards every path; a browser opens
``/console?token=...`` once and keeps an HttpOnly session cookie (see ``mcp_app.BearerAuth``).
Forms carry a per-browser CSRF token (cookie + hidden field, compared in constant time).

``routes(guard)`` is what ``escalation-matrix serve --transport http`` mounts."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .card import duration_label, response_target
from .errors import EscalationMatrixError, InputError
from .models import Severity
from .ops.records import Operations
from .render import render
from .store import parse_iso

log = logging.getLogger(__name__)

PREFIX = "/console"
CSRF_COOKIE = "escalation_matrix_csrf"
OPERATOR_COOKIE = "escalation_matrix_operator"
FLASH_COOKIE = "escalation_matrix_flash"
DEFAULT_OPERATOR = "operator"
SEVERITY_ORDER = (Severity.L4, Severity.L3, Severity.L2, Severity.L1)
SEVERITY_NAMES = {Severity.L4: "stop: task locked", Severity.L3: "pause: specialist",
                  Severity.L2: "wait for an operator", Severity.L1: "quick answer"}
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
            return f"{_span(self.seconds_left)} left"
        return f"overdue by {_span(-self.seconds_left)}"


@dataclass(frozen=True)
class Group:
    severity: Severity
    name: str
    entries: list[Entry]


def _span(seconds: int) -> str:
    """'2 d 3 h', '4 h 10 min', '12 min', 'under a minute'."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{v} {u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "min")) if v]
    return " ".join(parts[:2]) or "under a minute"


def deadline(record: dict[str, Any], ops: Operations) -> tuple[datetime, str]:
    """When a response is due, and the target it comes from: the routing level's (``due_at``, set for
    operator-created and raised records), else the severity's response target as the card shows it."""
    if record.get("due_at"):
        level = ops.ops.levels.get(record["level"])
        name = f"level {record['level']} ({level.name}) target" if level else f"level {record['level']} target"
        created = parse_iso(record["created_at"])
        due = parse_iso(record["due_at"])
        return due, f"{name} {duration_label(int((due - created).total_seconds()))}"
    severity = Severity(record["severity"])
    target = response_target(severity, ops.policy.files)
    start = parse_iso(record.get("severity_at") or record["created_at"])
    return start + timedelta(seconds=target.seconds), f"{severity.value} target {target.label}"  # type: ignore[union-attr]


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


ACTIONS: dict[str, Callable[[Operations, str, dict[str, str], str], str]] = {
    "answer": _answer, "assign": _assign, "raise": _raise, "note": _note, "close": _close,
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
            Route(f"{PREFIX}/operator", self.set_operator, methods=["POST"]),
            Route(PREFIX + "/escalations/{esc_id}/{action}", self.act, methods=["POST"]),
        ]

    async def index(self, request: Request) -> Response:
        now = self.ops.store.clock()
        groups = await run_in_threadpool(open_groups, self.ops, now)
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        flash = _read_flash(request.cookies.get(FLASH_COOKIE))
        page = TEMPLATES.get_template("console.html.j2").render(
            groups=groups, csrf=csrf, flash=flash, operator=_operator(request), now=now,
            total=sum(len(g.entries) for g in groups),
            overdue=sum(1 for g in groups for e in g.entries if e.seconds_left < 0), prefix=PREFIX)
        response = HTMLResponse(page, headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                               "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})
        if request.cookies.get(CSRF_COOKIE) != csrf:
            _cookie(response, CSRF_COOKIE, csrf)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=PREFIX)
        return response

    async def set_operator(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        name = " ".join((form.get("operator") or "").split())[:80]
        response = _back("ok", f"Working as {name}." if name else "Give your name to sign your actions.")
        if name:
            _cookie(response, OPERATOR_COOKIE, quote(name))
        return response

    async def act(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        esc_id, action = request.path_params["esc_id"], request.path_params["action"]
        handler = ACTIONS.get(action)
        if handler is None:
            return _back("error", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        try:
            done = await run_in_threadpool(handler, self.ops, esc_id, form, _operator(request))
        except EscalationMatrixError as exc:
            return _back("error", str(exc))
        except Exception:
            log.exception("console action %s on %s failed", action, esc_id)
            return _back("error", f"{action} on {esc_id} failed unexpectedly; the server log has the details")
        log.info("console: %s", done)
        return _back("ok", done)

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The posted fields, or a 403 when the CSRF field does not match this browser's cookie."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
            return HTMLResponse("<!doctype html><title>Form expired</title><p>This form is out of date or came "
                                f'from another site. <a href="{PREFIX}">Reload the console</a> and submit again.</p>',
                                status_code=403)
        return form


def _operator(request: Request) -> str:
    return unquote(request.cookies.get(OPERATOR_COOKIE, "")).strip() or DEFAULT_OPERATOR


def _cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="strict", max_age=max_age)


def _back(kind: str, text: str) -> Response:
    """Redirect to the console (Post/Redirect/Get) with a flash line for the next page view."""
    response = RedirectResponse(PREFIX, status_code=303)
    _cookie(response, FLASH_COOKIE, quote(f"{kind}:{text[:500]}"), max_age=120)
    return response


def _read_flash(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    kind, _, text = unquote(raw).partition(":")
    return {"kind": "error" if kind == "error" else "ok", "text": text}


__all__ = ["routes", "Console", "open_groups", "deadline", "ACTIONS"]
