"""escalation-matrix: tells an AI agent, in milliseconds and without an LLM call, whether to proceed
or escalate to a person, and remembers per conversation what was already asked.

The public API, importable from the package itself (each loads its module on first use, so
``import escalation_matrix`` stays cheap)::

    from escalation_matrix import open_guard
    guard = open_guard(db="escalations.db")      # shipped policy, bundled model, warmed up
    result = guard.escalate("chat-42", "Delete every customer record older than a year")
    result.action, result.message                # what the agent does next, what it says

- ``open_guard(policy=None, db=None, *, embedder=None)``: the conversation guard (the one factory
  behind the MCP server, the LangChain tools and the CLI).
- ``ConversationGuard``: escalate, clarify, check_scope, respond, classify, history, pending.
- ``load_policy(policies=None, phrases=None, embeddings=None)``: the policy folders, validated.
- ``Policy``, ``Classifier``, ``Store``: the loaded policy, the classifier, the SQLite state file.
- ``EscalationResult``, ``Action``, ``Severity``, ``EscalationType``: what every tool returns.
- ``build_server``: the MCP server; ``escalation_tools``: the LangChain tools (``[langchain]`` extra).
- ``render``, ``card``: an escalation as markdown, text, HTML or a chat-frontend card.
- ``EscalationMatrixError`` and its subclasses ``InputError``, ``PolicyError``, ``NotFoundError``,
  ``StateError``: what the library raises for a caller to handle.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "open_guard": "factory",
    "ConversationGuard": "guard",
    "load_policy": "loader",
    "Policy": "loader",
    "Classifier": "classifier",
    "Store": "store",
    "EscalationResult": "models",
    "Action": "models",
    "Severity": "models",
    "EscalationType": "models",
    "build_server": "mcp_app",
    "escalation_tools": "langchain",
    "render": "render",
    "card": "render",
    "EscalationMatrixError": "errors",
    "InputError": "errors",
    "PolicyError": "errors",
    "NotFoundError": "errors",
    "StateError": "errors",
}

__all__ = ["Action", "Classifier", "ConversationGuard", "EscalationMatrixError", "EscalationResult", "EscalationType",
           "InputError", "NotFoundError", "Policy", "PolicyError", "Severity", "StateError", "Store", "build_server",
           "card", "escalation_tools", "load_policy", "open_guard", "render"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'escalation_matrix' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
