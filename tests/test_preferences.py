"""Preference learning: a person's consistent answers become a preference that answers the same
question for them (saying which preference, and how to revoke it); contradictions, time and a
revocation send the question back to the person; safety, L4 and critical decisions never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from mcp import Client

from escalation_matrix import preferences as prefs
from escalation_matrix.cli import main
from escalation_matrix.decisions_policy import Preferences
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store
from test_cli_core import run
from test_policy_check import edit

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

SETTINGS = Preferences()
ALICE = {"person": "alice", "organisation": "acme"}
QUESTION = "Should I use the staging database for the integration tests?"
REQUEST = "Run the integration tests"


@pytest.fixture
def guard(policy, fake_classifier, db_path, clock):
    return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))


def ask(guard, n, context=ALICE, question=QUESTION, request=REQUEST, type="decision"):
    """The agent asks the person a decision (the fast embedder's own type would vary with the words)."""
    return guard.escalate(f"chat-{n}-{question[:5]}", request, question=question, context=context, type=type)


def answer_times(guard, clock, times, action="approve", context=ALICE, start=0):
    """The person is asked ``times`` times (a day apart, new conversations) and answers each with ``action``."""
    for i in range(start, start + times):
        clock.moment += timedelta(days=1)
        result = ask(guard, i, context)
        assert result.action.value == "escalate", result
        guard.respond(result.escalation_id, action=action, responder="alice")


# --- the arithmetic ---
@pytest.mark.parametrize("agree, against, expected", [
    (0, 0, 0.0),
    (1, 0, 0.6),             # 1/2 x 1.2
    (3, 0, 0.9),             # 3/4 x 1.2
    (4, 0, 0.96),            # 4/5 x 1.2: at the threshold after four agreeing answers
    (5, 0, 0.99),            # 5/6 x 1.2 = 1.0, capped
    (4, 4, 4 / 9 * 1.1),     # half contradicting: half the boost
    (1, 5, 1 / 7 * (1 + 0.2 / 6)),
])
def test_confidence_is_agreeing_over_all_plus_one_boosted_by_consistency_and_capped(agree, against, expected):
    assert prefs.confidence(agree, against, SETTINGS) == pytest.approx(expected)


def test_an_answer_counts_half_after_the_half_life():
    assert prefs.decay(30, 30) == pytest.approx(0.5)
    assert prefs.decay(0, 30) == 1.0 and prefs.decay(90, 30) == pytest.approx(0.125)


def test_each_answer_adds_one_to_its_tally_after_the_old_weights_decay():
    tally = prefs.updated({"approve": 4.0, "reject": 0.005}, "approve", 0.5)
    assert tally == {"approve": 3.0}  # a weight under 1% is forgotten
    tally = prefs.updated(tally, "reject", 1.0)
    assert tally == {"approve": 3.0, "reject": 1.0}
    assert prefs.split(tally, "reject") == (1.0, 3.0) and prefs.split(tally, "approve") == (3.0, 1.0)


@pytest.mark.parametrize("answer, action, key", [
    ("Approved.", "approve", "approve"),
    ("Approved. fine by me", "approve", "approve"),
    ("Use Postgres.", None, "use postgres"),
    ("  use   postgres ", None, "use postgres"),
    ("Approved with a change: canary first", "modify", "modify:approved with a change: canary first"),
])
def test_two_answers_are_the_same_when_their_action_or_words_are(answer, action, key):
    assert prefs.answer_key(answer, action) == key


# --- learning and answering through the guard ---
def test_consistent_answers_make_a_preference_that_answers_the_next_question(guard, clock):
    answer_times(guard, clock, 5)  # a day apart: four would be just under 0.95 after the decay
    clock.moment += timedelta(days=1)
    result = ask(guard, 99)
    assert result.action.value == "proceed" and result.escalation_id is None
    assert result.answer == "Approved." and result.response.action == "approve"
    use = result.preference
    assert (use.scope, use.scope_id, use.answers) == ("person", "alice", 5)
    assert use.confidence >= 0.95 and "revoke" in use.revoke and str(use.id) in result.instruction
    actions = [e["action"] for e in guard.store.audit_entries()]
    assert actions.count("auto_answer") == 1 and "preference_created" in actions
    outcome = guard.store._conn().execute("SELECT outcome FROM decisions ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert outcome == "auto_answered"


def test_three_answers_are_not_enough_and_another_persons_preference_never_answers(guard, clock):
    answer_times(guard, clock, 3)
    assert ask(guard, 50).action.value == "escalate"
    answer_times(guard, clock, 2, start=60)
    assert ask(guard, 70, context={"person": "bob"}).action.value == "escalate"


def test_a_different_question_is_asked(guard, clock):
    answer_times(guard, clock, 5)
    other = ask(guard, 80, question="Should I delete the old build artifacts from the shared drive?",
                request="Clean up the build server")
    assert other.action.value == "escalate"


def test_changing_ones_mind_lowers_confidence_until_the_new_answer_is_consistent(guard, clock):
    answer_times(guard, clock, 2)
    answer_times(guard, clock, 1, action="reject", start=10)
    [row] = prefs.listing(guard.store, SETTINGS, scope="person")
    assert (row["answer"], row["agreeing"], row["changes"]) == ("Rejected.", 1, 1)
    assert row["confidence"] < 0.5 and not row["answers_now"]
    asked = 0
    while asked < 30:
        clock.moment += timedelta(days=1)
        result = ask(guard, 100 + asked)
        if result.action.value == "proceed":
            break
        asked += 1
        guard.respond(result.escalation_id, action="reject", responder="alice")
    assert result.answer == "Rejected." and result.preference.answers == asked + 1
    assert asked > 4  # the old approvals weigh against it: more answers than a fresh preference needs


def test_a_preference_fades_when_nobody_confirms_it(guard, clock):
    answer_times(guard, clock, 5)
    clock.moment += timedelta(days=60)
    assert ask(guard, 90).action.value == "escalate"


def test_the_organisation_answers_for_a_colleague_without_a_preference(guard, clock):
    answer_times(guard, clock, 5)
    result = ask(guard, 91, context={"person": "carol", "organisation": "acme"})
    assert result.action.value == "proceed" and result.preference.scope == "organisation"


def test_safety_and_critical_decisions_are_never_answered_from_a_preference(guard, clock):
    answer_times(guard, clock, 5)
    critical = ask(guard, 92, context={**ALICE, "environment": "production", "security_impact": True,
                                       "data_loss": True, "reversible": False, "financial_impact": 50000})
    assert critical.action.value != "proceed" and critical.preference is None
    assert not prefs.answerable("safety", "L2", SETTINGS) and not prefs.answerable("decision", "L4", SETTINGS)


def test_deferring_or_delegating_teaches_nothing(guard, clock):
    result = ask(guard, 1)
    guard.respond(result.escalation_id, action="defer", until="2030-01-01T00:00:00Z", responder="alice")
    assert prefs.listing(guard.store, SETTINGS) == []


def test_no_person_in_the_context_learns_nothing(guard, clock):
    answer_times(guard, clock, 5, context={})
    assert prefs.listing(guard.store, SETTINGS) == []


def test_policy_can_turn_it_off(data_copy, fake_classifier, db_path, clock):
    edit(data_copy / "policies/decisions.yaml", "preferences:\n  enabled: true", "preferences:\n  enabled: false")
    off = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    guard = ConversationGuard(off, fake_classifier, Store(db_path, clock=clock))
    answer_times(guard, clock, 6)
    assert prefs.listing(guard.store, SETTINGS) == []


@pytest.mark.parametrize("old, new, message", [
    ("threshold: 0.95\n  cap: 0.99", "threshold: 0.99\n  cap: 0.97", "preferences.threshold: threshold 0.99 is above cap"),
    ("cap: 0.99", "cap: 1.0", "preferences.cap"),
    ("threshold: 0.95\n  cap", "threshold: 0.4\n  cap", "preferences.threshold"),
    ("half_life_days: 30", "half_life_days: 0", "preferences.half_life_days"),
    ("min_answers: 3", "min_answers: 0", "preferences.min_answers"),
    ("consistency_boost: 0.2", "consistency_boost: -1", "preferences.consistency_boost"),
    ("types: [clarification, context, decision, technical]", "types: [decision, safety]",
     "preferences.types: a preference never answers safety"),
    ("max_severity: L3", "max_severity: L4", "preferences.max_severity: an L4 stops the task"),
    ("person_field: person", "person_field: persn", "preferences.person_field: unknown context field 'persn'"),
])
def test_policy_check_rejects_bad_preference_limits(data_copy, old, new, message):
    edit(data_copy / "policies/decisions.yaml", old, new)
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "decisions.yaml" in result.output and message in result.output, result.output


def test_the_shipped_preference_limits_are_the_documented_ones(policy):
    limits = policy.decisions.preferences
    assert (limits.threshold, limits.cap, limits.half_life_days, limits.consistency_boost, limits.min_answers) == \
        (0.95, 0.99, 30, 0.2, 3)


# --- revoking, over MCP (in memory) and the CLI ---
async def test_mcp_auto_answer_then_revoke_asks_the_person_again(guard, clock):
    answer_times(guard, clock, 5)
    async with Client(build_server(guard=guard)) as client:
        call = {"conversation_id": "mcp-1", "request": REQUEST, "question": QUESTION, "context": ALICE,
                "type": "decision"}
        data = (await client.call_tool("escalate", call)).structured_content
        assert data["action"] == "proceed" and data["preference"]["scope_id"] == "alice"
        listed = (await client.call_tool("preferences", {"scope": "person", "scope_id": "alice"})).structured_content
        assert listed["preferences"][0]["answers_now"] is True
        revoked = await client.call_tool("revoke_preference", {"preference_id": data["preference"]["id"],
                                                               "reason": "ask me again"})
        assert not revoked.is_error, revoked.content
        again = (await client.call_tool("escalate", {**call, "conversation_id": "mcp-2"})).structured_content
        assert again["action"] == "proceed" and again["preference"]["scope"] == "organisation"
        org = again["preference"]["id"]
        await client.call_tool("revoke_preference", {"preference_id": org})
        third = (await client.call_tool("escalate", {**call, "conversation_id": "mcp-3"})).structured_content
        assert third["action"] == "escalate" and third["preference"] is None
        twice = await client.call_tool("revoke_preference", {"preference_id": org})
        assert twice.is_error and "already revoked" in twice.content[0].text
    assert "preference_revoked" in [e["action"] for e in guard.store.audit_entries()]


def test_cli_lists_and_revokes_preferences(guard, clock, db_path):
    answer_times(guard, clock, 4)
    runner = CliRunner()
    listed = runner.invoke(main, ["preferences", "list", "--db", str(db_path)])
    assert listed.exit_code == 0, listed.output
    assert "alice" in listed.output and "acme" in listed.output and "Approved." in listed.output
    pid = str(prefs.listing(guard.store, SETTINGS, scope="person")[0]["id"])
    revoked = runner.invoke(main, ["preferences", "revoke", pid, "--by", "alice", "--db", str(db_path)])
    assert revoked.exit_code == 0, revoked.output
    assert f"preference {pid} revoked" in revoked.output
    assert runner.invoke(main, ["preferences", "revoke", pid, "--db", str(db_path)]).exit_code != 0
    as_json = runner.invoke(main, ["preferences", "list", "--json", "--revoked", "--db", str(db_path)])
    assert '"revoked_by": "alice"' in as_json.output


# --- the console ---
def test_console_lists_preferences_and_an_operator_revokes_one(guard, clock):
    import re

    from starlette.testclient import TestClient

    from escalation_matrix import console
    from escalation_matrix.mcp_app import build_http_app

    answer_times(guard, clock, 5)
    app = build_http_app(build_server(guard=guard), token="console-token-4b2e", extra_routes=console.routes(guard))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        page = client.get("/console/preferences?token=console-token-4b2e")
        assert page.status_code == 200 and "alice" in page.text and "acme" in page.text
        assert page.text.count('class="status">answers<') == 2 and 'href="/console/preferences"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        pid = prefs.listing(guard.store, SETTINGS, scope="person")[0]["id"]
        refused = client.post(f"/console/preferences/{pid}/revoke", data={"csrf": "forged"})
        assert refused.status_code == 403
        done = client.post(f"/console/preferences/{pid}/revoke", data={"csrf": token, "reason": "ask me"})
        assert "Preference" in done.text and "revoked by" in done.text
        assert "revoked" in client.get("/console/preferences?revoked=1").text
    [row] = [r for r in prefs.listing(guard.store, SETTINGS, revoked=True) if r["id"] == pid]
    assert row["revoked_at"] is not None


def test_the_report_counts_auto_answers_apart_from_escalations(guard, clock, policy):
    from escalation_matrix.ops.reports import build_report

    answer_times(guard, clock, 5)
    clock.moment += timedelta(days=1)
    assert ask(guard, 99).preference is not None
    report = build_report(guard.store, policy, "daily")
    assert report.auto_answered == 1 and report.records == 0


def test_an_agent_signed_in_over_http_teaches_no_preference(guard, clock):
    for i in range(5):
        clock.moment += timedelta(days=1)
        result = ask(guard, i)
        guard.respond(result.escalation_id, action="approve", responder="agent-b", role="agent",
                      conversation_id=result.conversation_id)
    assert prefs.listing(guard.store, SETTINGS) == []


def test_erasing_a_conversation_erases_and_revokes_the_preferences_learned_from_it(guard, clock):
    from escalation_matrix.ops.erase import erase_conversation

    answer_times(guard, clock, 5)
    erase_conversation(guard.store, f"chat-2-{QUESTION[:5]}", "dpo", "erasure request 7")
    rows = prefs.listing(guard.store, SETTINGS, revoked=True)
    assert len(rows) == 2 and all(r["answer"] == "[erased]" and r["revoked_by"] == "erasure" for r in rows)
    assert all(r["request"] == "[erased]" and r["agent_question"] is None for r in rows)
    clock.moment += timedelta(days=1)
    assert ask(guard, 99).action.value == "escalate"


def test_the_organisation_never_answers_against_what_the_person_said_last(guard, clock):
    bob = {"person": "bob", "organisation": "acme"}
    answer_times(guard, clock, 5)  # alice approves: acme's preference approves too
    clock.moment += timedelta(days=1)
    asked = ask(guard, 200, context=bob)
    assert asked.preference.scope == "organisation"
    clock.moment += timedelta(days=1)
    # bob answers it once himself, against acme's answer (without an organisation: acme learns nothing)
    result = guard.escalate("bob-1", REQUEST, question=QUESTION, context={"person": "bob"}, type="decision")
    guard.respond(result.escalation_id, action="reject", responder="bob")
    clock.moment += timedelta(days=1)
    again = ask(guard, 201, context=bob)
    assert again.action.value == "escalate" and again.preference is None
