"""A call matched by meaning to an earlier escalation shows the earlier words (matched_request),
and the agent, which can tell "edit rights" from "view rights", can say new_issue=true: only an
earlier call worded alike is then the same issue. Library, in-memory MCP client and LangChain,
with the real model; the matching helpers without it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from mcp import Client

from escalation_matrix.errors import InputError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import ESCALATION_PROTOCOL, make_tools
from escalation_matrix.matching import Issue, worded_alike
from escalation_matrix.mcp_app import build_server
from escalation_matrix.models import Action
from escalation_matrix.store import Store

EDIT = "Grant the intern edit rights on the marketing drive."
VIEW = "Grant the intern view rights on the marketing drive."


def issue(request: str, question: str | None = None) -> Issue:
    v = np.ones(4, np.float32)
    return Issue(request, v, question, v if question else None)


def test_worded_alike_ignores_case_spacing_and_end_punctuation_only():
    assert worded_alike(issue(EDIT), issue("  grant the intern EDIT rights on the marketing   drive")) is True
    assert worded_alike(issue(EDIT), issue(VIEW)) is False
    # the questions decide when both calls asked one, as for the match by meaning
    assert worded_alike(issue(EDIT, "Which drive?"), issue(VIEW, "which drive")) is True
    assert worded_alike(issue(EDIT, "Which drive?"), issue(EDIT, "Which intern?")) is False


@pytest.mark.backends
@pytest.mark.model
class TestWithTheModel:
    """With the cosine detector (``same_issue_model: cosine``), which takes EDIT and VIEW for one
    issue: the mechanism shown to the agent whatever detector made the mistake. The pair model
    tells these two apart (test_pairmodel.py); a true rewording it matches is shown the same way
    (test_over_stdio below)."""

    @pytest.fixture
    def guard(self, policy, classifier, db_path):
        cosine = dataclasses.replace(policy, conversation=policy.conversation.model_copy(
            update={"same_issue_model": "cosine"}))
        return ConversationGuard(cosine, classifier, Store(db_path))

    def test_an_open_issue_matched_by_meaning_shows_the_earlier_request(self, guard):
        first = guard.escalate("c", EDIT, type="decision")
        again = guard.escalate("c", VIEW, type="decision")
        # the encoder takes these two for one issue (a known limit of matching by meaning) ...
        assert again.repeated and again.escalation_id == first.escalation_id
        # ... so the agent is shown what it was matched to, and told how to say it differs
        assert again.matched_request == EDIT
        assert EDIT in again.instruction and "new_issue: true" in again.instruction
        new = guard.escalate("c", VIEW, type="decision", new_issue=True)
        assert new.action is Action.escalate and not new.repeated and new.escalation_id != first.escalation_id
        assert new.matched_request is None
        # new_issue does not let the same words be asked twice
        same = guard.escalate("c", VIEW, type="decision", new_issue=True)
        assert same.repeated and same.escalation_id == new.escalation_id and same.matched_request is None
        assert guard.store.count("escalations") == 2

    def test_the_same_words_again_carry_no_matched_request(self, guard):
        first = guard.escalate("c", EDIT, type="decision")
        again = guard.escalate("c", EDIT.upper().rstrip("."), type="decision")
        assert again.repeated and again.escalation_id == first.escalation_id and again.matched_request is None
        assert "new_issue" not in again.instruction

    def test_an_answer_is_not_applied_to_a_new_issue(self, guard):
        first = guard.escalate("c", EDIT, type="decision")
        guard.respond(first.escalation_id, "Yes, edit rights are fine")
        reused = guard.escalate("c", VIEW, type="decision")
        assert (reused.action, reused.answer, reused.matched_request) == (Action.proceed, "Yes, edit rights are fine", EDIT)
        new = guard.escalate("c", VIEW, type="decision", new_issue=True)
        assert new.action is Action.escalate and new.escalation_id != first.escalation_id and new.answer is None
        # the answered request itself, with new_issue, still gets its answer
        again = guard.escalate("c", EDIT, type="decision", new_issue=True)
        assert (again.action, again.answer) == (Action.proceed, "Yes, edit rights are fine")

    def test_clarify_takes_new_issue_too(self, guard):
        first = guard.clarify("c", EDIT, "Which drive folder should the intern get?")
        again = guard.clarify("c", VIEW, "Which drive folder should the intern get?", new_issue=True)
        # the questions are worded alike: the same issue, new_issue or not
        assert again.escalation_id == first.escalation_id and again.repeated

    def test_a_bad_new_issue_value_is_a_clear_error(self, guard):
        with pytest.raises(InputError, match="new_issue must be true or false"):
            guard.escalate("c", EDIT, new_issue="yes")  # type: ignore[arg-type]
        assert guard.store.count("escalations") == 0

    async def test_over_mcp(self, guard):
        async with Client(build_server(guard=guard)) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "new_issue" in tools["escalate"].input_schema["properties"]
            assert "new_issue" in tools["clarify"].input_schema["properties"]
            assert "matched_request" in tools["escalate"].output_schema["properties"]
            first = (await client.call_tool("escalate", {"conversation_id": "m", "request": EDIT,
                                                          "type": "decision"})).structured_content
            matched = (await client.call_tool("escalate", {"conversation_id": "m", "request": VIEW,
                                                            "type": "decision"})).structured_content
            new = (await client.call_tool("escalate", {"conversation_id": "m", "request": VIEW, "type": "decision",
                                                        "new_issue": True})).structured_content
        assert matched["escalation_id"] == first["escalation_id"] and matched["matched_request"] == EDIT
        assert new["escalation_id"] != first["escalation_id"] and new["action"] == "escalate"

    def test_a_langchain_agent_says_new_issue_after_reading_matched_request(self, guard):
        from test_langchain import ToolCallingFake, call, run_loop, tool_json

        assert "matched_request" in ESCALATION_PROTOCOL and "new_issue" in ESCALATION_PROTOCOL
        history = [SystemMessage(ESCALATION_PROTOCOL), HumanMessage(VIEW)]
        guard.escalate("lc", EDIT, type="decision")

        def script():
            yield AIMessage("", tool_calls=[call("escalate", {"request": VIEW, "type": "decision"})])
            seen = tool_json(history, "escalate")
            assert seen["matched_request"] == EDIT  # not what the person asked for: say so
            yield AIMessage("", tool_calls=[call("escalate", {"request": VIEW, "type": "decision",
                                                              "new_issue": True}, 2)])
            yield AIMessage(f"Asked about {tool_json(history, 'escalate')['escalation_id']}.")

        tools = make_tools(guard, conversation_id="lc")
        assert "new_issue" in next(t for t in tools if t.name == "escalate").args
        run_loop(ToolCallingFake(messages=script()), tools, history)
        assert guard.store.count("escalations") == 2
        assert history[-1].content.startswith("Asked about ESC-")


@pytest.mark.slow
@pytest.mark.model
async def test_over_stdio(tmp_path):
    """The shipped server (the pair model): a rewording gets the earlier answer and is shown what it
    was matched to; the agent that says it is a new issue is asked anew."""
    from servers import stdio_client

    asked, reworded = "Should I give the new designer admin rights on Figma?", "Can the new designer be a Figma admin?"
    async with stdio_client(tmp_path / "s.db", 300) as client:
        first = (await client.call_tool("escalate", {"conversation_id": "s", "request": asked,
                                                      "type": "decision"})).structured_content
        await client.call_tool("respond", {"escalation_id": first["escalation_id"], "answer": "Yes"})
        reused = (await client.call_tool("escalate", {"conversation_id": "s", "request": reworded,
                                                       "type": "decision"})).structured_content
        new = (await client.call_tool("escalate", {"conversation_id": "s", "request": reworded, "type": "decision",
                                                    "new_issue": True})).structured_content
    assert (reused["action"], reused["answer"], reused["matched_request"]) == ("proceed", "Yes", asked)
    assert new["action"] == "escalate" and new["escalation_id"] != first["escalation_id"]


@pytest.mark.backends
class TestLearnedPreferences:
    """A learned preference is matched by meaning too: it shows the question it was learned from
    when the words differ, and does not answer a call the agent says is a new issue."""

    @pytest.fixture
    def guard(self, policy, fake_classifier, db_path, clock):
        return ConversationGuard(policy, fake_classifier, Store(db_path, clock=clock))

    def test_a_preference_shows_what_it_was_learned_from_and_steps_aside_for_a_new_issue(self, guard, clock):
        from datetime import timedelta

        from test_preferences import ALICE, QUESTION, REQUEST, answer_times

        answer_times(guard, clock, 5)
        clock.moment += timedelta(days=1)
        same = guard.escalate("p1", REQUEST, question=QUESTION.upper(), context=ALICE, type="decision")
        assert same.action is Action.proceed and same.preference is not None and same.matched_request is None
        # one word more: the fast test encoder still finds it close, so the preference answers,
        # and shows the question it learned from
        reworded = QUESTION.replace("tests?", "tests tonight?")
        near = guard.escalate("p2", REQUEST, question=reworded, context=ALICE, type="decision")
        assert near.action is Action.proceed and near.preference is not None
        assert near.matched_request == QUESTION and "new_issue: true" in near.instruction
        asked = guard.escalate("p3", REQUEST, question=reworded, context=ALICE, type="decision", new_issue=True)
        assert asked.action is Action.escalate and asked.preference is None and asked.escalation_id
