"""What people used to well-kept CLIs expect: --version, ``python -m``, ``-`` for stdin, progress
bars with time left, whole command summaries, the addresses ``serve`` listens on, a config file
and JSON logs. The classifier runs on a policy copy set to the deterministic fake embedder
(``model: fake``), so these stay fast; the code paths are the real ones."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from escalation_matrix.cli import main, summary

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server"


@pytest.fixture
def fake_copy(data_copy: Path) -> Path:
    """The shipped data folders with the classifier on the fast fake embedder."""
    path = data_copy / "policies" / "classifier.yaml"
    text = path.read_text(encoding="utf-8")
    assert "model: bundled" in text
    path.write_text(text.replace("model: bundled", "model: fake"), encoding="utf-8")
    return data_copy


def folders(root: Path) -> list[str]:
    return ["--policies", str(root / "policies"), "--phrases", str(root / "phrases"),
            "--embeddings", str(root / "embeddings")]


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def env_with_source() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SERVER), os.environ.get("PYTHONPATH", "")])}


# --- --version and python -m ---
def test_version_prints_the_installed_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"escalation-matrix, version {version('escalation-matrix')}"


@pytest.mark.slow
def test_python_dash_m_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "escalation_matrix", "--version"], capture_output=True, text=True,
                          env=env_with_source(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("escalation-matrix, version ")
    helped = subprocess.run([sys.executable, "-m", "escalation_matrix", "--help"], capture_output=True, text=True,
                            env=env_with_source(), timeout=120)
    assert helped.returncode == 0 and "Usage: escalation-matrix" in helped.stdout


# --- stdin ---
def test_classify_dash_reads_the_request_from_stdin(fake_copy):
    text = "Delete every customer record in the production database."
    result = invoke(*folders(fake_copy), "classify", "--json", "-", input=text + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["request"] == text


def test_classify_dash_with_empty_stdin_says_what_to_do(fake_copy):
    result = CliRunner().invoke(main, [*folders(fake_copy), "classify", "-"], input="")
    assert result.exit_code == 1
    assert "standard input was empty" in result.output


def test_classify_input_dash_reads_jsonl_from_stdin(fake_copy):
    lines = "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(["Book a flight.", "Drop the table."]))
    result = invoke(*folders(fake_copy), "classify", "--input", "-", input=lines)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [0, 1] and all("type" in r for r in rows)


def test_bad_jsonl_on_stdin_names_stdin_and_the_line(fake_copy):
    result = CliRunner().invoke(main, [*folders(fake_copy), "classify", "--input", "-"], input='{"text": "a"}\nnot json\n')
    assert result.exit_code == 1
    assert "<stdin>: line 2: invalid JSON" in result.output


# --- progress bars with time left ---
def labelled_file(tmp_path: Path, n: int) -> Path:
    labels = ["none", "clarification", "scope", "safety"]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"text": f"request number {i} about topic {i % 13}", "label": labels[i % 4]}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


BAR = re.compile(r"(\d+)/(\d+) \[[\d:]+ elapsed, [\d:?]+ left, ")


@pytest.mark.parametrize("command, label", [
    (["classify", "--input"], "classify"),
    (["eval"], "eval"),
    (["fit", "--dry-run"], "fit: scoring"),
])
def test_batch_commands_show_a_progress_bar_with_time_left(fake_copy, tmp_path, command, label):
    items = labelled_file(tmp_path, 300)
    result = invoke(*folders(fake_copy), "--progress", *command, str(items))
    assert result.exit_code == 0, result.output
    bars = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith(label + ":")]
    assert bars, result.stderr[-500:]
    assert BAR.search(bars[-1]) and "300/300" in bars[-1]


def test_no_progress_and_small_jobs_draw_no_bar(fake_copy, tmp_path):
    items = labelled_file(tmp_path, 300)
    assert "left" not in invoke(*folders(fake_copy), "--no-progress", "eval", str(items)).stderr
    small = labelled_file(tmp_path, 10)
    assert "left" not in invoke(*folders(fake_copy), "--progress", "eval", str(small)).stderr


def test_encoding_the_exemplars_on_a_cold_cache_shows_a_bar(fake_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("ESCALATION_MATRIX_CACHE", str(tmp_path / "cold-cache"))
    result = invoke(*folders(fake_copy), "--progress", "classify", "Book a flight to Oslo.")
    assert result.exit_code == 0, result.output
    encoding = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("encoding:")]
    assert encoding and BAR.search(encoding[-1])
    # the second run reads the cached vectors: nothing to encode, no bar
    again = invoke(*folders(fake_copy), "--progress", "classify", "Book a flight to Oslo.")
    assert "encoding:" not in again.stderr


# --- help text ---
def groups(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from groups(command, (*prefix, name))


def listed_summaries(help_text: str) -> dict[str, str]:
    section = help_text.split("Commands:\n", 1)[1]
    found: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        head = re.match(r"  (\S+)\s{2,}(.*)", line)
        if head:
            name = head.group(1)
            found[name] = head.group(2).strip()
        elif name and line.strip():
            found[name] += " " + line.strip()
    return found


@pytest.mark.parametrize("path, group", list(groups(main)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_command_summaries_are_whole_sentences(path, group):
    result = invoke(*path, "--help")
    listed = listed_summaries(result.stdout)
    assert set(listed) == set(group.commands)
    for name, text in listed.items():
        assert not text.endswith("..."), f"{name}: {text}"
        assert text.endswith("."), f"{name}: {text}"
        assert text == summary(group.commands[name])


def test_help_speaks_about_the_product_not_internal_documents():
    texts = []
    for path, group in groups(main):
        for name in group.commands:
            texts.append(invoke(*path, name, "--help").stdout)
    texts.append(invoke("--help").stdout)
    leaks = [t for t in texts if re.search(r"seed \d|§", t)]
    assert leaks == []


def test_weekly_help_matches_the_period_the_report_covers(tmp_path):
    from datetime import date

    from escalation_matrix.ops.reports import period_bounds

    help_text = " ".join(invoke("report", "--help").stdout.split())
    assert "seven days ending with --date" in help_text
    start, end = period_bounds("weekly", date(2026, 2, 14))
    assert (start.date().isoformat(), end.date().isoformat()) == ("2026-02-08", "2026-02-15")


# --- serve prints where it listens ---
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "s3cret-token"])
def test_serve_prints_the_mcp_and_the_console_address(fake_copy, tmp_path, token):
    port = free_port()
    env = env_with_source()
    env.pop("ESCALATION_MATRIX_TOKEN", None)
    if token:
        env["ESCALATION_MATRIX_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-m", "escalation_matrix", *folders(fake_copy), "serve", "--transport",
                             "http", "--port", str(port), "--db", str(tmp_path / "s.db")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("console at" in line for line in lines):
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = "".join(lines)
    assert f"MCP at http://127.0.0.1:{port}/mcp" in out, out
    assert f"console at http://127.0.0.1:{port}/console" in out, out
    if token:
        assert "(bearer token required)" in out and "?token=<the value of $ESCALATION_MATRIX_TOKEN>" in out
        assert token not in out  # the secret itself is never printed


# --- config file ---
def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "escalation-matrix.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_in_the_working_folder_sets_the_db_and_the_policy(fake_copy, tmp_path, monkeypatch):
    work = tmp_path / "work"
    write_config(work, 'db = "state/esc.db"\npolicies = "../policies"\n')
    monkeypatch.chdir(work)
    monkeypatch.delenv("ESCALATION_MATRIX_DB", raising=False)
    monkeypatch.delenv("ESCALATION_MATRIX_POLICIES", raising=False)
    (fake_copy / "policies" / "operations.yaml").write_text(
        (fake_copy / "policies" / "operations.yaml").read_text().replace("assignee: operations-team",
                                                                         "assignee: night-shift"))
    (work / "state").mkdir()
    result = invoke("create", "--reason", "Which brand is this?")
    assert result.exit_code == 0, result.output
    assert "assignee night-shift" in result.stdout  # the policy named in the file
    assert (work / "state" / "esc.db").is_file()  # relative to the file's folder
    assert "Which brand is this?" in invoke("list").stdout


def test_environment_and_options_beat_the_config_file(tmp_path, monkeypatch):
    work = tmp_path / "work"
    write_config(work, 'db = "from-file.db"\n')
    monkeypatch.chdir(work)
    monkeypatch.setenv("ESCALATION_MATRIX_DB", str(tmp_path / "from-env.db"))
    invoke("create", "--reason", "env wins")
    assert (tmp_path / "from-env.db").is_file() and not (work / "from-file.db").exists()
    invoke("create", "--reason", "option wins", "--db", str(tmp_path / "from-option.db"))
    assert (tmp_path / "from-option.db").is_file()


def test_config_in_the_user_config_folder_is_used_when_the_working_folder_has_none(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ESCALATION_MATRIX_DB", raising=False)
    write_config(tmp_path / "xdg" / "escalation-matrix", 'db = "user.db"\n[serve]\nport = 9911\n')
    monkeypatch.chdir(tmp_path)
    invoke("create", "--reason", "user config")
    assert (tmp_path / "xdg" / "escalation-matrix" / "user.db").is_file()
    assert "[default: 9911;" in " ".join(invoke("serve", "--help").stdout.split())


@pytest.mark.parametrize("text, message", [
    ('colour = "blue"\n', "colour: unknown setting; use one of: policies"),
    ('db = 3\n', "db: must be a path in quotes"),
    ('log_format = "xml"\n', "log_format: 'xml' is not text or json"),
    ('[serve]\nprot = 1\n', "serve.prot: unknown setting"),
    ('db = "a\n', "not valid TOML"),
])
def test_a_bad_config_file_says_which_key_to_fix(tmp_path, monkeypatch, text, message):
    path = write_config(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 2
    assert f"{path}: " in result.output and message in result.output


def test_config_option_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ESCALATION_MATRIX_DB", raising=False)
    path = write_config(tmp_path / "elsewhere", 'db = "named.db"\n')
    assert invoke("--config", str(path), "create", "--reason", "named").exit_code == 0
    assert (tmp_path / "elsewhere" / "named.db").is_file()
    missing = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.toml"), "list"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


# --- JSON logs ---
def test_log_format_json_writes_one_object_per_line(tmp_path):
    db = str(tmp_path / "j.db")
    created = invoke("create", "--reason", "Critical data issue", "--severity", "L4", "--db", db)
    assert created.exit_code == 0, created.output
    result = invoke("--log-format", "json", "sweep", "--now", "2099-01-01T00:00:00Z", "--db", db)
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert entries, result.stderr
    notices = [e for e in entries if e["logger"] == "escalation_matrix.notify"]
    assert all(set(n) >= {"time", "level", "logger", "message"} and n["level"] == "WARNING" for n in notices)
    assert any("Critical escalation" in n["message"] for n in notices)
    text = invoke("sweep", "--now", "2099-01-02T00:00:00Z", "--db", db)
    assert not any(line.startswith("{") for line in text.stderr.splitlines())


def test_a_postgresql_url_in_the_config_file_is_kept_as_it_is(tmp_path):
    from escalation_matrix.cli import config

    path = write_config(tmp_path, 'db = "postgresql://em:pw@db.internal:5432/escalations"\npolicies = "p"\n')
    loaded = config.load(path)
    assert loaded["db"] == "postgresql://em:pw@db.internal:5432/escalations"
    assert loaded["policies"] == str((tmp_path / "p").resolve())  # paths are still made absolute
