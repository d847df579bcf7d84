"""Shared CLI plumbing: data-folder options, lazy policy/classifier loading, error translation."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..errors import EscalationMatrixError, PolicyError


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def data_options(fn: Callable) -> Callable:
    fn = click.option("--embeddings", type=click.Path(file_okay=False), default=None,
                      help="Exemplar folder (default: ESCALATION_MATRIX_EMBEDDINGS or the shipped one).")(fn)
    fn = click.option("--phrases", type=click.Path(file_okay=False), default=None,
                      help="Phrase folder (default: ESCALATION_MATRIX_PHRASES or the shipped one).")(fn)
    fn = click.option("--policies", type=click.Path(file_okay=False), default=None,
                      help="Policy folder (default: ESCALATION_MATRIX_POLICIES or the shipped one).")(fn)
    return fn


def db_option(fn: Callable) -> Callable:
    """``--db PATH``: the SQLite file (default: ESCALATION_MATRIX_DB or a per-user state file)."""
    return click.option("--db", "db", type=click.Path(dir_okay=False), default=None, envvar="ESCALATION_MATRIX_DB",
                        help="SQLite state file (default: ESCALATION_MATRIX_DB or ~/.local/state/escalation-matrix/escalations.db).")(fn)


class AppState:
    """Loads the policy and the model only when a command needs them."""

    def __init__(self, policies: str | None, phrases: str | None, embeddings: str | None):
        self.folders = (policies, phrases, embeddings)
        self._policy = None
        self._classifier = None
        self._stores: dict = {}

    def store(self, db: str | None = None):
        """The state store for ``db`` (None = the default file), opened once per command."""
        if db not in self._stores:
            from ..store import Store

            self._stores[db] = Store(db)
        return self._stores[db]

    @property
    def policy(self):
        if self._policy is None:
            from ..loader import load_policy

            self._policy = load_policy(*self.folders)
        return self._policy

    @property
    def classifier(self):
        if self._classifier is None:
            from ..classifier import Classifier

            self._classifier = Classifier(self.policy)
        return self._classifier


def translate_errors(fn: Callable) -> Callable:
    """Library exceptions become clean messages and exit codes (2 for policy files)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PolicyError as exc:
            raise CliError(str(exc), exit_code=2) from None
        except EscalationMatrixError as exc:
            raise CliError(str(exc)) from None

    return wrapper
