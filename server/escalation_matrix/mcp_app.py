"""The MCP adapter: five tools, two resources and a protocol prompt over ``ConversationGuard``.

Thin on purpose: every rule lives in the guard; this module only describes arguments, turns
library errors into ``ToolError`` and wires transports. The model loads once, in ``build_server``."""

# No `from __future__ import annotations`: the SDK evaluates tool and resolver annotations at
# registration, and the resolvers below are closures it could not find by name.

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from . import guard_results as out
from .access import LOCAL_AGENT, PRINCIPAL_KEY, Principal, check_owner, check_reference, claim_conversation
from .errors import EscalationMatrixError, InputError, NotFoundError
from .factory import open_guard
from .guard import ConversationGuard, Preview
from .http_app import build_http_app  # noqa: F401 - where callers have always imported it from
from .http_security import HttpSecurity
from .loader import Policy
from .mcp_ops import register_operations, tool_errors
from .models import Action, EscalationResult
from .protocol import PROTOCOL_PROMPT, SERVER_INSTRUCTIONS, matrix_document
from . import toolspec as spec
from .toolspec import TOOLS, argument

log = logging.getLogger(__name__)

# the descriptions are the ones the LangChain tools use too (toolspec)
ConversationId = Annotated[str, Field(description=spec.CONVERSATION_ID)]
Request = Annotated[str, Field(description=spec.REQUEST)]
TaskId = Annotated[str | None, Field(description=spec.TASK_ID)]
Options = Annotated[list[str] | None, Field(description=spec.OPTIONS)]
AgentType = Annotated[Literal["clarification", "conflict", "context", "decision", "compliance", "scope", "safety",
                              "technical"] | None, Field(description=argument("escalate", "type"))]
Locale = Annotated[str | None, Field(description=spec.LOCALE)]
NewIssue = Annotated[bool | None, Field(description=spec.NEW_ISSUE)]
Context_ = Annotated[dict[str, Any] | None, Field(description=spec.CONTEXT)]


class PersonDecision(BaseModel):
    """What the person is asked for an escalation they decide, when the client supports elicitation
    (a flat form: the elicitation schema allows primitive fields only)."""

    action: Literal["approve", "reject", "modify", "delegate", "defer"] = Field(
        description="Your decision: approve, reject, modify (say the change), delegate (say to whom) or defer "
                    "(say until when).")
    change: str | None = Field(default=None, description="modify: the change you want made first.")
    to: str | None = Field(default=None, description="delegate: who decides instead (a name or team).")
    until: str | None = Field(default=None, description="defer: until when, e.g. 2026-12-08T09:00:00Z.")
    note: str | None = Field(default=None, description="Anything you want to add.")


class ClarifyAnswer(BaseModel):
    """What the person is asked for when the client supports elicitation."""

    answer: str = Field(description="Your answer to the question.")


_tool_errors = tool_errors  # the tools here and in mcp_ops report errors one way


load_guard = open_guard  # the name the CLI and earlier code use


def build_server(policy: Policy | None = None, db: str | Path | None = None, *,
                 guard: ConversationGuard | None = None, name: str = "escalation-matrix") -> MCPServer:
    """An MCP server over ``guard`` (built from ``policy`` and ``db`` when not given)."""
    guard = guard or open_guard(policy, db)
    server = MCPServer(name, title="Escalation matrix", instructions=SERVER_INSTRUCTIONS, log_level="WARNING")
    _register_tools(server, guard)
    _register_escalate(server, guard)
    _register_clarify(server, guard)
    _register_context(server, guard)
    register_operations(server, guard)
    return server


def _register_tools(server: MCPServer, guard: ConversationGuard) -> None:
    @server.tool(title=TOOLS["classify"].title, description=TOOLS["classify"].description, annotations=ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @_tool_errors
    def classify(request: Request, context: Context_ = None, locale: Locale = None) -> EscalationResult:
        return guard.classify(request, context, locale)

    @server.tool(title=TOOLS["check_scope"].title, description=TOOLS["check_scope"].description, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @_tool_errors
    def check_scope(
        ctx: Context, request: Request,
        conversation_id: Annotated[str | None, Field(description=argument("check_scope", "conversation_id"))] = None,
        capabilities: Annotated[list[str] | None, Field(description=argument("check_scope", "capabilities"))] = None,
        locale: Locale = None,
    ) -> EscalationResult:
        if conversation_id is not None:
            claim(guard, ctx, conversation_id)
        return guard.check_scope(request, conversation_id, capabilities, locale)

    @server.tool(title=TOOLS["respond"].title, description=TOOLS["respond"].description, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @_tool_errors
    def respond(
        ctx: Context,
        escalation_id: Annotated[str, Field(description=argument("respond", "escalation_id"))],
        answer: Annotated[str | None, Field(description=argument("respond", "answer"))] = None,
        conversation_id: Annotated[str | None, Field(description=argument("respond", "conversation_id"))] = None,
        necessary: Annotated[bool | None, Field(description=argument("respond", "necessary"))] = None,
        action: Annotated[Literal["approve", "reject", "modify", "delegate", "defer", "conditional"] | None,
                          Field(description=argument("respond", "action"))] = None,
        change: Annotated[str | None, Field(description=argument("respond", "change"))] = None,
        to: Annotated[str | None, Field(description=argument("respond", "to"))] = None,
        until: Annotated[str | None, Field(description=argument("respond", "until"))] = None,
        conditions: Annotated[list[str] | None, Field(description=argument("respond", "conditions"))] = None,
    ) -> EscalationResult:
        structured: dict[str, Any] = dict(necessary=necessary, action=action, change=change, to=to, until=until,
                                          conditions=conditions)
        who = principal(ctx)
        name = out.identifier(escalation_id, "escalation_id")
        record = guard.store.escalation(guard.store.resolve(name))
        with guard.store.transaction() as conn:
            check_owner(conn, record["conversation_id"], who)
        if who.is_operator:
            return guard.respond(escalation_id, answer, responder=who.name, **structured)
        if over_http(ctx):
            check_reference(record, name)
        return guard.respond(escalation_id, answer, responder="agent" if who == LOCAL_AGENT else who.name,
                             role="agent", conversation_id=conversation_id, **structured)


def _register_escalate(server: MCPServer, guard: ConversationGuard) -> None:
    # Resolver style (works on every protocol version). The first resolver previews the call (what
    # escalate would return, nothing kept: an elicitation may take several rounds, each running the
    # resolvers again), the second puts the question to the person when the client can ask and the
    # person may decide it, and the tool records the call once and applies the person's structured
    # answer as `respond` would.
    def previewed(ctx: Context, conversation_id: str, request: str, task_id: str | None, question: str | None,
                  options: list[str] | None, details: str | None, context: dict[str, Any] | None, type: str | None,
                  locale: str | None, new_issue: bool | None = None) -> Preview | None:
        if not _can_elicit(ctx):
            return None
        _tool_errors(claim)(guard, ctx, conversation_id)
        return _tool_errors(guard.preview_escalate)(conversation_id, request, task_id, question, options, details,
                                                    context, type, locale, new_issue)

    def ask_person(preview: Annotated[Preview | None, Resolve(previewed)]) -> Elicit[PersonDecision] | None:
        if preview is None or not preview.person_decides:
            return None
        result = preview.result
        return Elicit(result.message or result.question or result.phrase or "", PersonDecision)

    @server.tool(title=TOOLS["escalate"].title, description=TOOLS["escalate"].description, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    @_tool_errors
    def escalate(
        ctx: Context, conversation_id: ConversationId, request: Request,
        reply: Annotated[ElicitationResult[PersonDecision], Resolve(ask_person)],
        task_id: TaskId = None,
        question: Annotated[str | None, Field(description=argument("escalate", "question"))] = None,
        options: Options = None,
        details: Annotated[str | None, Field(description=argument("escalate", "details"))] = None,
        context: Context_ = None,
        type: AgentType = None,
        locale: Locale = None,
        new_issue: NewIssue = None,
    ) -> EscalationResult:
        claim(guard, ctx, conversation_id)
        result = guard.escalate(conversation_id, request, task_id, question, options, details, context, type, locale,
                                new_issue)
        if (reply is None or reply.action != "accept" or not isinstance(reply.data, PersonDecision)
                or result.escalation_id is None or not guard.person_decides(result)):
            return result  # not asked, declined, or no longer theirs to decide (changed since they were asked)
        said = reply.data
        try:
            return guard.respond(result.escalation_id, said.note, responder="person", action=said.action,
                                 change=said.change, to=said.to, until=said.until)
        except InputError as exc:
            raise InputError(f"{exc}; the person's answer was not recorded: {result.escalation_id} awaits their "
                             "answer (relay it with respond)") from None


def _register_clarify(server: MCPServer, guard: ConversationGuard) -> None:
    # As escalate: preview (nothing kept), ask the person through the client when it can, then
    # record the call once and apply the answer.
    def previewed(ctx: Context, conversation_id: str, request: str, question: str, task_id: str | None,
                  options: list[str] | None, missing: str | None, locale: str | None = None,
                  new_issue: bool | None = None) -> Preview | None:
        if not _can_elicit(ctx):
            return None
        _tool_errors(claim)(guard, ctx, conversation_id)
        return _tool_errors(guard.preview_clarify)(conversation_id, request, question, task_id, options, missing,
                                                   locale, new_issue)

    def ask_person(preview: Annotated[Preview | None, Resolve(previewed)]) -> Elicit[ClarifyAnswer] | None:
        if preview is None:
            return None
        result = preview.result
        if result.action is not Action.escalate or result.escalation_id is None:
            return None
        return Elicit(result.message or result.question or "", ClarifyAnswer)

    @server.tool(title=TOOLS["clarify"].title, description=TOOLS["clarify"].description, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    @_tool_errors
    def clarify(
        ctx: Context, conversation_id: ConversationId, request: Request,
        question: Annotated[str, Field(description=argument("clarify", "question"))],
        reply: Annotated[ElicitationResult[ClarifyAnswer], Resolve(ask_person)],
        task_id: TaskId = None, options: Options = None,
        missing: Annotated[str | None, Field(description=argument("clarify", "missing"))] = None,
        locale: Locale = None,
        new_issue: NewIssue = None,
    ) -> EscalationResult:
        claim(guard, ctx, conversation_id)
        result = guard.clarify(conversation_id, request, question, task_id, options, missing, locale, new_issue)
        if (reply is not None and reply.action == "accept" and isinstance(reply.data, ClarifyAnswer)
                and result.action is Action.escalate and result.escalation_id):
            return guard.respond(result.escalation_id, reply.data.answer, responder="person")
        return result


def _can_elicit(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _register_context(server: MCPServer, guard: ConversationGuard) -> None:
    @server.resource("escalation://matrix", name="matrix", title="The escalation matrix", mime_type="application/json",
                     description="Every type with its triggers, default severity and standard phrase, and the decision-tree order.")
    def matrix() -> str:
        return json.dumps(matrix_document(guard.policy), indent=2, ensure_ascii=False)

    @server.resource("escalation://conversations/{conversation_id}", name="conversation", mime_type="application/json",
                     title="A conversation's escalations", description="The escalations of one conversation, oldest first.")
    def conversation(conversation_id: str, ctx: Context) -> str:
        try:
            with guard.store.transaction() as conn:
                check_owner(conn, conversation_id, principal(ctx))
            records = guard.history(conversation_id)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except EscalationMatrixError as exc:
            raise ResourceError(str(exc)) from None
        return json.dumps({"conversation_id": conversation_id, "escalations": records}, indent=2, ensure_ascii=False)

    @server.resource("escalation://pending/{conversation_id}", name="pending", mime_type="application/json",
                     title="What a conversation is waiting for",
                     description="Open escalations of one conversation (reminded, awaiting guidance) and the state of "
                                 "each task: active, awaiting_guidance (paused), handed_off or locked.")
    def pending(conversation_id: str, ctx: Context) -> str:
        try:
            with guard.store.transaction() as conn:
                check_owner(conn, conversation_id, principal(ctx))
            return json.dumps(guard.pending(conversation_id), indent=2, ensure_ascii=False)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except EscalationMatrixError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("policy://status", name="policy_status", mime_type="application/json",
                     title="Policy status",
                     description="Which policy, phrase and exemplar folders are served, when they were loaded, and "
                                 "the problems of the last refused reload (the old policy stays in service).")
    def policy_status() -> str:
        return json.dumps(guard.policy_status, indent=2, ensure_ascii=False)

    @server.prompt(name="escalation_protocol", title="How to use the escalation tools",
                   description="Teaches an agent when to call which tool, and the golden rule.")
    def escalation_protocol() -> str:
        return PROTOCOL_PROMPT


def principal(ctx: Context) -> Principal:
    """Who is calling: the HTTP layer puts the token's principal in the request scope; stdio and
    in-process clients are the local agent that started the server."""
    try:
        request = ctx.request_context.request
    except ValueError:
        return LOCAL_AGENT
    scope = getattr(request, "scope", None) or {}
    found = scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else LOCAL_AGENT


def over_http(ctx: Context) -> bool:
    """Whether the call came through the HTTP front door (which names the principal in the scope)."""
    try:
        request = ctx.request_context.request
    except ValueError:
        return False
    return PRINCIPAL_KEY in (getattr(request, "scope", None) or {})


def claim(guard: ConversationGuard, ctx: Context, conversation_id: Any) -> None:
    """The calling agent owns the conversation from its first call on (see ``access.claim_conversation``)."""
    conversation_id = out.identifier(conversation_id, "conversation_id")
    with guard.store.transaction() as conn:
        claim_conversation(conn, conversation_id, principal(ctx), guard.store.now())


BearerAuth = HttpSecurity  # the name this middleware had when it checked one token only
