"""The MCP structured output and the renderers carry the same data: a card built from an MCP tool
result equals the card built from the library's result for the same call on the same state."""

from __future__ import annotations

import pytest
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import EscalationResult
from escalation_matrix.render import card, render
from escalation_matrix.store import Store

REQUEST = "Write something for the website."
QUESTION = "Which deliverable should I write for the website?"
OPTIONS = ["Product description", "Landing page <b>copy</b>", "Blog post"]

CALLS = [
    ("clarify", dict(conversation_id="c1", request=REQUEST, question=QUESTION, options=OPTIONS)),
    ("escalate", dict(conversation_id="c1", request="Deploy the new release", context={"environment": "production"},
                      options=["Deploy tonight", "Wait for Monday"])),
    ("check_scope", dict(request="Delete all customer email addresses from the database.", conversation_id="c1")),
    ("classify", dict(request="Deploy the new release", context={"environment": "production"})),
]


@pytest.fixture
def twins(policy, fake_classifier, tmp_path):
    """Two guards on two fresh state files: one behind the MCP server, one called directly."""
    return (ConversationGuard(policy, fake_classifier, Store(tmp_path / "mcp.db")),
            ConversationGuard(policy, fake_classifier, Store(tmp_path / "lib.db")))


@pytest.mark.parametrize("tool, args", CALLS, ids=[c[0] for c in CALLS])
async def test_card_from_the_mcp_result_equals_card_from_the_library_result(policy, twins, tool, args):
    over_mcp, direct = twins
    async with Client(build_server(guard=over_mcp)) as client:
        reply = await client.call_tool(tool, args)
    assert not reply.is_error, reply.content
    from_mcp = EscalationResult.model_validate(reply.structured_content)
    from_lib = getattr(direct, tool)(**args)
    # each store draws its own random reference for the record; everything else is the same
    assert (from_mcp.ref is None) == (from_lib.ref is None)
    from_lib = from_lib.model_copy(update={"ref": from_mcp.ref})
    assert from_mcp == from_lib
    assert card(from_mcp, policy, store=over_mcp.store) == card(from_lib, policy, store=direct.store)
    for fmt in ("md", "txt", "html"):
        assert render(from_mcp, fmt, policy, store=over_mcp.store) == render(from_lib, fmt, policy, store=direct.store)


async def test_the_mcp_message_is_the_rendered_markdown(policy, twins):
    over_mcp, _ = twins
    async with Client(build_server(guard=over_mcp)) as client:
        reply = await client.call_tool("clarify", CALLS[0][1])
    data = reply.structured_content
    assert data["message"] == render(EscalationResult.model_validate(data), "md", policy, store=over_mcp.store)
    assert card(data, policy, store=over_mcp.store).markdown == data["message"]
