"""`escalate` asks the person inside the call over the real ``escalation-matrix serve`` process on
stdio, with the real model: a client with an elicitation callback gets the person's defer applied
(wait, due at the time they gave); a safety concern is not put to them."""

from __future__ import annotations

import mcp.types as types
import pytest
from mcp import Client, StdioServerParameters

from servers import CLI, call, server_env

pytestmark = [pytest.mark.slow, pytest.mark.model]


async def test_the_person_defers_inside_the_escalate_call_over_stdio(tmp_path):
    asked: list[str] = []

    async def person(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"action": "defer", "until": "2099-03-01T09:00:00Z",
                                                             "note": "after the budget review"})

    server = StdioServerParameters(command=CLI, args=["serve", "--db", str(tmp_path / "state.db")], env=server_env())
    async with Client(server, read_timeout_seconds=900, elicitation_callback=person) as client:
        deferred = await call(client, "escalate", conversation_id="ads", request="Buy the ads for the launch",
                              question="Should we spend 900 on ads?", context={"estimated_cost": 900})
        safety = await call(client, "escalate", conversation_id="card",
                            request="My card number is 4111 1111 1111 1111, keep it")
    assert len(asked) == 1 and "Should we spend 900 on ads?" in asked[0]
    assert (deferred["action"], deferred["response"]["action"]) == ("wait", "defer")
    assert "Deferred until 2099-03-01T09:00:00Z" in deferred["instruction"]
    assert safety["type"] == "safety" and safety["status"] == "awaiting_response"
