"""`policy check` catches what would break at run time: every phrase and message template is
rendered with a complete and a bare sample for each type and trigger, a rule condition on an unknown
context field is an error, and problems inside a rule name the rule. Through the CLI and, for the
server, through ``load_policy`` (the server refuses to start on the same problems)."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalation_matrix.errors import PolicyError
from escalation_matrix.loader import load_policy
from test_cli_core import run


def load(root: Path):
    return load_policy(root / "policies", root / "phrases", root / "embeddings")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_a_misspelt_variable_in_a_phrase_fails_the_check(data_copy):
    edit(data_copy / "phrases/en/phrases.yaml", "so I can continue?", "so I can continue with {{ requst }}?")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "phrases.yaml: phrases.clarification: 'requst' is undefined" in result.output
    assert "(rendering clarification/" in result.output


def test_a_misspelt_variable_in_the_message_template_fails_the_check(data_copy):
    edit(data_copy / "phrases/en/message.md.j2", "{{ issue }}", "{{ isue }}")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "message.md.j2: message.md.j2: 'isue' is undefined" in result.output
    assert result.output.count("'isue' is undefined") == 1  # one report per broken spot, not one per type


def test_a_variable_the_tools_do_not_pass_to_the_stored_message_fails(data_copy):
    edit(data_copy / "phrases/en/message.md.j2", "{{ issue }}", "{{ issue }} {{ escalation_id }}")
    with pytest.raises(PolicyError, match="'escalation_id' is undefined"):
        load(data_copy)


def test_a_variable_inside_a_branch_is_checked_too(data_copy):
    edit(data_copy / "phrases/en/message.txt.j2", "{{ issue }}", "{% if options %}{{ optoins }}{% endif %}{{ issue }}")
    with pytest.raises(PolicyError, match="'optoins' is undefined"):
        load(data_copy)


def test_an_unknown_condition_field_is_an_error_naming_the_rule(data_copy):
    edit(data_copy / "policies/rules.yaml", "{field: estimated_cost,", "{field: estimted_cost,")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "unknown context field 'estimted_cost'; did you mean 'estimated_cost'?" in result.output
    assert "(rule high_cost)" in result.output


def test_a_new_context_field_is_declared_in_conversation_yaml(data_copy):
    edit(data_copy / "policies/rules.yaml", "{field: estimated_cost,", "{field: budget_eur,")
    with pytest.raises(PolicyError, match="budget_eur"):
        load(data_copy)
    edit(data_copy / "policies/conversation.yaml", "context_fields:\n", "context_fields:\n  budget_eur: Budget in euros.\n")
    assert "budget_eur" in load(data_copy).conversation.context_fields


def test_a_schema_problem_inside_a_rule_names_the_rule(data_copy):
    edit(data_copy / "policies/rules.yaml", "{field: estimated_cost, op: gt,", "{field: estimated_cost, op: bigger,")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2
    assert "rules.yaml: rules." in result.output and "(rule high_cost)" in result.output


def test_the_shipped_files_render_every_sample():
    load_policy()  # raises on any problem
