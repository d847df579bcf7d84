"""The real `escalation-matrix serve --transport http` process for the security tests, started on a
copy of the shipped policy whose classifier uses the deterministic fake embedder: the HTTP stack, the
console, the store and the sweeper are all real, and a server starts in about a second instead of
loading the model. The helpers themselves are shared with the other tests (``tests/servers.py``)."""

from __future__ import annotations

from servers import CLI, ROOT, Served, serve_http, server_env, start, stop

OPERATOR_TOKEN = "operator-token-5f0c9a1d"

__all__ = ["CLI", "OPERATOR_TOKEN", "ROOT", "Served", "serve_http", "server_env", "start", "stop"]
