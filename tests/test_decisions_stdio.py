"""Decision intelligence over the real ``escalation-matrix serve`` process on stdio, with the real
model: a critical decision escalates although the request is harmless, the result carries the
assessment, a structured answer tells the agent what to do, and the outcome reaches the report."""

from __future__ import annotations

import json

import pytest

from servers import call, stdio_client

pytestmark = [pytest.mark.slow, pytest.mark.model]

HARMLESS = "Rename the helper function to parse_rows."
CRITICAL = {"environment": "production", "security_impact": True, "reversible": False}


async def test_critical_decision_structured_answer_and_report_over_stdio(tmp_path):
    async with stdio_client(tmp_path / "state.db") as client:
        plain = await call(client, "classify", request=HARMLESS)
        critical = await call(client, "escalate", conversation_id="crit", request=HARMLESS, context=CRITICAL)
        answered = await call(client, "respond", escalation_id=critical["escalation_id"], conversation_id="crit",
                              action="modify", change="Keep the old name as an alias", necessary=True)
        report = json.loads((await client.read_resource("escalation://reports/daily")).contents[0].text)
    assert plain["action"] == "proceed" and plain["decision"]["autonomy"] is not None
    assert critical["action"] == "escalate" and critical["type"] == "decision"
    assert critical["decision"]["critical"] and critical["decision"]["factors"] == ["production", "security",
                                                                                    "irreversible"]
    assert answered["action"] == "proceed" and "make this change first" in answered["instruction"]
    assert report["decision_quality"]["necessary"] == 1 and report["decision_quality"]["structured"] == {"modify": 1}
