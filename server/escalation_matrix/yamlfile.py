"""Load a YAML file into a strict pydantic model, reporting errors as ``file: key: what to fix``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import PolicyError

M = TypeVar("M", bound=BaseModel)
# libyaml's parser where PyYAML was built with it (the wheels are): the policy, phrase and exemplar
# files parse about ten times faster than with the pure-Python one, which is most of a server's
# start before it can list its tools
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), "", f"cannot read file ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)  # a safe loader: the C build of SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(str(path), where, f"invalid YAML: {problem}") from None


def load_model(path: Path, model: type[M], data: Any = None) -> M:
    """Validate ``data`` (or the file's content) against ``model``; collect every problem."""
    if data is None:
        data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(str(path), "", f"expected a mapping at the top level, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PolicyError.collect([_named(_problem(path, err), err, data) for err in exc.errors()]) from None


def _named(problem: tuple[str, str, str], err: ErrorDetails, data: dict[str, Any]) -> tuple[str, str, str]:
    """A problem inside a list of named items (rules) also names the item."""
    loc = err["loc"]
    if len(loc) < 2:
        return problem
    key, index = loc[0], loc[1]
    if isinstance(key, str) and isinstance(index, int) and isinstance(data.get(key), list):
        items = data[key]
        item = items[index] if index < len(items) else None
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            return (problem[0], problem[1], f"{problem[2]} ({key.rstrip('s')} {item['name']})")
    return problem


def _problem(path: Path, err: ErrorDetails) -> tuple[str, str, str]:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key; remove it or check the spelling"
    elif err["type"] == "missing":
        message = "required key is missing; add it"
    elif err["type"] in ("enum", "literal_error"):
        message = f"{message} (got {err.get('input')!r})"
    return (str(path), key, message)
