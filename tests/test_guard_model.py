"""Conversation rules that depend on meaning, with the real bundled model."""

from __future__ import annotations

import pytest

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.models import Action, EscalationType
from escalation_matrix.store import Store

pytestmark = [pytest.mark.backends, pytest.mark.model]


@pytest.fixture
def guard(policy, classifier, db_path):
    return ConversationGuard(policy, classifier, Store(db_path))


@pytest.mark.parametrize("first, paraphrase", [
    ("Which region should the server be deployed in?", "In what region do you want the server deployed?"),
    ("Should the discount apply to existing customers too?", "Does the discount also apply to customers we already have?"),
])
def test_a_paraphrase_of_an_answered_question_gets_the_earlier_answer(guard, first, paraphrase):
    asked = guard.clarify("chat-1", "Set up the new server", first)
    assert asked.action is Action.escalate
    guard.respond(asked.escalation_id, "Use eu-west-1")
    again = guard.clarify("chat-1", "Set up the new server", paraphrase)
    assert (again.action, again.answer, again.escalation_id) == (Action.proceed, "Use eu-west-1", asked.escalation_id)
    assert guard.store.count("escalations") == 1


def test_a_different_question_is_asked(guard):
    asked = guard.clarify("chat-1", "Set up the new server", "Which region should the server be deployed in?")
    guard.respond(asked.escalation_id, "Use eu-west-1")
    other = guard.clarify("chat-1", "Set up the new server", "How much memory should the server have?")
    assert other.action is Action.escalate and other.escalation_id != asked.escalation_id


def test_a_paraphrase_of_an_open_question_is_the_same_escalation(guard):
    asked = guard.clarify("chat-1", "Set up the new server", "Which region should the server be deployed in?")
    again = guard.clarify("chat-1", "Set up the new server", "Which region should the server be deployed to?")
    assert again.repeated and again.escalation_id == asked.escalation_id


def test_format_question_is_a_minor_preference(guard):
    result = guard.clarify("chat-1", "Summarise the meeting notes", "Which format do you want, list or paragraph?")
    assert result.action is Action.proceed and result.default and result.escalation_id is None


def test_seed_example_5_exceeds_scope(guard):
    result = guard.check_scope("Delete all customer email addresses from the database.", conversation_id="chat-5")
    assert (result.in_scope, result.type) == (False, EscalationType.scope)
    assert result.phrase == "I can't perform that action, but I can help if you adjust the request."
    assert result.options and result.escalation_id


@pytest.mark.parametrize("capabilities, in_scope", [(["web_access"], False), (["database_access"], True)])
def test_seed_example_6_technical_limitation_depends_on_capabilities(guard, capabilities, in_scope):
    result = guard.check_scope("Run a SQL query to calculate average order value from last month.",
                               capabilities=capabilities)
    assert result.in_scope is in_scope
    if not in_scope:
        assert result.type is EscalationType.technical
        assert result.phrase == "I'm not able to perform that task, but I can help in another way."
        assert any("query" in o.lower() or "script" in o.lower() for o in result.options)


@pytest.mark.parametrize("capabilities, in_scope", [(None, False), (["booking_access"], True)])
def test_an_in_person_booking_is_in_scope_only_with_a_booking_tool(guard, capabilities, in_scope):
    result = guard.check_scope("Schedule an appointment with my physiotherapist for Monday morning.",
                               capabilities=capabilities)
    assert result.in_scope is in_scope
    if not in_scope:
        assert result.type is EscalationType.technical
