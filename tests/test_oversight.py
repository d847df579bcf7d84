"""Actor oversight on a real SQLite file with a hand-moved clock: decisions scored +1/-1, the
rolling score, rules from oversight.yaml (and `policy check` on them), tickets, the re-routing
chain, suspension and reinstatement, the CLI and the MCP resources."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest
from mcp import Client

from escalation_matrix.errors import InputError, NotFoundError, StateError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import Policy, load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.ops.audit import verify
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.ops.oversight import Oversight, same_choice
from escalation_matrix.ops.oversight_chain import reinstate, suspend
from escalation_matrix.oversight_policy import OversightFile
from escalation_matrix.ops_policy import OperationsFile
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store
from test_cli_core import run

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends


@functools.lru_cache(maxsize=1)
def shipped() -> Policy:
    return load_policy()


def small(**rules) -> Policy:
    """The shipped policy with a small window and one oversight rule (operations defaults)."""
    rule = {"name": "low_score", "score_below": 50, "within": "1h", "min_decisions": 3, "suspend_at": "never", **rules}
    return dataclasses.replace(shipped(), oversight=OversightFile.model_validate({"window": 4, "rules": [rule]}),
                               operations=OperationsFile())


# --- decisions and the rolling score ---
@pytest.mark.parametrize("suggestion, choice, same", [
    ("Approve", "approve", True), ("Approve", " Approve. ", True), ("Use  eu-west-1", "use eu-west-1", True),
    ("Approve", "Reject", False), ("Approve", "Approve with conditions", False),
])
def test_agreement_ignores_case_spacing_and_a_full_stop(suggestion, choice, same):
    assert same_choice(suggestion, choice) is same


def test_the_score_is_the_share_of_agreements_over_the_last_window_and_survives_a_restart(db_path, clock):
    policy = small(score_below=1)
    oversight = Oversight(Store(db_path, clock=clock), policy)
    assert [oversight.record("ana", "A", c)["score"] for c in "AAAA"] == [100.0] * 4
    assert [oversight.record("ana", "A", c)["score"] for c in "BB"] == [75.0, 50.0]  # window 4: A A B B
    assert [oversight.record("ana", "A", c)["score"] for c in "BB"] == [25.0, 0.0]
    assert oversight.record("ana", "A", "A")["score"] == 25.0
    reopened = Oversight(Store(db_path, clock=clock), policy).actors()
    assert [(a.name, a.score, a.decisions, a.status) for a in reopened] == [("ana", 25.0, 9, "active")]


def test_an_escalation_counts_once_and_empty_input_is_refused(store, clock):
    oversight = Oversight(store, small())
    esc = Operations(store, small()).create("Grant", suggestion="Approve")["id"]
    oversight.record("ana", "Approve", "Approve", esc)
    with pytest.raises(StateError, match=f"the decision on {esc} is already scored"):
        oversight.record("ana", "Approve", "Reject", esc)
    with pytest.raises(InputError, match="the choice is empty"):
        oversight.record("ana", "Approve", "  ")
    with pytest.raises(NotFoundError, match="ESC-2026-999"):
        oversight.record("ana", "Approve", "Approve", "ESC-2026-999")
    assert oversight.actors()[0].decisions == 1


def test_an_answer_from_the_agents_respond_path_is_scored_by_the_sweep(policy, fake_classifier, store, clock):
    guard = ConversationGuard(policy, fake_classifier, store)
    asked = guard.escalate("c1", "Set up the new server", question="Which region should it run in?", type="decision",
                           options=["eu-west-1", "us-east-1"], context={"suggestion": "eu-west-1"})
    assert asked.escalation_id
    guard.respond(asked.escalation_id, "us-east-1", "maria")
    assert Oversight(store, policy).actors() == []  # not scored yet: that path does not score
    sweep(store, policy)
    sweep(store, policy)  # and only once
    maria = Oversight(store, policy).actor("maria")
    assert (maria["score"], maria["decisions"]) == (0.0, 1)
    assert maria["recent_decisions"][0]["escalation_id"] == asked.escalation_id


# --- rules and tickets ---
def test_decisions_older_than_the_rule_period_do_not_count(store, clock):
    oversight = Oversight(store, small())
    oversight.record("ana", "A", "B")
    oversight.record("ana", "A", "B")
    clock.at(hours=2)
    done = oversight.record("ana", "A", "B")  # rolling 0 over 3, but one decision in the last hour
    assert done["score"] == 0.0 and done["ticket"] is None
    oversight.record("ana", "A", "B")
    assert oversight.record("ana", "A", "B")["ticket"] is not None  # three in the hour now


def test_one_open_ticket_per_actor_and_a_new_one_after_it_is_closed(store, clock):
    policy = small()
    oversight, ops = Oversight(store, policy), Operations(store, policy)
    opened = [oversight.record("ana", "A", "B")["ticket"] for _ in range(5)]
    assert opened[:2] == [None, None] and opened[2] is not None and opened[3:] == [None, None]
    ticket = store.escalation(opened[2])
    assert (ticket["source"], ticket["severity"], ticket["assignee"], ticket["level"]) == \
        ("oversight", "L3", "supervisor", 2)  # L3 route: level 2; the default team's supervisor holds it
    ops.close(opened[2], "coached")
    assert oversight.record("ana", "A", "B")["ticket"] not in (None, opened[2])


def test_suspend_at_ticket_moves_open_items_to_the_replacement_at_once(store, clock):
    policy = small(suspend_at="ticket", cooldown="2h")
    ops = Operations(store, policy)
    desk = ops.create("Grant file", assigned_to="ana")["id"]
    done = [Oversight(store, policy).record("ana", "A", "B") for _ in range(3)][-1]
    assert store.escalation(desk)["assignee"] == "backup-agent"
    ana = Oversight(store, policy).actors()[0]
    assert (ana.status, ana.replacement, ana.suspended_until, ana.open_ticket) == \
        ("suspended", "backup-agent", "2026-03-02T11:00:00Z", done["ticket"])
    with pytest.raises(StateError, match="ana is suspended until 2026-03-02T11:00:00Z"):
        Oversight(store, policy).record("ana", "A", "A")
    with pytest.raises(StateError, match="assign it to backup-agent"):
        ops.assign(desk, "ana")
    assert ops.create("New grant", assigned_to="ana")["assignee"] == "backup-agent"  # new items go to the stand-in
    clock.at(hours=2)
    sweep(store, policy)
    assert Oversight(store, policy).actors()[0].status == "active"
    assert verify(store).ok


def test_the_actor_cannot_answer_or_close_the_ticket_about_itself(store, clock):
    policy = small()
    ops = Operations(store, policy)
    ticket = [Oversight(store, policy).record("ana", "A", "B") for _ in range(3)][-1]["ticket"]
    with pytest.raises(StateError, match=f"{ticket} is the oversight ticket about ana"):
        ops.answer(ticket, "all fine", by="ana")
    with pytest.raises(StateError, match="its holder in the chain answers it"):
        ops.close(ticket, "nothing to see", by="ana")
    assert ops.answer(ticket, "coaching booked", by="supervisor")["status"] == "answered"


def test_the_chain_catches_up_in_order_after_downtime_and_fires_each_hop_once(store, clock, policy):
    oversight = Oversight(store, small())
    ticket = [oversight.record("ana", "A", "B") for _ in range(3)][-1]["ticket"]
    clock.at(hours=13)
    first = sweep(store, small()).transitions
    assert [(t.stage, t.due_at, t.late) for t in first if t.escalation_id == ticket] == [
        ("reroute_to_deputy", "2026-03-02T13:00:00Z", True), ("reroute_to_director", "2026-03-02T17:00:00Z", True),
        ("reroute_to_backup_agent", "2026-03-02T21:00:00Z", True)]
    assert [t for t in sweep(store, small()).transitions if t.escalation_id == ticket] == []
    shown = Operations(store, small()).show(ticket)
    assert shown["assignee"] == "backup-agent" and shown["oversight"]["role"] == "backup agent"
    assert [f["stage"] for f in shown["failsafes"]] == ["reroute_to_deputy", "reroute_to_director",
                                                        "reroute_to_backup_agent"]
    assert "overdue" not in [a["action"] for a in shown["audit"]]  # the chain, not the level's clock


def test_operator_suspend_and_reinstate_are_audited_and_refused_when_they_make_no_sense(store, clock):
    oversight = Oversight(store, small())
    with pytest.raises(StateError, match="ana is not suspended"):
        reinstate(oversight, "ana", "ops")
    with pytest.raises(InputError, match="give a --reason"):
        suspend(oversight, "ana", " ", "ops")
    with pytest.raises(StateError, match="backup-agent is the replacement of team default"):
        suspend(oversight, "backup-agent", "x", "ops")
    held = suspend(oversight, "ana", "complaint", "ops")
    assert held["until"] == "2026-03-03T09:00:00Z"  # the rule's 24 h cool-down
    with pytest.raises(StateError, match="already suspended"):
        suspend(oversight, "ana", "again", "ops")
    reinstate(oversight, "ana", "ops", "cleared")
    entries = [(e["action"], e["actor"], e["data"].get("actor")) for e in store.audit_entries()]
    assert entries == [("actor_suspended", "ops", "ana"), ("actor_reinstated", "ops", "ana")]


# --- policy check ---
@pytest.mark.parametrize("yaml, message", [
    ("rules: [{name: low, score_below: 170}]", "rules.0.score_below: Input should be less than or equal to 100 (rule low)"),
    ("rules: [{name: low, score_below: 70, suspend_at: deputee}]",
     "suspend_at 'deputee' is not a chain role of team(s) ['default']; use ticket, never or a role every team has (rule low)"),
    ("rules: [{name: low, score_below: 70, suspend_at: never}, {name: low, score_below: 60, suspend_at: never}]",
     "the name 'low' is used twice"),
    ("actors: {clark: grants}", "actors.clark: team 'grants' is not under teams"),
    ("teams: {default: {chain: [{role: supervisor, actor: patel}, {role: deputy, actor: lee}]}}",
     "teams.default.chain.0: add answer_within (how long supervisor has before the ticket moves to deputy)"),
    (("rules: [{name: low, score_below: 70, suspend_at: never}]\n"
      "teams: {default: {chain: [{role: supervisor, actor: patel, notify: [pager]}]}}"),
     "teams.default.chain.0.notify: channels ['pager'] are not defined"),
    ("rules: [{name: low, score_below: 70, cooldwn: 24h}]", "rules.0.cooldwn: unknown key"),
])
def test_policy_check_names_the_rule_or_step_to_fix(data_copy, yaml, message):
    (data_copy / "policies" / "oversight.yaml").write_text(yaml)
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "oversight.yaml" in result.output and message in result.output


def test_the_shipped_oversight_policy_loads_with_the_documented_values(policy):
    rules = policy.oversight
    assert rules.window == 100
    rule = rules.rules[0]
    assert (rule.score_below, rule.within.total_seconds(), rule.suspend_at, rule.cooldown.total_seconds()) == \
        (70, 3600, "deputy", 86400)
    assert [(s.role, s.answer_within.total_seconds() if s.answer_within else None)
            for s in rules.teams["default"].chain] == [("supervisor", 14400), ("deputy", 14400),
                                                       ("director", 14400), ("backup agent", None)]


# --- CLI and MCP ---
def test_cli_records_lists_suspends_reinstates_and_shows_the_chain(db_path, data_copy):
    def cli(*args, code=0):
        result = run(*args, "--db", str(db_path)) if args[0] != "actors" or args[1] != "chain" else run(*args)
        assert result.exit_code == code, result.output
        return result.output

    created = cli("create", "--reason", "Grant file", "--suggestion", "Approve", "--assigned-to", "clark")
    esc = created.split()[0]
    cli("answer", esc, "Reject", "--by", "clark")
    assert "clark: +1" in cli("actors", "record", "clark", "--suggested", "Approve", "--chosen", "approve")
    listed = cli("actors", "list")
    assert "clark" in listed and "50.0" in listed and "active" in listed
    desk = cli("create", "--reason", "Another file", "--assigned-to", "clark").split()[0]
    out = cli("actors", "suspend", "clark", "--reason", "audit finding", "--cooldown", "1h", "--by", "ana")
    assert f"1 open items moved to backup-agent: {desk}" in out
    assert "suspended" in cli("actors", "list")
    assert "is suspended until" in cli("answer", desk, "Approve", "--by", "clark", code=1)
    assert "clark reinstated" in cli("actors", "reinstate", "clark", "--by", "ana")
    assert "is not suspended" in cli("actors", "reinstate", "clark", code=1)
    view = json.loads(cli("actors", "show", "clark", "--json"))
    assert [d["delta"] for d in view["recent_decisions"]] == [1, -1]
    assert view["suspensions"][0]["moved"] == [desk] and view["suspensions"][0]["reinstated_by"] == "ana"
    assert "--cooldown: 'soon' is not a duration" in cli("actors", "suspend", "x", "--reason", "r", "--cooldown", "soon",
                                                        code=1)
    assert "no actor 'nobody'" in cli("actors", "show", "nobody", code=1)
    chain = cli("actors", "chain")
    assert "1. supervisor: supervisor (answers within 4 h; ticket opened)" in chain
    assert "2. deputy: deputy (answers within 4 h; reroute_to_deputy)" in chain


async def test_the_actor_resources_give_scores_and_one_actors_history(policy, fake_classifier, store):
    guard = ConversationGuard(policy, fake_classifier, store)
    Oversight(store, policy).record("clark", "Approve", "Reject")
    async with Client(build_server(guard=guard)) as client:
        listed = json.loads((await client.read_resource("escalation://actors")).contents[0].text)
        one = json.loads((await client.read_resource("escalation://actors/clark")).contents[0].text)
        with pytest.raises(Exception, match="no actor 'nobody'"):
            await client.read_resource("escalation://actors/nobody")
    assert [(a["name"], a["score"], a["status"]) for a in listed] == [("clark", 0.0, "active")]
    assert one["recent_decisions"][0]["choice"] == "Reject" and one["chain"]["team"] == "default"


def test_erasing_a_record_erases_the_suggestion_and_choice_but_keeps_the_score(store, clock):
    from escalation_matrix.ops.erase import erase_expired

    policy = small(score_below=1)
    ops = Operations(store, policy)
    esc = ops.create("Grant for 12 Elm Street", suggestion="Approve for 12 Elm Street")["id"]
    ops.answer(esc, "Reject the claim of Mr Smith", by="clark")
    clock.at(days=100)
    assert erase_expired(store, policy) == 1
    decision = Oversight(store, policy).actor("clark")["recent_decisions"][0]
    assert (decision["suggestion"], decision["choice"], decision["delta"], decision["score"]) == \
        ("[erased]", "[erased]", -1, 0.0)
    assert store.escalation(esc)["suggestion"] == "[erased]"
