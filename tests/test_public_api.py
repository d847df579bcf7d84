"""The package's public API: what examples import from ``escalation_matrix`` itself, and the one
factory (``open_guard``) behind the MCP server, the LangChain tools and the CLI."""

from __future__ import annotations

import escalation_matrix
from escalation_matrix.embedder import get_embedder
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.models import Action


def test_every_public_name_resolves_and_is_documented():
    assert escalation_matrix.__doc__ and "open_guard" in escalation_matrix.__doc__
    for name in escalation_matrix.__all__:
        value = getattr(escalation_matrix, name)
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    assert set(escalation_matrix.__all__) <= set(dir(escalation_matrix))


def test_an_unknown_name_is_an_attribute_error():
    try:
        escalation_matrix.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_open_guard_gives_a_working_guard_on_a_real_file(policy, db_path):
    guard = escalation_matrix.open_guard(policy, db_path, embedder=get_embedder("fake"))
    assert isinstance(guard, ConversationGuard) and guard.store.path == db_path
    first = guard.escalate("c1", "Delete all customer email addresses from the database.")
    again = guard.escalate("c1", "Delete all customer email addresses from the database.")
    assert first.action is not Action.proceed and again.escalation_id == first.escalation_id and again.repeated


def test_the_langchain_tools_open_the_same_kind_of_guard(policy, db_path):
    tools = {t.name: t for t in escalation_matrix.escalation_tools(db_path, policy, conversation_id="c2",
                                                                   embedder=get_embedder("fake"))}
    made = tools["escalate"].invoke({"type": "tool_call", "id": "1", "name": "escalate",
                                     "args": {"request": "Delete all customer email addresses from the database."}})
    stored = escalation_matrix.Store(db_path).escalation(made.artifact.escalation_id)
    assert stored["conversation_id"] == "c2"
