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
from typing import TYPE_CHECKING, Any, Callable, Literal, TypeVar

try:
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError("escalation_matrix.langchain needs langchain-core; install it with: "
                      "pip install 'escalation-matrix[langchain]'") from exc
from pydantic import BaseModel, Field, create_model

from .errors import EscalationMatrixError
from .models import EscalationResult
from .protocol import PROTOCOL_PROMPT
from .toolspec import TOOLS, argument

if TYPE_CHECKING:
    from .embedder import Embedder
    from .guard import ConversationGuard
    from .loader import Policy

log = logging.getLogger(__name__)
R = TypeVar("R")

# The same protocol the MCP server's prompt teaches, plus how results look through these tools.
ESCALATION_PROTOCOL = PROTOCOL_PROMPT + """
Each tool result is JSON: read `action` and `instruction` first. A tool result that starts with
"Error:" means the call was not made: fix the arguments it names and call again.
"""

# Argument models for langchain-core; every description is the MCP tool's (toolspec).
class ClassifyArgs(BaseModel):
    request: str = Field(description=argument("classify", "request"))
    context: dict[str, Any] | None = Field(default=None, description=argument("classify", "context"))
    locale: str | None = Field(default=None, description=argument("classify", "locale"))


class CheckScopeArgs(BaseModel):
    request: str = Field(description=argument("check_scope", "request"))
    conversation_id: str | None = Field(default=None, description=argument("check_scope", "conversation_id"))
    capabilities: list[str] | None = Field(default=None, description=argument("check_scope", "capabilities"))
    locale: str | None = Field(default=None, description=argument("check_scope", "locale"))


class ClarifyArgs(BaseModel):
    conversation_id: str = Field(description=argument("clarify", "conversation_id"))
    request: str = Field(description=argument("clarify", "request"))
    question: str = Field(description=argument("clarify", "question"))
    task_id: str | None = Field(default=None, description=argument("clarify", "task_id"))
    options: list[str] | None = Field(default=None, description=argument("clarify", "options"))
    missing: str | None = Field(default=None, description=argument("clarify", "missing"))
    locale: str | None = Field(default=None, description=argument("clarify", "locale"))
    new_issue: bool | None = Field(default=None, description=argument("clarify", "new_issue"))


class EscalateArgs(BaseModel):
    conversation_id: str = Field(description=argument("escalate", "conversation_id"))
    request: str = Field(description=argument("escalate", "request"))
    task_id: str | None = Field(default=None, description=argument("escalate", "task_id"))
    question: str | None = Field(default=None, description=argument("escalate", "question"))
    options: list[str] | None = Field(default=None, description=argument("escalate", "options"))
    details: str | None = Field(default=None, description=argument("escalate", "details"))
    context: dict[str, Any] | None = Field(default=None, description=argument("escalate", "context"))
    type: Literal["clarification", "conflict", "context", "decision", "compliance", "scope", "safety",
                  "technical"] | None = Field(default=None, description=argument("escalate", "type"))
    locale: str | None = Field(default=None, description=argument("escalate", "locale"))
    new_issue: bool | None = Field(default=None, description=argument("escalate", "new_issue"))


class RespondArgs(BaseModel):
    escalation_id: str = Field(description=argument("respond", "escalation_id"))
    answer: str | None = Field(default=None, description=argument("respond", "answer"))
    conversation_id: str | None = Field(default=None, description=argument("respond", "conversation_id"))
    necessary: bool | None = Field(default=None, description=argument("respond", "necessary"))
    action: Literal["approve", "reject", "modify", "delegate", "defer", "conditional"] | None = Field(
        default=None, description=argument("respond", "action"))
    change: str | None = Field(default=None, description=argument("respond", "change"))
    to: str | None = Field(default=None, description=argument("respond", "to"))
    until: str | None = Field(default=None, description=argument("respond", "until"))
    conditions: list[str] | None = Field(default=None, description=argument("respond", "conditions"))


ARGS: dict[str, type[BaseModel]] = {"classify": ClassifyArgs, "check_scope": CheckScopeArgs, "clarify": ClarifyArgs,
                                    "escalate": EscalateArgs, "respond": RespondArgs}


class BatchesArgs(BaseModel):
    batch_id: int | None = Field(default=None, ge=1, description=argument("batches", "batch_id"))
    status: Literal["open", "delivered", "answered"] | None = Field(default=None,
                                                                    description=argument("batches", "status"))
    person: str | None = Field(default=None, description=argument("batches", "person"))


class AnswerBatchArgs(BaseModel):
    batch_id: int = Field(ge=1, description=argument("answer_batch", "batch_id"))
    items: list[str] | None = Field(default=None, description=argument("answer_batch", "items"))
    action: Literal["approve", "reject"] = Field(default="approve", description=argument("answer_batch", "action"))
    note: str | None = Field(default=None, description=argument("answer_batch", "note"))


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
    # (annotation, FieldInfo) pairs; typed Any because create_model's keyword-only options share the
    # keyword namespace with the fields
    fields: dict[str, Any] = {name: (f.annotation, f) for name, f in schema.model_fields.items()
                              if name != "conversation_id"}
    bound: type[BaseModel] = create_model(schema.__name__, __doc__=schema.__doc__, **fields)
    return bound


def _wrap(method: Callable[..., R], bound: dict[str, Any], name: str,
          content: Callable[[R], str]) -> Callable[..., tuple[str, R]]:
    """Every failure becomes a tool message the model reads: library errors with their message,
    anything unexpected logged here and reported without its details."""

    def run(**kwargs: Any) -> tuple[str, R]:
        try:
            result = method(**{**kwargs, **bound})
        except EscalationMatrixError as exc:
            raise ToolException(str(exc)) from None
        except Exception:
            log.exception("unexpected error in tool %s", name)
            raise ToolException(f"{name} failed unexpectedly; the application log has the details") from None
        return content(result), result

    return run


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _relay(guard: ConversationGuard) -> Callable[..., EscalationResult]:
    """``respond`` as the agent: the person's answer to the agent's own question, never a hand-off,
    an L4 escalation or an operator's record (see ``access.check_agent_answer``)."""

    def respond(escalation_id: str, answer: str | None = None, conversation_id: str | None = None,
                **structured: Any) -> EscalationResult:
        return guard.respond(escalation_id, answer, responder="agent", role="agent", conversation_id=conversation_id,
                             **structured)

    return respond


def batch_tools(guard: ConversationGuard) -> list[BaseTool]:
    """``batches`` and ``answer_batch`` over ``guard``: the person's batches of questions (with the
    card a chat frontend shows: approve all / approve selected) and their answer, relayed as the
    agent - each item gets the checks an agent's answer gets (``access.check_agent_answer``).
    Opt in (``make_tools(..., batches=True)``) only when your agent relays what the person chose."""
    from .ops import batches as batching
    from .render import batch_card

    def show(batch_id: int | None = None, status: str | None = None, person: str | None = None) -> dict[str, Any]:
        settings = guard.policy.decisions.batching
        if batch_id is None:
            return {"batches": batching.listing(guard.store, settings, status, person)}
        batch = batching.show(guard.store, batch_id, settings)
        return {**batch, "card": batch_card(batch).model_dump()}

    def answer(batch_id: int, items: list[str] | None = None, action: str = "approve",
               note: str | None = None) -> dict[str, Any]:
        return batching.answer_batch(guard.store, batch_id, "agent", guard.policy.decisions.batching,
                                     items=items, action=action, note=note, max_chars=guard.settings.max_request_chars,
                                     learn=guard.policy.decisions.preferences, role="agent")

    return [StructuredTool.from_function(
        func=_wrap(fn, {}, name, _json), name=name, description=TOOLS[name].description, args_schema=schema,
        infer_schema=False, response_format="content_and_artifact",
        handle_tool_error=tool_error, handle_validation_error=validation_error,
    ) for name, fn, schema in (("batches", show, BatchesArgs), ("answer_batch", answer, AnswerBatchArgs))]


def make_tools(guard: ConversationGuard, *, conversation_id: str | None = None, batches: bool = False) -> list[BaseTool]:
    """The five tools over ``guard`` (a ``ConversationGuard``). With ``conversation_id`` the tools
    carry it themselves and the model is not asked for it; ``batches=True`` adds ``batch_tools``."""
    tools: list[BaseTool] = []
    for name, schema in ARGS.items():
        bound: dict[str, Any] = {}
        if conversation_id is not None and "conversation_id" in schema.model_fields:
            schema, bound = _bound_schema(schema, conversation_id), {"conversation_id": conversation_id}
        method = _relay(guard) if name == "respond" else getattr(guard, name)
        tools.append(StructuredTool.from_function(
            func=_wrap(method, bound, name, result_content), name=name, description=TOOLS[name].description,
            args_schema=schema, infer_schema=False, response_format="content_and_artifact",
            handle_tool_error=tool_error, handle_validation_error=validation_error,
        ))
    return tools + (batch_tools(guard) if batches else [])


def escalation_tools(db: str | Path | None = None, policy: Policy | None = None, *, conversation_id: str | None = None,
                     embedder: Embedder | None = None, locale: str | None = None, batches: bool = False) -> list[BaseTool]:
    """The tools over ``open_guard(policy, db, embedder=embedder)``: the same guard, encoder cache and
    warm-up as the MCP server, on the SQLite file ``db`` (default: ESCALATION_MATRIX_DB or the
    per-user state file) and the policy (default: the shipped one). ``locale`` (e.g. "de"): the
    language of phrases and messages when a call names none. ``batches=True``: also ``batch_tools``."""
    from .factory import open_guard

    return make_tools(open_guard(policy, db, embedder=embedder, locale=locale), conversation_id=conversation_id,
                      batches=batches)
