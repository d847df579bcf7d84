"""One console form action, the same for escalations and actors: the handler runs off the event
loop; its result becomes an "ok" flash line, a library error an "error" line with its message, and
anything unexpected a logged error with a generic line (the details stay in the server log)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .errors import EscalationMatrixError

if TYPE_CHECKING:
    from .http_security import Session

log = logging.getLogger(__name__)

Back = Callable[["Session", str, str], Response]


async def perform(back: Back, session: Session, label: str, handler: Callable[..., str], *args: Any) -> Response:
    """Run ``handler(*args)`` and go ``back`` with the flash line; ``label`` names the action in
    the messages (e.g. "answer on ESC-2026-001")."""
    try:
        done = await run_in_threadpool(handler, *args)
    except EscalationMatrixError as exc:
        return back(session, "error", str(exc))
    except Exception:
        log.exception("console action %s failed", label)
        return back(session, "error", f"{label} failed unexpectedly; the server log has the details")
    log.info("console: %s", done)
    return back(session, "ok", done)
