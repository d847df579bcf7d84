"""One way to open the product: ``open_guard`` builds the conversation guard (policy, classifier,
state file) that the MCP server, the LangChain tools and the CLI all run on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .guard import ConversationGuard

if TYPE_CHECKING:
    from .classifier import Classifier
    from .embedder import Embedder
from .loader import Policy


def open_guard(policy: Policy | None = None, db: str | Path | None = None, *, embedder: Embedder | None = None,
               background: bool = False, locale: str | None = None) -> ConversationGuard:
    """A ``ConversationGuard`` on the SQLite file ``db`` (default: $ESCALATION_MATRIX_DB or the
    per-user state file) and ``policy`` (default: the shipped one, see ``load_policy``).

    The encoder is the policy's serving model behind a batching cache, warmed up before this returns
    (the first encode is slow; it is paid here, not on a call). Pass ``embedder`` to use another
    one, e.g. ``get_embedder("fake")`` in tests. With ``background`` the model loads in a thread and
    the guard is returned at once; classifying calls wait for it. ``locale`` (e.g. "de"): the
    language of phrases and messages when a call names none."""
    from .loader import load_policy
    from .store import Store

    chosen = (policy or load_policy(locale=locale)).in_locale(locale)

    def build() -> Classifier:
        from .classifier import Classifier, serving_embedder
        from .embedcache import CachingEmbedder

        encoder = embedder if embedder is not None else CachingEmbedder(serving_embedder(chosen.classifier))
        classifier = Classifier(chosen, embedder=encoder)
        classifier.classify("warm up the model")
        if embedder is None and chosen.conversation.same_issue_model == "pair":
            from .classifier import load_pair_model

            pair = load_pair_model(chosen.classifier)  # the same-issue pair model, loaded with the classifier
            if pair is not None:
                pair.scores([("warm up the model", "warm up the model")])
        return classifier

    if background:
        from .warmup import BackgroundClassifier

        # stands in for the Classifier (same methods), loading it on first use
        return ConversationGuard(chosen, BackgroundClassifier(build), Store(db))
    return ConversationGuard(chosen, build(), Store(db))
