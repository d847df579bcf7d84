"""LangChain adapter: ``escalate``, ``clarify``, ``check_scope``, ``respond`` and ``classify`` as
langchain-core tools over the same ``ConversationGuard`` and state store as the MCP server.

    from escalation_matrix.langchain import ESCALATION_PROTOCOL, escalation_tools
    tools = escalation_tools(db="escalations.db", conversation_id="chat-42")
    model = chat_model.bind_tools(tools)

Each tool returns ``(content, artifact)``: the content is the result as JSON for the model to read,
the artifact the ``EscalationResult`` itself (``ToolMessage.artifact``) for the application, e.g.
``render.card(artifact)`` for a chat frontend. Library errors and bad arguments come back as a
tool message starting with ``Error:`` that the model can read and correct; the loop goes on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Literal

try:
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError("escalation_matrix.langchain needs langchain-core; install it with: "
                      "pip install 'escalation-matrix[langchain]'") from exc
from pydantic import BaseModel, Field, create_model

from .errors import EscalationMatrixError
from .models import EscalationResult
from .protocol import PROTOCOL_PROMPT

log = logging.getLogger(__name__)

# The same protocol the MCP server's prompt teaches, plus how results look through these tools.
ESCALATION_PROTOCOL = PROTOCOL_PROMPT + """
Each tool result is JSON: read `action` and `instruction` first. A tool result that starts with
"Error:" means the call was not made: fix the arguments it names and call again.
"""

DESCRIPTIONS = {
    "classify": (
        "Classify a request without recording anything: returns whether to proceed or which "
        "escalation type (clarification, conflict, context, decision, compliance, scope, safety, "
        "technical), severity L1-L4 and standard phrase applies. Call it when you want to know, "
        "before acting, whether a request needs a person."),
    "check_scope": (
        "Check whether a request is within what you may and can do. Call it before acting on a "
        "request that may be prohibited, outside your authority, or beyond your technical "
        "capabilities. Returns in_scope and, if out of scope, the standard phrase to say."),
    "clarify": (
        "Ask the person one clarifying question (L1). Call it when the request is unclear, has two "
        "conflicting instructions, or lacks one piece of information (pass `missing`). If the same "
        "question was already answered in this conversation it returns proceed with that answer."),
    "escalate": (
        "Escalate a request that needs a person: a decision requiring human judgment, a compliance "
        "or legal concern, sensitive data, a safety concern, or an action outside your scope. "
        "Returns the type, severity and exact phrase to say; an issue already escalated returns the "
        "existing open escalation instead of a new one."),
    "respond": (
        "Record the person's answer to an escalation. Call it as soon as the person replies to an "
        "escalation or clarifying question, with its escalation_id and their answer; then continue "
        "the task with that answer."),
}


class ClassifyArgs(BaseModel):
    request: str = Field(description="The request you received, verbatim.")
    context: dict[str, Any] | None = Field(
        default=None, description="Structured facts, e.g. {\"environment\": \"production\", \"record_count\": 5000}.")


class CheckScopeArgs(BaseModel):
    request: str = Field(description="The request you received, verbatim.")
    conversation_id: str | None = Field(default=None, description="Conversation id, to remember the decision.")
    capabilities: list[str] | None = Field(
        default=None, description="Capabilities you have, e.g. [\"database_access\", \"web_access\"].")


class ClarifyArgs(BaseModel):
    conversation_id: str = Field(description="Id of this conversation; the same for every call in it.")
    request: str = Field(description="The request you received, verbatim.")
    question: str = Field(description="The one question you need answered.")
    task_id: str | None = Field(default=None, description="Task inside the conversation, if there are several.")
    options: list[str] | None = Field(default=None, description="Options the person can choose from, if any.")
    missing: str | None = Field(default=None, description="The missing piece of information, if that is the issue.")


class EscalateArgs(BaseModel):
    conversation_id: str = Field(description="Id of this conversation; the same for every call in it.")
    request: str = Field(description="The request you received, verbatim.")
    task_id: str | None = Field(default=None, description="Task inside the conversation, if there are several.")
    question: str | None = Field(default=None, description="The question for the person, if you have one.")
    options: list[str] | None = Field(default=None, description="The options you see; never choose one yourself.")
    details: str | None = Field(default=None, description="One or two sentences of background.")
    context: dict[str, Any] | None = Field(
        default=None, description="Structured facts, e.g. {\"estimated_cost\": 250, \"breaking_change\": true}.")
    type: Literal["clarification", "conflict", "context", "decision", "compliance", "scope", "safety",
                  "technical"] | None = Field(
        default=None, description="Insist on escalating as this type when you are unsure, whatever the classifier "
                                  "says; omitted: the classifier decides.")


class RespondArgs(BaseModel):
    escalation_id: str = Field(description="The escalation answered: the `ref` returned with it, or its id, "
                                           "e.g. ESC-2026-001.")
    answer: str = Field(description="The person's answer, in their words or the option they chose.")
    conversation_id: str | None = Field(default=None, description="Id of this conversation; the escalation must belong to it.")


ARGS = {"classify": ClassifyArgs, "check_scope": CheckScopeArgs, "clarify": ClarifyArgs,
        "escalate": EscalateArgs, "respond": RespondArgs}


def result_content(result: EscalationResult) -> str:
    """What the model reads: the result as compact JSON, without empty fields."""
    return json.dumps(result.model_dump(mode="json", exclude_none=True, exclude_defaults=False), ensure_ascii=False)


def tool_error(exc: ToolException) -> str:
    return f"Error: {exc}. Fix the arguments and call the tool again, or continue without it."


def validation_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in errors())
    else:
        problems = str(exc)
    return f"Error: invalid arguments ({problems}). Call the tool again with arguments that match its schema."


def _bound_schema(schema: type[BaseModel], conversation_id: str) -> type[BaseModel]:
    """The schema without ``conversation_id``: the application supplies it, the model need not."""
    fields = {name: (f.annotation, f) for name, f in schema.model_fields.items() if name != "conversation_id"}
    return create_model(schema.__name__, __doc__=schema.__doc__, **fields)  # type: ignore[call-overload]


def _wrap(method: Callable[..., EscalationResult], bound: dict[str, Any],
          name: str) -> Callable[..., tuple[str, EscalationResult]]:
    """Every failure becomes a tool message the model reads: library errors with their message,
    anything unexpected logged here and reported without its details."""

    def run(**kwargs: Any) -> tuple[str, EscalationResult]:
        try:
            result = method(**{**kwargs, **bound})
        except EscalationMatrixError as exc:
            raise ToolException(str(exc)) from None
        except Exception:
            log.exception("unexpected error in tool %s", name)
            raise ToolException(f"{name} failed unexpectedly; the application log has the details") from None
        return result_content(result), result

    return run


def _relay(guard: Any) -> Callable[..., EscalationResult]:
    """``respond`` as the agent: the person's answer to the agent's own question, never a hand-off,
    an L4 escalation or an operator's record (see ``access.check_agent_answer``)."""

    def respond(escalation_id: str, answer: str, conversation_id: str | None = None) -> EscalationResult:
        return guard.respond(escalation_id, answer, responder="agent", role="agent", conversation_id=conversation_id)

    return respond


def make_tools(guard: Any, *, conversation_id: str | None = None) -> list[BaseTool]:
    """The five tools over ``guard`` (a ``ConversationGuard``). With ``conversation_id`` the tools
    carry it themselves and the model is not asked for it."""
    tools: list[BaseTool] = []
    for name, schema in ARGS.items():
        bound: dict[str, Any] = {}
        if conversation_id is not None and "conversation_id" in schema.model_fields:
            schema, bound = _bound_schema(schema, conversation_id), {"conversation_id": conversation_id}
        method = _relay(guard) if name == "respond" else getattr(guard, name)
        tools.append(StructuredTool.from_function(
            func=_wrap(method, bound, name), name=name, description=DESCRIPTIONS[name],
            args_schema=schema, infer_schema=False, response_format="content_and_artifact",
            handle_tool_error=tool_error, handle_validation_error=validation_error,
        ))
    return tools


def escalation_tools(db: str | Path | None = None, policy: Any = None, *, conversation_id: str | None = None,
                     embedder: Any = None) -> list[BaseTool]:
    """Build a ``ConversationGuard`` on the SQLite file ``db`` (default: ESCALATION_MATRIX_DB or the
    per-user state file) and the policy (default: the shipped one), and return its tools."""
    from .classifier import Classifier
    from .guard import ConversationGuard
    from .loader import load_policy
    from .store import Store

    policy = policy or load_policy()
    guard = ConversationGuard(policy, Classifier(policy, embedder=embedder), Store(db))
    return make_tools(guard, conversation_id=conversation_id)
