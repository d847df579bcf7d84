"""The HTTP server's front door (``serve --transport http``): one ASGI middleware in front of /mcp
and the console that

- refuses a ``Host`` that is not this server's (DNS rebinding) on every route;
- refuses a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin``/``Referer`` is not
  this server's exact origin, port included, or that a browser marks as cross-site;
- authenticates: ``Authorization: Bearer <token>`` (scheme in any case) maps to a principal (agent
  or operator, see ``TokenTable``); a browser opens ``/console?token=...`` once and gets a
  server-side session (random id in an HttpOnly, SameSite=Strict cookie) that expires when idle and
  at an absolute limit, ends at logout, and dies with the process; a session lives only as long as
  the token it was opened with: when the tokens file changes (checked on every request, and re-read
  on SIGHUP and on the ``reload`` command) the sessions of a removed or changed token end at once;
- keeps agents out of the console: only an operator principal may open it;
- puts the principal (and the console session) in the ASGI scope for the tools and the console.

Without any token the server is for this machine only: ``serve`` refuses to bind beyond loopback
unless ``--insecure`` is given; the console and /mcp then act as the local operator and local agent."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import LOCAL_AGENT, PRINCIPAL_KEY, Principal, Role
from .errors import InputError

log = logging.getLogger(__name__)
SESSION_KEY = "escalation_matrix.session"
LOCAL_OPERATOR = Principal("operator", "operator", personal=False)
# the shared ESCALATION_MATRIX_TOKEN opens the console as an operator, but its MCP clients are the
# default agent, the same principal as a stdio client (replicas of one agent share conversations);
# operator powers on /mcp need a personal operator token from the tokens file
SHARED_AGENT = LOCAL_AGENT
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- tokens ---
@dataclass(frozen=True)
class TokenTable:
    """Tokens and the principal each one carries. Only SHA-256 digests are kept in memory."""

    entries: tuple[tuple[bytes, Principal], ...] = ()
    path: Path | None = None  # the tokens file, re-read by ``reread`` when it changes
    shared: tuple[tuple[bytes, Principal], ...] = ()  # the shared token's entry (from the environment)
    stamp: tuple[int, int, int] | None = None  # the file's (inode, size, mtime) when it was read

    @classmethod
    def load(cls, shared_token: str | None = None, tokens_file: str | Path | None = None) -> "TokenTable":
        """``shared_token`` (ESCALATION_MATRIX_TOKEN) is one operator token shared by a team; a tokens
        file gives each principal its own: one ``ROLE NAME TOKEN`` per line (role agent or operator),
        ``#`` starts a comment."""
        shared = ((_digest(shared_token), LOCAL_OPERATOR),) if shared_token else ()
        return cls._read(shared, Path(tokens_file) if tokens_file else None)

    @classmethod
    def _read(cls, shared: tuple[tuple[bytes, Principal], ...], path: Path | None) -> "TokenTable":
        entries: list[tuple[bytes, Principal]] = list(shared)
        stamp = None
        if path is not None:
            try:
                stamp = _stamp(path)
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise InputError(f"{path}: cannot read the tokens file ({exc.strerror})") from None
            for number, line in enumerate(lines, 1):
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                if len(words) != 3 or words[0] not in ("agent", "operator"):
                    raise InputError(f"{path}: line {number}: write ROLE NAME TOKEN with ROLE agent or operator")
                word, name, token = words
                role: Role = "agent" if word == "agent" else "operator"  # checked just above
                if len(token) < 16:
                    raise InputError(f"{path}: line {number}: the token of {name} is shorter than 16 characters; "
                                     "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
                entries.append((_digest(token), Principal(name, role)))
        digests = [d for d, _ in entries]
        if len(set(digests)) != len(digests):
            raise InputError("two principals share one token; give each its own")
        return cls(tuple(entries), path, shared, stamp)

    def changed(self) -> bool:
        """Whether the tokens file was edited, replaced or removed since it was read."""
        if self.path is None:
            return False
        try:
            return _stamp(self.path) != self.stamp
        except OSError:
            return self.stamp is not None

    def reread(self) -> "TokenTable":
        """The table with the tokens file read again. A file that cannot be read or has a bad line
        revokes every token it held (fail closed) until it is fixed; the shared token stays."""
        try:
            return self._read(self.shared, self.path)
        except InputError as exc:
            log.error("tokens file refused: %s; its tokens are revoked until it is fixed", exc)
            try:
                stamp = _stamp(self.path) if self.path is not None else None
            except OSError:
                stamp = None
            return TokenTable(self.shared, self.path, self.shared, stamp)

    def __bool__(self) -> bool:
        return bool(self.entries) or self.path is not None  # a tokens file, even one refused, means tokens

    def holds(self, digest: bytes | None, principal: Principal) -> bool:
        """Whether a session opened with the token of ``digest`` as ``principal`` is still valid: the
        token is still in the table, for the same principal (a session opened without any token is
        valid only while no token is configured)."""
        if digest is None:
            return not self
        return any(hmac.compare_digest(digest, d) and p == principal for d, p in self.entries)

    def lookup(self, token: str) -> Principal | None:
        given = _digest(token)
        found = None
        for digest, principal in self.entries:  # compare with every entry: no early exit to time
            if hmac.compare_digest(given, digest):
                found = principal
        return found


def _stamp(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer(header: bytes) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme in any case (RFC 7235)."""
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# --- console sessions ---
@dataclass
class Session:
    id: str
    principal: Principal
    csrf: str
    created: float
    seen: float
    operator_name: str | None = None  # a label the holder of a shared token may give; never a cookie
    ended: bool = False
    token: bytes | None = None  # the digest of the token the session was opened with (None: no tokens)
    flash: tuple[str, str] | None = None  # the console's one-line message for the next page view

    @property
    def operator(self) -> str:
        return self.operator_name or self.principal.name


@dataclass
class Sessions:
    """Server-side sessions: the cookie holds only a random id."""

    idle: float = 30 * 60
    absolute: float = 12 * 3600
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)

    def create(self, principal: Principal, token: bytes | None = None) -> Session:
        now = self.clock()
        self._expire(now)
        session = Session(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32), now, now, token=token)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        now = self.clock()
        if session is None or session.ended or now - session.seen > self.idle or now - session.created > self.absolute:
            self._by_id.pop(session_id or "", None)
            return None
        session.seen = now
        return session

    def end(self, session: Session) -> None:
        session.ended = True
        self._by_id.pop(session.id, None)

    def revoke(self, still_valid: Callable[[Session], bool]) -> int:
        """End every session ``still_valid`` refuses (a removed or changed token); how many ended."""
        ended = [s for s in list(self._by_id.values()) if not still_valid(s)]
        for session in ended:
            self.end(session)
        return len(ended)

    def _expire(self, now: float) -> None:
        for sid in [s.id for s in self._by_id.values() if now - s.seen > self.idle or now - s.created > self.absolute]:
            del self._by_id[sid]


# --- the middleware ---
class HttpSecurity:
    """See the module docstring. ``hosts``: host names this server answers to (ports are checked
    against the Host header for origins)."""

    COOKIE = "escalation_matrix_session"

    def __init__(self, app: ASGIApp, tokens: TokenTable | None = None, hosts: Iterable[str] = (),
                 sessions: Sessions | None = None, browser_prefix: str = "/console"):
        self.app = app
        self.tokens = tokens or TokenTable()
        self.hosts = frozenset(h.strip("[]").lower() for h in [*LOOPBACK_NAMES, *hosts] if h)
        self.sessions = sessions or Sessions()
        self.prefix = browser_prefix
        self._reread_requested = False

    def request_token_reload(self) -> None:
        """Re-read the tokens file before the next request (SIGHUP, the ``reload`` command); safe to
        call from another thread: the re-reading happens on the server's own loop."""
        self._reread_requested = True

    def reload_tokens(self, force: bool = False) -> None:
        """Re-read the tokens file when it changed (or when ``force``) and end at once the sessions
        whose token was removed or now belongs to someone else."""
        if self.tokens.path is None or not (force or self._reread_requested or self.tokens.changed()):
            return
        self._reread_requested = False
        self.tokens = table = self.tokens.reread()
        ended = self.sessions.revoke(lambda s: table.holds(s.token, s.principal))
        log.warning("tokens file re-read: %d principals; %d console sessions of removed or changed tokens ended",
                    len(table.entries), ended)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in (scope.get("headers") or [])}
        self.reload_tokens()
        refusal = self._refuse_foreign(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        console = self._is_console(scope.get("path", ""))
        outcome = self._authenticate(scope, headers, console)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        principal, session, new_cookie = outcome
        if console and not principal.is_operator:
            await PlainTextResponse("the console is for operators; this token belongs to an agent",
                                    status_code=403)(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        scope[SESSION_KEY] = session
        if new_cookie is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", new_cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    # --- checks ---
    def _refuse_foreign(self, scope: Scope, headers: dict[bytes, bytes]) -> Response | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if _hostname(host) not in self.hosts:
            return PlainTextResponse(f"unknown Host {host!r}: this server answers to {', '.join(sorted(self.hosts))} "
                                     "(add more with --allowed-host)", status_code=421)
        if scope.get("method") not in UNSAFE_METHODS:
            return None
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1") or _origin_of(headers.get(b"referer", b"").decode("latin-1"))
        if (site and site not in ("same-origin", "none")) or (origin and urlsplit(origin).netloc.lower() != host.lower()):
            return PlainTextResponse(f"cross-origin request refused (Origin {origin or '-'}, Host {host}): "
                                     "submit forms from this server's own pages", status_code=403)
        return None

    def _is_console(self, path: str) -> bool:
        return bool(self.prefix) and (path == self.prefix or path.startswith(self.prefix + "/"))

    def _authenticate(self, scope: Scope, headers: dict[bytes, bytes],
                      console: bool) -> Response | tuple[Principal, Session | None, bytes | None]:
        given = bearer(headers.get(b"authorization", b""))
        principal = self.tokens.lookup(given) if given and self.tokens else None
        if given and self.tokens and principal is None:
            return self._unauthorized(console)
        if not console:
            if principal is not None:
                return (SHARED_AGENT if principal is LOCAL_OPERATOR else principal), None, None
            return (LOCAL_AGENT, None, None) if not self.tokens else self._unauthorized(console)
        session = self.sessions.get(_cookie(headers, self.COOKIE))
        if session is not None and not self.tokens.holds(session.token, session.principal):
            self.sessions.end(session)  # its token was removed or changed (a second guard besides revoke)
            session = None
        if session is not None and (principal is None or principal == session.principal):
            return session.principal, session, None
        if principal is None and self.tokens:
            opened = self._open_with_token(scope)
            return opened or self._unauthorized(console, expired=_cookie(headers, self.COOKIE) is not None)
        token = _digest(given) if principal is not None and given else None
        principal = principal or LOCAL_OPERATOR  # no tokens: this machine only, checked at bind time
        if scope.get("method") not in ("GET", "HEAD"):
            return principal, None, None  # a form needs the session it was served with: the console says so
        session = self.sessions.create(principal, token)
        return principal, session, self._set_cookie(session, scope)

    def _open_with_token(self, scope: Scope) -> Response | None:
        """``GET /console?token=...``: a new session, and a redirect to the same page without the token."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        given = next((v for k, v in query if k == "token"), "")
        principal = self.tokens.lookup(given) if given and scope.get("method") == "GET" else None
        if principal is None:
            return None
        session = self.sessions.create(principal, _digest(given))
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), status_code=303)
        response.raw_headers.append((b"set-cookie", self._set_cookie(session, scope)))
        return response

    def _set_cookie(self, session: Session, scope: Scope) -> bytes:
        cookie = SimpleCookie()
        cookie[self.COOKIE] = session.id
        morsel = cookie[self.COOKIE]
        morsel.update({"path": self.prefix, "samesite": "Strict", "max-age": str(int(self.sessions.absolute))})
        morsel["httponly"] = True
        if scope.get("scheme") == "https":
            morsel["secure"] = True
        return morsel.OutputString().encode("latin-1")

    def _unauthorized(self, console: bool, expired: bool = False) -> Response:
        hint = f" (a browser: open {self.prefix}?token=...)" if self.prefix else ""
        why = "your console session expired or was ended; " if expired else ""
        return JSONResponse({"error": "invalid_token",
                             "error_description": f"{why}send Authorization: Bearer <token>{hint}"},
                            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="escalation-matrix"'})


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_of(referer: str) -> str:
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    found = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1")).get(name)
    return found.value if found is not None else None


def session_of(request: Any) -> Session | None:
    session: Session | None = request.scope.get(SESSION_KEY)  # set by the middleware, if any
    return session


def sessions_end(request: Any) -> None:
    """Logout: end the request's session (the middleware refuses its cookie from now on)."""
    session = session_of(request)
    if session is not None:
        session.ended = True
