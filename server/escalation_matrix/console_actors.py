"""The console's actor oversight pages: every actor's rolling score and status, one actor's
decisions, tickets and suspensions, and the operator's suspend and reinstate forms. The forms go
through the console's own checks (session, CSRF field, the session's operator signs the action)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .console_actions import perform
from .errors import EscalationMatrixError, InputError
from .ops.oversight import Oversight
from .ops.oversight_chain import reinstate, suspend
from .durations import duration_label, parse_duration

if TYPE_CHECKING:
    from .console import Console


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
        from .console import session_page

        rows = await run_in_threadpool(self.oversight.actors)
        return session_page(request, "actors.html.j2", actors=rows, rules=self.console.ops.policy.oversight,
                            span=duration_label, now=self.console.ops.store.clock())

    async def actor(self, request: Request) -> Response:
        from .console import missing_page, session_page

        try:
            view = await run_in_threadpool(self.oversight.actor, request.path_params["name"])
        except EscalationMatrixError as exc:
            return missing_page(str(exc))
        return session_page(request, "actor.html.j2", a=view, now=self.console.ops.store.clock())

    async def act(self, request: Request) -> Response:
        from .console import PREFIX, back_to

        posted = await self.console._form(request)  # 403 unless the CSRF field is this session's
        if isinstance(posted, Response):
            return posted
        name, action = request.path_params["name"], request.path_params["action"]
        back, session = back_to(f"{PREFIX}/actors"), posted.session
        handler = ACTIONS.get(action)
        if handler is None:
            return back(session, "error", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        return await perform(back, session, f"{action} of {name}", handler, self.oversight, name, posted.form,
                             session.operator)


__all__: list[str] = ["routes"]
