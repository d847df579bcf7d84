"""Shipped data loads and covers every type; broken files fail loudly with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from escalation_matrix.errors import PolicyError
from escalation_matrix.loader import load_policy
from escalation_matrix.models import EscalationType


def test_shipped_policy_phrases_and_exemplars_load(policy):
    assert len(policy.rules.rules) > 0
    assert {"md", "txt"} <= set(policy.phrases.formats)


def test_shipped_exemplars_cover_every_type_but_pattern(policy):
    covered = {e.type for e in policy.exemplars}
    assert covered == set(EscalationType) - {EscalationType.pattern}


def test_shipped_exemplars_include_every_section_12_preference(policy):
    triggers = {e.trigger for e in policy.exemplars if e.type is EscalationType.none}
    assert {"formatting_preference", "synonym_choice", "section_ordering", "list_style",
            "header_capitalization", "clear_request"} <= triggers


def test_every_matrix_trigger_has_a_phrase_that_renders(policy):
    for etype, mtype in policy.matrix.types.items():
        for name, trigger in mtype.triggers.items():
            if trigger.phrase:
                assert policy.phrases.phrase(trigger.phrase, request="r", missing="", question="", options=[])


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def load(root: Path):
    return load_policy(root / "policies", root / "phrases", root / "embeddings")


@pytest.mark.parametrize(
    "file, change, expected",
    [
        ("policies/matrix.yaml", lambda d: d.update(colour="red"), r"matrix.yaml: colour: unknown key"),
        ("policies/matrix.yaml", lambda d: d["types"].pop("scope"), r"matrix.yaml: .*add the missing types \['scope'\]"),
        ("policies/matrix.yaml", lambda d: d["types"]["decision"]["triggers"]["requires_judgment"].update(severity="L9"),
         r"matrix.yaml: types.decision.triggers.requires_judgment.severity"),
        ("policies/rules.yaml", lambda d: d["rules"][0].update(type="scope", trigger="nope"),
         r"rules.yaml: rules.0.trigger: 'nope' is not a trigger of type scope"),
        ("policies/rules.yaml", lambda d: d["rules"][0].update(patterns=["(unclosed"]),
         r"rules.yaml: rules.0.patterns: .*invalid regular expression"),
        ("policies/rules.yaml", lambda d: d["rules"][0]["conditions"][0].update(op="eval"),
         r"rules.yaml: rules.0.conditions.0.op"),
        ("policies/rules.yaml", lambda d: d["rules"].append(dict(d["rules"][0])),
         r"rules.yaml: rules: .*used twice"),
        ("policies/classifier.yaml", lambda d: d.update(method="magic"), r"classifier.yaml: method"),
        ("policies/conversation.yaml", lambda d: d.update(same_issue_similarity_agreeing=0.9),
         r"conversation.yaml: .*same_issue_similarity_agreeing \(0.9\) must not be above same_issue_similarity"),
        ("phrases/en/phrases.yaml", lambda d: d["phrases"].pop("scope"),
         r"phrases.yaml: phrases.scope: missing; matrix.yaml types.scope.triggers.exceeds_scope uses it"),
        ("phrases/en/phrases.yaml", lambda d: d["phrases"].update(scope="{% if %}"),
         r"phrases.yaml: phrases.scope: template error"),
        ("embeddings/clarification.yaml", lambda d: d.update(trigger="vague"),
         r"clarification.yaml: trigger: 'vague' is not a trigger of clarification"),
        ("embeddings/clarification.yaml", lambda d: d.update(exemplars=[]), r"clarification.yaml: exemplars"),
    ],
)
def test_broken_file_fails_with_file_key_and_fix(data_copy, file, change, expected):
    edit(data_copy / file, change)
    with pytest.raises(PolicyError, match=expected):
        load(data_copy)


def test_invalid_yaml_reports_line(data_copy):
    (data_copy / "policies/rules.yaml").write_text("rules:\n  - name: x\n   bad: [\n")
    with pytest.raises(PolicyError, match=r"rules.yaml: line \d+, column \d+: invalid YAML"):
        load(data_copy)


def test_broken_message_template_reports_file_and_line(data_copy):
    (data_copy / "phrases/en/message.md.j2").write_text("Issue: {{ issue }\n")
    with pytest.raises(PolicyError, match=r"message.md.j2: line 1: template error"):
        load(data_copy)


def test_undefined_template_variable_fails_loudly_when_rendering(data_copy):
    path = data_copy / "phrases/en/message.md.j2"
    path.write_text(path.read_text() + "{{ typo_variable }}\n")
    # caught when the policy loads (every template is rendered with samples), not at the first escalation
    with pytest.raises(PolicyError, match=r"message.md.j2.*'typo_variable' is undefined; the variables available"):
        load(data_copy)


def test_sandbox_blocks_unsafe_template_code(data_copy):
    path = data_copy / "phrases/en/phrases.yaml"
    edit(path, lambda d: d["phrases"].update(scope="{{ request.__class__.__mro__ }}"))
    with pytest.raises(PolicyError, match="unsafe template operation|undefined"):
        load(data_copy)  # rendered with samples at load time


def test_every_problem_is_reported_not_only_the_first(data_copy):
    edit(data_copy / "policies/matrix.yaml", lambda d: d.update(colour="red"))
    edit(data_copy / "policies/classifier.yaml", lambda d: d.update(method="magic"))
    with pytest.raises(PolicyError) as info:
        load(data_copy)
    assert len(info.value.problems) == 2


def test_unknown_policy_file_is_rejected(data_copy):
    (data_copy / "policies/extra.yaml").write_text("a: 1\n")
    with pytest.raises(PolicyError, match="extra.yaml: unknown policy file"):
        load(data_copy)


def test_conflicting_exemplar_between_types_is_rejected(data_copy):
    text = yaml.safe_load((data_copy / "embeddings/clarification.yaml").read_text())["exemplars"][0]
    edit(data_copy / "embeddings/technical.yaml", lambda d: d["exemplars"].append(text))
    with pytest.raises(PolicyError, match="is also a clarification exemplar"):
        load(data_copy)
