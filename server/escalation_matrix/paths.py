"""Where the editable data folders live: an explicit path, an environment variable, or the default
shipped inside the package (or beside it in a source checkout)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
ENV_VARS = {
    "policies": "ESCALATION_MATRIX_POLICIES",
    "phrases": "ESCALATION_MATRIX_PHRASES",
    "embeddings": "ESCALATION_MATRIX_EMBEDDINGS",
}


def default_dir(name: str) -> Path:
    """The shipped default folder: inside the wheel, or at the repository root in a checkout."""
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parents[1] / name


@dataclass(frozen=True)
class DataPaths:
    """The three folders a policy author edits."""

    policies: Path
    phrases: Path
    embeddings: Path

    @classmethod
    def resolve(
        cls,
        policies: str | Path | None = None,
        phrases: str | Path | None = None,
        embeddings: str | Path | None = None,
    ) -> "DataPaths":
        given = {"policies": policies, "phrases": phrases, "embeddings": embeddings}
        chosen = {}
        for name, value in given.items():
            value = value or os.environ.get(ENV_VARS[name]) or default_dir(name)
            chosen[name] = Path(value).expanduser()
        return cls(**chosen)


def cache_dir() -> Path:
    """Where derived data (exemplar vectors) is cached; ESCALATION_MATRIX_CACHE overrides."""
    env = os.environ.get("ESCALATION_MATRIX_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "escalation-matrix"
