"""Answers ``initialize`` and ``tools/list`` over stdio before the MCP SDK has loaded.

Importing the MCP SDK and building the server takes one to two seconds; an MCP client gives up
on ``initialize`` after a timeout of its own (the MCP Inspector after 15 s on a slow machine). The
front sits between the process's real stdin/stdout and the server: every message from the client
is passed on to the server unchanged and in order, so the server sees a normal session; while
the server has not written anything yet, an ``initialize`` or ``tools/list`` whose answer is known
from an earlier start of the same server is answered at once, and the server's own answer to that
request is dropped when it comes. The answers are learned from the server's own responses and kept
in the cache folder under a name made of everything that could change them (this package's
files, the installed MCP SDK's files, the command line, the policy files and the process's
``ESCALATION_MATRIX_*`` settings), so an edited policy or a new version starts without early answers
and learns them again. Set ``ESCALATION_MATRIX_EARLY_ANSWERS=0`` to turn the front off.

Only the standard library is imported here: the point is to run before anything heavy."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

# the handshake (initialize; server/discover from protocol 2026-07-28 on) and the tool list
EARLY = ("initialize", "server/discover", "tools/list")
VERSION_META = "io.modelcontextprotocol/protocolVersion"
_EARLY_NAMES = tuple(f'"{name}"'.encode() for name in EARLY)


# settings that cannot change the two answers (where state is kept, secrets): left out of the key
UNRELATED = ("ESCALATION_MATRIX_DB", "ESCALATION_MATRIX_CACHE", "ESCALATION_MATRIX_TOKEN",
             "ESCALATION_MATRIX_TOKENS_FILE", "ESCALATION_MATRIX_AUDIT_KEY", "ESCALATION_MATRIX_EARLY_ANSWERS")


def fingerprint(argv: list[str], policy_dirs: list[Path]) -> str:
    """A digest of everything the server's initialize and tools/list answers depend on: the
    command line without the database, this package's files, the policy and phrase files, the
    installed SDK and the settings in the environment."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--db":
            skip = True
        elif not arg.startswith("--db="):
            kept.append(arg)
    parts: list[str] = [json.dumps(kept), sys.version]
    package = Path(__file__).resolve().parent
    for folder in [package, *policy_dirs]:
        if not folder.is_dir():
            parts.append(f"{folder}: missing")
            continue
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                st = os.stat(os.path.join(root, name))
                parts.append(f"{os.path.join(root, name)}:{st.st_size}:{st.st_mtime_ns}")
    # the installed SDK, by its files (a package's metadata lookup costs tens of milliseconds at start)
    spec = importlib.util.find_spec("mcp")
    if spec is not None and spec.origin:
        st = os.stat(spec.origin)
        parts.append(f"mcp {spec.origin}:{st.st_size}:{st.st_mtime_ns}")
    for key in sorted(k for k in os.environ if k.startswith("ESCALATION_MATRIX_") and k not in UNRELATED):
        parts.append(f"{key}={hashlib.sha256(os.environ[key].encode()).hexdigest()}")  # no secret in clear
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


class Front:
    """The relay between the real stdin/stdout (kept as ``client_in``/``client_out``) and the
    server, which reads fd 0 and writes fd 1 as usual (pipes once ``start`` has run)."""

    def __init__(self, cache_file: Path):
        self.cache_file = cache_file
        self.known: dict[str, Any] = _read(cache_file)
        self._lock = threading.Lock()
        self._answered: set[str] = set()  # ids answered here: the server's answer is dropped
        self._asked: dict[str, str] = {}  # ids of early requests: the answer's key, to learn it
        self._session_version: str | None = None  # protocol version asked for by initialize
        self._server_spoke = False
        self._threads: list[threading.Thread] = []
        self.early = 0  # answers given here (for the log)
        self._end = b"\x00end of escalation-matrix output " + os.urandom(8).hex().encode() + b"\n"

    # --- wiring ---
    def start(self) -> None:
        sys.stdout.flush()
        self._client_in = os.fdopen(os.dup(0), "rb")
        self._client_out = os.dup(1)
        to_server_r, self._to_server = os.pipe()
        self._from_server, from_server_w = os.pipe()
        os.dup2(to_server_r, 0)
        os.dup2(from_server_w, 1)
        os.close(to_server_r)
        os.close(from_server_w)
        for target, name in ((self._relay_in, "stdio-front-in"), (self._relay_out, "stdio-front-out")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        """The server is done: let its last output through, then stop. The pipe may never reach
        its end (the SDK keeps a duplicate of its stdout), so a line of our own marks the end:
        everything the server wrote is already in the pipe ahead of it."""
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        try:
            _write_all(1, self._end)
        except OSError:
            pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        self._threads[1].join(timeout=5)

    # --- client -> server ---
    def _relay_in(self) -> None:
        stream = self._client_in
        try:
            for line in iter(stream.readline, b""):
                self._maybe_answer(line)
                _write_all(self._to_server, line)
        except OSError:
            pass
        finally:
            os.close(self._to_server)  # end of input: the server's stdio loop ends

    def _maybe_answer(self, line: bytes) -> None:
        if not any(name in line for name in _EARLY_NAMES):
            return  # most lines (tool calls) are passed on without parsing them
        message = _parse(line)
        if message is None or "id" not in message or message.get("method") not in EARLY:
            return
        method, key = message["method"], _key(message["id"])
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        meta = params.get("_meta")
        version = meta.get(VERSION_META) if isinstance(meta, dict) else None
        if method == "initialize":
            version = self._session_version = str(params.get("protocolVersion"))
        if method == "tools/list" and params.get("cursor"):
            return  # a later page: the server answers
        if not _complete(method, params, meta):
            return  # the server says what is missing
        answer_key = f"{method} {version or self._session_version}"
        with self._lock:
            self._asked[key] = answer_key
            if self._server_spoke:
                return
            result = self.known.get(answer_key)
            if result is None:
                return
            self._answered.add(key)
            self.early += 1
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
            _write_all(self._client_out, json.dumps(reply, separators=(",", ":")).encode() + b"\n")

    # --- server -> client ---
    def _relay_out(self) -> None:
        with os.fdopen(self._from_server, "rb") as stream:
            for line in iter(stream.readline, b""):
                if line == self._end:
                    return
                with self._lock:
                    self._server_spoke = True
                    key = _response_id(line)
                    asked = self._asked.pop(key, None) if key is not None else None
                    if asked is not None:
                        message = _parse(line)  # parsed in full only when there is something to learn
                        if message is not None and "result" in message:
                            self._learn(asked, message["result"])
                    if key is not None and key in self._answered:
                        self._answered.discard(key)
                        continue
                    _write_all(self._client_out, line)

    def _learn(self, answer_key: str, result: Any) -> None:
        if self.known.get(answer_key) == result:
            return
        self.known = {**self.known, answer_key: result}
        _write(self.cache_file, self.known)


def _complete(method: str, params: dict[str, Any], meta: Any) -> bool:
    """The request carries what the server requires of it (else the server's error is the answer)."""
    if method == "initialize":
        return isinstance(params.get("capabilities"), dict) and isinstance(params.get("clientInfo"), dict)
    if isinstance(meta, dict) and VERSION_META in meta:  # the per-request envelope of newer protocols
        return isinstance(meta.get("io.modelcontextprotocol/clientCapabilities"), dict)
    return method == "tools/list"


# the SDK writes responses as {"jsonrpc":"2.0","id":...,"result"|"error":...}: the id is read from
# the start of the line, without parsing a large result
_RESPONSE_ID = re.compile(rb'^\{"jsonrpc":"2\.0","id":(-?\d+|"(?:[^"\\]|\\.)*"),"(?:result|error)":')


def _response_id(line: bytes) -> str | None:
    """The key of the request a server line answers, or None (a notification or a request)."""
    found = _RESPONSE_ID.match(line)
    if found is not None:
        return _key(json.loads(found.group(1)))
    message = _parse(line)  # another layout: read it in full
    if message is None or "id" not in message or "method" in message:
        return None
    return _key(message["id"])


def _key(message_id: Any) -> str:
    return json.dumps(message_id)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
        stale = time.time() - 30 * 86400
        for old in path.parent.glob("early-*.json"):  # answers of builds and policies long gone
            if old != path and old.stat().st_mtime < stale:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache: no early answers next time, nothing else changes


def start(cache_dir: Path, argv: list[str], policy_dirs: list[Path]) -> Front | None:
    """Put the front in place (unless ESCALATION_MATRIX_EARLY_ANSWERS=0)."""
    if os.environ.get("ESCALATION_MATRIX_EARLY_ANSWERS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    front = Front(cache_dir / "stdio" / f"early-{fingerprint(argv, policy_dirs)}.json")
    front.start()
    return front

