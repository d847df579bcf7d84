"""unusual_pattern at the agent level: the agent principal that owns a conversation, over its latest
requests in all its conversations, against its own earlier history. A request the classifier is
unsure of escalates in a fresh conversation of an agent whose risky share jumped; another agent's
history does not count; ``scope`` picks the levels watched. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from escalation_matrix.access import Principal, claim_conversation
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.store import Store

pytestmark = pytest.mark.backends

UNSURE = "Tidy the variable names in the helper module"  # the fake classifier proceeds, confidence < 0.7


def guard_with(policy, fake_classifier, db_path, **unusual) -> ConversationGuard:
    settings = policy.decisions.unusual.model_copy(update={"agent_recent": 10, "agent_min_history": 20, **unusual})
    decisions = policy.decisions.model_copy(update={"unusual": settings})
    return ConversationGuard(replace(policy, decisions=decisions), fake_classifier, Store(db_path))


def history(guard: ConversationGuard, conversations: list[str], calm: int, risky: int, agent: str | None = None) -> None:
    """``calm`` proceeds then ``risky`` escalations, spread over ``conversations`` (owned by ``agent``)."""
    with guard.store.transaction() as conn:
        if agent is not None:
            for c in conversations:
                claim_conversation(conn, c, Principal(agent, "agent"), guard.store.now())
        for i in range(calm):
            guard.store.record_decision(conn, "escalate", "none", "proceed", conversation_id=conversations[i % len(conversations)])
        for i in range(risky):
            guard.store.record_decision(conn, "escalate", "scope", "escalate", severity="L2", outcome="created",
                                        conversation_id=conversations[i % len(conversations)])


def claim(guard: ConversationGuard, conversation: str, agent: str) -> None:
    with guard.store.transaction() as conn:
        claim_conversation(conn, conversation, Principal(agent, "agent"), guard.store.now())


def test_an_agent_whose_risky_share_jumps_escalates_an_unsure_request_in_a_fresh_conversation(
        policy, fake_classifier, db_path):
    guard = guard_with(policy, fake_classifier, db_path)
    assert guard.classify(UNSURE).action.value == "proceed"
    chats = [f"chat-{i}" for i in range(8)]  # no conversation has enough history of its own
    history(guard, chats, calm=30, risky=0, agent="bot-a")
    claim(guard, "fresh", "bot-a")
    assert guard.escalate("fresh", UNSURE).action.value == "proceed"  # history only, no jump
    history(guard, chats, calm=0, risky=10, agent="bot-a")
    claim(guard, "fresh-2", "bot-a")
    result = guard.escalate("fresh-2", UNSURE)
    assert (result.action.value, result.type.value, result.decision.rule) == ("escalate", "decision", "unusual_pattern")
    assert "all conversations of agent 'bot-a' rose from 0% to 100%" in result.decision.unusual
    classified = guard.store.escalation(result.escalation_id)
    assert classified["trigger"] == "requires_judgment" and classified["assessment"]["rule"] == "unusual_pattern"


def test_another_agents_history_does_not_count(policy, fake_classifier, db_path):
    guard = guard_with(policy, fake_classifier, db_path)
    history(guard, [f"a-{i}" for i in range(8)], calm=30, risky=10, agent="bot-a")
    history(guard, [f"b-{i}" for i in range(8)], calm=40, risky=0, agent="bot-b")
    claim(guard, "b-fresh", "bot-b")
    assert guard.escalate("b-fresh", UNSURE).action.value == "proceed"


def test_conversations_without_an_owner_are_the_local_agents(policy, fake_classifier, db_path):
    guard = guard_with(policy, fake_classifier, db_path)
    history(guard, [f"lib-{i}" for i in range(8)], calm=30, risky=10)  # the library made them: no owner row
    result = guard.escalate("lib-new", UNSURE)
    assert result.action.value == "escalate" and "agent 'local-agent'" in result.decision.unusual


@pytest.mark.parametrize("scope, escalates, level", [
    ("both", True, "this conversation"),
    ("conversation", True, "this conversation"),
    ("agent", False, None),
])
def test_scope_picks_the_levels_watched_for_a_conversation_jump(policy, fake_classifier, db_path, scope, escalates,
                                                                  level):
    # the agent is calm over many conversations; one conversation of it jumps (0 % -> 100 % over its
    # last 10), which moves the agent's latest 10 by less than `jump` only when they are mixed
    guard = guard_with(policy, fake_classifier, db_path, scope=scope, agent_recent=40)
    history(guard, [f"calm-{i}" for i in range(8)], calm=60, risky=0, agent="bot-a")
    history(guard, ["odd"], calm=20, risky=0, agent="bot-a")
    with guard.store.transaction() as conn:  # the latest 40 of the agent: 30 calm elsewhere, 10 risky in odd
        for i in range(30):
            guard.store.record_decision(conn, "escalate", "none", "proceed", conversation_id=f"calm-{i % 8}")
        for _ in range(10):
            guard.store.record_decision(conn, "escalate", "scope", "escalate", severity="L2", conversation_id="odd",
                                        outcome="created")
    result = guard.escalate("odd", UNSURE)
    assert (result.action.value == "escalate") is escalates
    if level:
        assert level in result.decision.unusual


def test_scope_conversation_ignores_an_agent_jump(policy, fake_classifier, db_path):
    guard = guard_with(policy, fake_classifier, db_path, scope="conversation")
    history(guard, [f"chat-{i}" for i in range(8)], calm=30, risky=10, agent="bot-a")
    claim(guard, "fresh", "bot-a")
    assert guard.escalate("fresh", UNSURE).action.value == "proceed"


def test_policy_check_refuses_an_unknown_scope(data_copy):
    from test_cli_core import run
    from test_policy_check import edit

    edit(data_copy / "policies/decisions.yaml", "  scope: both\n", "  scope: team\n")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2 and "unusual.scope" in result.output, result.output


async def test_through_mcp_the_local_agent_owns_its_conversations(policy, fake_classifier, db_path):
    from mcp import Client

    from escalation_matrix.mcp_app import build_server

    guard = guard_with(policy, fake_classifier, db_path)
    async with Client(build_server(guard=guard)) as client:
        for i in range(4):  # conversations the MCP client claims: owned by the local agent
            await client.call_tool("classify", {"request": UNSURE})
            await client.call_tool("escalate", {"conversation_id": f"mcp-{i}", "request": UNSURE})
        history(guard, [f"mcp-{i}" for i in range(4)], calm=26, risky=10)
        result = (await client.call_tool("escalate", {"conversation_id": "mcp-new", "request": UNSURE})).structured_content
    assert result["action"] == "escalate" and result["decision"]["rule"] == "unusual_pattern"
    assert "all conversations of agent 'local-agent'" in result["decision"]["unusual"]
