"""The console's preferences page: every preference learned from people's answers, with its
confidence now and whether it answers for them, and a revoke form (the console's own checks apply:
session, CSRF field, the session's operator signs the revocation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import preferences as learned
from .console_actions import perform

if TYPE_CHECKING:
    from .console import Console
    from .store import Store


def routes(console: Console) -> list[Route]:
    from .console import PREFIX

    pages = PreferencePages(console)
    return [Route(f"{PREFIX}/preferences", pages.index, methods=["GET"]),
            Route(PREFIX + "/preferences/{preference_id:int}/revoke", pages.revoke, methods=["POST"])]


class PreferencePages:
    def __init__(self, console: Console):
        self.console = console

    async def index(self, request: Request) -> Response:
        from .console import session_page

        ops = self.console.ops
        settings = ops.policy.decisions.preferences
        revoked = request.query_params.get("revoked") == "1"
        rows = await run_in_threadpool(learned.listing, ops.store, settings, revoked=revoked)
        return session_page(request, "preferences.html.j2", preferences=rows, limits=settings, revoked=revoked,
                            now=ops.store.clock())

    async def revoke(self, request: Request) -> Response:
        from .console import PREFIX, back_to

        posted = await self.console._form(request)  # 403 unless the CSRF field is this session's
        if isinstance(posted, Response):
            return posted
        session, form = posted.session, posted.form
        preference_id = request.path_params["preference_id"]
        by = session.operator
        reason = (form.get("reason") or "").strip() or None
        return await perform(back_to(f"{PREFIX}/preferences"), session, f"revoke of preference {preference_id}", _revoke, self.console.ops.store,
                             preference_id, by, reason)


def _revoke(store: Store, preference_id: int, by: str, reason: str | None) -> str:
    row = learned.revoke(store, preference_id, by, reason)
    return f"Preference {preference_id} of {row['scope']} {row['scope_id']} revoked by {by}: they will be asked again."
