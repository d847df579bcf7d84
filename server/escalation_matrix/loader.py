"""Load the policy, phrase and exemplar folders together and cross-check them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PolicyError
from .exemplars import Exemplar, load_exemplars
from .paths import DataPaths
from .phrases import PhraseBook
from .policy import ClassifierFile, ConversationFile, MatrixFile, RulesFile, load_policy_files
from .strict import Strict


@dataclass(frozen=True)
class Policy:
    """Everything a policy author edits, validated."""

    paths: DataPaths
    files: dict[str, Strict]
    phrases: PhraseBook
    exemplars: list[Exemplar]

    @property
    def matrix(self) -> MatrixFile:
        return self.files["matrix"]  # type: ignore[return-value]

    @property
    def rules(self) -> RulesFile:
        return self.files["rules"]  # type: ignore[return-value]

    @property
    def classifier(self) -> ClassifierFile:
        return self.files["classifier"]  # type: ignore[return-value]

    @property
    def conversation(self) -> ConversationFile:
        return self.files["conversation"]  # type: ignore[return-value]


def load_policy(
    policies: str | Path | None = None,
    phrases: str | Path | None = None,
    embeddings: str | Path | None = None,
) -> Policy:
    """Load and validate; raises PolicyError listing every problem as ``file: key: what to fix``."""
    paths = DataPaths.resolve(policies, phrases, embeddings)
    problems: list[tuple[str, str, str]] = []
    files: dict[str, Strict] = {}
    try:
        files = load_policy_files(paths.policies)
    except PolicyError as exc:
        problems.extend(exc.problems)
    locale = files["classifier"].locale if "classifier" in files else "en"  # type: ignore[attr-defined]
    book = None
    try:
        book = PhraseBook(paths.phrases / locale)
    except PolicyError as exc:
        problems.extend(exc.problems)
    exemplars: list[Exemplar] = []
    if "matrix" in files:
        try:
            exemplars = load_exemplars(paths.embeddings, files["matrix"])  # type: ignore[arg-type]
        except PolicyError as exc:
            problems.extend(exc.problems)
        if book is not None:
            missing = _missing_phrases(paths, files["matrix"], book, locale)  # type: ignore[arg-type]
            problems.extend(missing or _render_samples(files["matrix"], book))  # type: ignore[arg-type]
    if problems:
        raise PolicyError.collect(problems)
    assert book is not None
    return Policy(paths=paths, files=files, phrases=book, exemplars=exemplars)


# A complete sample and a bare one: a template that uses a variable only inside {% if %} is
# rendered both ways, so a misspelt name cannot hide in a branch the check did not take.
SAMPLES = (
    {"request": "Write the launch post for the new product", "question": "Which audience is it for?",
     "options": ["Customers", "Partners"], "missing": "the target audience", "details": "Launch is on Monday."},
    {"request": "Write the launch post", "question": None, "options": None, "missing": None, "details": None},
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
                    text = escalation_text(matrix, book, etype, name, trigger.severity, sample["request"],  # type: ignore[arg-type]
                                           question=sample["question"], options=sample["options"],  # type: ignore[arg-type]
                                           missing=sample["missing"], details=sample["details"])  # type: ignore[arg-type]
                    book.message("md", **text.variables())  # as the tools store it with the record
                    for fmt in book.formats:  # as render/card/console show it, with the record's id
                        book.message(fmt, **text.variables(), escalation_id="ESC-2026-001", action="escalate")
                except PolicyError as exc:
                    for file, key, message in exc.problems:  # one report per broken spot, naming the first use
                        found.setdefault((file, key), (file, key, f"{message} (rendering {etype.value}/{name})"))
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
