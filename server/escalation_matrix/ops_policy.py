"""policies/operations.yaml as a strict model: routing levels, fail-safe timers, KPI targets,
pipeline limits and notification channels. Durations are written like "5m", "24h", "1w"."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, RootModel, model_validator

from .durations import format_duration, parse_duration
from .models import Severity
from .strict import Strict

if TYPE_CHECKING:
    from .policy import PolicyFiles

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
FailSafeAction = Literal["remind", "raise", "block", "lock", "reassign", "notify"]
# The standard stages imply their action by name; any other stage names its own.
STANDARD_ACTIONS: dict[str, FailSafeAction] = {
    "reminder": "remind", "raise_to_l2": "raise", "raise_to_l3": "raise", "blocked_report": "block",
    "lock_task": "lock"}


class RoutingLevel(Strict):
    name: str = Field(description="Team name of the level, e.g. operational, engineering, product.")
    response_target: Duration = Field(description="Time allowed to respond, e.g. 24h.")
    assignee: str = Field(description="Default assignee when an escalation reaches this level.")


class Route(Strict):
    """Where an agent escalation of one severity goes the moment it is created."""

    level: int = Field(ge=1, description="Routing level (a key of `levels`).")
    assignee: str = Field(description="Who it is assigned to, e.g. operations-lead.")
    notify: list[str] = Field(default_factory=lambda: ["log"], description="Channels told at once.")
    respond_within: Duration = Field(description="Due time: how long a person has to respond; 0s = at once.")


class FailSafe(Strict):
    severity: Severity = Field(description="Severity of the agent escalations this timer watches.")
    after: Duration = Field(description="How long unanswered (unresolved for block) before it fires; 0s = at once.")
    action: FailSafeAction | None = Field(
        default=None, description="remind, raise (severity + 1 or `to`), block (blocked-tasks report), lock "
                                  "(the task), reassign (to `assign_to`) or notify; the standard stage names "
                                  "(reminder, raise_to_l2, raise_to_l3, blocked_report, lock_task) imply theirs.")
    to: Severity | None = Field(default=None, description="raise: the new severity; one above when omitted.")
    awaiting_guidance: bool | None = Field(
        default=None, description="raise: mark the task awaiting guidance; by default when raising to L3.")
    notify: list[str] = Field(default_factory=list, description="Channel names to notify when it fires.")
    recipient: str = Field(default="assignee", description="Who the notification is for, e.g. supervisor, operations lead.")
    assign_to: str | None = Field(default=None, description="New assignee when it fires (e.g. team-lead); none keeps it.")


def _fs(severity: str, after: str, recipient: str, action: FailSafeAction, assign_to: str | None = None) -> FailSafe:
    return FailSafe(severity=Severity(severity), after=parse_duration(after), notify=["log"], recipient=recipient,
                    action=action, assign_to=assign_to)


def _default_failsafes() -> dict[str, FailSafe]:
    return {"reminder": _fs("L1", "5m", "assignee", "remind"),
            "raise_to_l2": _fs("L1", "15m", "supervisor", "raise"),
            "raise_to_l3": _fs("L2", "30m", "team lead", "raise", "team-lead"),
            "blocked_report": _fs("L3", "24h", "operations team", "block"),
            "lock_task": _fs("L4", "0s", "operations lead", "lock")}


class FailSafes(RootModel[dict[str, FailSafe]]):
    """Fail-safe stages by name, in the order written. A policy author may add stages, e.g.
    ``reroute_to_deputy: {severity: L3, after: 4h, action: reassign, assign_to: deputy}``."""

    root: dict[str, FailSafe] = Field(default_factory=_default_failsafes)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self.root:
            return self.root[name]
        return super().__getattr__(name)  # type: ignore[misc]

    def items(self) -> Any:
        return self.root.items()

    def __iter__(self) -> Any:  # name, stage pairs, like a model's fields
        return iter(self.root.items())

    @model_validator(mode="after")
    def _actions(self) -> "FailSafes":
        for name, stage in list(self.root.items()):
            action = stage.action or STANDARD_ACTIONS.get(name)
            if action is None:
                raise ValueError(f"failsafes.{name}: add an action (remind, raise, block, lock, reassign or notify)")
            if action == "reassign" and not stage.assign_to:
                raise ValueError(f"failsafes.{name}: a reassign stage needs assign_to (who takes it over)")
            update: dict[str, Any] = {"action": action}
            if action == "raise":
                target = stage.to or (Severity(f"L{stage.severity.rank + 1}") if stage.severity.rank < 4 else None)
                if target is None or target.rank <= stage.severity.rank:
                    raise ValueError(f"failsafes.{name}: raise needs `to` above {stage.severity.value}")
                update.update(to=target, awaiting_guidance=(target is Severity.L3 if stage.awaiting_guidance is None
                                                            else stage.awaiting_guidance))
            self.root[name] = stage.model_copy(update=update)
        return self


class KpiTarget(Strict):
    target: float = Field(ge=0, le=1, description="Rate to stay under, as a fraction (0.08 = 8 %).")
    alert: float = Field(ge=0, le=1, description="Rate above which the report raises an alert.")


class Kpis(Strict):
    total: KpiTarget = Field(default_factory=lambda: KpiTarget(target=0.05, alert=0.10),
                             description="Escalation records created over every evaluated request.")
    severity: dict[Severity, KpiTarget] = Field(
        default_factory=lambda: {Severity.L1: KpiTarget(target=0.08, alert=0.10),
                                 Severity.L2: KpiTarget(target=0.03, alert=0.05),
                                 Severity.L3: KpiTarget(target=0.01, alert=0.02),
                                 Severity.L4: KpiTarget(target=0.001, alert=0.005)},
        description="Per-severity rate targets.")
    resolution: dict[Severity, Duration] = Field(
        default_factory=lambda: {Severity.L1: timedelta(minutes=2), Severity.L2: timedelta(minutes=15)},
        description="Resolution-time targets by severity.")


class PipelineTrigger(Strict):
    severity: Severity = Field(description="Severity of the escalation this pipeline trigger creates.")
    level: int = Field(ge=1, description="Routing level it goes to.")
    reason: str = Field(description="Reason recorded on the escalation (groups the reports).")


PipelineTriggerName = Literal["iteration_limit", "consecutive_failures", "data_quality", "system_error",
                              "low_confidence"]


def _default_pipeline_triggers() -> dict[PipelineTriggerName, PipelineTrigger]:
    return {
        "iteration_limit": PipelineTrigger(severity=Severity.L2, level=1, reason="iteration limit reached"),
        "consecutive_failures": PipelineTrigger(severity=Severity.L2, level=2, reason="consecutive processing failures"),
        "data_quality": PipelineTrigger(severity=Severity.L2, level=1, reason="critical data quality issue"),
        "system_error": PipelineTrigger(severity=Severity.L2, level=2, reason="system error"),
        "low_confidence": PipelineTrigger(severity=Severity.L1, level=1, reason="low confidence after several iterations"),
    }


class Pipeline(Strict):
    iteration_limit: int = Field(default=10, ge=1, description="Escalate when an item reaches this many iterations.")
    consecutive_failures: int = Field(default=3, ge=1, description="Escalate after this many failures in a row.")
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="Confidence below this is low.")
    low_confidence_after: int = Field(default=3, ge=1, description="Low confidence escalates from this iteration on.")
    triggers: dict[PipelineTriggerName, PipelineTrigger] = Field(default_factory=_default_pipeline_triggers,
                                                                 description="What each trigger creates.")

    @model_validator(mode="after")
    def _all_triggers(self) -> "Pipeline":
        missing = {"iteration_limit", "consecutive_failures", "data_quality", "system_error", "low_confidence"} - set(self.triggers)
        if missing:
            raise ValueError(f"triggers: add {sorted(missing)}")
        return self


class Channel(Strict):
    kind: Literal["log", "webhook"] = Field(description="log (stderr) or webhook (Slack-compatible JSON POST).")
    urls: list[str] = Field(default_factory=list, description="Webhook URLs (each gets every message).")
    url_env: str | None = Field(default=None, description="Environment variable holding one more webhook URL.")
    timeout: Duration = Field(default=timedelta(seconds=5), description="Per-request timeout.")
    retries: int = Field(default=5, ge=0, description="Further attempts after the first fails.")
    backoff: Duration = Field(default=timedelta(seconds=30), description="Wait before the first retry; doubles each time.")

    def resolved_urls(self) -> list[str]:
        return [url for _, url in self.targets()]

    def targets(self) -> list[tuple[str, str]]:
        """(label, URL) per receiver. A webhook URL is a secret: only the label (``urls[0]``,
        ``env:NAME``) is stored, printed or audited; the URL is looked up when sending."""
        extra = os.environ.get(self.url_env, "") if self.url_env else ""
        found = [(f"urls[{i}]", url) for i, url in enumerate(self.urls)]
        return found + ([(f"env:{self.url_env}", extra)] if extra else [])

    def url_for(self, label: str) -> str | None:
        return dict(self.targets()).get(label)


class Notifications(Strict):
    channels: dict[str, Channel] = Field(default_factory=lambda: {"log": Channel(kind="log")},
                                         description="Channels by name.")
    on_create: dict[Severity, list[str]] = Field(
        default_factory=lambda: {s: ["log"] for s in Severity},
        description="Channels told of a new escalation, per severity.")
    on_change: list[str] = Field(default_factory=lambda: ["log"], description="Channels told of assign/raise/answer/close.")


class Redaction(Strict):
    emails: bool = Field(default=True, description="Replace e-mail addresses with [email] in what is stored, logged or sent.")
    phones: bool = Field(default=True, description="Replace phone numbers with [phone] likewise. Card numbers, API keys, "
                                                   "tokens and webhook URLs are always redacted.")

    def redactor(self) -> Any:
        from .redact import Redactor

        return Redactor(emails=self.emails, phones=self.phones)


class Retention(Strict):
    personal_data: Duration | None = Field(
        default=timedelta(days=90),
        description="Erase the text of escalations closed, resolved or answered this long ago (request, question, "
                    "answer, notes); null keeps it. The server applies it on every sweep; `erase --expired` by hand.")


def _default_levels() -> dict[int, RoutingLevel]:
    return {1: RoutingLevel(name="operational", response_target=timedelta(hours=24), assignee="operations-team"),
            2: RoutingLevel(name="engineering", response_target=timedelta(hours=48), assignee="engineering-team"),
            3: RoutingLevel(name="product", response_target=timedelta(weeks=1), assignee="product-team")}


def _default_routing() -> dict[Severity, Route]:
    return {Severity.L1: Route(level=1, assignee="operations-team", notify=["log"], respond_within=timedelta(minutes=2)),
            Severity.L2: Route(level=1, assignee="operations-team", notify=["log"], respond_within=timedelta(minutes=15)),
            Severity.L3: Route(level=2, assignee="engineering-team", notify=["log"], respond_within=timedelta(hours=24)),
            Severity.L4: Route(level=1, assignee="operations-lead", notify=["log"], respond_within=timedelta(0))}


class OperationsFile(Strict):
    levels: dict[int, RoutingLevel] = Field(default_factory=_default_levels,
                                            description="Routing levels: 1 operational, 2 engineering, 3 product.")
    routing: dict[Severity, Route] = Field(default_factory=_default_routing,
                                           description="Agent escalations by severity: level, assignee, channels, due time.")
    failsafes: FailSafes = Field(default_factory=FailSafes,
                                 description="Fail-safe stages for agent escalations, by name.")
    kpis: Kpis = Field(default_factory=Kpis, description="KPI targets and alert thresholds.")
    pipeline: Pipeline = Field(default_factory=Pipeline, description="Automatic pipeline triggers.")
    notifications: Notifications = Field(default_factory=Notifications, description="Notification channels and who gets what.")
    sweep_interval: Duration = Field(default=timedelta(seconds=30), description="How often the server runs the fail-safe sweep.")
    redaction: Redaction = Field(default_factory=Redaction, description="Personal data redacted before storing, logging or notifying.")
    retention: Retention = Field(default_factory=Retention, description="How long personal data is kept.")

    @model_validator(mode="after")
    def _cross_check(self) -> "OperationsFile":
        if 1 not in self.levels:
            raise ValueError("levels: add level 1 (the default routing level)")
        known = set(self.notifications.channels)
        named = [*self.notifications.on_change, *(c for cs in self.notifications.on_create.values() for c in cs)]
        named += [c for stage in self.failsafes.root.values() for c in stage.notify]
        named += [c for route in self.routing.values() for c in route.notify]
        unknown = sorted(set(named) - known)
        if unknown:
            raise ValueError(f"channels {unknown} are used but not defined; add them under notifications.channels")
        bad = sorted({t.level for t in self.pipeline.triggers.values()} - set(self.levels))
        if bad:
            raise ValueError(f"pipeline.triggers use levels {bad} that are not under levels")
        missing = [s.value for s in Severity if s not in self.routing]
        if missing:
            raise ValueError(f"routing: add {', '.join(missing)} (every severity needs a route)")
        bad = sorted({r.level for r in self.routing.values()} - set(self.levels))
        if bad:
            raise ValueError(f"routing uses levels {bad} that are not under levels")
        return self

    def level(self, number: int) -> RoutingLevel:
        if number not in self.levels:
            from .errors import InputError

            raise InputError(f"routing level {number} is not defined; use one of {sorted(self.levels)}")
        return self.levels[number]


def operations_policy(policy: PolicyFiles | OperationsFile) -> OperationsFile:
    """The operations part of a loaded Policy (``policy.operations``), or the file itself."""
    return policy if isinstance(policy, OperationsFile) else policy.operations
