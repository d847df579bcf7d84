"""The agent's tools, described once: each tool's title and description and each argument's
description. The MCP server (``mcp_app``) and the LangChain tools (``langchain``) both read them, so
an agent sees the same words whichever way it connects."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class ToolSpec:
    """What an agent reads about one tool: a title, a description and one line per argument."""

    name: str
    title: str
    description: str
    arguments: Mapping[str, str]


# arguments that mean the same in every tool that takes them
CONVERSATION_ID = "Id of the conversation with the person, stable across calls (e.g. 'chat-42')."
REQUEST = "The person's request, verbatim."
TASK_ID = "Task inside the conversation; 'default' when omitted. Hand-off and locks are per task."
OPTIONS = ("Options to offer the person (at most 10), never chosen by you; the type's default options when "
           "omitted.")
LOCALE = ("Language of the phrase, message and options, e.g. 'en' or 'de'; the conversation keeps it for "
          "later calls. Omitted: the conversation's language, else the server's.")
CONTEXT = ('Structured facts for the policy rules, e.g. {"environment": "production", "estimated_cost": 500}. '
           'Name the person you work for and their organisation ({"person": "alice", "organisation": "acme"}) so '
           'their learned preferences can answer a question they always answer the same way.')
NEW_ISSUE = ("true when a result named a matched_request that asks for something else than yours (another "
             "target, amount, permission, place or time): only an earlier call worded alike is then the same issue.")


def _spec(name: str, title: str, description: str, **arguments: str) -> ToolSpec:
    return ToolSpec(name, title, " ".join(description.split()), MappingProxyType(arguments))


TOOLS: Mapping[str, ToolSpec] = MappingProxyType({spec.name: spec for spec in (
    _spec("classify", "Classify a request", """
        Say whether a request needs a person, without recording anything: proceed, or the escalation
        type (clarification, conflict, context, decision, compliance, scope, safety, technical),
        severity L1-L4 and standard phrase. Call it to look before acting; use escalate, clarify or
        check_scope to act on it.""",
          request=REQUEST, context=CONTEXT, locale=LOCALE),
    _spec("escalate", "Escalate to a person", """
        Escalate once a request needs a person: a decision that needs human judgment, a compliance or
        legal concern, sensitive data, a safety concern, or an action outside your scope. Returns the
        action to take: escalate (say the phrase once and wait), proceed (with a default or an earlier
        answer), handoff (the task went to a person) or stop (L4: the task is locked). The same open
        issue returns the same escalation_id with repeated=true - never ask it twice; when it was
        matched by meaning, matched_request shows the earlier words, and a request that asks for
        something else is sent again with new_issue=true. Pass `type` when
        you are sure a person is needed: it escalates as that type even when the classifier sees no
        need (classified_as then says what the classifier thought). A client that supports
        elicitation may have the person decide inside this call (approve, reject, modify, delegate or
        defer), for a question of a type the policy leaves to them that is not queued in a batch and
        not L4: you then get their answer as respond gives it (proceed with what to do, or wait when
        deferred or delegated).""",
          conversation_id=CONVERSATION_ID, request=REQUEST, task_id=TASK_ID,
          question="The one-sentence question to put to the person, if you have one.",
          options=OPTIONS,
          details="One sentence of context for the person (the Context line).",
          context=CONTEXT,
          type="Insist on escalating as this type, e.g. 'decision', when you are unsure whatever the "
               "classifier says; omitted: the classifier decides.",
          locale=LOCALE, new_issue=NEW_ISSUE),
    _spec("check_scope", "Check whether a request is in scope", """
        Before acting on a request that may be prohibited, outside your authority or beyond your
        technical capabilities: is it within what you may and can do? in_scope=false comes with the
        standard scope/technical/compliance/safety phrase and the alternatives you can offer.""",
          request=REQUEST,
          conversation_id="When given, an out-of-scope result is recorded as an escalation of this "
                          "conversation.",
          capabilities="What you can do, e.g. ['database_access', 'web_access', 'file_access', 'email', "
                       "'code_execution', 'booking_access']; a technical request needing one of them is in "
                       "scope.",
          locale=LOCALE),
    _spec("clarify", "Ask a clarifying question", """
        Ask the person one clarifying question (L1): the request is unclear, has two conflicting
        instructions, or lacks one piece of information (pass `missing`). If an equivalent question
        was already answered in this conversation you get proceed with that answer and nothing is
        asked. Otherwise you get the escalation, awaiting the person's answer; a client that supports
        elicitation asks the person inside this call and you get proceed with the answer.""",
          conversation_id=CONVERSATION_ID, request=REQUEST,
          question="The one clarifying question you would ask the person.",
          task_id=TASK_ID, options=OPTIONS,
          missing="The one missing piece of information, e.g. 'the target audience' (a Context escalation).",
          locale=LOCALE, new_issue=NEW_ISSUE),
    _spec("respond", "Record the person's answer", """
        Record the person's answer to an open question of your conversation as soon as they reply;
        returns proceed with the answer. Apply it and continue at once - do not ask for confirmation.
        A second answer to the same escalation is an error. Hand-offs and L4 (locked) escalations are
        answered by a person, not here.""",
          escalation_id="The escalation answered: its `ref` as returned with it (required over HTTP); a "
                        "stdio or in-process client may also give its id, e.g. ESC-2026-001.",
          answer="The person's answer, verbatim, or the option they chose; with an action, an optional note.",
          action="Optional: the person's answer as an action - approve, reject, modify (give change), delegate "
                 "(give to), defer (give until) or conditional (give conditions); the instruction says what to do.",
          change="modify: the change the person asked for.",
          to="delegate: who decides instead (a name or team).",
          until="defer: until when, an ISO time with a time zone, e.g. 2026-12-08T09:00:00Z.",
          conditions="conditional: the conditions of the approval.",
          conversation_id="Your conversation id; the escalation must belong to it.",
          necessary="Optional: true when asking the person was needed, false when it was not (the person said "
                    "so, or chose what you would have done anyway); teaches the server when to ask less."),
    _spec("batches", "Batches of questions", """
        Escalations that could wait are delivered to their person together, in batches (at most the
        policy's batch size, or when its window ends). Without batch_id: the batches; with it: that
        batch's items grouped by task, type and resource, and its card (approve all / approve
        selected).""",
          batch_id="One batch, with its items, groups and card.",
          status="Only batches in this state: open, delivered or answered.",
          person="Only this person's batches."),
    _spec("answer_batch", "Approve a batch", """
        The person's answer to a batch: approve (or reject) all its open questions, or the ones
        selected. Each is answered as by respond with that action (the agents waiting on them are
        told to proceed); review a question individually with respond instead. Relay only what the
        person chose - never approve a batch yourself.""",
          batch_id="The batch, as an escalate result's batch_id names it.",
          items="Approve selected: the escalation ids of the batch to answer; omitted: all of its open items.",
          action="approve (approve all / approve selected) or reject.",
          note="A note kept with each answer."),
)})


def argument(tool: str, name: str) -> str:
    """The description of argument ``name`` of ``tool``."""
    return TOOLS[tool].arguments[name]
