"""Phrase files (phrases/<locale>/): standard phrases, default options and message templates,
rendered in a Jinja2 sandbox with strict undefined variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from .decision_templates import DecisionTemplates
from .errors import InputError, PolicyError
from .models import EscalationType
from .strict import Strict
from .templating import FILE_TEMPLATES, from_string
from .yamlfile import load_model

TEMPLATE_FORMATS = ("md", "txt", "html")

# Short lines the renderers print outside the message templates (card title, proceed lines), in
# English when a locale's phrases.yaml leaves them out.
UI_TEXTS = {
    "title": "{{ type_label | upper }} ESCALATION REQUIRED",
    "proceed_title": "PROCEED",
    "proceed": "Proceed.",
    "proceed_answer": "Proceed with the answer: {{ answer }}",
    "proceed_default": "Proceed: {{ default }}",
    "handoff_details": "Escalations on this task so far: {{ earlier | join(', ') if earlier else 'none' }}. "
                       "Latest issue: {{ latest }}",
    "lacking": "This needs {{ capabilities | join(', ') }}, which I do not have.",
}


class TriggerText(Strict):
    reason: str = Field(description="The trigger's reason (the Issue line) in this locale.")
    default: str | None = Field(default=None, description="Proceed triggers: the conventional default in this locale.")


class TypeText(Strict):
    label: str = Field(description="The type's label in this locale, e.g. Entscheidung.")
    triggers: dict[str, TriggerText] = Field(default_factory=dict, description="Each trigger's text by name.")


class PhrasesFile(Strict):
    phrases: dict[str, str] = Field(description="Standard phrase templates by key.")
    options: dict[EscalationType, list[str]] = Field(default_factory=dict, description="Default options per type.")
    context_line: str = Field(description="Template of the Context line; gets `request`.")
    texts: dict[str, str] = Field(default_factory=dict, description=f"Renderer lines: {', '.join(UI_TEXTS)}.")
    types: dict[EscalationType, TypeText] | None = Field(
        default=None, description="Labels, reasons and defaults of matrix.yaml in this locale; needed by every "
                                  "locale but the one matrix.yaml is written in.")


class PhraseBook:
    """The phrases and templates of one locale, compiled once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.locale = folder.name
        if not folder.is_dir():
            raise PolicyError(str(folder), "", "phrase folder not found; copy phrases/en/ to add a locale")
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(folder)),
            undefined=jinja2.StrictUndefined,
            # message.html.j2 escapes everything it prints; text formats print as-is.
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            keep_trailing_newline=False,
            bytecode_cache=FILE_TEMPLATES,
        )
        self.env.filters["html_escape"] = jinja2.filters.do_forceescape
        path = folder / "phrases.yaml"
        self.data = load_model(path, PhrasesFile)
        problems: list[tuple[str, str, str]] = []
        self._phrases = {}
        for key, text in self.data.phrases.items():
            try:
                self._phrases[key] = from_string(self.env, text)
            except jinja2.TemplateSyntaxError as exc:
                problems.append((str(path), f"phrases.{key}", f"template error: {exc.message}"))
        try:
            self._context = from_string(self.env, self.data.context_line)
        except jinja2.TemplateSyntaxError as exc:
            problems.append((str(path), "context_line", f"template error: {exc.message}"))
        unknown = sorted(set(self.data.texts) - set(UI_TEXTS))
        if unknown:
            problems.append((str(path), f"texts.{unknown[0]}", f"unknown text; use {', '.join(UI_TEXTS)}"))
        self._texts = {}
        for key, default in UI_TEXTS.items():
            try:
                self._texts[key] = from_string(self.env, self.data.texts.get(key, default))
            except jinja2.TemplateSyntaxError as exc:
                problems.append((str(path), f"texts.{key}", f"template error: {exc.message}"))
        self._templates: dict[str, jinja2.Template] = {}
        for template in sorted(folder.glob("message.*.j2")):
            fmt = template.name.split(".")[1]
            try:
                self._templates[fmt] = self.env.get_template(template.name)
            except jinja2.TemplateSyntaxError as exc:
                problems.append((str(template), f"line {exc.lineno}", f"template error: {exc.message}"))
        try:
            self.decisions = DecisionTemplates(folder)
        except PolicyError as exc:
            problems.extend(exc.problems)
        for fmt in TEMPLATE_FORMATS:
            if fmt not in self._templates and not any(p[0].endswith(f"message.{fmt}.j2") for p in problems):
                problems.append((str(folder / f"message.{fmt}.j2"), "", "required template is missing; add it"))
        if problems:
            raise PolicyError.collect(problems)

    @property
    def formats(self) -> list[str]:
        return sorted(self._templates)

    def has_phrase(self, key: str) -> bool:
        return key in self._phrases

    def default_options(self, etype: EscalationType) -> list[str]:
        return list(self.data.options.get(etype, []))

    def phrase(self, key: str, **variables: Any) -> str:
        return self._render(self._phrases[key], f"phrases.yaml: phrases.{key}", variables).strip()

    def text(self, key: str, **variables: Any) -> str:
        """A renderer line (``UI_TEXTS``): card title and the proceed lines."""
        return self._render(self._texts[key], f"phrases.yaml: texts.{key}", variables).strip()

    def context_line(self, **variables: Any) -> str:
        return self._render(self._context, "phrases.yaml: context_line", variables).strip()

    def message(self, fmt: str, **variables: Any) -> str:
        if fmt not in self._templates:
            raise InputError(f"unknown message format {fmt!r}; use one of {self.formats}")
        return self._render(self._templates[fmt], f"message.{fmt}.j2", variables).strip() + "\n"

    def _render(self, template: jinja2.Template, where: str, variables: dict[str, Any]) -> str:
        try:
            return template.render(**variables)
        except jinja2.UndefinedError as exc:
            known = ", ".join(sorted(variables))
            raise PolicyError(str(self.folder / where.split(":")[0]), where.split(": ")[-1],
                              f"{exc.message}; the variables available are {known}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise PolicyError(str(self.folder / where.split(":")[0]), where.split(": ")[-1],
                              f"unsafe template operation: {exc}") from None
