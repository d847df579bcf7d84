"""Batching over the real ``escalation-matrix serve`` process on stdio, with the real model: five
questions for one person are queued into one batch (the fifth delivers it), the person approves
one selected item, then all the rest, the agent asking again gets the answer, and the report
counts the batch."""

from __future__ import annotations

import json

import pytest

from servers import call, stdio_client

pytestmark = [pytest.mark.slow, pytest.mark.model]

PERSON = {"person": "erin", "environment": "staging", "resource": "export-service"}
QUESTIONS = ["Should the export worker log at info or debug level?", "Should failed exports retry 3 or 5 times?",
             "Should the export files be named by date or by customer?", "Should exports run hourly or daily?",
             "Should the export bucket keep files for 30 or 90 days?"]


async def test_five_questions_one_batch_approve_selected_then_all_over_stdio(tmp_path):
    async with stdio_client(tmp_path / "state.db") as client:
        asked = [await call(client, "escalate", conversation_id=f"exp-{i}", request="Configure the export service",
                            question=q, context=PERSON, type="decision") for i, q in enumerate(QUESTIONS)]
        again = await call(client, "escalate", conversation_id="exp-0", request="Configure the export service",
                           question=QUESTIONS[0], context=PERSON, type="decision")
        bid = asked[0]["batch_id"]
        shown = await call(client, "batches", batch_id=bid)
        selected = await call(client, "answer_batch", batch_id=bid, items=[asked[2]["escalation_id"]])
        rest = await call(client, "answer_batch", batch_id=bid)
        answered = await call(client, "escalate", conversation_id="exp-3", request="Configure the export service",
                              question=QUESTIONS[3], context=PERSON, type="decision")
        report = json.loads((await client.read_resource("escalation://reports/daily")).contents[0].text)
    assert all(a["action"] == "escalate" and a["batch_id"] == bid for a in asked), asked
    assert all(a["queued"] for a in asked[:4]) and not asked[4]["queued"]
    assert again["repeated"] and again["escalation_id"] == asked[0]["escalation_id"]
    assert shown["status"] == "delivered" and shown["delivered_why"] == "full"
    assert [len(g["items"]) for g in shown["groups"]] == [1, 1, 1, 1, 1]  # a task is a conversation's
    assert shown["card"]["groups"][0]["resource"] == "export-service"
    assert selected["answered"] == [asked[2]["escalation_id"]] and selected["open_left"] == 4
    assert len(rest["answered"]) == 4 and rest["status"] == "answered"
    assert answered["action"] == "proceed" and answered["answer"] == "Approved."
    quality = report["decision_quality"]
    assert (quality["batches_delivered"], quality["batched_items"], quality["notifications_saved"]) == (1, 5, 4)
