"""`make demo`: an agent loop against the escalation-matrix MCP server on the embedded defaults
(SQLite state file, bundled all-MiniLM-L6-v2 model, shipped policy), over stdio.

The agent meets an unclear request, escalates, gets the person's answer and proceeds; when it is
about to ask the same thing again the server tells it to use the earlier answer; then it checks a
request outside its authority. Each step is printed as it happens.

    python examples/demo.py [--db FILE]      (default: a fresh temporary state file)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mcp import Client, StdioServerParameters  # noqa: E402

from escalation_matrix.models import EscalationResult  # noqa: E402
from escalation_matrix.render import card, render  # noqa: E402

CONVERSATION = "demo-chat"
REQUEST = "Write something for the website."
QUESTION = "Which deliverable should I write for the website?"
SAME_QUESTION = "Which deliverable do you want me to write for the website?"
OPTIONS = ["Product description", "Landing page copy", "Blog post"]
ANSWER = "Landing page copy"
OUT_OF_SCOPE = "Delete all customer email addresses from the database."


def say(who: str, text: str) -> None:
    lines = text.rstrip().splitlines() or [""]
    print(f"{who:>10} | {lines[0]}")
    for line in lines[1:]:
        print(f"{'':>10} | {line}")


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def server_command() -> str:
    beside = Path(sys.executable).with_name("escalation-matrix")
    found = str(beside) if beside.exists() else shutil.which("escalation-matrix")
    if not found:
        raise SystemExit("escalation-matrix is not installed; run `make demo` or `pip install -e .`")
    return found


async def call(client: Client, tool: str, **args: Any) -> EscalationResult:
    started = time.perf_counter()
    reply = await client.call_tool(tool, args)
    if reply.is_error:
        raise SystemExit(f"{tool} failed: {reply.content[0].text}")
    result = EscalationResult.model_validate(reply.structured_content)
    took = (time.perf_counter() - started) * 1000
    shown = ", ".join(f"{k}={v}" for k, v in (("action", result.action.value), ("type", result.type.value),
                                               ("severity", result.severity and result.severity.value),
                                               ("id", result.escalation_id), ("answer", result.answer)) if v)
    say("tool", f"{tool} -> {shown}  ({took:.0f} ms)")
    say("", textwrap.fill(f"instruction: {result.instruction}", 88))
    return result


async def demo(db: Path) -> None:
    params = StdioServerParameters(command=server_command(), args=["serve", "--db", str(db)], env=dict(os.environ))
    print(f"Starting `escalation-matrix serve --db {db}` over stdio (loads the model, a few seconds)...")
    async with Client(params, read_timeout_seconds=300) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        print(f"Connected. Tools: {', '.join(tools)}")

        step("1. An unclear request")
        say("user", REQUEST)
        scope = await call(client, "check_scope", request=REQUEST, conversation_id=CONVERSATION)
        say("agent", f"In scope ({scope.action.value}), but what should I write? I ask once.")
        asked = await call(client, "clarify", conversation_id=CONVERSATION, request=REQUEST,
                           question=QUESTION, options=OPTIONS)

        step("2. The escalation, as the person sees it (markdown)")
        print(render(asked, "md", request=REQUEST))
        shown = card(asked, request=REQUEST)
        say("card", f"{shown.title} - {shown.severity.value}, response target {shown.response_target.label}")
        say("", "buttons: " + " | ".join(f"[{c.label}]" for c in shown.choices))

        step("3. The person answers; the agent proceeds at once")
        say("person", ANSWER)
        answered = await call(client, "respond", escalation_id=asked.ref, answer=ANSWER)
        say("agent", f"Drafting the {answered.answer.lower()}...")

        step("4. The agent is about to ask the same thing again")
        say("agent", SAME_QUESTION)
        again = await call(client, "clarify", conversation_id=CONVERSATION, request=REQUEST, question=SAME_QUESTION)
        say("agent", f"Already answered ({again.escalation_id}): continuing with {again.answer!r}, no question asked.")

        step("5. A request outside the agent's authority")
        say("user", OUT_OF_SCOPE)
        blocked = await call(client, "check_scope", request=OUT_OF_SCOPE, conversation_id=CONVERSATION)
        say("agent", blocked.phrase or "")
        target = card(blocked).response_target
        if target:
            say("", f"({blocked.severity.value}: waiting for an operator, target {target.label})")
    print(f"\nDone. The state file was {db}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="SQLite state file (default: a fresh temporary file)")
    args = parser.parse_args(argv)
    if args.db:
        asyncio.run(demo(args.db))
        return 0
    with tempfile.TemporaryDirectory(prefix="escalation-matrix-demo-") as tmp:
        asyncio.run(demo(Path(tmp) / "escalations.db"))
    print("It was a temporary file and is gone; pass --db FILE to keep the state.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
