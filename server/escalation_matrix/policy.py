"""Policy files (policies/*.yaml) as strict models, loaded and cross-checked together."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from .errors import PolicyError
from .models import EscalationType, Severity
from .decisions_policy import DecisionsFile, check_decisions
from .oversight_policy import OversightFile, check_with_operations
from .ops_policy import OperationsFile
from .policy_conditions import Condition, compile_pattern as _compile
from .strict import Strict
from .yamlfile import load_model

ESCALATION_TYPES = [t for t in EscalationType if t not in (EscalationType.none, EscalationType.pattern)]


class Trigger(Strict):
    severity: Severity | None = Field(default=None, description="Default severity L1-L4 (none for proceed).")
    phrase: str | None = Field(default=None, description="Key of the standard phrase in phrases.yaml.")
    reason: str = Field(description="One sentence used as the Issue line of the message.")
    default: str | None = Field(default=None, description="For proceed triggers: the conventional default.")


class MatrixType(Strict):
    label: str = Field(description="Human label, e.g. Clarification.")
    triggers: dict[str, Trigger] = Field(min_length=1, description="Triggers of this type by name.")


class MatrixFile(Strict):
    locale: str = Field(default="en", description="Language of the labels, reasons and defaults in this file; "
                                                  "every other locale translates them in its phrases.yaml.")
    order: list[EscalationType] = Field(description="Decision-tree order used to break ties.")
    types: dict[EscalationType, MatrixType] = Field(description="Every type with its triggers.")

    @model_validator(mode="after")
    def _complete(self) -> "MatrixFile":
        missing = [t.value for t in EscalationType if t not in self.types]
        if missing:
            raise ValueError(f"types: add the missing types {missing}")
        if sorted(self.order) != sorted(ESCALATION_TYPES):
            want = [t.value for t in ESCALATION_TYPES]
            raise ValueError(f"order must list each of {want} exactly once")
        for name, mtype in self.types.items():
            for tname, trig in mtype.triggers.items():
                if name is EscalationType.none and (trig.severity or trig.phrase):
                    raise ValueError(f"types.none.triggers.{tname}: proceed triggers take no severity or phrase")
                if name is not EscalationType.none and not (trig.severity and trig.phrase):
                    raise ValueError(f"types.{name.value}.triggers.{tname}: add a severity and a phrase key")
        return self

    def trigger(self, etype: EscalationType, name: str) -> Trigger:
        return self.types[etype].triggers[name]

    def severity(self, etype: EscalationType, name: str) -> Severity:
        """The severity of an escalating trigger: the validation above gives one to every trigger but
        the proceed ones (a ValueError names a proceed trigger)."""
        found = self.trigger(etype, name).severity
        if found is None:
            raise ValueError(f"types.{etype.value}.triggers.{name} is a proceed trigger: it has no severity")
        return found

    def default_trigger(self, etype: EscalationType) -> str:
        return next(iter(self.types[etype].triggers))


class Rule(Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Unique rule name (lowercase, underscores).")
    reason: str = Field(description="Why the rule exists; shown when it fires.")
    type: EscalationType = Field(description="Type the rule points to; none means proceed.")
    trigger: str = Field(description="Trigger of that type in matrix.yaml.")
    severity: Severity | None = Field(default=None, description="Forces this severity instead of the default.")
    keywords: list[str] = Field(default_factory=list, description="Whole words/phrases; any one matches.")
    patterns: list[str] = Field(default_factory=list, description="Regular expressions; any one matches.")
    conditions: list[Condition] = Field(default_factory=list, description="All must hold on the context.")
    priority: int = Field(default=0, ge=0, le=1000,
                          description="Among the escalating rules that fire on one request, those of the highest "
                                      "priority decide type, trigger and severity (equal priorities: the "
                                      "decision-tree order). A safety rule that fires decides whatever the "
                                      "priorities.")

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _compile(pattern)
        return value

    @model_validator(mode="after")
    def _has_a_test(self) -> "Rule":
        if not (self.keywords or self.patterns or self.conditions):
            raise ValueError("give at least one of keywords, patterns or conditions")
        return self


class RulesFile(Strict):
    rules: list[Rule] = Field(default_factory=list, description="Rules in evaluation order.")

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice; rename one")
            seen.add(rule.name)
        return rules


class Contradictions(Strict):
    enabled: bool = Field(default=True, description="Detect requests that require and forbid the same thing.")
    opposites: list[tuple[str, str]] = Field(
        default_factory=list,
        description="Pairs of regular expressions for directives that pull in opposite directions.",
    )

    @field_validator("opposites")
    @classmethod
    def _pairs_compile(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pair in value:
            for pattern in pair:
                _compile(pattern)
        return value


class TrainedDecision(Strict):
    """How the fine-tuned model's calibrated probabilities become a decision."""

    folder: str = Field(default="bundled", description="'bundled' (the shipped model) or a folder written by `train`.")
    safety: float = Field(default=0.3, gt=0, lt=1, description="Escalate as safety when P(safety) reaches this.")
    margin: float = Field(default=0.0, ge=-1, le=1,
                          description="Another type escalates when its probability beats P(none) by this.")
    margins: dict[EscalationType, float] = Field(default_factory=dict, description="Per-type margins (override margin).")
    new_exemplar_similarity: float = Field(
        default=0.8, gt=0, le=1.01,
        description="An exemplar added since training at least this similar to the request decides its type.",
    )
    rules_decide: bool = Field(default=True, description="Escalating text rules decide before the model.")

    def margin_for(self, etype: EscalationType) -> float:
        return self.margins.get(etype, self.margin)


class ClassifierFile(Strict):
    locale: str = Field(default="en", description="Phrase folder under phrases/ to use.")
    model: str = Field(default="bundled", description="'bundled', a sentence-transformers name, or a path.")
    backend: Literal["onnx", "torch"] = Field(
        default="onnx", description="What runs the encoder: 'onnx' (ONNX Runtime, no torch) or 'torch' (sentence-transformers)."
    )
    precision: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="ONNX backend: 'fp32' (the trained weights as they are) or 'int8' (matrix weights quantised "
                    "per output channel: a smaller, faster file with slightly different vectors).",
    )
    method: Literal["trained", "knn", "centroid", "linear"] = Field(default="trained", description="How types are scored.")
    trained: TrainedDecision = Field(default_factory=TrainedDecision,
                                     description="The fine-tuned model (method: trained) and its decision values.")
    k: int = Field(default=3, ge=1, le=50, description="Neighbours averaged per type (knn).")
    weights: list[float] | None = Field(
        default=None, description="knn: weight of the 1st, 2nd, ... nearest exemplar (default: equal)."
    )
    default_threshold: float = Field(default=0.05, ge=-1, le=1, description="Threshold for unlisted types.")
    thresholds: dict[EscalationType, float] = Field(
        default_factory=dict,
        description="Per type: how far its score must exceed the 'none' (proceed) score to escalate.",
    )
    exact_similarity: float = Field(
        default=0.92, gt=0, le=1.01,
        description="An exemplar at least this similar to the request decides its type by itself.",
    )
    tie_margin: float = Field(default=0.01, ge=0, le=1, description="Scores this close are a tie.")
    contradictions: Contradictions = Field(default_factory=Contradictions,
                                           description="Built-in detector of conflicting constraints.")
    explain: int = Field(default=3, ge=0, le=20, description="Nearest exemplars carried in the result.")

    @model_validator(mode="after")
    def _weights_fit_k(self) -> "ClassifierFile":
        if self.weights is not None and (len(self.weights) != self.k or min(self.weights) < 0 or sum(self.weights) <= 0):
            raise ValueError(f"weights must list {self.k} non-negative numbers (one per neighbour, k={self.k})")
        if self.precision == "int8" and self.backend != "onnx":
            raise ValueError("precision: int8 needs backend: onnx (the torch backend runs fp32 only); "
                             "set backend: onnx or precision: fp32")
        return self

    @property
    def encoder(self) -> str:
        """The encoder runtime as one name: 'torch', 'onnx' or 'onnx-int8'."""
        return f"{self.backend}-int8" if self.precision == "int8" else self.backend

    def threshold(self, etype: EscalationType) -> float:
        return self.thresholds.get(etype, self.default_threshold)


CONTEXT_FIELDS = {
    "environment": "Where the action runs: production, staging, development.",
    "involves_data_deletion": "True when the action deletes data.",
    "record_count": "How many records the action touches.",
    "estimated_cost": "Estimated cost of the action, in the organisation's currency.",
    "breaking_change": "True when the change breaks existing users or interfaces.",
    "affects_compliance": "True when the action touches a regulated area.",
    "involves_personal_data": "True when personal data is involved.",
    "performance_impact": "Expected performance change in percent (negative is slower).",
    "decision_type": "Kind of decision, e.g. architecture, deployment, data_change, batch, security.",
    "financial_impact": "Money at stake if the action goes wrong, in the organisation's currency.",
    "data_loss": "True when the action can lose data.",
    "reversible": "False when the action cannot be undone.",
    "security_impact": "True when the action changes authentication, authorisation, encryption or exposure.",
    "impact_level": "How far the action reaches: low, medium, high, critical.",
    "affected_systems": "How many systems the action touches.",
    "impact_days": "How long the effect lasts, in days.",
    "scope": "Reach of the change, e.g. system-wide.",
    "database_access": "True when the agent can query databases.",
    "web_access": "True when the agent can browse the web.",
    "media_access": "True when the agent can read or produce images, audio or video.",
    "booking_access": "True when the agent can book appointments or make calls.",
    "person": "The person the agent works for and asks (their learned preferences may answer).",
    "organisation": "That person's organisation (its learned preferences may answer).",
}


NEVER_ELICITED = (EscalationType.safety, EscalationType.pattern, EscalationType.none)


class ConversationFile(Strict):
    handoff_after: int = Field(default=3, ge=2, description="Escalations on one task before hand-off.")
    reask_similarity: float = Field(default=0.8, gt=0, le=1,
                                    description="Cosine at which a call is the same issue as an answered one.")
    same_issue_similarity: float = Field(default=0.8, gt=0, le=1,
                                         description="Cosine at which a call is the same issue as an open one.")
    same_issue_model: Literal["pair", "cosine"] = Field(
        default="pair",
        description="pair: the trained same-issue pair model (trained/same_issue/) decides whether two calls are one "
                    "issue, at the threshold in its manifest; cosine: the lexical check and the cosine thresholds "
                    "below decide (also what is used when the classifier runs without the trained model).")
    same_issue_similarity_agreeing: float = Field(
        default=0.7, gt=0, le=1,
        description="Lower cosine at which a call is the same issue as an open one of its task when both name the "
                    "same specific value (number, name, environment...) and the same kind of action.")
    max_request_chars: int = Field(default=8000, ge=100, description="Longest request accepted.")
    max_question_chars: int = Field(default=2000, ge=20, description="Longest question accepted.")
    max_options: int = Field(default=10, ge=1, description="Most options an escalation may carry.")
    elicit_types: list[EscalationType] = Field(
        default_factory=lambda: [EscalationType.clarification, EscalationType.context, EscalationType.conflict,
                                 EscalationType.decision],
        description="Escalation types the person in the chat answers inside the agent's escalate call when the "
                    "client supports elicitation (never safety, pattern or none: an operator answers those).")
    context_fields: dict[str, str] = Field(
        default_factory=lambda: dict(CONTEXT_FIELDS),
        description="Structured context fields agents may pass, with what each means; a rule condition on any "
                    "other field is an error.")

    @field_validator("elicit_types")
    @classmethod
    def _elicit_what_a_person_may_answer(cls, value: list[EscalationType]) -> list[EscalationType]:
        banned = [t.value for t in value if t in NEVER_ELICITED]
        if banned:
            raise ValueError(f"{', '.join(banned)} is never answered inside the agent's call (an operator answers "
                             "a safety concern or a hand-off; none asks nothing); remove it")
        return value

    @model_validator(mode="after")
    def _agreeing_is_the_lower(self) -> "ConversationFile":
        if self.same_issue_similarity_agreeing > self.same_issue_similarity:
            raise ValueError(f"same_issue_similarity_agreeing ({self.same_issue_similarity_agreeing}) must not be "
                             f"above same_issue_similarity ({self.same_issue_similarity}): it is the lower cosine "
                             "for calls that agree on values and action; set it equal to turn it off")
        return self


POLICY_FILES: dict[str, type[Strict]] = {
    "matrix": MatrixFile,
    "rules": RulesFile,
    "classifier": ClassifierFile,
    "conversation": ConversationFile,
    "operations": OperationsFile,
    "oversight": OversightFile,
    "decisions": DecisionsFile,
}
REQUIRED = ("matrix",)
S = TypeVar("S", bound=Strict)


@dataclass(frozen=True, kw_only=True)
class PolicyFiles:
    """The policy files of one folder, validated and cross-checked; an optional file that is not
    there holds its documented defaults."""

    matrix: MatrixFile
    rules: RulesFile
    classifier: ClassifierFile
    conversation: ConversationFile
    operations: OperationsFile
    oversight: OversightFile
    decisions: DecisionsFile


def load_policy_files(folder: Path) -> PolicyFiles:
    """Load every known policy file in ``folder``; unknown YAML files are an error."""
    if not folder.is_dir():
        raise PolicyError(str(folder), "", "policy folder not found; pass an existing folder")
    problems: list[tuple[str, str, str]] = []
    loaded: dict[str, Strict] = {}
    for path in sorted(folder.glob("*.y*ml")):
        model = POLICY_FILES.get(path.stem)
        if model is None:
            known = ", ".join(f"{n}.yaml" for n in POLICY_FILES)
            problems.append((str(path), "", f"unknown policy file; expected one of {known}"))
            continue
        try:
            loaded[path.stem] = load_model(path, model)
        except PolicyError as exc:
            problems.extend(exc.problems)
    for name in REQUIRED:
        if name not in loaded and not any(p[0].endswith(f"{name}.yaml") for p in problems):
            problems.append((str(folder / f"{name}.yaml"), "", "required file is missing; add it"))
    if problems:
        raise PolicyError.collect(problems)
    files = PolicyFiles(
        matrix=_loaded(loaded, "matrix", MatrixFile), rules=_loaded(loaded, "rules", RulesFile),
        classifier=_loaded(loaded, "classifier", ClassifierFile),
        conversation=_loaded(loaded, "conversation", ConversationFile),
        operations=_loaded(loaded, "operations", OperationsFile), oversight=_loaded(loaded, "oversight", OversightFile),
        decisions=_loaded(loaded, "decisions", DecisionsFile))
    _check_rules(folder, files.matrix, files.rules, files.conversation)
    crossed = check_with_operations(folder, files.oversight, files.operations)
    crossed += check_decisions(folder, files.decisions, files.conversation.context_fields,
                               {t: list(m.triggers) for t, m in files.matrix.types.items()})
    if crossed:
        raise PolicyError.collect(crossed)
    return files


def _loaded(loaded: dict[str, Strict], name: str, model: type[S]) -> S:
    """The file ``name`` as loaded, or its documented defaults when the folder has none."""
    found = loaded.get(name)
    return found if isinstance(found, model) else model()


def _check_rules(folder: Path, matrix: MatrixFile, rules: RulesFile, conversation: ConversationFile) -> None:
    problems = []
    for i, rule in enumerate(rules.rules):
        triggers = matrix.types[rule.type].triggers
        if rule.trigger not in triggers:
            problems.append((
                str(folder / "rules.yaml"),
                f"rules.{i}.trigger",
                f"{rule.trigger!r} is not a trigger of type {rule.type.value}; use one of {sorted(triggers)} "
                f"(rule {rule.name})",
            ))
        if rule.type is EscalationType.none and rule.severity:
            problems.append((str(folder / "rules.yaml"), f"rules.{i}.severity",
                             f"proceed rules take no severity (rule {rule.name})"))
        if rule.type is EscalationType.none and rule.priority:
            problems.append((str(folder / "rules.yaml"), f"rules.{i}.priority",
                             f"priority ranks escalating rules; a proceed rule never overrides one: remove it "
                             f"(rule {rule.name})"))
        for j, condition in enumerate(rule.conditions):
            if condition.field not in conversation.context_fields:
                near = difflib.get_close_matches(condition.field, conversation.context_fields, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                problems.append((
                    str(folder / "rules.yaml"), f"rules.{i}.conditions.{j}.field",
                    f"unknown context field {condition.field!r}; {hint}declare new fields under context_fields in "
                    f"conversation.yaml (rule {rule.name})"))
    if problems:
        raise PolicyError.collect(problems)
