"""The console's batch pages: the batches of questions delivered (or waiting) for people, and one
batch with a checkbox per open question and the "Approve all" / "Approve selected" forms (the
console's own checks apply: session, CSRF field, the session's operator signs the answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .console_actions import perform
from .errors import EscalationMatrixError
from .ops import batches as batching

if TYPE_CHECKING:
    from .console import Console
    from .ops.records import Operations

STATUSES = ("open", "delivered", "answered")


def routes(console: Console) -> list[Route]:
    from .console import PREFIX

    pages = BatchPages(console)
    return [Route(f"{PREFIX}/batches", pages.index, methods=["GET"]),
            Route(PREFIX + "/batches/{batch_id:int}", pages.batch, methods=["GET"]),
            Route(PREFIX + "/batches/{batch_id:int}/answer", pages.answer, methods=["POST"])]


class BatchPages:
    def __init__(self, console: Console):
        self.console = console

    async def index(self, request: Request) -> Response:
        from .console import session_page

        ops = self.console.ops
        status = request.query_params.get("status")
        status = status if status in STATUSES else None
        rows = await run_in_threadpool(batching.listing, ops.store, ops.policy.decisions.batching, status)
        return session_page(request, "batches.html.j2", batches=rows, status=status, statuses=STATUSES,
                            limits=ops.policy.decisions.batching, now=ops.store.clock())

    async def batch(self, request: Request) -> Response:
        from .console import missing_page, session_page

        ops = self.console.ops
        try:
            found = await run_in_threadpool(batching.show, ops.store, request.path_params["batch_id"],
                                            ops.policy.decisions.batching)
        except EscalationMatrixError as exc:
            return missing_page(str(exc))
        by_id = {i["id"]: i for i in found["items"]}
        return session_page(request, "batch.html.j2", batch=found, by_id=by_id, now=ops.store.clock())

    async def answer(self, request: Request) -> Response:
        from .console import PREFIX, back_to

        posted = await self.console._form(request)  # 403 unless the CSRF field is this session's
        if isinstance(posted, Response):
            return posted
        session, form = posted.session, posted.form
        batch_id = request.path_params["batch_id"]
        selected = form.get("scope") == "selected"
        items = [str(v) for v in (await request.form()).getlist("items")] if selected else None
        action = "reject" if form.get("action") == "reject" else "approve"
        note = (form.get("note") or "").strip() or None

        back = back_to(f"{PREFIX}/batches/{batch_id}")
        if selected and not items:
            return back(session, "error", "select at least one question, or use Approve all")
        return await perform(back, session, f"{action} of batch {batch_id}", _answer, self.console.ops, batch_id,
                             session.operator, items, action, note)


def _answer(ops: Operations, batch_id: int, by: str, items: list[str] | None, action: str, note: str | None) -> str:
    done = batching.answer_batch(ops.store, batch_id, by, ops.policy.decisions.batching, items=items, action=action,
                                 note=note, learn=ops.policy.decisions.preferences)
    verb = "approved" if action == "approve" else "rejected"
    return (f"Batch {batch_id}: {verb} {len(done['answered'])} ({', '.join(done['answered'])}) as {by}; "
            f"{done['open_left']} open left.")

