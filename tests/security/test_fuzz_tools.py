"""A bounded fuzzer (hypothesis) over every MCP tool, through the real in-memory client, on the fake
embedder so it runs in the fast lane: any argument values, right or wrong in type, size and
encoding, give a result or an error that says what to fix, never an unexpected failure; the server
keeps serving and nothing over the caps is stored. ``ESCALATION_MATRIX_FUZZ_EXAMPLES`` sets how
many call sequences are tried (300; the fast lane tries 25)."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from escalation_matrix.guard import ConversationGuard
from escalation_matrix.mcp_app import build_server
from escalation_matrix.store import Store

TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
            min_size=1, max_size=3),  # lone surrogates
    st.sampled_from(["", "   ", "Deploy the new build", "<!channel>", "x" * 20_000, "I want to kill myself",
                     "Charge card 4111 1111 1111 1111", "\x00\x01", "ESC-2026-001"]),
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                   st.sampled_from([10**400, -(2**63), 2**63]), st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSONISH = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)
HOSTILE = st.sampled_from([10**400, -(10**400), 2**63, float("nan"), float("inf"), "\ud800", "ok \udfff", "x" * 40_000,
                           {"estimated_cost": 10**400}, {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}},
                           {"note": "\ud83d"}, [], {}, -1, 0, True])
ANY = st.one_of(HOSTILE, SCALAR, JSONISH)
# the full suite tries 300 call sequences; the fast lane (`make test-fast`) sets fewer
EXAMPLES = int(os.environ.get("ESCALATION_MATRIX_FUZZ_EXAMPLES", "300"))
PARAMS = {
    "classify": ["request", "context"],
    "escalate": ["conversation_id", "request", "task_id", "question", "options", "details", "context"],
    "clarify": ["conversation_id", "request", "question", "task_id", "options", "missing"],
    "check_scope": ["request", "conversation_id", "capabilities"],
    "respond": ["escalation_id", "answer", "conversation_id"],
    "report_item": ["item_id", "iterations", "failures", "confidence", "error", "details"],
    "preferences": ["scope", "scope_id", "revoked"],
    "revoke_preference": ["preference_id", "reason"],
    "batches": ["batch_id", "status", "person"],
    "answer_batch": ["batch_id", "items", "action", "note"],
}
CALLS = st.sampled_from(sorted(PARAMS)).flatmap(
    lambda tool: st.tuples(st.just(tool), st.dictionaries(st.sampled_from(PARAMS[tool]), ANY, max_size=len(PARAMS[tool]))))


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls=st.lists(CALLS, min_size=1, max_size=4))
def test_any_arguments_give_a_result_or_a_clear_error(guard, calls):
    server = build_server(guard=guard)

    async def run() -> None:
        async with Client(server) as client:
            for tool, args in calls:
                result = await client.call_tool(tool, args)
                if result.is_error:
                    text = result.content[0].text
                    assert "failed unexpectedly" not in text and "Traceback" not in text, (tool, args, text)
                    assert len(text) < 5000
            alive = await client.call_tool("classify", {"request": "Deploy the new build"})
            assert not alive.is_error

    asyncio.run(run())
    longest = guard.store._conn().execute(
        "SELECT MAX(LENGTH(request)), MAX(LENGTH(details)), MAX(LENGTH(context)) FROM escalations").fetchone()
    assert all(n is None or n <= 20_000 for n in longest)


def test_the_tool_list_matches_the_fuzzed_list(guard):
    async def names() -> set[str]:
        async with Client(build_server(guard=guard)) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert asyncio.run(names()) == set(PARAMS)
