"""``escalation-matrix render``: a stored escalation in each format, and a clear error for an unknown id."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from escalation_matrix.cli import main
from escalation_matrix.render import render
from escalation_matrix.store import Store


@pytest.fixture
def stored(db_path):
    store = Store(db_path)
    with store.transaction() as conn:
        esc_id = store.insert_escalation(conn, {
            "conversation_id": "c1", "task_id": "default", "type": "conflict", "trigger": "conflicting_instructions",
            "severity": "L1", "request": "Make this email shorter and add more <b>detail</b> about pricing.",
            "options": ["Keep it short", "Add the pricing detail"],
            "phrase": "I'm seeing two conflicting instructions. Which one should I follow?"})
    return store.escalation(esc_id)


@pytest.mark.parametrize("fmt", ["md", "txt", "html", "json"])
def test_render_prints_a_stored_escalation(policy, db_path, stored, fmt):
    out = CliRunner().invoke(main, ["render", stored["id"], "--format", fmt, "--db", str(db_path)])
    assert out.exit_code == 0, out.output
    assert out.output == render(stored, fmt, policy)


def test_render_json_is_the_card(db_path, stored):
    out = CliRunner().invoke(main, ["render", stored["id"], "-f", "json", "--db", str(db_path)])
    data = json.loads(out.output)
    assert (data["type"], data["escalation_id"], len(data["choices"])) == ("conflict", stored["id"], 2)


def test_render_unknown_id_says_what_ids_look_like(db_path):
    out = CliRunner().invoke(main, ["render", "ESC-1999-999", "--db", str(db_path)])
    assert out.exit_code == 1
    assert "escalation 'ESC-1999-999' not found; ids look like ESC-2026-001" in out.output
