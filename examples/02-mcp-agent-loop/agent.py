"""An agent loop on the MCP SDK client: it meets an unclear request, escalates, gets the person's
answer, and proceeds - and when it is about to ask the same thing again, the server tells it to
proceed with the earlier answer.

The "agent" is a small deterministic policy standing in for an LLM, so the run is reproducible;
every decision it takes comes from a tool result of the real server, started over stdio.

    python examples/02-mcp-agent-loop/agent.py [--db FILE] [--answer "Landing page copy"]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from mcp import Client, StdioServerParameters

from escalation_matrix.models import EscalationResult
from escalation_matrix.render import render

REQUEST = "Write something for the website."
QUESTION = "Which deliverable should I write for the website?"
SAME_QUESTION = "Which deliverable do you want me to write for the website?"  # what a forgetful model asks later
OPTIONS = ["Product description", "Landing page copy", "Blog post"]


def server_command() -> str:
    """The ``escalation-matrix`` next to this Python (a virtual environment), else the one on PATH."""
    beside = Path(sys.executable).with_name("escalation-matrix")
    found = str(beside) if beside.exists() else shutil.which("escalation-matrix")
    if not found:
        raise SystemExit("escalation-matrix is not installed; run `pip install -e .` first")
    return found


class Agent:
    """Calls the tools and keeps what it learned; ``log`` receives every step for display."""

    def __init__(self, client: Client, conversation_id: str, log: Callable[[str], None]):
        self.client, self.conversation_id, self.log = client, conversation_id, log
        self.steps: list[tuple[str, EscalationResult]] = []

    async def call(self, tool: str, **args: Any) -> EscalationResult:
        reply = await self.client.call_tool(tool, args)
        if reply.is_error:  # a message meant for the agent: show it and stop this run
            raise RuntimeError(f"{tool} failed: {reply.content[0].text}")
        result = EscalationResult.model_validate(reply.structured_content)
        self.steps.append((tool, result))
        self.log(f"-> {tool}: action={result.action.value}"
                 + (f" type={result.type.value} {result.severity.value}" if result.severity else "")
                 + (f" id={result.escalation_id}" if result.escalation_id else "")
                 + (f" answer={result.answer!r}" if result.answer else ""))
        return result


async def run(db: str | Path, person: Callable[[EscalationResult], str], log: Callable[[str], None] = print,
              conversation_id: str = "website-chat") -> list[tuple[str, EscalationResult]]:
    """The loop. ``person`` plays the human who answers escalations."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    params = StdioServerParameters(command=server_command(), args=["serve", "--db", str(db)], env=env)
    async with Client(params, read_timeout_seconds=300) as client:
        agent = Agent(client, conversation_id, log)
        log(f"user: {REQUEST}")
        result = await agent.call("check_scope", request=REQUEST, conversation_id=conversation_id)
        deliverable: str | None = None
        asked_again = False
        while True:
            if result.action.value in ("stop", "handoff"):
                log(f"agent: {result.phrase}  (stopping: {result.instruction})")
                break
            if result.action.value == "escalate":
                log("agent says to the person:\n" + render(result, "txt", request=REQUEST).rstrip())
                answer = person(result)
                log(f"person: {answer}")
                result = await agent.call("respond", escalation_id=result.ref, answer=answer)
                continue
            # proceed
            if result.answer:
                deliverable = result.answer
            if deliverable is None:  # in scope, but what to write is unclear: ask once
                result = await agent.call("clarify", conversation_id=conversation_id, request=REQUEST,
                                          question=QUESTION, options=OPTIONS)
                continue
            if not asked_again:  # an LLM often double-checks; the server answers from memory
                asked_again = True
                result = await agent.call("clarify", conversation_id=conversation_id, request=REQUEST,
                                          question=SAME_QUESTION)
                continue
            log(f"agent: Drafting the {deliverable.lower()} now.")
            break
    return agent.steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="SQLite state file (default: a new temporary file)")
    parser.add_argument("--answer", default="Landing page copy", help="What the person answers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "escalations.db"
        asyncio.run(run(db, person=lambda _result: args.answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
