"""Shared CLI plumbing: data-folder options, lazy policy/classifier loading, error translation."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import click

from ..errors import EscalationMatrixError, PolicyError

if TYPE_CHECKING:
    import numpy as np

    from ..classifier import Classifier
    from ..embedder import Embedder
    from ..loader import Policy
    from ..store import Store

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


class Bar(Protocol):
    """The part of a tqdm progress bar the commands use."""

    def update(self, n: float = 1) -> object: ...

    def set_postfix(self, *, refresh: bool = True, **values: Any) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Bar: ...

    def __exit__(self, *exc: object) -> None: ...


class CliError(click.ClickException):
    """A message for the user, printed as ``Error: ...``; exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class PolicyFileError(CliError):
    """A policy, phrase or exemplar file is wrong: exit code 2."""

    exit_code = 2


def data_options(fn: F) -> F:
    # envvar on the option keeps the order option > environment > config file > shipped default
    for name, what in (("embeddings", "Exemplar"), ("phrases", "Phrase"), ("policies", "Policy")):
        env = f"ESCALATION_MATRIX_{name.upper()}"
        fn = click.option(f"--{name}", type=click.Path(file_okay=False), default=None, envvar=env,
                          help=f"{what} folder (default: {env}, the config file, or the shipped one).")(fn)
    return fn


def db_option(fn: F) -> F:
    """``--db PATH``: the SQLite file or a ``postgresql://`` URL (default: ESCALATION_MATRIX_DB or a per-user state file)."""
    return click.option("--db", "db", type=click.Path(dir_okay=False), default=None, envvar="ESCALATION_MATRIX_DB",
                        help="State database: a SQLite file or a postgresql:// URL (default: ESCALATION_MATRIX_DB or ~/.local/state/escalation-matrix/escalations.db).")(fn)


class AppState:
    """Loads the policy and the model only when a command needs them."""

    def __init__(self, policies: str | None, phrases: str | None, embeddings: str | None,
                 progress: bool | None = None):
        self.folders = (policies, phrases, embeddings)
        self.progress = progress  # None: bars only when stderr is a terminal
        self._policy: Policy | None = None
        self._classifier: Classifier | None = None
        self._stores: dict[str | None, Store] = {}

    def store(self, db: str | None = None) -> Store:
        """The state store for ``db`` (None = the default file), opened once per command."""
        if db not in self._stores:
            from ..store import Store

            self._stores[db] = Store(db)
        return self._stores[db]

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            from ..loader import load_policy

            self._policy = load_policy(*self.folders)
        return self._policy

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            from ..classifier import Classifier, serving_embedder

            embedder = ProgressEmbedder(serving_embedder(self.policy.classifier), self.progress)
            self._classifier = Classifier(self.policy, embedder=embedder)
        return self._classifier

    def bar(self, total: int, label: str, unit: str = "req", minimum: int = 64) -> Bar:
        """A tqdm bar on stderr with rate and time left; off for small jobs and, unless
        ``--progress``, when stderr is not a terminal."""
        from tqdm import tqdm

        disable = True if total < minimum or self.progress is False else (None if self.progress is None else False)
        bar: Bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, disable=disable, dynamic_ncols=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                               "[{elapsed} elapsed, {remaining} left, {rate_fmt}]")
        return bar


class ProgressEmbedder:
    """Wraps the model so that a big encoding job (the exemplars on a cold cache, a whole file)
    runs in slices under a progress bar. ``quiet()`` hands the bar to a caller that shows its own."""

    SLICE = 64

    def __init__(self, inner: Embedder, progress: bool | None):
        self.inner, self.progress, self._quiet = inner, progress, 0
        self.name = inner.name  # part of the exemplar cache key: must be the model's

    @contextlib.contextmanager
    def quiet(self) -> Iterator[ProgressEmbedder]:
        self._quiet += 1
        try:
            yield self
        finally:
            self._quiet -= 1

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if self._quiet or len(texts) <= self.SLICE or self.progress is False:
            return self.inner.encode(texts)
        state = AppState(None, None, None, self.progress)
        parts = []
        with state.bar(len(texts), "encoding", unit="text") as bar:
            for start in range(0, len(texts), self.SLICE):
                parts.append(self.inner.encode(texts[start : start + self.SLICE]))
                bar.update(len(parts[-1]))
        return np.concatenate(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Library exceptions become clean messages and exit codes (2 for policy files)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PolicyError as exc:
            raise PolicyFileError(str(exc)) from None
        except EscalationMatrixError as exc:
            raise CliError(str(exc)) from None

    return wrapper
