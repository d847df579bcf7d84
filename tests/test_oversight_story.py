"""Actor oversight end to end (the emergency-grants story): an officer keeps rejecting what the
agent suggests until its score falls below 70, a ticket opens for its supervisor, the supervisor
stays silent for 4 hours, the deputy gets the ticket, the officer is suspended and its open items go
to the backup agent, the cool-down ends and the officer is reinstated. A real SQLite file, a clock
moved by hand, the CLI (`show --json`, `actors show --json`, `audit verify`, `report`) and the
console over the real HTTP app after every step."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from escalation_matrix import console
from escalation_matrix.cli import main
from escalation_matrix.errors import StateError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_http_app, build_server
from escalation_matrix.ops.failsafe import sweep
from escalation_matrix.ops.oversight import Oversight
from escalation_matrix.ops.records import Operations
from escalation_matrix.store import Store

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends


TOKEN = "story-token-7c1d"
BASE = "http://127.0.0.1:8765"
GRANTS = """
window: 100
rules:
  - {name: low_score, score_below: 70, within: 1h, min_decisions: 10, severity: L3, suspend_at: deputy, cooldown: 24h}
teams:
  default:
    chain:
      - {role: supervisor, actor: supervisor, answer_within: 4h}
      - {role: deputy, actor: deputy, answer_within: 4h}
      - {role: backup agent, actor: backup-agent}
  grants:
    chain:
      - {role: supervisor, actor: patel, answer_within: 4h}
      - {role: deputy, actor: lee, answer_within: 4h}
      - {role: director, actor: director-ng, answer_within: 8h}
      - {role: backup agent, actor: grants-assistant}
    replacement: grants-assistant
actors:
  clark: grants
"""


@pytest.fixture
def grants_policy(data_copy):
    (data_copy / "policies" / "oversight.yaml").write_text(GRANTS)
    return load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")


@pytest.fixture
def story(grants_policy, fake_classifier, db_path, clock):
    store = Store(db_path, clock=clock)
    guard = ConversationGuard(grants_policy, fake_classifier, store)
    app = build_http_app(build_server(guard=guard), token=TOKEN, extra_routes=console.routes(guard))
    with TestClient(app, base_url=BASE) as browser:
        assert browser.get(f"/console?token={TOKEN}").status_code == 200
        yield Operations(store, grants_policy), browser
    store.close()


def cli(data_copy, db_path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--policies", str(data_copy / "policies"), *args, "--db", str(db_path)],
                                catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def shown(data_copy, db_path, esc_id: str) -> dict:
    return json.loads(cli(data_copy, db_path, "show", esc_id, "--json"))


def actor_json(data_copy, db_path, name: str) -> dict:
    return json.loads(cli(data_copy, db_path, "actors", "show", name, "--json"))


def row_of(page: str, actor: str) -> str:
    found = re.search(rf'<tr data-actor="{actor}">(.*?)</tr>', page, re.DOTALL)
    assert found, f"{actor} is not on the actors page"
    return found.group(1)


def test_a_low_score_goes_from_ticket_to_deputy_to_suspension_and_back(story, clock, data_copy, db_path):
    ops, browser = story
    # two grant files already on Clark's desk, plus the applications he decides during the hour
    desk = [ops.create(f"Roof-repair grant file {n} needs a decision", assigned_to="clark")["id"] for n in (1, 2)]
    answered = []
    for n in range(11):  # the assistant suggests Approve; Clark approves 7, then rejects
        esc = ops.create(f"Emergency roof grant application {n}", suggestion="Approve", assigned_to="clark")["id"]
        clock.at(minutes=5 * (n + 1))
        ops.answer(esc, "Approve" if n < 7 else "Reject: needs more docs", by="clark")
        answered.append(esc)
        if n == 9:  # 7 of 10 agree: 70, not below the threshold yet
            assert actor_json(data_copy, db_path, "clark")["score"] == 70.0
            assert actor_json(data_copy, db_path, "clark")["open_ticket"] is None

    # score 63.6 < 70 within the hour: a ticket, routed by the L3 route, held by the supervisor
    clark = actor_json(data_copy, db_path, "clark")
    assert (clark["score"], clark["decisions"], clark["status"]) == (63.6, 11, "active")
    assert [d["delta"] for d in reversed(clark["recent_decisions"])] == [1] * 7 + [-1] * 4
    ticket = clark["open_ticket"]
    t = shown(data_copy, db_path, ticket)
    assert (t["source"], t["severity"], t["level"], t["assignee"]) == ("oversight", "L3", 2, "patel")
    assert t["due_at"] == "2026-03-02T13:55:00Z"  # the supervisor has 4 h
    assert t["oversight"]["actor"] == "clark" and t["oversight"]["role"] == "supervisor"
    assert "Low performance score for clark: 64 over 11 decisions" in t["reason"]
    # the L3 route's channels (its webhook has no URL here, so the log) and the supervisor's step
    assert [(n["event"], n["channel"]) for n in t["notifications"]] == [("created", "log")]
    score_audit = shown(data_copy, db_path, answered[-1])["audit"]
    assert [a["action"] for a in score_audit][-1] == "actor_score"
    assert score_audit[-1]["data"] == {"actor": "clark", "delta": -1, "score_before": 70.0, "score": 63.6,
                                       "decisions": 11}
    page = browser.get(f"/console/escalations/{ticket}").text
    assert "Oversight ticket about" in page and "held by the supervisor <strong>patel</strong>" in page
    assert "63.6" in row_of(browser.get("/console/actors").text, "clark")

    # the supervisor is silent for 4 hours: the deputy gets it, Clark is suspended, his desk moves
    clock.at(hours=4, minutes=54)
    assert [t.stage for t in sweep(ops.store, ops.policy).transitions] == []
    clock.at(hours=4, minutes=55)
    stages = [(t.escalation_id, t.stage) for t in sweep(ops.store, ops.policy).transitions]
    assert stages == [(ticket, "reroute_to_deputy")]
    t = shown(data_copy, db_path, ticket)
    assert (t["assignee"], t["status"], t["oversight"]["role"]) == ("lee", "raised", "deputy")
    assert [f["stage"] for f in t["failsafes"]] == ["reroute_to_deputy"]
    assert [a["action"] for a in t["audit"]] == ["escalation_created", "failsafe_reroute_to_deputy", "actor_suspended"]
    assert "reroute_to_deputy" in [n["event"] for n in t["notifications"]]
    suspended = t["audit"][-1]["data"]
    assert (suspended["actor"], suspended["replacement"], suspended["until"]) == \
        ("clark", "grants-assistant", "2026-03-03T13:55:00Z")
    assert sorted(suspended["escalations"]) == sorted(desk)
    for esc in desk:
        moved = shown(data_copy, db_path, esc)
        assert moved["assignee"] == "grants-assistant" and moved["status"] == "open"
        assert moved["audit"][-1]["action"] == "escalation_assigned"
        assert moved["audit"][-1]["data"]["after"] == {"assignee": "grants-assistant"}
    clark = actor_json(data_copy, db_path, "clark")
    assert (clark["status"], clark["replacement"]) == ("suspended", "grants-assistant")
    row = row_of(browser.get("/console/actors").text, "clark")
    assert "suspended until 2026-03-03 13:55, replaced by grants-assistant" in row and "Reinstate" in row
    page = browser.get(f"/console/escalations/{ticket}").text
    assert "held by the deputy <strong>lee</strong>" in page and "reroute to deputy" in page

    # nothing answered twice: Clark cannot answer his old file, the stand-in answers it once
    with pytest.raises(StateError, match="clark is suspended until 2026-03-03T13:55:00Z"):
        ops.answer(desk[0], "Reject", by="clark")
    ops.answer(desk[0], "Approve", by="grants-assistant")
    with pytest.raises(StateError, match="it is answered"):
        ops.answer(desk[0], "Reject", by="grants-assistant")
    assert ops.store.escalation(desk[0])["answer"] == "Approve"

    # the deputy answers the ticket: the chain stops there
    ops.answer(ticket, "Talked to Clark; retraining booked", by="lee")
    clock.at(hours=20)
    assert [t.stage for t in sweep(ops.store, ops.policy).transitions] == []
    assert shown(data_copy, db_path, ticket)["assignee"] == "lee"

    # the 24 h cool-down ends: reinstated by the sweep, in the audit trail, on the page
    clock.at(hours=28, minutes=55)
    done = sweep(ops.store, ops.policy).transitions
    assert [(t.escalation_id, t.stage, t.due_at) for t in done if t.escalation_id != desk[1]] == \
        [(ticket, "cooldown_ended:clark", "2026-03-03T13:55:00Z")]  # the other file is past its level's 24 h
    t = shown(data_copy, db_path, ticket)
    assert t["audit"][-1]["action"] == "actor_reinstated"
    assert t["audit"][-1]["data"]["reason"] == "cool-down ended" and t["audit"][-1]["actor"] == "oversight"
    clark = actor_json(data_copy, db_path, "clark")
    assert clark["status"] == "active" and clark["suspensions"][0]["reinstated_by"] == "oversight"
    assert "active" in row_of(browser.get("/console/actors").text, "clark")
    page = browser.get("/console/actors/clark").text
    assert "reinstated 2026-03-03 13:55 by oversight" in page and "2 items to grants-assistant" in page
    ops.answer(ops.create("A new grant", suggestion="Approve", assigned_to="clark")["id"], "Approve", by="clark")

    # the whole trail verifies; the report shows the score and the replacement
    assert cli(data_copy, db_path, "audit", "verify").startswith("ok: ")
    report = json.loads(cli(data_copy, db_path, "report", "--date", "2026-03-02", "--format", "json"))
    assert report["actors"] == [{"actor": "clark", "decisions": 11, "agreed": 7, "period_score": 63.6,
                                 "score_at_end": 63.6, "tickets": 1, "suspensions": 1}]
    assert report["replacements"] == [{"actor": "clark", "replacement": "grants-assistant",
                                       "suspended_at": "2026-03-02T13:55:00Z", "until": "2026-03-03T13:55:00Z",
                                       "reinstated_at": "2026-03-03T13:55:00Z", "reinstated_by": "oversight",
                                       "items_moved": 2, "ticket": ticket}]


def test_an_operator_suspends_and_reinstates_from_the_console(story, data_copy, db_path, clock):
    ops, browser = story
    Oversight(ops.store, ops.policy).record("clark", "Approve", "Approve")
    desk = ops.create("Grant file", assigned_to="clark")["id"]
    page = browser.get("/console/actors").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert browser.post("/console/actors/clark/suspend", data={"reason": "audit finding"}).status_code == 403
    assert browser.post("/console/actors/clark/suspend", data={"csrf": "forged", "reason": "x"}).status_code == 403
    assert ops.store.escalation(desk)["assignee"] == "clark"  # refused forms changed nothing

    browser.post("/console/operator", data={"csrf": token, "operator": "ana"})
    response = browser.post("/console/actors/clark/suspend", data={"csrf": token, "reason": "audit finding",
                                                                   "cooldown": "2h"})
    assert response.url.path == "/console/actors"
    assert "clark suspended by ana until 2026-03-02T11:00:00Z; 1 open items moved to grants-assistant." in response.text
    assert ops.store.escalation(desk)["assignee"] == "grants-assistant"
    again = browser.post("/console/actors/clark/suspend", data={"csrf": token, "reason": "twice"})
    assert "flash--error" in again.text and "already suspended" in again.text
    response = browser.post("/console/actors/clark/reinstate", data={"csrf": token, "reason": "finding cleared"})
    assert "clark reinstated by ana." in response.text
    audit = [(e["action"], e["actor"]) for e in ops.store.audit_entries() if e["action"].startswith("actor_")]
    assert audit[-2:] == [("actor_suspended", "ana"), ("actor_reinstated", "ana")]
    assert cli(data_copy, db_path, "audit", "verify").startswith("ok: ")
