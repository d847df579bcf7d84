"""The ``escalation-matrix`` command: a thin layer over the library."""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from . import config as config_file
from . import logs
from .common import AppState, data_options


def _version() -> str:
    try:
        return version("escalation-matrix")
    except PackageNotFoundError:  # a source tree on PYTHONPATH without an install
        return "unknown"


def summary(command: click.Command) -> str:
    """A command's first sentence, whole: the listing wraps it instead of cutting it off."""
    if command.short_help:
        return command.short_help
    text = " ".join((command.help or "").split("\n\n")[0].split())
    found = re.match(r"(.+?(?<!e\.g)(?<!i\.e)\.)(\s|$)", text)
    return found.group(1) if found else text


class Group(click.Group):
    """A group whose command list shows each summary in full, and which reads the config file."""

    group_class = type  # sub-groups (policy, audit, pipeline) list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary(cmd)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        if parent is None:  # the top level: settings from escalation-matrix.toml become defaults
            path = config_file.find(_config_argument(args))
            if path is not None:
                settings = config_file.load(path)
                if "cache" in settings:
                    os.environ.setdefault("ESCALATION_MATRIX_CACHE", settings["cache"])
                extra.setdefault("default_map", config_file.default_map(self, settings))
        return super().make_context(info_name, args, parent=parent, **extra)


def _config_argument(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if not arg.startswith("-"):  # the sub-command: --config belongs before it
            return None
    return None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "-V", "--version", prog_name="escalation-matrix")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
              help=f"Settings file (default: ./{config_file.FILE_NAME}, then the user config folder; "
                   f"or {config_file.ENV_VAR}).")
@data_options
@click.option("-v", "--verbose", is_flag=True, help="Log debug information to stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="ESCALATION_MATRIX_LOG_FORMAT", help="Log lines as text, or one JSON object per line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars with time left on batch work (default: when stderr is a terminal).")
@click.pass_context
def main(ctx: click.Context, policies: str | None, phrases: str | None, embeddings: str | None, verbose: bool,
         log_format: str,
         progress: bool | None) -> None:
    """Tell an AI agent whether to proceed or escalate to a person: which type, which severity,
    and exactly which standard phrase to use."""
    logs.configure(logging.DEBUG if verbose else logging.WARNING, log_format)
    ctx.obj = AppState(policies, phrases, embeddings, progress=progress)


from . import core  # noqa: E402,F401  (registers commands on main)
from . import serve  # noqa: E402,F401
from . import render  # noqa: E402,F401
from . import ops  # noqa: E402,F401
from . import security  # noqa: E402,F401
from . import actors  # noqa: E402,F401
from . import decisions  # noqa: E402,F401
from . import preferences  # noqa: E402,F401
from . import batches  # noqa: E402,F401
