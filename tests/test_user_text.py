"""User-facing text speaks about the product: no references to internal documents in the README,
the --help texts or the MCP tool descriptions; tool descriptions without source indentation; and
the README's commands are true (the copy step for policy authors runs as written, every
`escalation-matrix COMMAND` it shows exists)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from escalation_matrix.cli import main
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
INTERNAL = re.compile(r"seed \d{3}|§\s*\d")


def test_the_readme_names_no_internal_document():
    assert INTERNAL.findall(README) == []


@pytest.fixture
def server(policy, fake_classifier, tmp_path):
    return build_server(guard=ConversationGuard(policy, fake_classifier, Store(tmp_path / "t.db")))


async def test_tool_descriptions_are_clean_product_text(server):
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
        templates = (await client.list_resource_templates()).resource_templates
    texts = {t.name: t.description or "" for t in tools}
    texts.update({f"prompt {p.name}": p.description or "" for p in prompts})
    texts.update({f"resource {r.name}": r.description or "" for r in templates})
    assert len(tools) >= 6
    for name, text in texts.items():
        assert text.strip(), f"{name} has no description"
        assert not INTERNAL.search(text), f"{name}: {text}"
        assert not re.search(r"\n[ \t]", text), f"{name} keeps the source indentation: {text!r}"
    for tool in tools:  # argument descriptions too
        for arg, schema in (tool.input_schema.get("properties") or {}).items():
            assert not INTERNAL.search(schema.get("description", "")), f"{tool.name}.{arg}"


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n#", start + len(title))
    return README[start:end]


@pytest.mark.slow
def test_the_policy_author_copy_step_runs_as_written(tmp_path):
    block = re.search(r"```bash\n(.*?)```", section("### For policy authors"), re.S).group(1)
    assert "mkdir -p ~/my-policy" in block
    home = tmp_path / "home"
    home.mkdir()
    script = block + '\nfor v in "$ESCALATION_MATRIX_POLICIES" "$ESCALATION_MATRIX_PHRASES" "$ESCALATION_MATRIX_EMBEDDINGS"; ' \
                     'do test -d "$v" || { echo "missing $v"; exit 1; }; done\n'
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home)}, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (home / "my-policy" / "policies" / "rules.yaml").is_file()
    assert (home / "my-policy" / "embeddings" / "none.yaml").is_file()


def test_every_command_the_readme_shows_exists():
    shown = set(re.findall(r"escalation-matrix ([a-z][a-z-]+)", README))
    missing = sorted(shown - set(main.commands))
    assert missing == [], f"the README shows commands that do not exist: {missing}"
    for group in ("policy", "audit", "pipeline", "actors"):
        for sub in re.findall(rf"escalation-matrix {group} ([a-z][a-z-]+)", README):
            assert sub in main.commands[group].commands, f"{group} {sub}"
