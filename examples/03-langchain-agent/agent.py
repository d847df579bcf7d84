"""A LangChain agent with the escalation tools, in a real tool-calling loop: the chat model's tool
calls are executed by the tools and their ToolMessages fed back to the model.

The model is a fake that replays a script of tool calls (so the run needs no API key and is
reproducible); swap in any chat model with ``bind_tools`` - ChatOpenAI, ChatAnthropic, ... - and
the loop is unchanged. The script meets an unclear request, escalates with clarify, records the
person's answer with respond, then tries to ask the same question again and is told to proceed
with the earlier answer.

    python examples/03-langchain-agent/agent.py [--db FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled model is on disk; never reach for a hub

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402

from escalation_matrix.langchain import ESCALATION_PROTOCOL, escalation_tools  # noqa: E402

REQUEST = "Write something for the website."
QUESTION = "Which deliverable should I write for the website?"
SAME_QUESTION = "Which deliverable do you want me to write for the website?"
OPTIONS = ["Product description", "Landing page copy", "Blog post"]
PERSON_ANSWER = "Landing page copy"


class ReplayChatModel(GenericFakeChatModel):
    """GenericFakeChatModel cannot bind tools; this one ignores them and replays its messages."""

    def bind_tools(self, tools, **kwargs):
        return self


def last_result(history: list[BaseMessage], tool: str) -> dict:
    message = next(m for m in reversed(history) if isinstance(m, ToolMessage) and m.name == tool)
    return json.loads(message.content)


def scripted_model(history: list[BaseMessage]) -> ReplayChatModel:
    """What an LLM following ESCALATION_PROTOCOL does here. The generator runs lazily, one step per
    model call, so each step can read the tool results already in ``history``."""

    def turns() -> Iterator[AIMessage]:
        yield AIMessage("", tool_calls=[_call("check_scope", {"request": REQUEST})])
        yield AIMessage("", tool_calls=[_call("clarify", {"request": REQUEST, "question": QUESTION,
                                                           "options": OPTIONS})])
        asked = last_result(history, "clarify")
        yield AIMessage(asked.get("phrase") or "")  # says the phrase once and waits for the person
        yield AIMessage("", tool_calls=[_call("respond", {"escalation_id": asked["escalation_id"],
                                                           "answer": PERSON_ANSWER})])
        # Later in the task the model double-checks with the same question in other words.
        yield AIMessage("", tool_calls=[_call("clarify", {"request": REQUEST, "question": SAME_QUESTION})])
        again = last_result(history, "clarify")
        yield AIMessage(f"Drafting the {str(again.get('answer', '')).lower()} now.")

    return ReplayChatModel(messages=turns())


_ids = iter(range(1, 1000))


def _call(name: str, args: dict) -> dict:
    return {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}


def agent_turn(model, tools, history: list[BaseMessage], log: Callable[[str], None], limit: int = 8) -> AIMessage:
    """One user turn: call the model, run its tool calls, feed the results back, until it answers."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    for _ in range(limit):
        reply = bound.invoke(history)
        history.append(reply)
        if not reply.tool_calls:
            log(f"assistant: {reply.content}")
            return reply
        for call in reply.tool_calls:
            message = by_name[call["name"]].invoke(call)
            history.append(message)
            data = json.loads(message.content) if message.status != "error" else {"error": message.content}
            log(f"  tool {call['name']}({json.dumps(call['args'])[:90]}) -> "
                + ", ".join(f"{k}={data[k]}" for k in ("action", "type", "escalation_id", "answer", "error") if k in data))
    raise RuntimeError(f"the model made more than {limit} tool calls in one turn")


def run(db: str | Path, log: Callable[[str], None] = print) -> list[BaseMessage]:
    tools = escalation_tools(db=db, conversation_id="website-chat")
    history: list[BaseMessage] = [SystemMessage(ESCALATION_PROTOCOL)]
    model = scripted_model(history)
    for user_text in (REQUEST, PERSON_ANSWER):
        log(f"user: {user_text}")
        history.append(HumanMessage(user_text))
        agent_turn(model, tools, history, log)
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="SQLite state file (default: a new temporary file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run(args.db or Path(tmp) / "escalations.db")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
