"""Load the policy, phrase and exemplar folders together and cross-check them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, PolicyError
from .exemplars import Exemplar, load_exemplars
from .models import EscalationType, Severity
from .paths import DataPaths
from .phrases import UI_TEXTS, PhraseBook
from .policy import MatrixFile, PolicyFiles, load_policy_files

if TYPE_CHECKING:
    from .card import ResponseTarget


@dataclass(frozen=True, kw_only=True)
class Policy(PolicyFiles):
    """Everything a policy author edits, validated: the policy files (``matrix``, ``rules``,
    ``classifier``, ``conversation``, ``operations``, ``oversight``, ``decisions``; ``matrix`` in
    this policy's locale), the phrase book, the exemplars and where they were read from."""

    paths: DataPaths
    phrases: PhraseBook
    exemplars: list[Exemplar]
    books: dict[str, PhraseBook] = field(default_factory=dict)  # every locale under phrases/, by code
    locale_override: str | None = None  # chosen by the server (flag or environment), not classifier.yaml
    source_matrix: MatrixFile | None = None  # matrix.yaml as written, before translation
    _localized: dict[str, Policy] = field(default_factory=dict, compare=False, repr=False)

    @property
    def locale(self) -> str:
        """The locale this policy speaks (its phrase book's folder name)."""
        return self.phrases.locale

    @property
    def locales(self) -> list[str]:
        return sorted(self.books or {self.locale: self.phrases})

    @cached_property
    def response_targets(self) -> dict[Severity, ResponseTarget]:
        """The response-time target of each severity, derived from ``operations`` once."""
        from .card import response_targets

        return response_targets(self.operations)

    def in_locale(self, locale: str | None) -> Policy:
        """This policy speaking ``locale``: its phrase book, and matrix.yaml's labels, reasons and
        defaults in that language. ``None`` or the policy's own locale returns the policy itself."""
        if locale is None or locale == self.locale:
            return self
        if locale not in self._localized:
            if locale not in self.books:
                raise InputError(f"locale {locale!r} is not available; use one of {', '.join(self.locales)}")
            book = self.books[locale]
            source = self.source_matrix or self.matrix
            self._localized[locale] = replace(self, matrix=translated_matrix(source, book), phrases=book,
                                              source_matrix=source, _localized={})
        return self._localized[locale]


LOCALE_ENV = "ESCALATION_MATRIX_LOCALE"


def load_policy(
    policies: str | Path | None = None,
    phrases: str | Path | None = None,
    embeddings: str | Path | None = None,
    locale: str | None = None,
) -> Policy:
    """Load and validate; raises PolicyError listing every problem as ``file: key: what to fix``.

    Every locale folder under the phrase folder is loaded and checked (same phrases, options,
    texts and templates; matrix.yaml's labels and reasons translated; every template renders).
    The policy speaks ``locale`` (default: $ESCALATION_MATRIX_LOCALE, else classifier.yaml's
    ``locale``); ``Policy.in_locale`` gives the others."""
    paths = DataPaths.resolve(policies, phrases, embeddings)
    override = locale or os.environ.get(LOCALE_ENV) or None
    problems: list[tuple[str, str, str]] = []
    files: PolicyFiles | None = None
    try:
        files = load_policy_files(paths.policies)
    except PolicyError as exc:
        problems.extend(exc.problems)
    locale = override or (files.classifier.locale if files else "en")
    books: dict[str, PhraseBook] = {}
    codes = sorted({p.parent.name for p in paths.phrases.glob("*/phrases.yaml")} | {locale})
    for code in codes:
        try:
            books[code] = PhraseBook(paths.phrases / code)
        except PolicyError as exc:
            found = exc
            if code == locale and not (paths.phrases / code).is_dir():
                available = ", ".join(c for c in codes if c != code) or "none"
                found = PolicyError(str(paths.phrases / code), "", f"locale {code!r} has no phrase folder; "
                                    f"available: {available} (copy phrases/en/ to add one)")
            problems.extend(found.problems)
    exemplars: list[Exemplar] = []
    if files is not None:
        matrix = files.matrix
        try:
            exemplars = load_exemplars(paths.embeddings, matrix)
        except PolicyError as exc:
            problems.extend(exc.problems)
        problems.extend(_locale_differences(books))
        for code, book in books.items():
            missing = _missing_phrases(paths, matrix, book, code) + _missing_translations(matrix, book)
            if missing:
                problems.extend(missing)
                continue
            problems.extend(_render_samples(translated_matrix(matrix, book), book))
    if problems or files is None:
        raise PolicyError.collect(problems)
    return Policy(matrix=translated_matrix(files.matrix, books[locale]), rules=files.rules,
                  classifier=files.classifier, conversation=files.conversation, operations=files.operations,
                  oversight=files.oversight, decisions=files.decisions,
                  paths=paths, phrases=books[locale], exemplars=exemplars, books=books,
                  locale_override=override, source_matrix=files.matrix)


def translated_matrix(matrix: MatrixFile, book: PhraseBook) -> MatrixFile:
    """``matrix`` with the labels, reasons and defaults of ``book``'s locale (itself when the book
    is in matrix.yaml's own language)."""
    texts = book.data.types
    if book.locale == matrix.locale or not texts:
        return matrix
    types = {}
    for etype, mtype in matrix.types.items():
        own = texts.get(etype)
        if own is None:
            types[etype] = mtype
            continue
        triggers = {}
        for name, trigger in mtype.triggers.items():
            t = own.triggers.get(name)
            triggers[name] = trigger if t is None else trigger.model_copy(
                update={"reason": t.reason, "default": t.default if trigger.default is not None else None})
        types[etype] = mtype.model_copy(update={"label": own.label, "triggers": triggers})
    return matrix.model_copy(update={"types": types})


def _missing_translations(matrix: MatrixFile, book: PhraseBook) -> list[tuple[str, str, str]]:
    """A locale other than matrix.yaml's translates every label, reason and default; the matrix's
    own locale translates nothing (its text is matrix.yaml)."""
    where = str(book.folder / "phrases.yaml")
    texts = book.data.types
    if book.locale == matrix.locale:
        if texts:
            return [(where, "types", (f"matrix.yaml is written in {matrix.locale!r}: edit the labels and reasons "
                                      "there and remove this section"))]
        return []
    if not texts:
        return [(where, "types", (f"missing: this locale needs matrix.yaml's labels and reasons in its language "
                                  f"(matrix.yaml is in {matrix.locale!r}); add a types section like phrases/de/"))]
    found = []
    for etype, mtype in matrix.types.items():
        own = texts.get(etype)
        if own is None:
            found.append((where, f"types.{etype.value}", "missing; add its label and each trigger's reason"))
            continue
        for name, trigger in mtype.triggers.items():
            t = own.triggers.get(name)
            if t is None:
                found.append((where, f"types.{etype.value}.triggers.{name}", "missing; add its reason"))
            elif trigger.default is not None and not t.default:
                found.append((where, f"types.{etype.value}.triggers.{name}.default",
                              "missing; matrix.yaml gives this proceed trigger a default - translate it"))
        for name in sorted(set(own.triggers) - set(mtype.triggers)):
            found.append((where, f"types.{etype.value}.triggers.{name}",
                          f"matrix.yaml has no such trigger; use one of {', '.join(mtype.triggers)}"))
    return found


def _locale_differences(books: dict[str, PhraseBook]) -> list[tuple[str, str, str]]:
    """Every locale defines the same phrases, option lists, renderer texts and message formats, so
    no escalation can render in one language and fail in another."""
    if len(books) < 2:
        return []
    found = []
    for code, book in books.items():
        where = str(book.folder / "phrases.yaml")
        for other_code, other in books.items():
            if other_code == code:
                continue
            for kind, mine, theirs in (
                ("phrases", set(book.data.phrases), set(other.data.phrases)),
                ("options", {t.value for t in book.data.options}, {t.value for t in other.data.options}),
                ("texts", set(book.data.texts or UI_TEXTS), set(other.data.texts or UI_TEXTS)),
            ):
                for key in sorted(theirs - mine):
                    found.append((where, f"{kind}.{key}", f"missing; locale {other_code!r} defines it - add it here"))
            for name in sorted(set(other.decisions.types) - set(book.decisions.types)):
                found.append((str(book.decisions.folder / f"{name}.j2"), "",
                              f"missing; locale {other_code!r} has this decision template - add it here"))
            for fmt in sorted(set(other.formats) - set(book.formats)):
                found.append((str(book.folder / f"message.{fmt}.j2"), "",
                              f"missing; locale {other_code!r} has it - add it here"))
    return sorted(set(found))


# A complete sample and a bare one: a template that uses a variable only inside {% if %} is
# rendered both ways, so a misspelt name cannot hide in a branch the check did not take.
@dataclass(frozen=True)
class _Sample:
    request: str
    question: str | None = None
    options: list[str] | None = None
    missing: str | None = None
    details: str | None = None


SAMPLES = (
    _Sample(request="Write the launch post for the new product", question="Which audience is it for?",
            options=["Customers", "Partners"], missing="the target audience", details="Launch is on Monday."),
    _Sample(request="Write the launch post"),
)


def _render_samples(matrix: MatrixFile, book: PhraseBook) -> list[tuple[str, str, str]]:
    """Render every trigger's phrase, the context line and every message format with sample data, as
    an escalation would at run time; a template that would fail a tool call fails here instead."""
    from .messages import escalation_text

    found: dict[tuple[str, str], tuple[str, str, str]] = {}
    for etype, mtype in matrix.types.items():
        for name, trigger in mtype.triggers.items():
            if trigger.severity is None:  # a proceed trigger: nothing is said
                continue
            for sample in SAMPLES:
                try:
                    text = escalation_text(matrix, book, etype, name, trigger.severity, sample.request,
                                           question=sample.question, options=sample.options,
                                           missing=sample.missing, details=sample.details)
                    book.message("md", **text.variables())  # as the tools store it with the record
                    for fmt in book.formats:  # as render/card/console show it, with the record's id
                        book.message(fmt, **text.variables(), escalation_id="ESC-2026-001", action="escalate")
                except PolicyError as exc:
                    for file, key, message in exc.problems:  # one report per broken spot, naming the first use
                        found.setdefault((file, key), (file, key, f"{message} (rendering {etype.value}/{name})"))
    variables = {"type": "decision", "type_label": matrix.types[EscalationType.decision].label, "severity": "L2",
                 "answer": "Use the blue theme.", "default": "Use a numbered list.", "latest": "Which theme?",
                 "earlier": ["ESC-2026-001", "ESC-2026-002"], "capabilities": ["database_access"]}
    for name in book.decisions.types:  # as a tool renders it: no fact given, every one shown missing
        try:
            book.decisions.render(name, request="Ship it", criticality=0.5, category="tactical", impact="",
                                  decision_type=name)
        except PolicyError as exc:
            found.update({(f, k): (f, k, m) for f, k, m in exc.problems})
    for key in UI_TEXTS:
        try:
            book.text(key, **variables)
            book.text(key, **dict(variables, earlier=[]))
        except PolicyError as exc:
            found.update({(f, k): (f, k, m) for f, k, m in exc.problems})
    return list(found.values())


def _missing_phrases(paths: DataPaths, matrix: MatrixFile, book: PhraseBook, locale: str) -> list[tuple[str, str, str]]:
    found = []
    for etype, mtype in matrix.types.items():
        for name, trigger in mtype.triggers.items():
            if trigger.phrase and not book.has_phrase(trigger.phrase):
                found.append((
                    str(paths.phrases / locale / "phrases.yaml"), f"phrases.{trigger.phrase}",
                    f"missing; matrix.yaml types.{etype.value}.triggers.{name} uses it - add the phrase",
                ))
    return found
