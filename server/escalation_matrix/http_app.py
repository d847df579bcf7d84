"""The HTTP application around the MCP server: streamable HTTP at /mcp, the operator console at
/console, bearer tokens and Host/Origin checks on every route (``HttpSecurity``), and the server's
background work — the fail-safe sweeper (timers, notifications, retention) and the policy reloader
— started and stopped with the application's lifespan. ``serve`` runs it under uvicorn; stdio
serving uses the same ``background`` around ``MCPServer.run``.

The MCP tools themselves are in ``mcp_app``; nothing here knows what a tool does."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .errors import UnavailableError

from .guard import ConversationGuard
from .http_security import HttpSecurity, Sessions, TokenTable

log = logging.getLogger(__name__)


class Background:
    """The fail-safe sweeper and the policy reloader of one server process. Every replica of a
    shared database runs its own; the store makes each fail-safe stage fire once among them."""

    def __init__(self, guard: ConversationGuard):
        self.guard = guard
        self.sweeper: Any = None
        self.reloader: Any = None
        self.on_reload: list[Callable[[Any], None]] = []
        self.on_start: list[Callable[[], None]] = []  # run once both are running

    def start(self) -> None:
        from .ops.failsafe import start_sweeper
        from .reload import start_reloader

        self.sweeper = start_sweeper(self.guard.store, self.guard.policy)
        sweeper = self.sweeper
        # edited policy, phrase and exemplar files, SIGHUP or `escalation-matrix reload`: validated, then served
        self.reloader = start_reloader(self.guard, on_reload=[lambda policy: setattr(sweeper, "policy", policy),
                                                              *self.on_reload])
        for hook in self.on_start:
            hook()

    def stop(self) -> None:
        if self.reloader is not None:
            self.reloader.stop(timeout=2)
        if self.sweeper is not None:
            self.sweeper.stop(timeout=2)
        self.sweeper = self.reloader = None

    @contextlib.contextmanager
    def running(self) -> Iterator["Background"]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def build_http_app(server: MCPServer, token: str | None = None, extra_routes: Iterable[Any] = (),
                   host: str = "127.0.0.1", path: str = "/mcp", *, tokens: TokenTable | None = None,
                   allowed_hosts: Iterable[str] = (), sessions: Sessions | None = None,
                   background: Background | None = None) -> HttpSecurity:
    """Streamable HTTP at ``path`` plus ``extra_routes`` (Starlette routes, e.g. a console at /console),
    behind ``HttpSecurity``: Host and Origin checks on every route, and the principal of ``token``
    (the shared operator token) or of ``tokens`` on every request when any token is configured.
    ``background`` (sweeper and reloader) starts and stops with the application's lifespan."""
    app: Starlette = server.streamable_http_app(streamable_http_path=path, host=host)
    app.router.routes.extend(extra_routes)
    app.add_exception_handler(UnavailableError, _unavailable)
    if background is not None:
        _run_with_lifespan(app, background)
    table = tokens if tokens is not None else TokenTable.load(token)
    hosts = [h for h in (host, *allowed_hosts) if h not in ("0.0.0.0", "::", "")]
    secured = HttpSecurity(app, table, hosts=hosts, sessions=sessions)
    if background is not None:
        background.on_reload.append(lambda _policy: secured.request_token_reload())
    return secured


async def _unavailable(request: Request, exc: Exception) -> Response:
    """The state database is down or restarting (PostgreSQL): a page or request says so and when to
    retry, instead of a bare 500. (MCP tool calls report it as a tool error themselves.)"""
    return PlainTextResponse(f"503 Service Unavailable: {exc}\n", status_code=503, headers={"Retry-After": "5"})


def _run_with_lifespan(app: Starlette, background: Background) -> None:
    inner = app.router.lifespan_context  # the MCP session manager's

    @contextlib.asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        with background.running():
            async with inner(asgi) as state:
                yield state

    app.router.lifespan_context = lifespan


def console_routes(guard: ConversationGuard) -> list[Any]:
    """The operations console, when that module is installed, shares the HTTP server at /console."""
    try:
        from . import console
    except ImportError:
        return []
    routes = getattr(console, "routes", None)
    return list(routes(guard)) if callable(routes) else list(routes or [])


def reread_tokens_on_sighup(app: HttpSecurity) -> None:
    """SIGHUP re-reads the tokens file (it is also re-read when it changes, checked on every
    request, and on the ``reload`` command); the console sessions of a removed or changed token end."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGHUP)

    def on_sighup(signum: int, frame: Any) -> None:
        app.request_token_reload()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGHUP, on_sighup)


def serve_http(server: MCPServer, guard: ConversationGuard, host: str, port: int, *,
               tokens: TokenTable | None = None, allowed_hosts: Iterable[str] = (),
               announce: Callable[[int, bool], None] = lambda port, console: None) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM). The socket is bound before ``announce(port, console)``
    is called, so ``--port 0`` (the system picks a free port) announces the real one."""
    import uvicorn

    routes = console_routes(guard)
    background = Background(guard)
    app = build_http_app(server, extra_routes=routes, host=host, tokens=tokens, allowed_hosts=allowed_hosts,
                         background=background)
    # after the reloader's own SIGHUP handler, which this one chains to
    background.on_start.append(lambda: reread_tokens_on_sighup(app))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    sock = config.bind_socket()
    announce(sock.getsockname()[1], bool(routes))
    uvicorn.Server(config).run(sockets=[sock])


def serve_stdio(server: MCPServer, guard: ConversationGuard) -> None:
    try:
        with Background(guard).running():
            server.run()
    finally:
        settle = getattr(guard.classifier, "settle", None)  # a client that left during the model load
        if settle is not None:
            settle()


__all__ = ["Background", "build_http_app", "console_routes", "serve_http", "serve_stdio"]
