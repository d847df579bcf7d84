"""``escalation-matrix.toml``: settings that would otherwise need environment variables.

Searched in the working folder, then in the user config folder (``~/.config/escalation-matrix/``
on Linux); ``--config PATH`` or ``ESCALATION_MATRIX_CONFIG`` names one explicitly. Precedence,
highest first: command-line option, environment variable, config file, built-in default.
Relative paths in the file are relative to the file's folder, so a project can keep its config
beside its policy copy. The bearer token is not read from here: a secret stays in the
environment (``ESCALATION_MATRIX_TOKEN``), out of files that get copied and committed."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click

FILE_NAME = "escalation-matrix.toml"
ENV_VAR = "ESCALATION_MATRIX_CONFIG"
PATH_KEYS = ("policies", "phrases", "embeddings", "db", "cache")
TOP_KEYS = {
    "policies": "policy folder (like ESCALATION_MATRIX_POLICIES)",
    "phrases": "phrase folder (like ESCALATION_MATRIX_PHRASES)",
    "embeddings": "exemplar folder (like ESCALATION_MATRIX_EMBEDDINGS)",
    "db": "SQLite state file or postgresql:// URL (like ESCALATION_MATRIX_DB)",
    "cache": "exemplar-vector cache folder (like ESCALATION_MATRIX_CACHE)",
    "log_format": "text or json",
}
SERVE_KEYS = {"transport": "stdio or http", "host": "interface to listen on", "port": "HTTP port"}


def find(explicit: str | None = None) -> Path | None:
    """The config file to use: the named one, else ./escalation-matrix.toml, else the user's."""
    named = explicit or os.environ.get(ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise click.UsageError(f"config file {path} does not exist")
        return path
    for folder in (Path.cwd(), Path(click.get_app_dir("escalation-matrix"))):
        path = folder / FILE_NAME
        if path.is_file():
            return path
    return None


def load(path: Path) -> dict[str, Any]:
    """Read and check the file; paths come back absolute. Errors say ``file: key: what to fix``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"{path}: not valid TOML ({exc})") from None
    serve = data.pop("serve", {})
    _check(path, data, TOP_KEYS, "")
    if not isinstance(serve, dict):
        raise click.UsageError(f"{path}: serve: must be a table ([serve])")
    _check(path, serve, SERVE_KEYS, "serve.")
    for key in PATH_KEYS:
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise click.UsageError(f"{path}: {key}: must be a path in quotes")
            if key == "db" and data[key].startswith(("postgresql://", "postgres://")):
                continue  # a database URL, not a file
            data[key] = str((path.parent / Path(data[key]).expanduser()).resolve())
    if data.get("log_format", "text") not in ("text", "json"):
        raise click.UsageError(f"{path}: log_format: {data['log_format']!r} is not text or json")
    return {**data, "serve": serve}


def _check(path: Path, table: dict[str, Any], known: dict[str, str], prefix: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        listing = "; ".join(f"{k} ({v})" for k, v in known.items())
        raise click.UsageError(f"{path}: {prefix}{unknown[0]}: unknown setting; use one of: {listing}")


def default_map(group: click.Group, config: dict[str, Any]) -> dict[str, Any]:
    """Click's ``default_map`` for ``group``: folder and format options at the top, ``db`` for every
    command that takes ``--db``, and the ``[serve]`` table for ``serve``."""
    top: dict[str, Any] = {k: config[k] for k in ("policies", "phrases", "embeddings", "log_format") if k in config}

    def walk(cmd: click.Command) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                child = walk(sub)
                if child:
                    out[name] = child
        elif "db" in config and any(p.name == "db" for p in cmd.params):
            out["db"] = config["db"]
        return out

    result: dict[str, Any] = {**walk(group), **top}
    if config.get("serve"):
        result["serve"] = {**result.get("serve", {}), **config["serve"]}
    return result
