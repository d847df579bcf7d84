"""Renderers: markdown (seed 002 §11), plain text, escaped HTML, the JSON card and its schema."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import jsonschema
import pytest
import yaml

from escalation_matrix.card import SCHEMA_PATH, EscalationCard, response_target, schema_text
from escalation_matrix.errors import InputError
from escalation_matrix.loader import load_policy
from escalation_matrix.models import EscalationResult, Severity
from escalation_matrix.render import card, render
from escalation_matrix.store import Store

REQUEST = "Write something for the website."
PAYLOADS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "</li></ol></div><script src=//evil.example/x.js></script>",
    "<a href=\"javascript:alert(1)\">click</a> & <b>bold</b>",
]


def result(**over) -> EscalationResult:
    fields = dict(
        action="escalate", type="clarification", severity="L1", trigger="unclear_request",
        escalation_id="ESC-2026-001", status="awaiting_response",
        phrase="Can you clarify what you want me to focus on so I can continue?",
        question="Which deliverable should I write?",
        options=["Product description", "Landing page copy", "Blog post"],
        instruction="Say the phrase, ask the question and wait for the answer.",
        conversation_id="conv-1", task_id="website",
    )
    return EscalationResult(**{**fields, **over})


class Tags(HTMLParser):
    """Every start tag and attribute of an HTML fragment, plus its text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_markdown_follows_the_seed_template(policy):
    md = render(result(), "md", policy, request=REQUEST)
    assert md.splitlines() == [
        "⚠️ CLARIFICATION ESCALATION REQUIRED", "",
        "Issue: I cannot identify what the request wants me to do.", "",
        f'Context: The request was: "{REQUEST}"', "",
        "Options:", "- Option 1: Product description", "- Option 2: Landing page copy", "- Option 3: Blog post", "",
        "Question: Which deliverable should I write?", "",
        "Awaiting your response to proceed.",
    ]


def test_markdown_leaves_out_options_and_context_when_there_are_none(policy):
    md = render(result(options=[], question=None), "md", policy)
    assert "Options:" not in md and "Context:" not in md
    assert "Question: Can you clarify what you want me to focus on so I can continue?" in md


def test_plain_text_carries_the_same_fields(policy):
    txt = render(result(), "txt", policy, request=REQUEST)
    assert txt.startswith("CLARIFICATION ESCALATION REQUIRED (L1)")
    for part in ("Issue: I cannot identify", REQUEST, "1. Product description", "3. Blog post",
                 "Question: Which deliverable should I write?", "Awaiting your response to proceed."):
        assert part in txt
    assert "⚠️" not in txt and "- Option" not in txt


def test_html_renders_every_field_as_text(policy):
    html = render(result(), "html", policy, request=REQUEST)
    parsed = Tags(html)
    text = "".join(parsed.text)
    assert [t for t, _ in parsed.tags].count("li") == 3
    assert ("div", {"class": "escalation escalation--clarification escalation--l1", "role": "alert",
                    "data-escalation-id": "ESC-2026-001"}) in parsed.tags
    assert "Which deliverable should I write?" in text and REQUEST in text


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", ["request", "question", "options", "details"])
def test_html_renderer_escapes_markup_wherever_it_comes_from(policy, payload, where):
    over = {"question": payload} if where == "question" else {"options": ["Fine", payload]} if where == "options" else {}
    kwargs = {"request": payload} if where == "request" else {"details": payload} if where == "details" else {}
    html = render(result(**over), "html", policy, **kwargs)
    parsed = Tags(html)
    tags = {t for t, _ in parsed.tags}
    assert tags <= {"div", "p", "strong", "span", "ol", "li"}, f"injected element in {html}"
    assert not any(k.startswith("on") or "javascript" in (v or "") for _, a in parsed.tags for k, v in a.items())
    assert payload[:120] in "".join(parsed.text)  # shown literally, as text


@pytest.mark.parametrize("payload", PAYLOADS)
def test_card_carries_markup_as_inert_data(policy, payload):
    built = card(result(question=payload, options=[payload]), policy, request=payload)
    data = json.loads(built.model_dump_json())
    assert data["question"] == payload and data["choices"][0]["label"] == payload
    assert payload[:120] in data["context"]
    # The card is plain text; the HTML a frontend may show comes only from the escaping renderer.
    assert payload not in render(result(question=payload), "html", policy)


def test_json_format_is_the_card(policy):
    data = json.loads(render(result(), "json", policy, request=REQUEST))
    assert data == json.loads(card(result(), policy, request=REQUEST).model_dump_json())
    assert data["type"] == "clarification" and data["severity"] == "L1"
    assert data["phrase"] == "Can you clarify what you want me to focus on so I can continue?"
    assert [c["id"] for c in data["choices"]] == ["option-1", "option-2", "option-3"]
    assert data["choices"][1] == {"id": "option-2", "index": 2, "label": "Landing page copy", "answer": "Landing page copy"}
    assert data["escalation_id"] == "ESC-2026-001"
    assert data["response_target"] == {"severity": "L1", "seconds": 120, "label": "2 min", "source": "policy"}
    assert data["markdown"] == render(result(), "md", policy, request=REQUEST)


def test_card_validates_against_the_published_schema(policy):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for obj in (result(), result(action="proceed", type="none", severity=None, trigger="clear_request",
                                 escalation_id=None, phrase=None, options=[], answer="Blog post")):
        jsonschema.validate(json.loads(card(obj, policy).model_dump_json()), schema)


def test_published_schema_is_up_to_date():
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "schemas/card.schema.json is stale; run: python -m escalation_matrix.card > "
        "server/escalation_matrix/schemas/card.schema.json")


@pytest.mark.parametrize("severity, seconds, label", [
    ("L1", 120, "2 min"), ("L2", 900, "15 min"), ("L3", 86400, "24 h"), ("L4", 0, "immediately"),
])
def test_response_targets_follow_the_seed_without_an_operations_policy(severity, seconds, label):
    target = response_target(Severity(severity))
    assert (target.seconds, target.label, target.source) == (seconds, label, "default")


@pytest.mark.parametrize("severity, label", [("L1", "2 min"), ("L2", "10 min"), ("L3", "24 h"), ("L4", "immediately")])
def test_response_targets_come_from_the_operations_policy(data_copy, severity, label):
    path = data_copy / "policies" / "operations.yaml"
    path.write_text(path.read_text().replace("    L2: 15m", "    L2: 10m"))
    edited = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    target = response_target(Severity(severity), edited.operations)
    assert (target.label, target.source) == (label, "policy")
    assert card(result(severity=severity), edited).response_target == target


def test_a_loaded_policy_derives_its_response_targets_once_and_the_card_reads_them(policy):
    assert policy.response_targets is policy.response_targets
    assert {s.value: t.label for s, t in policy.response_targets.items()} == {
        "L1": "2 min", "L2": "15 min", "L3": "24 h", "L4": "immediately"}
    assert card(result(severity="L2"), policy).response_target == policy.response_targets[Severity.L2]


def test_proceed_result_renders_one_line_and_no_target(policy):
    proceed = result(action="proceed", type="none", severity=None, trigger="clear_request", escalation_id=None,
                     phrase=None, options=[], question=None, answer="Landing page copy")
    assert render(proceed, "md", policy) == "Proceed with the answer: Landing page copy\n"
    data = card(proceed, policy)
    assert data.response_target is None and data.choices == [] and data.title == "PROCEED"


def test_classification_renders_with_its_request(fake_classifier, policy):
    classified = fake_classifier.classify("Deploy the release", {"environment": "production"})
    assert classified.type.value == "scope"
    md = render(classified, "md", policy)
    assert md == classified.message
    assert card(classified, policy).response_target.label == "15 min"


def test_store_record_renders_like_the_result(policy, db_path):
    store = Store(db_path)
    with store.transaction() as conn:
        esc_id = store.insert_escalation(conn, {
            "conversation_id": "conv-1", "task_id": "website", "type": "clarification",
            "trigger": "unclear_request", "severity": "L1", "request": REQUEST,
            "question": "Which deliverable should I write?", "options": result().options,
            "phrase": result().phrase})
    record = store.escalation(esc_id)
    assert render(record, "md", policy) == render(result(escalation_id=esc_id), "md", policy, request=REQUEST)
    assert card(record, policy).escalation_id == esc_id


def test_result_as_json_dict_is_accepted(policy):
    as_dict = json.loads(result().model_dump_json())
    assert card(as_dict, policy) == card(result(), policy)


@pytest.mark.parametrize("obj, fmt, message", [
    (result(), "pdf", "unknown format 'pdf'; use one of md, txt, html, json"),
    (42, "md", "cannot render a int"),
    ({"type": "nope"}, "md", "not an escalation result or record"),
])
def test_bad_input_says_what_to_pass(policy, obj, fmt, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        render(obj, fmt, policy)


def test_a_policy_authors_edit_shows_up_in_every_format(data_copy):
    phrases = data_copy / "phrases" / "en" / "phrases.yaml"
    data = yaml.safe_load(phrases.read_text())
    data["phrases"]["clarification"] = "Tell me which part to focus on, please."
    phrases.write_text(yaml.safe_dump(data, allow_unicode=True))
    md_template = data_copy / "phrases" / "en" / "message.md.j2"
    md_template.write_text(md_template.read_text().replace("Awaiting your response to proceed.", "Waiting for you."))
    edited = load_policy(data_copy / "policies", data_copy / "phrases", data_copy / "embeddings")
    fresh = result(phrase=None, question=None)
    for fmt in ("md", "txt", "html", "json"):
        assert "Tell me which part to focus on, please." in render(fresh, fmt, edited), fmt
    assert "Waiting for you." in render(fresh, "md", edited)
    assert "Waiting for you." in card(fresh, edited).markdown
    assert isinstance(card(fresh, edited), EscalationCard)


def test_an_answered_escalation_renders_as_proceed(policy):
    answered = result(action="proceed", status="answered", answer="Blog post",
                      instruction="Apply this answer and continue the task now.")
    data = card(answered, policy)
    assert (data.title, data.type.value, data.escalation_id) == ("PROCEED", "clarification", "ESC-2026-001")
    assert data.response_target is None and data.choices == []
    assert data.text == "Proceed with the answer: Blog post\n"
    assert "ESCALATION REQUIRED" not in render(answered, "html", policy)
