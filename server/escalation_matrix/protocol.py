"""What the MCP server tells an agent about itself: the protocol prompt, the server instructions
and the matrix as a document (the ``escalation://matrix`` resource)."""

from __future__ import annotations

from typing import Any

from .loader import Policy
from .messages import phrase_variables

SERVER_INSTRUCTIONS = (
    "Call check_scope before acting on a request you may not be allowed or able to do; call clarify when "
    "the request is unclear, conflicting or missing one fact; call escalate when a choice needs human "
    "judgment or anything else needs a person; call respond with the person's answer. Always follow the "
    "returned action and instruction. Golden rule: escalate once, clearly, with the standard phrase, "
    "then proceed with clarity."
)

PROTOCOL_PROMPT = """\
You can escalate to a person through the escalation-matrix tools. Use them like this.

When to call which tool
- check_scope(request, conversation_id, capabilities): before acting on anything that may be
  outside what you may or can do (deleting data, production changes, legal or personal data,
  systems you cannot reach). in_scope=false: say the phrase and offer the returned options.
- clarify(conversation_id, request, question, missing?): the request is unclear, two
  instructions conflict, or one piece of information is missing. Ask one question.
- escalate(conversation_id, request, question?, options?, task_id?): a choice needs human
  judgment, or cost, compliance, safety or authority is at stake.
- respond(escalation_id, answer): the person answered an escalation. Then continue at once.
  Name the escalation by the `ref` returned with it (required over HTTP).
- classify(request): look before you leap; records nothing but the count of evaluated requests.
- report_item(item_id, iterations, failures?, confidence?, error?): for batch pipelines, after
  each iteration on an item; it escalates the item to a person when a limit is reached.
- preferences() / revoke_preference(preference_id): the preferences learned from the person's
  answers; revoke one when the person says it must not answer for them any more.
- batches(batch_id?) / answer_batch(batch_id, items?, action?): questions that can wait go to the
  person together in a batch; when the person approves all of a batch, or the ones they select,
  relay it with answer_batch.

What to do with the result (always follow `action` and `instruction`)
- proceed: continue the task now. If `answer` is set, apply it; if `default` is set, apply it.
  Never ask the person to confirm. If `preference` is set, the person's learned preference
  answered (pass context.person and context.organisation in escalate so it can): tell them once
  which preference answered, and that they can revoke it.
- escalate with queued=true: the question waits in the person's batch (`batch_id`) and reaches
  them with others soon; do not ask it yourself, continue with work that does not depend on it.
- escalate: send `phrase` (or the rendered `message`) to the person once, then wait. L1: continue
  right after the answer. L2: wait for the operator. L3: pause, a specialist takes it.
- handoff: the task has needed too many escalations and now belongs to a person. Tell the user
  once with the phrase; do not work on that task any more.
- stop: L4. Stop the task immediately and take no further action on it; it is locked until a
  person unlocks it.
- wait: the task is paused awaiting guidance on an L3 escalation. Take no action on it and raise
  nothing new on it until a person answers.
- repeated=true: you already asked this and it is still open. Do not ask again; wait.
- matched_request: your call was taken as that earlier request, worded differently (its answer
  is applied, or it is the open one). Compare it with yours: if yours asks for something else
  (another target, amount, permission, place or time), call again with new_issue=true.
- notices: news about earlier escalations of this conversation (a reminder is due, a task now
  awaits guidance); act on each once as it says.

Never escalate minor preferences (formatting, synonyms, section order, bullets or numbers,
header capitalisation): choose the conventional option and proceed - the tools return it as
`default`.

Golden rule: escalate once, clearly, with the standard phrase, then proceed with clarity.
"""


def matrix_document(policy: Policy) -> dict[str, Any]:
    """The matrix with the standard phrases rendered, as policy authors wrote it."""
    phrases = policy.phrases
    types: dict[str, Any] = {}
    for etype, mtype in policy.matrix.types.items():
        triggers = {}
        for name, trig in mtype.triggers.items():
            phrase = None
            if trig.phrase:
                phrase = phrases.phrase(trig.phrase, **phrase_variables(etype, mtype.label, name, trig.severity))
            triggers[name] = {"severity": trig.severity.value if trig.severity else None, "reason": trig.reason,
                              "phrase": phrase, "default": trig.default}
        types[etype.value] = {"label": mtype.label, "triggers": triggers, "options": phrases.default_options(etype)}
    conv = policy.conversation
    return {
        "order": [t.value for t in policy.matrix.order],
        "types": types,
        "conversation": conv.model_dump(),
        "golden_rule": "Escalate once, clearly, with the standard phrase, then proceed with clarity.",
    }
