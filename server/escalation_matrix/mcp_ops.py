"""MCP additions for operations: the escalation report and the actors' oversight scores as
resources, and the pipeline trigger as a tool. Registered by ``mcp_app.build_server``; thin like the rest of the adapter."""

import functools
import inspect
import json
import logging
from typing import Annotated, Any, Callable, Literal, TypeVar
from urllib.parse import unquote

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from . import preferences as learned
from .errors import EscalationMatrixError
from .guard import ConversationGuard
from .guard_results import valid_unicode
from .ops.oversight import Oversight
from .ops.pipeline import MAX_COUNT, MAX_DETAILS, ItemOutcome, report_item, validate
from .ops.report_format import render_report
from .ops.reports import PERIODS, build_report
from .toolspec import TOOLS, argument

log = logging.getLogger(__name__)
T = TypeVar("T")


def tool_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Library errors reach the caller with their message (a ``ToolError`` raised on purpose passes
    as it is); anything else is logged, not leaked. The docstring becomes the tool's description,
    without source indentation."""

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            try:
                given = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:  # the call itself raises it, with Python's message
                given = {}
            for name, value in given.items():
                _valid_text(value, name)
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except EscalationMatrixError as exc:
            raise ToolError(str(exc)) from None
        except Exception:
            log.exception("unexpected error in tool %s", fn.__name__)
            raise ToolError(f"{fn.__name__} failed unexpectedly; the server log has the details") from None

    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


def _valid_text(value: Any, name: str) -> None:
    """Every text in a tool's arguments, nested ones too, must be valid Unicode: an unpaired surrogate
    is refused with where it is, before any tool reads it (the database and the model cannot take it)."""
    if isinstance(value, str):
        valid_unicode(value, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            _valid_text(key, f"{name} (a key)")
            _valid_text(item, f"{name}.{key}" if isinstance(key, str) and key.isprintable() else name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _valid_text(item, f"{name}[{index}]")


class PreferenceList(BaseModel):
    preferences: list[dict[str, Any]] = Field(description="Learned preferences, newest change first: whose (scope, "
                                                          "scope_id), the question, the answer, its confidence now, "
                                                          "the answers behind it and whether it answers now.")


def register_operations(server: MCPServer, guard: ConversationGuard) -> None:
    register_preferences(server, guard)
    register_batches(server, guard)

    @server.resource("escalation://reports/{period}", name="report", mime_type="application/json",
                     title="Escalation report",
                     description="daily, weekly or monthly: rates per level against the targets, counts by type and "
                                 "reason, resolution times, resolution methods and trend (today's period).")
    def report(period: str, ctx: Context) -> str:
        from .mcp_app import over_http, principal

        if over_http(ctx) and not principal(ctx).is_operator:  # it names every agent's conversations
            raise ResourceError("reports cover every agent's conversations, so over HTTP they are for operators: "
                                "use an operator token, the console dashboard or `escalation-matrix report`")
        if period not in PERIODS:
            raise ResourceError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
        try:
            return render_report(build_report(guard.store, guard.policy, period), "json")
        except EscalationMatrixError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("escalation://actors", name="actors", mime_type="application/json", title="Actor scores",
                     description="Every actor with its rolling score (0-100, the share of its last decisions that chose "
                                 "the agent's suggestion), status (active or suspended), replacement and open ticket.")
    def actors() -> str:
        return json.dumps([a.model_dump() for a in Oversight(guard.store, guard.policy).actors()], ensure_ascii=False)

    @server.resource("escalation://actors/{name}", name="actor", mime_type="application/json", title="One actor",
                     description="One actor's score, recent decisions, oversight tickets, suspensions and its team's "
                                 "re-routing chain.")
    def actor(name: str) -> str:
        try:
            return json.dumps(Oversight(guard.store, guard.policy).actor(unquote(name)), ensure_ascii=False)
        except EscalationMatrixError as exc:
            raise ResourceError(str(exc)) from None

    @server.tool(name="report_item", title="Report a pipeline item's progress", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @tool_errors
    def report_item_tool(
        item_id: Annotated[str, Field(description="The item being processed, e.g. a brand id (at most 200 characters).")],
        iterations: Annotated[int, Field(ge=0, le=MAX_COUNT, description="Feedback iterations so far.")],
        failures: Annotated[int, Field(ge=0, le=MAX_COUNT, description="Consecutive processing failures so far.")] = 0,
        confidence: Annotated[float | None, Field(ge=0, le=1, description="Latest confidence score, 0-1.")] = None,
        error: Annotated[Literal["data-quality", "system"] | None,
                         Field(description="The kind of error this iteration hit, if any.")] = None,
        details: Annotated[str | None, Field(description=f"Free text for the person who picks it up (at most {MAX_DETAILS} characters).")] = None,
    ) -> ItemOutcome:
        """Automatic escalation for pipelines: escalates at the iteration limit, after
        consecutive failures, on a data-quality or system error, or on low confidence after several
        iterations (limits in policies/operations.yaml). One open escalation per item."""
        item = validate(dict(item_id=item_id, iterations=iterations, failures=failures, confidence=confidence,
                             error=error, details=details))
        return report_item(guard.store, guard.policy, item)


def register_preferences(server: MCPServer, guard: ConversationGuard) -> None:
    """The person sees and revokes the preferences learned from their answers (operators, over HTTP)."""

    @server.tool(name="preferences", title="Learned preferences", annotations=ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @tool_errors
    def preferences(
        ctx: Context,
        scope: Annotated[Literal["person", "organisation"] | None,
                         Field(description="Only a person's or only an organisation's preferences.")] = None,
        scope_id: Annotated[str | None, Field(description="Only the preferences of this person or organisation.")] = None,
        revoked: Annotated[bool, Field(description="Include revoked preferences.")] = False,
    ) -> PreferenceList:
        """The preferences learned from people's answers: which question, which answer, its confidence
        now and whether it answers that question for them (at or above the policy's threshold)."""
        from .mcp_app import over_http, principal

        if over_http(ctx) and not principal(ctx).is_operator:  # they hold every person's answers
            raise ToolError("preferences hold every person's answers, so over HTTP they are for operators: use an "
                            "operator token or `escalation-matrix preferences list`")
        return PreferenceList(preferences=learned.listing(guard.store, guard.policy.decisions.preferences,
                                                          scope=scope, scope_id=scope_id, revoked=revoked))

    @server.tool(name="revoke_preference", title="Revoke a learned preference", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @tool_errors
    def revoke_preference(
        ctx: Context,
        preference_id: Annotated[int, Field(ge=1, le=learned.MAX_ID, description="The preference's id, as an "
                                                                                  "auto-answered result's preference.id "
                                                                                  "names it.")],
        reason: Annotated[str | None, Field(description="Why, for the audit trail.")] = None,
    ) -> dict[str, Any]:
        """The person no longer wants this preference to answer for them: from now on they are asked
        again (and a new preference may be learned from their later answers)."""
        from .mcp_app import principal

        return learned.revoke(guard.store, preference_id, principal(ctx).name, reason)


class BatchList(BaseModel):
    batches: list[dict[str, Any]] = Field(description="Batches, newest first: whom they are for, status (open: "
                                                      "collecting; delivered: waiting for answers; answered), "
                                                      "items, open items and groups.")


def register_batches(server: MCPServer, guard: ConversationGuard) -> None:
    """The person's batches of questions: see one (with its card) and approve all or some of it."""
    from .ops import batches as batching
    from .render import batch_card

    def operator_only(ctx: Context, what: str) -> None:
        from .mcp_app import over_http, principal

        if over_http(ctx) and not principal(ctx).is_operator:  # a batch holds several conversations' questions
            raise ToolError(f"{what} is for the person or an operator: over HTTP use an operator token, or "
                            "`escalation-matrix batch`, or the console's batch page")

    @server.tool(name="batches", title=TOOLS["batches"].title, description=TOOLS["batches"].description,
                 annotations=ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @tool_errors
    def batches(
        ctx: Context,
        batch_id: Annotated[int | None, Field(ge=1, le=batching.MAX_ID, description=argument("batches", "batch_id"))] = None,
        status: Annotated[Literal["open", "delivered", "answered"] | None,
                          Field(description=argument("batches", "status"))] = None,
        person: Annotated[str | None, Field(description=argument("batches", "person"))] = None,
    ) -> dict[str, Any]:
        operator_only(ctx, "a batch")
        settings = guard.policy.decisions.batching
        if batch_id is None:
            return BatchList(batches=batching.listing(guard.store, settings, status, person)).model_dump()
        batch = batching.show(guard.store, batch_id, settings)
        return {**batch, "card": batch_card(batch).model_dump()}

    @server.tool(name="answer_batch", title=TOOLS["answer_batch"].title, description=TOOLS["answer_batch"].description,
                 annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @tool_errors
    def answer_batch(
        ctx: Context,
        batch_id: Annotated[int, Field(ge=1, le=batching.MAX_ID, description=argument("answer_batch", "batch_id"))],
        items: Annotated[list[str] | None, Field(description=argument("answer_batch", "items"))] = None,
        action: Annotated[Literal["approve", "reject"], Field(description=argument("answer_batch", "action"))] = "approve",
        note: Annotated[str | None, Field(description=argument("answer_batch", "note"))] = None,
    ) -> dict[str, Any]:
        from .mcp_app import principal

        operator_only(ctx, "answering a batch")
        who = principal(ctx)  # the local agent relays its person's answer, with an agent's checks per item
        return batching.answer_batch(guard.store, batch_id, who.name, guard.policy.decisions.batching,
                                     items=items, action=action, note=note, max_chars=guard.settings.max_request_chars,
                                     learn=guard.policy.decisions.preferences,
                                     role="operator" if who.is_operator else "agent")
