"""The operator CLI on a real SQLite file: every command, its output and its errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
import rawdb
from click.testing import CliRunner

from escalation_matrix.cli import main

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends


@pytest.fixture
def cli(db_path: Path):
    def run(*args: str, code: int = 0):
        result = CliRunner().invoke(main, [*args, "--db", str(db_path)], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run


def create(cli, *extra: str) -> str:
    out = cli("create", "--reason", "Ambiguous brand name", "--details", "Star matches three brands", *extra).stdout
    return out.split()[0]


def test_create_gives_a_readable_id_and_the_levels_assignee(cli):
    out = cli("create", "--reason", "Ambiguous brand name", "--level", "1").stdout
    assert out.startswith("ESC-") and "-001 created: open" in out
    assert "assignee operations-team" in out


def test_seed_004_lifecycle_from_create_to_close(cli):
    esc = create(cli, "--assigned-to", "data-team@example.com")
    assert "assignee ed@example.com" in cli("assign", esc, "--assigned-to", "ed@example.com").stdout
    cli("note", esc, "Two distinct brands share the name.")
    assert "raised: raised" in cli("raise", esc, "--new-level", "2", "--reason", "needs an algorithm change").stdout
    assert "answered: answered" in cli("answer", esc, "Split the brand in two.").stdout
    out = cli("close", esc, "--resolution", "Split into Star Market and Star Burger.",
              "--preventive-measures", "Flag generic names.", "--lessons-learned", "Generic names need review.",
              "--method", "brand-splitting").stdout
    assert "closed: closed" in out
    record = json.loads(cli("show", esc, "--json").stdout)
    assert (record["level"], record["assignee"], record["status"]) == (2, "engineering-team", "closed")
    assert record["preventive_measures"] == "Flag generic names."
    assert record["lessons_learned"] == "Generic names need review."
    assert record["resolution_method"] == "brand-splitting"
    assert [n["text"] for n in record["notes"]] == ["Two distinct brands share the name."]
    assert [a["action"] for a in record["audit"]] == [
        "escalation_created", "escalation_assigned", "note_added", "escalation_raised", "answer", "escalation_closed"]


def test_list_filters_and_json(cli):
    first = create(cli)
    second = create(cli, "--level", "2", "--type", "technical")
    cli("close", first, "--resolution", "done")
    rows = json.loads(cli("list", "--json").stdout)
    assert [r["id"] for r in rows] == [second, first]
    assert [r["id"] for r in json.loads(cli("list", "--status", "active", "--json").stdout)] == [second]
    assert [r["id"] for r in json.loads(cli("list", "--level", "2", "--json").stdout)] == [second]
    assert [r["id"] for r in json.loads(cli("list", "--type", "technical", "--json").stdout)] == [second]
    assert json.loads(cli("list", "--older-than", "1h", "--json").stdout) == []
    assert second in cli("list").stdout
    assert "no escalations match" in cli("list", "--assignee", "nobody").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("show", "ESC-2026-999"), "escalation 'ESC-2026-999' not found"),
        (("assign", "ESC-2026-999", "--assigned-to", "x"), "not found"),
        (("list", "--status", "sleeping"), "unknown status 'sleeping'"),
        (("list", "--older-than", "soon"), "--older-than"),
        (("create", "--reason", "x", "--level", "9"), "level"),
        (("create", "--reason", "x", "--type", "urgent"), "unknown type 'urgent'"),
        (("create", "--reason", "  "), "give a --reason"),
        (("sweep", "--now", "tomorrow"), "--now 'tomorrow' is not an ISO time"),
        (("report", "--date", "2026-13-45"), "--date '2026-13-45' is not a date"),
    ],
)
def test_bad_input_says_what_to_fix_and_changes_nothing(cli, db_path, args, message):
    result = cli(*args, code=1)
    assert message in result.output
    if rawdb.exists(db_path):
        assert rawdb.query(db_path, "SELECT count(*) FROM escalations")[0][0] == 0


def test_closing_twice_is_refused(cli):
    esc = create(cli)
    cli("close", esc, "--resolution", "done")
    assert "already closed" in cli("close", esc, "--resolution", "again", code=1).output
    assert "cannot raise" in cli("raise", esc, "--new-level", "3", "--reason", "x", code=1).output


def test_sweep_with_a_controlled_clock_applies_due_timers_once(cli):
    esc = create(cli, "--type", "clarification", "--severity", "L1")
    created = json.loads(cli("show", esc, "--json").stdout)["created_at"]
    from datetime import timedelta

    from escalation_matrix.store import iso, parse_iso

    # a manual record follows its level's response time (level 1: 24 h), not the agent timers
    early = cli("sweep", "--now", iso(parse_iso(created) + timedelta(minutes=16)), "--no-deliver").stdout
    assert "0 transitions" in early
    later = iso(parse_iso(created) + timedelta(hours=24, minutes=1))
    first = cli("sweep", "--now", later, "--no-deliver").stdout
    again = cli("sweep", "--now", later, "--no-deliver").stdout
    assert "transitions" in first and "0 transitions" not in first
    assert "0 transitions" in again
    record = json.loads(cli("show", esc, "--json").stdout)
    assert record["severity"] == "L1"
    assert {f["stage"] for f in record["failsafes"]} == {"overdue_level_1"}


@pytest.mark.parametrize("period", ["--daily", "--weekly", "--monthly"])
def test_report_in_every_format(cli, tmp_path, period):
    create(cli)
    text = cli("report", period).stdout
    assert "Escalation report" in text
    data = json.loads(cli("report", period, "--format", "json").stdout)
    assert data["period"] == period.strip("-")
    rows = list(csv.reader(io.StringIO(cli("report", period, "--format", "csv").stdout)))
    assert len(rows) > 3
    chart = tmp_path / "rate.png"
    cli("report", period, "--chart", str(chart))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.sqlite_only  # tampers through sqlite3; test_ops_audit tampers with both backends
def test_audit_verify_passes_then_detects_tampering(cli, db_path):
    esc = create(cli)
    cli("note", esc, "looked into it")
    assert cli("audit", "verify").stdout.startswith("ok: 2 entries")
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET data = '{\"text\": \"nothing to see\"}' WHERE seq = 2")
    conn.commit()
    result = cli("audit", "verify", code=1)
    assert "audit trail is broken from entry #2" in result.output


def test_pipeline_report_escalates_at_the_iteration_limit_once(cli):
    assert "continue" in cli("pipeline", "report", "brand-1", "--iterations", "3").stdout
    first = cli("pipeline", "report", "brand-1", "--iterations", "10", "--json").stdout
    again = cli("pipeline", "report", "brand-1", "--iterations", "11", "--json").stdout
    a, b = json.loads(first), json.loads(again)
    assert a["escalated"] and a["trigger"] == "iteration_limit" and not a["repeated"]
    assert b["escalation_id"] == a["escalation_id"] and b["repeated"]
    assert "--confidence" in cli("pipeline", "report", "brand-2", "--iterations", "1", "--confidence", "7",
                                 code=1).output


def test_resolve_keeps_the_record_open_for_verification_then_close(cli):
    esc = create(cli)
    assert "resolved: resolved" in cli("resolve", esc, "--resolution", "Manual metadata created.").stdout
    record = json.loads(cli("show", esc, "--json").stdout)
    assert (record["status"], record["resolution"], record["closed_at"]) == ("resolved", "Manual metadata created.",
                                                                              None)
    assert "closed: closed" in cli("close", esc, "--resolution", "Verified and approved.").stdout


def test_unlock_releases_a_task_locked_by_an_l4_escalation_once(cli, db_path):
    create(cli, "--type", "safety", "--severity", "L4", "--conversation", "chat-9", "--task", "t1")
    locked = rawdb.query(db_path, "SELECT locked FROM tasks WHERE conversation_id = 'chat-9' AND task_id = 't1'")[0][0]
    assert locked == 1
    cli("unlock", "chat-9", "t1", "--by", "lead@example.com", "--reason", "Reviewed: safe to continue.")
    row = rawdb.query(db_path, "SELECT locked FROM tasks WHERE conversation_id = 'chat-9' AND task_id = 't1'")[0]
    assert row[0] == 0
    assert "is not locked" in cli("unlock", "chat-9", "t1", "--by", "x", "--reason", "again", code=1).output
    assert "not found" in cli("unlock", "chat-9", "nope", "--by", "x", "--reason", "y", code=1).output
