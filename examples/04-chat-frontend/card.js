// Turns an escalation-matrix JSON card (schemas/card.schema.json) into a chat message with one
// button per option. No build step, no dependencies: include it with <script src="card.js">.
//
// Every string from the card is inserted with textContent, never innerHTML: request text,
// questions and options may contain markup, and it must show as text, not run.
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function line(label, value, className) {
    var p = el("p", className);
    p.appendChild(el("strong", null, label + ": "));
    p.appendChild(document.createTextNode(String(value)));
    return p;
  }

  // card: the parsed JSON card. onChoose(choice, card): called when the person picks an option;
  // send choice.answer to the respond tool with card.ref (the escalation's unguessable reference).
  function renderCard(card, onChoose) {
    var msg = el("article", "em-card");
    msg.dataset.action = card.action;
    msg.dataset.type = card.type;
    if (card.severity) msg.dataset.severity = card.severity;
    if (card.escalation_id) msg.dataset.escalationId = card.escalation_id;
    msg.setAttribute("role", card.action === "proceed" ? "status" : "alert");

    var head = el("header", "em-card__title", (card.action === "proceed" ? "" : "\u26a0\ufe0f ") + card.title);
    if (card.severity) head.appendChild(el("span", "em-card__severity", card.severity));
    msg.appendChild(head);

    if (card.action === "proceed") {
      msg.appendChild(el("p", "em-card__text", card.text));
      return msg;
    }
    if (card.issue) msg.appendChild(line("Issue", card.issue, "em-card__issue"));
    if (card.context) msg.appendChild(line("Context", card.context, "em-card__context"));
    msg.appendChild(line("Question", card.question || card.phrase, "em-card__question"));

    var choices = el("div", "em-card__choices");
    (card.choices || []).forEach(function (choice) {
      var button = el("button", "em-card__choice", choice.label);
      button.type = "button";
      button.dataset.choiceId = choice.id;
      button.addEventListener("click", function () {
        choices.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        button.classList.add("em-card__choice--picked");
        if (onChoose) onChoose(choice, card);
      });
      choices.appendChild(button);
    });
    msg.appendChild(choices);

    var meta = [];
    if (card.escalation_id) meta.push(card.escalation_id);
    if (card.response_target) meta.push("response target " + card.response_target.label);
    if (meta.length) msg.appendChild(el("footer", "em-card__meta", meta.join(" \u00b7 ")));
    return msg;
  }

  window.EscalationCard = { render: renderCard };
})();
