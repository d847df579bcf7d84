"""Serving commands: ``serve`` (MCP over stdio or streamable HTTP) and ``unlock`` (after L4 review)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING

import click

from . import main
from .common import AppState, CliError, db_option, translate_errors

if TYPE_CHECKING:
    from ..http_security import TokenTable

TOKEN_ENV = "ESCALATION_MATRIX_TOKEN"
TOKENS_FILE_ENV = "ESCALATION_MATRIX_TOKENS_FILE"
log = logging.getLogger(__name__)


def _quiet_model_loading() -> None:
    """stdout belongs to the protocol: keep library progress bars and chatter off it."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@main.command()
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio for a local MCP client; http for streamable HTTP at /mcp.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="HTTP: port; 0 picks a free one (the address is printed at start).")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False), envvar=TOKENS_FILE_ENV,
              help="HTTP: file of principals, one 'ROLE NAME TOKEN' per line (role agent or operator).")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="HTTP: a host name clients use to reach this server (checked against Host); repeatable.")
@click.option("--insecure", is_flag=True,
              help="HTTP: allow listening beyond loopback without any token (anyone who can reach the port "
                   "can answer escalations).")
@click.option("--locale", envvar="ESCALATION_MATRIX_LOCALE", default=None,
              help="Language of phrases and messages when a call and its conversation name none, e.g. de "
                   "(default: ESCALATION_MATRIX_LOCALE, else `locale` in classifier.yaml).")
@db_option
@click.pass_obj
@translate_errors
def serve(state: AppState, transport: str, host: str, port: int, tokens_file: str | None,
          allowed_hosts: tuple[str, ...], insecure: bool, db: str | None, locale: str | None = None) -> None:
    """Run the MCP server (tools escalate, clarify, check_scope, respond, classify).

    HTTP: with $ESCALATION_MATRIX_TOKEN (a shared operator token) or --tokens, every request needs
    `Authorization: Bearer <token>`; without a token the server listens on loopback only."""
    tokens = None
    if transport == "http":
        from ..http_security import TokenTable

        tokens = TokenTable.load(os.environ.get(TOKEN_ENV) or None, tokens_file)
        warning = check_bind(host, port, bool(tokens), insecure)
        if warning:
            click.echo(f"escalation-matrix: WARNING: {warning}", err=True)
    _quiet_model_loading()
    front = None
    if transport == "stdio":  # answer initialize and tools/list before the MCP SDK has loaded
        from ..paths import DataPaths, cache_dir
        from ..stdio_front import start as start_front

        paths = DataPaths.resolve(*state.folders)
        front = start_front(cache_dir(), sys.argv[1:], [paths.policies, paths.phrases])
    try:
        _serve(state, transport, host, port, tokens, allowed_hosts, db, locale)
    finally:
        if front is not None:
            front.finish()
            log.debug("escalation-matrix: %d request(s) answered before the server had loaded", front.early)


def _serve(state: AppState, transport: str, host: str, port: int, tokens: TokenTable | None, allowed_hosts: tuple[str, ...],
           db: str | None, locale: str | None) -> None:
    from ..mcp_app import build_server, load_guard

    with contextlib.redirect_stdout(sys.stderr):  # anything printed while loading goes to stderr
        policy = state.policy
        if locale and locale != policy.locale:
            from ..loader import load_policy

            policy = load_policy(*state.folders, locale=locale)
        guard = load_guard(policy, db, background=True)  # answer initialize and tools/list at once
        server = build_server(guard=guard)
    log.info("escalation-matrix: state in %s", guard.store.location)
    from ..http_app import serve_http, serve_stdio

    # the fail-safe sweeper and the policy reloader run with the server (http_app.Background)
    if transport == "stdio":
        serve_stdio(server, guard)
        return

    def announce(bound: int, console: bool) -> None:
        for line in addresses(host, bound, bool(tokens), console):
            click.echo(f"escalation-matrix: {line}", err=True)

    serve_http(server, guard, host, port, tokens=tokens, allowed_hosts=allowed_hosts, announce=announce)


def check_bind(host: str, port: int, has_token: bool, insecure: bool) -> str | None:
    """Whether ``serve --transport http`` may listen on ``host``: loopback always; beyond loopback
    only with a token, or with ``--insecure``, which is logged as a WARNING (returned, for stderr).
    Raises ``CliError`` (naming the way out) otherwise."""
    from ..http_security import is_loopback

    if has_token or is_loopback(host):
        return None
    if not insecure:
        raise CliError(f"refusing to listen on {host} without a token: anyone who can reach it could answer "
                       f"escalations. Set {TOKEN_ENV} or pass --tokens FILE (or --insecure to accept that)")
    warning = (f"--insecure: listening on {host}:{port} without any token; anyone who can reach that port can "
               "read and answer escalations")
    log.warning("INSECURE: %s", warning)
    return warning


def addresses(host: str, port: int, token: bool, console: bool) -> list[str]:
    """What ``serve --transport http`` prints: where the MCP endpoint and the console are."""
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    lines = [f"MCP at {base}/mcp" + (" (bearer token required)" if token else " (this machine only, no token)")]
    if console:
        lines.append(f"console at {base}/console"
                     + (f"?token=<the value of ${TOKEN_ENV}> (opened once per browser)" if token else ""))
    return lines


@main.command()
@db_option
@click.pass_obj
@translate_errors
def reload(state: AppState, db: str | None) -> None:
    """Validate the policy, phrase and exemplar files, then have every running server on the state
    file reload them and re-read its tokens file (servers also reload on their own when a file
    changes, and on SIGHUP)."""
    from ..reload import request_reload

    loaded = state.policy  # a bad edit stops here with file: key: what to fix; servers keep the old policy
    count = request_reload(state.store(db))
    click.echo(f"ok: {loaded.paths.policies} validated; reload #{count} requested - running servers on "
               f"{state.store(db).location} pick it up within a few seconds (see the policy://status resource)")


@main.command()
@click.argument("conversation")
@click.argument("task")
@click.option("--by", "by", required=True, help="Who reviewed the L4 escalation and unlocks the task.")
@click.option("--reason", required=True, help="Why the task may continue (written to the audit trail).")
@db_option
@click.pass_obj
@translate_errors
def unlock(state: AppState, conversation: str, task: str, by: str, reason: str, db: str | None) -> None:
    """Unlock TASK of CONVERSATION after a person reviewed its L4 escalation."""
    from ..answers import unlock_task

    unlock_task(state.store(db), conversation, task, by, reason)
    click.echo(f"unlocked task {task!r} of conversation {conversation!r}")
