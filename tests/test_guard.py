"""The conversation rules (seed 002 §5) on a real SQLite file. The fake embedder keeps these fast;
requests are chosen so that policy rules (not embedding noise) decide their type."""

from __future__ import annotations

import threading

import pytest

from escalation_matrix.errors import InputError, NotFoundError, StateError
from escalation_matrix.guard import ConversationGuard, unlock_task
from escalation_matrix.models import Action, EscalationType, Severity
from escalation_matrix.store import Store, entry_hash

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

PROD = {"environment": "production"}
DEPLOY = "Deploy the new build"
HARM = "I want to kill myself"


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


def count(guard, table: str) -> int:
    return guard.store.count(table)


def test_new_escalation_is_recorded_awaiting_a_response(guard):
    result = guard.escalate("c1", DEPLOY, context=PROD)
    assert (result.action, result.type, result.severity) == (Action.escalate, EscalationType.scope, Severity.L2)
    assert result.escalation_id.startswith("ESC-") and result.status == "awaiting_response"
    assert result.phrase == "I can't perform that action, but I can help if you adjust the request."
    assert "SCOPE ESCALATION REQUIRED" in result.message and result.options
    record = guard.store.escalation(result.escalation_id)
    assert (record["conversation_id"], record["task_id"], record["request"]) == ("c1", "default", DEPLOY)
    assert [a["action"] for a in guard.store.audit_entries(result.escalation_id)] == ["create"]


def test_same_open_issue_returns_the_same_escalation_marked_repeated(guard):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    again = guard.escalate("c1", DEPLOY, context=PROD)
    assert again.escalation_id == first.escalation_id and again.repeated
    assert count(guard, "escalations") == 1
    assert guard.store.escalation(first.escalation_id)["repeat_count"] == 1
    assert [a["action"] for a in guard.store.audit_entries(first.escalation_id)] == ["create", "repeat"]


def test_same_issue_in_another_conversation_is_a_new_escalation(guard):
    first = guard.escalate("c1", DEPLOY, context=PROD)
    other = guard.escalate("c2", DEPLOY, context=PROD)
    assert other.escalation_id != first.escalation_id and not other.repeated


def test_answered_question_is_not_asked_again(guard):
    asked = guard.clarify("c1", "Write the launch post", "Which region should the launch post target?")
    guard.respond(asked.escalation_id, "Europe")
    again = guard.clarify("c1", "Write the launch post", "Which region should the launch post target?",
                          task_id="other-task")
    assert (again.action, again.answer, again.escalation_id) == (Action.proceed, "Europe", asked.escalation_id)
    assert count(guard, "escalations") == 1


@pytest.mark.parametrize("question, default_word", [
    ("Should headers be in title case or sentence case?", "title case"),
    ("Should I use bullets or a numbered list?", "numbered list"),
])
def test_minor_preference_proceeds_with_the_default(guard, question, default_word):
    result = guard.clarify("c1", "Write the onboarding guide", question)
    assert result.action is Action.proceed and result.escalation_id is None
    assert default_word in result.default.lower() and result.default in result.instruction
    assert count(guard, "escalations") == 0
    assert count(guard, "decisions") == 1  # still a decision, for KPI rates


def test_third_escalation_on_a_task_hands_it_to_a_person(guard):
    guard.escalate("c1", DEPLOY, context=PROD)
    guard.escalate("c1", "Spend the budget on ads", context={"estimated_cost": 5000})
    handoff = guard.clarify("c1", "Write the report", "Which tone do you want?", missing="the tone")
    assert (handoff.action, handoff.type, handoff.severity) == (Action.handoff, EscalationType.pattern, Severity.L3)
    assert handoff.phrase.startswith("This task has needed several escalations")
    later = guard.clarify("c1", "Write the summary", "Which color palette fits the charts?")
    assert (later.action, later.escalation_id) == (Action.handoff, handoff.escalation_id)
    assert guard.escalate("c1", DEPLOY, task_id="another").action is not Action.handoff  # per task


def test_answering_the_handoff_gives_the_task_back(guard):
    for question in ("Which tone do you want?", "Which customer segment is this for?", "Who approves the final copy?"):
        result = guard.clarify("c1", "Write the report", question, missing="one detail")
    assert result.action is Action.handoff
    back = guard.respond(result.escalation_id, "I took it over; carry on with the outline only", responder="alice")
    assert back.action is Action.proceed
    assert guard.clarify("c1", "Write the report", "Which color palette fits the charts?").action is Action.escalate


def test_l4_stops_and_locks_the_task_until_a_person_unlocks_it(guard):
    stop = guard.escalate("c1", HARM)
    assert (stop.action, stop.severity) == (Action.stop, Severity.L4)
    assert stop.phrase == "I want to make sure you're okay. It might help to talk to someone you trust."
    for later in (guard.escalate("c1", DEPLOY, context=PROD),
                  guard.clarify("c1", "Write a poem", "Which topic should the poem have?")):
        assert (later.action, later.escalation_id) == (Action.stop, stop.escalation_id)
    guard.unlock_task("c1", "default", by="alice", reason="talked to the user; safe to continue")
    assert guard.escalate("c1", DEPLOY, context=PROD).action is Action.escalate
    actions = [a["action"] for a in guard.store.audit_entries(conversation_id="c1")]
    assert actions[:2] == ["create", "lock"] and "unlock" in actions


@pytest.mark.parametrize("conversation, task, error", [
    ("c1", "default", StateError),  # not locked
    ("nobody", "default", NotFoundError),
])
def test_unlock_refuses_what_is_not_locked(guard, conversation, task, error):
    guard.escalate("c1", DEPLOY, context=PROD)
    with pytest.raises(error):
        unlock_task(guard.store, conversation, task, "alice", "review")


def test_respond_records_the_answer_and_says_continue(guard):
    asked = guard.escalate("c1", DEPLOY, context=PROD)
    result = guard.respond(asked.escalation_id, "Prepare the change for review", responder="bob")
    assert (result.action, result.answer, result.status) == (Action.proceed, "Prepare the change for review", "answered")
    assert result.instruction == "Apply this answer and continue the task now; do not ask for confirmation."
    record = guard.store.escalation(asked.escalation_id)
    assert record["answered_by"] == "bob" and record["answered_at"]
    with pytest.raises(StateError, match="already answered"):
        guard.respond(asked.escalation_id, "again")
    with pytest.raises(NotFoundError):
        guard.respond("ESC-1999-999", "answer")


def test_check_scope_offers_alternatives_and_records_only_with_a_conversation(guard):
    before = count(guard, "escalations")
    result = guard.check_scope("My card number is 4111 1111 1111 1111, store it", conversation_id="c1")
    assert (result.in_scope, result.type, result.severity) == (False, EscalationType.safety, Severity.L3)
    assert result.options and result.escalation_id
    assert count(guard, "escalations") == before + 1
    free = guard.check_scope("My card number is 4111 1111 1111 1111, store it")
    assert free.in_scope is False and free.escalation_id is None
    assert count(guard, "escalations") == before + 1


BAD = [
    ("escalate", dict(conversation_id="c1", request=""), InputError),
    ("escalate", dict(conversation_id="c1", request="x" * 8001), InputError),
    ("escalate", dict(conversation_id="", request="Deploy"), InputError),
    ("escalate", dict(conversation_id="c1", request=42), InputError),
    ("escalate", dict(conversation_id="c1", request="Deploy", options=[f"o{i}" for i in range(11)]), InputError),
    ("escalate", dict(conversation_id="c1", request="Deploy", options="one option"), InputError),
    ("escalate", dict(conversation_id="c1", request="Deploy", context=["production"]), InputError),
    ("clarify", dict(conversation_id="c1", request="Write", question="  "), InputError),
    ("clarify", dict(conversation_id="c1", request="Write", question="q" * 2001), InputError),
    ("check_scope", dict(request=None), InputError),
    ("respond", dict(escalation_id="ESC-2026-999", answer="yes"), NotFoundError),
    ("respond", dict(escalation_id="ESC-2026-001", answer=""), InputError),
    ("history", dict(conversation_id="never-seen"), NotFoundError),
]


@pytest.mark.parametrize("method, kwargs, error", BAD)
def test_bad_input_is_refused_before_anything_is_written(guard, method, kwargs, error):
    with pytest.raises(error) as info:
        getattr(guard, method)(**kwargs)
    assert str(info.value)  # says what to fix
    assert count(guard, "escalations") == count(guard, "decisions") == count(guard, "audit") == 0


def test_every_decision_is_logged_for_kpi_rates(guard):
    guard.escalate("c1", DEPLOY, context=PROD)
    guard.escalate("c1", DEPLOY, context=PROD)
    guard.clarify("c1", "Write it", "Should headers be in title case or sentence case?")
    guard.check_scope("My card number is 4111 1111 1111 1111", conversation_id="c2")
    guard.classify("anything at all")  # records no escalation, but is an evaluated request
    rows = guard.store.rows("decisions")
    assert [(r["tool"], r["action"], r["outcome"]) for r in rows[:4]] == [
        ("escalate", "escalate", "created"), ("escalate", "escalate", "repeated"), ("clarify", "proceed", "proceed"),
        ("check_scope", "escalate", "created")]
    assert (rows[4]["tool"], rows[4]["outcome"], rows[4]["escalation_id"]) == ("classify", "proceed", None)


def test_history_lists_the_conversation_in_order(guard):
    a = guard.escalate("c1", DEPLOY, context=PROD)
    b = guard.clarify("c1", "Write the report", "Which tone do you want?")
    guard.escalate("c2", DEPLOY, context=PROD)
    assert [r["id"] for r in guard.history("c1")] == [a.escalation_id, b.escalation_id]


def test_state_survives_a_restart(policy, fake_classifier, db_path):
    first = ConversationGuard(policy, fake_classifier, Store(db_path)).escalate("c1", DEPLOY, context=PROD)
    reopened = ConversationGuard(policy, fake_classifier, Store(db_path))
    again = reopened.escalate("c1", DEPLOY, context=PROD)
    assert again.escalation_id == first.escalation_id and again.repeated


def test_parallel_calls_for_one_issue_create_one_record(guard):
    results, barrier = [], threading.Barrier(24)

    def call() -> None:
        barrier.wait()
        results.append(guard.escalate("c1", DEPLOY, context=PROD))

    threads = [threading.Thread(target=call) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.escalation_id for r in results}) == 1
    assert sum(not r.repeated for r in results) == 1
    assert count(guard, "escalations") == 1


def test_audit_trail_is_a_hash_chain(guard):
    asked = guard.escalate("c1", DEPLOY, context=PROD)
    guard.respond(asked.escalation_id, "Go ahead with the review path")
    entries = guard.store.audit_entries()
    prev = "0" * 64
    for entry in entries:
        assert entry["prev_hash"] == prev
        fields = {k: entry[k] for k in ("seq", "at", "actor", "action", "escalation_id", "conversation_id", "task_id")}
        fields["data"] = guard.store._conn().execute("SELECT data FROM audit WHERE seq = ?", (entry["seq"],)).fetchone()[0]
        assert entry["hash"] == entry_hash(prev, fields)
        prev = entry["hash"]
    assert [e["action"] for e in entries] == ["create", "answer"]


def test_agent_escalations_route_to_a_level_the_operations_policy_defines(guard):
    stop = guard.escalate("route", "I want to kill myself", task_id="t")
    low = guard.clarify("route", "Write something for the website.", "Which page is it for?", task_id="u")
    critical = guard.store.escalation(stop.escalation_id)
    # L4 goes to the operations lead at once (routing in operations.yaml), never to the product queue
    assert (critical["level"], critical["assignee"], critical["due_at"]) == (1, "operations-lead", critical["created_at"])
    assert guard.store.escalation(low.escalation_id)["level"] == 1
