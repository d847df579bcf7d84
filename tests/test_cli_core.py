"""The classifier CLI: what a policy author runs. In-process through click's runner (the real
model is loaded once per test session) plus one real subprocess of the console script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from escalation_matrix.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, root: Path | None = None) -> "click.testing.Result":
    folders = []
    if root is not None:
        folders = ["--policies", str(root / "policies"), "--phrases", str(root / "phrases"),
                   "--embeddings", str(root / "embeddings")]
    return CliRunner().invoke(main, [*folders, *args], catch_exceptions=False)


def all_commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from all_commands(command, f"{prefix}{name} ")


def test_every_cli_command_has_help_text():
    missing = [name for name, command in all_commands(main) if not (command.help or "").strip()]
    assert missing == []
    for name, _ in all_commands(main):
        result = run(*name.split(), "--help")
        assert result.exit_code == 0, name


@pytest.mark.model
def test_classify_prints_message_type_severity_and_why():
    result = run("classify", "Write something for the website.")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "⚠️ CLARIFICATION ESCALATION REQUIRED" in out
    assert "type: clarification  severity: L1  trigger: unclear_request" in out
    assert "exemplar " in out and "scores: " in out


@pytest.mark.model
def test_classify_names_the_rule_that_decided_when_several_fired():
    result = run("classify", "Deploy the billing service", "--context",
                 '{"environment": "production", "estimated_cost": 500}')
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("rule ")]
    assert len(lines) == 2, result.output
    assert [line for line in lines if line.endswith("(decided)")] == [
        "rule high_cost: Significant cost requires approval. [estimated_cost gt 100]  (decided)"]


@pytest.mark.model
def test_classify_json_prints_the_classification():
    result = run("classify", "--json", "Deploy the build.", "--context", '{"environment": "production"}')
    data = json.loads(result.stdout)
    assert data["type"] == "scope" and data["severity"] == "L2"
    assert data["rules"][0]["name"] == "production_deployment"


@pytest.mark.model
def test_batch_classify_keeps_input_fields_and_adds_the_result(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"text": "Take care of it.", "id": 1}, {"text": "Translate 'hello' into French.", "id": 2},
            {"text": "Deploy it.", "id": 3, "context": {"environment": "production"}}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = run("classify", "--input", str(src), "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert {"text", "type", "severity", "confidence", "trigger"} <= set(line)
    assert lines[1]["type"] == "none" and lines[1]["severity"] is None
    assert lines[2]["type"] == "scope"


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify"], "give the TEXT to classify"),
        (["classify", "x", "--context", "{nope"], "--context is not valid JSON"),
        (["classify", "x", "--context", "[1]"], "--context must be a JSON object"),
    ],
)
def test_classify_bad_input_says_what_to_fix(args, message):
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output


def test_batch_with_a_broken_line_names_the_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{"text": \n')
    result = run("classify", "--input", str(src))
    assert result.exit_code == 1
    assert "line 2: invalid JSON" in result.output


def test_policy_check_passes_on_the_shipped_files():
    result = run("policy", "check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_policy_check_of_a_broken_folder_exits_2_with_file_and_key(data_copy):
    path = data_copy / "policies" / "rules.yaml"
    path.write_text(path.read_text().replace("reason: Production deployments", "reasn: Production deployments", 1))
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2
    assert "rules.yaml: rules.0.reasn: unknown key" in result.output
    assert "rules.yaml: rules.0.reason: required key is missing" in result.output


@pytest.mark.model
def test_policy_author_edits_a_phrase_and_sees_it_in_the_cli(data_copy):
    path = data_copy / "phrases/en/phrases.yaml"
    data = yaml.safe_load(path.read_text())
    data["phrases"]["clarification"] = "Which part of the site should I write for, {{ type_label }} needed?"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = run("classify", "Write something for the website.", root=data_copy)
    assert "Question: Which part of the site should I write for, Clarification needed?" in result.output


@pytest.mark.model
def test_policy_author_adds_a_rule_and_sees_it_in_the_cli(data_copy):
    path = data_copy / "policies/rules.yaml"
    path.write_text(path.read_text() + """
  - name: bonus_payout
    reason: Bonus payouts are decided by finance.
    type: decision
    trigger: requires_judgment
    keywords: [quarterly bonus]
""")
    before = run("classify", "Translate the quarterly bonus letter into German.")
    after = run("classify", "Translate the quarterly bonus letter into German.", root=data_copy)
    assert "PROCEED" in before.output
    assert "DECISION ESCALATION REQUIRED" in after.output
    assert "rule bonus_payout: Bonus payouts are decided by finance." in after.output


@pytest.mark.model
def test_policy_author_adds_an_exemplar_and_sees_it_in_the_cli(data_copy):
    text = "Calibrate the spectrometer in lab three."
    path = data_copy / "embeddings/technical.yaml"
    data = yaml.safe_load(path.read_text())
    data["exemplars"].append(text)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = run("classify", "--json", text, root=data_copy)
    got = json.loads(result.stdout)
    assert got["type"] == "technical"
    assert got["exemplars"][0] == {"type": "technical", "trigger": "technical_limitation", "text": text,
                                   "similarity": pytest.approx(1.0, abs=1e-3), "file": "technical.yaml"}


LABELLED = [
    ("Take care of it.", "clarification"), ("Do the thing from before.", "clarification"),
    ("Book a flight for me.", "context"), ("Write my cover letter.", "context"),
    ("Translate this sentence into Italian.", "none"), ("Summarise the attached report.", "none"),
    ("Check the live stock price of ACME right now.", "technical"),
    ("Grant the intern admin rights on production.", "scope"),
]


@pytest.mark.model
def test_fit_writes_thresholds_into_classifier_yaml_keeping_comments(data_copy, tmp_path):
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in LABELLED))
    path = data_copy / "policies/classifier.yaml"
    text = re.sub(r"^thresholds:.*$", "thresholds: {}", path.read_text(), flags=re.M)
    path.write_text(re.sub(r"^method: trained$", "method: knn", text, flags=re.M))  # per-type thresholds
    before = path.read_text()
    result = run("fit", str(src), root=data_copy)
    assert result.exit_code == 0, result.output
    after = (data_copy / "policies/classifier.yaml").read_text()
    assert "# How requests are scored." in after
    thresholds = yaml.safe_load(after)["thresholds"]
    assert set(thresholds) == {"clarification", "conflict", "context", "decision", "compliance", "scope",
                               "safety", "technical"}
    assert run("policy", "check", str(data_copy)).exit_code == 0
    assert before != after


@pytest.mark.model
def test_fit_with_the_trained_model_writes_the_decision_values_keeping_comments(data_copy, tmp_path):
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in LABELLED))
    path = data_copy / "policies/classifier.yaml"
    path.write_text(re.sub(r"^(  safety:).*$", r"\1 0.9", path.read_text(), flags=re.M))
    result = run("fit", str(src), root=data_copy)
    assert result.exit_code == 0, result.output
    after = path.read_text()
    assert "# escalate as safety when P(safety) reaches this" in after
    decision = yaml.safe_load(after)["trained"]
    assert f"safety >= {decision['safety']}, margin {decision['margin']}" in result.output
    assert decision["safety"] < 0.9 and decision["folder"] == "bundled"
    assert run("policy", "check", str(data_copy)).exit_code == 0


@pytest.mark.model
def test_eval_prints_per_type_figures_and_confusion(tmp_path):
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in LABELLED))
    result = run("eval", str(src))
    assert result.exit_code == 0, result.output
    for needle in ("precision", "macro-F1 (labels present):", "none escalated:", "safety recall: n/a",
                   "escalate-vs-proceed accuracy:", "confusion (rows = label"):
        assert needle in result.output
    data = json.loads(run("eval", "--json", str(src)).stdout)
    assert data["total"] == len(LABELLED)
    assert set(data["per_label"]) == {l for _, l in LABELLED}


def test_eval_rejects_unknown_labels(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "x", "label": "urgent"}\n')
    result = run("eval", str(src))
    assert result.exit_code == 1 and "line 1: label 'urgent' is not one of" in result.output


@pytest.mark.slow
@pytest.mark.model
def test_console_script_runs_as_installed(tmp_path):
    exe = Path(sys.executable).parent / "escalation-matrix"
    assert exe.exists() or shutil.which("escalation-matrix")
    proc = subprocess.run([str(exe), "classify", "--json", "Take care of it."], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                            "ESCALATION_MATRIX_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["type"] == "clarification"


@pytest.mark.model
def test_fit_shared_writes_one_threshold_for_all_types_but_safety(data_copy, tmp_path):
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in LABELLED))
    path = data_copy / "policies/classifier.yaml"
    path.write_text(re.sub(r"^method: trained$", "method: knn", path.read_text(), flags=re.M))
    before = yaml.safe_load(path.read_text())["thresholds"]
    result = run("fit", "--shared", str(src), root=data_copy)
    assert result.exit_code == 0, result.output
    thresholds = yaml.safe_load(path.read_text())["thresholds"]
    present = {label for _, label in LABELLED} - {"none", "safety"}
    assert len({thresholds[t] for t in present}) == 1
    # types the file has no item of keep their thresholds
    assert {t: thresholds[t] for t in ("conflict", "decision", "compliance")} == {
        t: before[t] for t in ("conflict", "decision", "compliance")}
