"""A second locale (phrases/de/): chosen per server (load_policy / ESCALATION_MATRIX_LOCALE /
`serve --locale`), per conversation (a call's locale is kept) and per call (the `locale` argument on
the MCP and LangChain tools). `policy check` verifies every locale defines the same phrases and
renders. The requests are chosen so that policy rules decide their type; the fake embedder keeps
the MCP and LangChain tests fast, one test runs the real model."""

from __future__ import annotations

import json

import pytest
from escalation_matrix.errors import InputError, PolicyError
from escalation_matrix.guard import ConversationGuard
from escalation_matrix.langchain import escalation_tools, make_tools
from escalation_matrix.loader import load_policy
from escalation_matrix.mcp_app import build_server
from escalation_matrix.render import card, render
from escalation_matrix.store import Store
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from mcp import Client
from test_cli_core import run
from test_langchain import ToolCallingFake, call, run_loop, tool_json
from test_policy_check import edit, load

# the same behaviour on a SQLite file and on PostgreSQL (tests using db_path run on both)
pytestmark = pytest.mark.backends

DEPLOY = "Deploy the new build"
PROD = {"environment": "production"}
SCOPE_DE = "Diese Aktion kann ich nicht ausführen, aber ich helfe gern, wenn Sie die Anfrage anpassen."
SCOPE_EN = "I can't perform that action, but I can help if you adjust the request."


@pytest.fixture
def guard(policy, fake_classifier, db_path):
    return ConversationGuard(policy, fake_classifier, Store(db_path))


async def mcp_call(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content


# --- the locales and the check ---
def test_both_shipped_locales_load_with_translated_labels_and_reasons(policy):
    assert policy.locales == ["de", "en"] and policy.locale == "en"
    de = policy.in_locale("de")
    assert de.matrix.types["decision"].label == "Entscheidung"
    assert de.matrix.trigger("scope", "exceeds_scope").reason == (
        "Die Aktion ist untersagt oder liegt außerhalb meiner Befugnisse.")
    assert de.matrix.trigger("none", "list_style").default.startswith("Für aufeinanderfolgende Schritte")
    # severities, phrase keys and trigger names are the matrix's, whatever the language
    for etype, mtype in policy.matrix.types.items():
        for name, trigger in mtype.triggers.items():
            other = de.matrix.trigger(etype, name)
            assert (other.severity, other.phrase) == (trigger.severity, trigger.phrase)
    assert de.in_locale("en").matrix.types["decision"].label == "Decision"
    with pytest.raises(InputError, match="locale 'fr' is not available; use one of de, en"):
        policy.in_locale("fr")


def test_the_server_locale_comes_from_the_argument_then_the_environment(monkeypatch):
    assert load_policy(locale="de").phrases.phrase("scope") == SCOPE_DE
    monkeypatch.setenv("ESCALATION_MATRIX_LOCALE", "de")
    chosen = load_policy()
    assert chosen.locale == "de" and chosen.matrix.types["scope"].label == "Befugnis"
    monkeypatch.setenv("ESCALATION_MATRIX_LOCALE", "fr")
    with pytest.raises(PolicyError, match="locale 'fr' has no phrase folder; available: de, en"):
        load_policy()


def test_policy_check_names_a_phrase_one_locale_lacks(data_copy):
    edit(data_copy / "phrases/de/phrases.yaml", "  decision: Hier ist", "  decisoin: Hier ist")
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2, result.output
    assert "phrases/de/phrases.yaml: phrases.decision: missing; locale 'en' defines it - add it here" in result.output
    assert "phrases/en/phrases.yaml: phrases.decisoin: missing; locale 'de' defines it" in result.output


def test_policy_check_renders_every_locale(data_copy):
    edit(data_copy / "phrases/de/message.md.j2", "Problem: {{ issue }}", "Problem: {{ isue }}")
    with pytest.raises(PolicyError, match=r"de/message.md.j2: message.md.j2: 'isue' is undefined"):
        load(data_copy)
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 2 and "'isue' is undefined" in result.output


def test_policy_check_wants_every_label_and_reason_translated(data_copy):
    edit(data_copy / "phrases/de/phrases.yaml",
         "      legal_exposure:\n        reason: Die Aufgabe betrifft personenbezogene Daten oder rechtliche "
         "Risiken, die eine Fachperson prüfen muss.\n", "")
    with pytest.raises(PolicyError, match="phrases.yaml: types.compliance.triggers.legal_exposure: missing; add its reason"):
        load(data_copy)


def test_policy_check_wants_a_missing_template_in_every_locale(data_copy):
    (data_copy / "phrases/de/message.txt.j2").unlink()
    with pytest.raises(PolicyError, match="de/message.txt.j2: required template is missing"):
        load(data_copy)


def test_policy_check_lists_both_locales(data_copy):
    result = run("policy", "check", str(data_copy))
    assert result.exit_code == 0, result.output
    assert "locales de, en, each with the same phrases" in result.output


# --- per call, per conversation, per server: the guard, the MCP tools, LangChain ---
def test_the_locale_argument_speaks_german_for_one_call(guard):
    de = guard.classify(DEPLOY, PROD, locale="de")
    en = guard.classify(DEPLOY, PROD)
    assert (de.type.value, de.locale, de.phrase) == ("scope", "de", SCOPE_DE)
    assert de.message.startswith("⚠️ ESKALATION ERFORDERLICH: BEFUGNIS\n\nProblem: Die Aktion ist untersagt")
    assert "Kontext: Die Anfrage lautete: „Deploy the new build“" in de.message
    assert de.options[0].startswith("Ich bereite die Änderung vor")
    assert (en.phrase, en.locale) == (SCOPE_EN, "en")
    with pytest.raises(InputError, match="locale 'fr' is not available"):
        guard.classify(DEPLOY, PROD, locale="fr")


def test_a_conversation_keeps_its_locale_and_its_records_keep_theirs(guard):
    first = guard.escalate("chat-de", DEPLOY, context=PROD, locale="de")
    assert (first.phrase, first.locale) == (SCOPE_DE, "de")
    record = guard.store.escalation(first.escalation_id)
    assert record["locale"] == "de" and record["reason"].startswith("Die Aktion ist untersagt")
    # a later call of the conversation without a locale speaks German too
    other = guard.escalate("chat-de", "Delete the old audit logs", task_id="t2", context=PROD)
    assert other.locale == "de" and other.phrase == guard.policy.in_locale("de").phrases.phrase(
        guard.policy.matrix.trigger(other.type, other.trigger).phrase)
    # another conversation still speaks the server's language
    assert guard.escalate("chat-en", DEPLOY, context=PROD).phrase == SCOPE_EN
    # switching the conversation to English: new texts in English, the open German record stays German
    again = guard.escalate("chat-de", DEPLOY, context=PROD, locale="en")
    assert again.repeated and again.escalation_id == first.escalation_id and again.locale == "de"
    assert guard.check_scope(DEPLOY, "chat-de").locale == "en"


def test_a_german_record_renders_in_german_from_an_english_server(guard, policy):
    result = guard.escalate("chat-de", DEPLOY, context=PROD, locale="de")
    assert render(result, "txt", policy, store=guard.store).startswith("ESKALATION ERFORDERLICH: BEFUGNIS (L2)")
    html = render(guard.store.escalation(result.escalation_id), "html", policy)
    assert 'lang="de"' in html and "<strong>Frage:</strong>" in html
    assert card(result, policy).title == "ESKALATION ERFORDERLICH: BEFUGNIS"
    answered = guard.respond(result.escalation_id, "Bitte nur vorbereiten.")
    assert render(answered, "txt", policy) == "Mit dieser Antwort fortfahren: Bitte nur vorbereiten.\n"


def test_a_german_server_speaks_german_by_default(fake_classifier, db_path):
    policy = load_policy(locale="de")
    from escalation_matrix.classifier import Classifier

    guard = ConversationGuard(policy, Classifier(policy, embedder=fake_classifier.embedder), Store(db_path))
    result = guard.escalate("c1", DEPLOY, context=PROD)
    assert (result.locale, result.phrase) == ("de", SCOPE_DE)
    assert guard.escalate("c2", DEPLOY, context=PROD, locale="en").phrase == SCOPE_EN
    handoff = None
    for i, request in enumerate(["Deploy the new build", "Delete the old audit logs", "Drop the users table",
                                 "Disable the firewall", "Merge the release branch"]):
        handoff = guard.escalate("c3", request, context=PROD, task_id="t")
        if handoff.action.value == "handoff":
            break
    assert handoff is not None and handoff.action.value == "handoff", handoff
    assert "Bisherige Eskalationen zu dieser Aufgabe: ESC-" in handoff.message


async def test_the_mcp_tools_take_a_locale_per_call_and_keep_it_per_conversation(guard):
    async with Client(build_server(guard=guard)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in ("classify", "escalate", "clarify", "check_scope"):
            assert "locale" in tools[name].input_schema["properties"], name
        classified = await mcp_call(client, "classify", request=DEPLOY, context=PROD, locale="de")
        assert (classified["locale"], classified["phrase"]) == ("de", SCOPE_DE)
        asked = await mcp_call(client, "clarify", conversation_id="m1", request="Write something for the website.",
                               question="Which page is it for?", locale="de")
        assert asked["locale"] == "de" and asked["message"].startswith("⚠️ ESKALATION ERFORDERLICH: KLÄRUNG")
        later = await mcp_call(client, "check_scope", request="My card number is 4111 1111 1111 1111, keep it",
                               conversation_id="m1")
        assert (later["locale"], later["type"], later["in_scope"]) == ("de", "safety", False)
        assert later["phrase"] == guard.policy.in_locale("de").phrases.phrase("safety_sensitive")
        assert later["phrase"].startswith("Hier geht es um vertrauliche Informationen.")
        english = await mcp_call(client, "escalate", conversation_id="m2", request=DEPLOY, context=PROD)
        assert (english["locale"], english["phrase"]) == ("en", SCOPE_EN)
        bad = await client.call_tool("classify", {"request": DEPLOY, "locale": "xx"})
        assert bad.is_error and "locale 'xx' is not available; use one of de, en" in bad.content[0].text
        assert (await mcp_call(client, "classify", request=DEPLOY, context=PROD))["locale"] == "en"  # still serving


def test_langchain_tools_take_a_locale_per_call_and_per_application(guard, policy, tmp_path, fake_classifier):
    tools = make_tools(guard, conversation_id="lc-1")
    assert all("locale" in t.args for t in tools if t.name != "respond")
    model = ToolCallingFake(messages=iter([
        AIMessage(content="", tool_calls=[call("escalate", {"request": DEPLOY, "context": PROD, "locale": "de"})]),
        AIMessage(content="", tool_calls=[call("check_scope", {"request": "My card number is 4111 1111 1111 1111, "
                                                                      "keep it"}, 1)]),
        AIMessage(content="", tool_calls=[call("classify", {"request": DEPLOY, "locale": "fr"}, 2)]),
        AIMessage(content="Erledigt."),
    ]))
    messages = run_loop(model, tools, [HumanMessage(content=DEPLOY)])
    first, scoped = tool_json(messages, "escalate"), tool_json(messages, "check_scope")
    assert (first["locale"], first["phrase"]) == ("de", SCOPE_DE)
    assert (scoped["locale"], scoped["in_scope"]) == ("de", False)  # the conversation kept German
    assert scoped["phrase"].startswith("Hier geht es um vertrauliche Informationen.")
    error = [m for m in messages if isinstance(m, ToolMessage) and m.name == "classify"][-1]
    assert error.content.startswith("Error: locale 'fr' is not available")
    artifact = [m for m in messages if isinstance(m, ToolMessage) and m.name == "escalate"][-1].artifact
    assert card(artifact, policy).title == "ESKALATION ERFORDERLICH: BEFUGNIS"
    german_app = escalation_tools(db=tmp_path / "other.db", locale="de",
                                  embedder=fake_classifier.embedder)
    content, result = {t.name: t for t in german_app}["classify"].func(request=DEPLOY, context=PROD)
    assert json.loads(content)["phrase"] == SCOPE_DE and result.locale == "de"


def test_serve_refuses_an_unknown_locale():
    result = run("serve", "--locale", "fr")
    assert result.exit_code == 2, result.output
    assert "locale 'fr' has no phrase folder; available: de, en" in result.output


@pytest.mark.model
def test_german_texts_with_the_real_model(policy, classifier, db_path):
    """The real classifier decides; the texts follow the call's locale."""
    guard = ConversationGuard(policy, classifier, Store(db_path))
    result = guard.escalate("chat-real", "Should we use Postgres or MySQL for the new service?",
                            question="Postgres or MySQL?", locale="de")
    assert result.locale == "de" and result.action.value == "escalate", result
    label = policy.in_locale("de").matrix.types[result.type].label.upper()
    assert result.message.startswith(f"⚠️ ESKALATION ERFORDERLICH: {label}")
    assert "Frage: Postgres or MySQL?" in result.message
    repeat = guard.escalate("chat-real", "Should we use Postgres or MySQL for the new service?",
                            question="Postgres or MySQL?")
    assert repeat.repeated and repeat.locale == "de"
