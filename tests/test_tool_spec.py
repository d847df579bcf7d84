"""The agent's tools are described once (``toolspec``): the MCP server and the LangChain tools show
the same tool descriptions and the same argument descriptions, in product words."""

from __future__ import annotations

import re

import pytest
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import make_tools
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store
from escalation_matrix.toolspec import TOOLS

INTERNAL = re.compile(r"\bseed\b|§|\bissue \d|TODO", re.IGNORECASE)


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


async def test_mcp_and_langchain_tools_have_the_same_descriptions_and_arguments(guard):
    async with Client(build_server(guard=guard)) as client:
        mcp_tools = {t.name: t for t in (await client.list_tools()).tools}
    lc_tools = {t.name: t for t in make_tools(guard, batches=True)}
    assert set(lc_tools) == set(TOOLS) <= set(mcp_tools)
    for name, lc_tool in lc_tools.items():
        mcp_tool = mcp_tools[name]
        assert lc_tool.description == mcp_tool.description == TOOLS[name].description, name
        assert mcp_tool.title == TOOLS[name].title
        mcp_args = {arg: schema.get("description") for arg, schema in mcp_tool.input_schema["properties"].items()}
        lc_args = {arg: schema.get("description")
                   for arg, schema in lc_tool.args_schema.model_json_schema()["properties"].items()}
        assert lc_args == mcp_args == dict(TOOLS[name].arguments), name


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_tool_texts_are_single_lines_of_product_text(name):
    spec = TOOLS[name]
    for text in (spec.title, spec.description, *spec.arguments.values()):
        assert text and text == " ".join(text.split()), f"{name}: stray whitespace in {text!r}"
        assert not INTERNAL.search(text), f"{name}: {text}"
