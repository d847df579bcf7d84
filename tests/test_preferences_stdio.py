"""Preference learning over the real ``escalation-matrix serve`` process on stdio, with the real
model: a person approves the same question in four conversations, the fifth is answered from their
preference (which says how to revoke it), the preference is revoked and the person is asked again."""

from __future__ import annotations


import pytest

from servers import call, stdio_client

pytestmark = [pytest.mark.slow, pytest.mark.model]

PERSON = {"person": "dana", "environment": "staging"}
ASK = {"request": "Refresh the staging data for the demo", "type": "decision",
       "question": "May I overwrite the staging database with last night's anonymised snapshot?"}


async def test_consistent_answers_auto_answer_then_revoke_over_stdio(tmp_path):
    async with stdio_client(tmp_path / "state.db") as client:
        for i in range(4):
            asked = await call(client, "escalate", conversation_id=f"demo-{i}", context=PERSON, **ASK)
            assert asked["action"] == "escalate", asked
            await call(client, "respond", escalation_id=asked["escalation_id"], conversation_id=f"demo-{i}",
                       action="approve")
        auto = await call(client, "escalate", conversation_id="demo-9", context=PERSON,
                          request="Refresh staging data for tomorrow's demo",
                          question="Can I overwrite the staging database with last night's anonymised snapshot?",
                          type="decision")
        listed = await call(client, "preferences", scope_id="dana")
        await call(client, "revoke_preference", preference_id=auto["preference"]["id"], reason="ask me")
        again = await call(client, "escalate", conversation_id="demo-10", context=PERSON, **ASK)
    assert auto["action"] == "proceed" and auto["answer"] == "Approved." and auto["escalation_id"] is None
    assert auto["preference"]["scope_id"] == "dana" and auto["preference"]["confidence"] >= 0.95
    assert "revoke_preference" in auto["instruction"]
    assert listed["preferences"][0]["answers_now"] is True
    assert again["action"] == "escalate" and again["preference"] is None
