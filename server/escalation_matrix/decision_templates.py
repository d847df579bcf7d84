"""Decision templates: per decision type, a Jinja2 template under
``phrases/<locale>/decisions/<type>.j2`` that words the decision for the person from the facts the
agent gave in its context. A fact the agent did not supply shows as a visible ``[missing: name]``,
never an error. Rendered in a sandbox; a syntax error is a policy error naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import PolicyError
from .templating import FILE_TEMPLATES

TEMPLATE_TYPES = ("deployment", "architecture", "data_change", "batch")
FOLDER = "decisions"


class MissingFact(jinja2.ChainableUndefined):
    """An absent fact renders as ``[missing: name]`` (and stays missing through ``.field`` access)."""

    def __str__(self) -> str:
        return f"[missing: {self._undefined_name}]"

    def __iter__(self) -> Any:  # a missing list renders as one missing item
        return iter([str(self)])


class DecisionTemplates:
    """The decision templates of one locale folder (none is fine: then nothing is rendered)."""

    def __init__(self, locale_folder: Path):
        self.folder = locale_folder / FOLDER
        self.env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(self.folder)), undefined=MissingFact,
                                        autoescape=False, keep_trailing_newline=False,
                                        bytecode_cache=FILE_TEMPLATES)
        self._templates: dict[str, jinja2.Template] = {}
        problems: list[tuple[str, str, str]] = []
        for path in sorted(self.folder.glob("*.j2")) if self.folder.is_dir() else []:
            name = path.stem
            if name not in TEMPLATE_TYPES:
                problems.append((str(path), "", f"unknown decision type {name!r}; name the file after one of "
                                                f"{', '.join(TEMPLATE_TYPES)}"))
                continue
            try:
                self._templates[name] = self.env.get_template(path.name)
            except jinja2.TemplateSyntaxError as exc:
                problems.append((str(path), f"line {exc.lineno}", f"template error: {exc.message}"))
        if problems:
            raise PolicyError.collect(problems)

    @property
    def types(self) -> list[str]:
        return sorted(self._templates)

    def render(self, decision_type: str, /, **facts: Any) -> str | None:
        """The decision worded for the person, or None when the type has no template."""
        template = self._templates.get(decision_type)
        if template is None:
            return None
        try:
            return " ".join(template.render(**facts).split())
        except jinja2.TemplateError as exc:  # e.g. a filter applied to a missing number
            raise PolicyError(str(self.folder / f"{decision_type}.j2"), "", f"template error: {exc}") from None
