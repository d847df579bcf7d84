"""The ``escalation-matrix`` command: a thin layer over the library."""

from __future__ import annotations

import logging
import sys

import click

from .common import AppState, data_options


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@data_options
@click.option("-v", "--verbose", is_flag=True, help="Log debug information to stderr.")
@click.pass_context
def main(ctx: click.Context, policies, phrases, embeddings, verbose: bool) -> None:
    """Tell an AI agent whether to proceed or escalate to a person: which type, which severity,
    and exactly which standard phrase to use."""
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = AppState(policies, phrases, embeddings)


from . import core  # noqa: E402,F401  (registers commands on main)
from . import serve  # noqa: E402,F401
from . import render  # noqa: E402,F401
from . import ops  # noqa: E402,F401
