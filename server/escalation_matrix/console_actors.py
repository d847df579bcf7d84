"""The console's actor oversight pages: every actor's rolling score and status, one actor's
decisions, tickets and suspensions, and the operator's suspend and reinstate forms. The forms go
through the console's own checks (session, CSRF field, the session's operator signs the action)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .console_actions import perform
from .errors import EscalationMatrixError, InputError
from .http_security import session_of
from .ops.oversight import Oversight
from .ops.oversight_chain import reinstate, suspend
from .durations import duration_label, parse_duration

if TYPE_CHECKING:
    from .console import Console

log = logging.getLogger(__name__)


def _suspend(oversight: Oversight, name: str, form: dict[str, str], by: str) -> str:
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise InputError("the reason is empty; say why the actor is suspended")
    text = (form.get("cooldown") or "").strip()
    try:
        cooldown = parse_duration(text) if text else None
    except ValueError as exc:
        raise InputError(f"cool-down: {exc}") from None
    held = suspend(oversight, name, reason, by, cooldown)
    return (f"{name} suspended by {by} until {held['until']}; {len(held['moved'])} open items moved to "
            f"{held['replacement']}.")


def _reinstate(oversight: Oversight, name: str, form: dict[str, str], by: str) -> str:
    reinstate(oversight, name, by, (form.get("reason") or "").strip() or "reinstated by an operator")
    return f"{name} reinstated by {by}."


ACTIONS = {"suspend": _suspend, "reinstate": _reinstate}


def routes(console: Console) -> list[Route]:
    from .console import PREFIX

    pages = ActorPages(console)
    return [Route(f"{PREFIX}/actors", pages.index, methods=["GET"]),
            Route(PREFIX + "/actors/{name}", pages.actor, methods=["GET"]),
            Route(PREFIX + "/actors/{name}/{action}", pages.act, methods=["POST"])]


class ActorPages:
    def __init__(self, console: Console):
        self.console = console

    @property
    def oversight(self) -> Oversight:
        return Oversight(self.console.ops.store, self.console.ops.policy)

    async def index(self, request: Request) -> Response:
        from .console import _EXPIRED, PREFIX, TEMPLATES, _html, _take_flash

        session = session_of(request)
        if session is None:
            return HTMLResponse(_EXPIRED, status_code=403)
        rows = await run_in_threadpool(self.oversight.actors)
        rules = self.console.ops.policy.oversight
        flash = _take_flash(session)  # kept in the server-side session, never a cookie
        return _html(TEMPLATES.get_template("actors.html.j2").render(
            actors=rows, rules=rules, span=duration_label, csrf=session.csrf, operator=session.operator,
            flash=flash, prefix=PREFIX, now=self.console.ops.store.clock()))

    async def actor(self, request: Request) -> Response:
        from .console import _EXPIRED, PREFIX, TEMPLATES, _html

        session = session_of(request)
        if session is None:
            return HTMLResponse(_EXPIRED, status_code=403)
        try:
            view = await run_in_threadpool(self.oversight.actor, request.path_params["name"])
        except EscalationMatrixError as exc:
            return _html(TEMPLATES.get_template("missing.html.j2").render(prefix=PREFIX, message=str(exc)), 404)
        return _html(TEMPLATES.get_template("actor.html.j2").render(
            a=view, csrf=session.csrf, prefix=PREFIX, now=self.console.ops.store.clock()))

    async def act(self, request: Request) -> Response:
        form = await self.console._form(request)  # 403 unless the CSRF field is this session's
        if isinstance(form, Response):
            return form
        name, action = request.path_params["name"], request.path_params["action"]
        session = session_of(request)
        handler = ACTIONS.get(action)
        if handler is None:
            return _back(session, "error", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        by = session.operator  # type: ignore[union-attr]
        return await perform(_back, session, f"{action} of {name}", handler, self.oversight, name, form, by)


def _back(session: Any, kind: str, text: str) -> Response:
    """Back to the actors page with a flash line in the session (see console._back)."""
    from .console import PREFIX

    session.flash = ("error" if kind == "error" else "ok", text[:500])
    return RedirectResponse(f"{PREFIX}/actors", status_code=303)


__all__: list[Any] = ["routes"]
