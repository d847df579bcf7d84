"""The serving path as shipped — ``escalation-matrix serve`` over stdio, started with the shipped
policy, answering tools/list and classifying — never imports torch, transformers,
sentence-transformers or peft: those are for training and the `backend: torch` option."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers import server_env

pytestmark = [pytest.mark.slow, pytest.mark.model]

HEAVY = ("torch", "transformers", "sentence_transformers", "peft")

# The server process: the CLI's own entry point, with a hook that writes, when the process ends,
# which heavy modules it had imported (sys.modules: what really ran, not what was looked for).
SERVE = """
import atexit, json, sys
out, sys.argv = sys.argv[1], ["escalation-matrix", *sys.argv[2:]]
def dump():
    with open(out, "w") as f:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}), f)
atexit.register(dump)
from escalation_matrix.cli import main
main()
"""


async def test_the_stdio_server_classifies_without_importing_torch(tmp_path: Path):
    from escalation_matrix.loader import load_policy

    assert load_policy().classifier.backend == "onnx"  # what ships
    loaded = tmp_path / "modules.json"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", SERVE.format(heavy=set(HEAVY)), str(loaded), "serve", "--db", str(tmp_path / "e.db")],
        env=server_env(), cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=300) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("classify", {"request": "Delete all customer email addresses from the database."})
        assert not result.is_error, result.content
        assert result.structured_content["type"] != "none"  # a real answer from the model and rules
    assert "classify" in names
    assert loaded.exists(), "the server did not exit cleanly after its client closed stdin"
    assert json.loads(loaded.read_text()) == []
