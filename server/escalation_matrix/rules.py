"""Match policy rules against a request's text and structured context."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .conditions import describe, holds
from .models import EscalationType, RuleMatch
from .contradictions import ContradictionFinder
from .policy import Contradictions, Rule


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    keywords: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, rule: Rule) -> "CompiledRule":
        keywords = None
        if rule.keywords:
            alternatives = "|".join(re.escape(k.strip()) for k in rule.keywords)
            keywords = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in rule.patterns)
        return cls(rule, keywords, patterns)

    def match(self, text: str, context: dict[str, Any]) -> RuleMatch | None:
        matched: list[str] = []
        if self.keywords or self.patterns:
            hits = []
            if self.keywords and (m := self.keywords.search(text)):
                hits.append(f"keyword {m.group(0)!r}")
            hits.extend(f"pattern {p.pattern!r}" for p in self.patterns if p.search(text))
            if not hits:
                return None
            matched.extend(hits)
        for condition in self.rule.conditions:
            if not holds(condition, context):
                return None
            matched.append(describe(condition))
        rule = self.rule
        return RuleMatch(
            name=rule.name, type=rule.type, trigger=rule.trigger,
            severity=rule.severity, reason=rule.reason, matched=matched, priority=rule.priority,
        )


class RuleEngine:
    def __init__(self, rules: list[Rule], contradictions: Contradictions | None = None):
        self._rules = [CompiledRule.of(rule) for rule in rules]
        self._finder = (ContradictionFinder.of([list(p) for p in contradictions.opposites])
                        if contradictions and contradictions.enabled else None)

    def match(self, text: str, context: dict[str, Any]) -> list[RuleMatch]:
        found = [m for rule in self._rules if (m := rule.match(text, context))]
        if self._finder and (conflict := self._finder.match(text)):
            found.append(conflict)
        return found


def escalating(matches: list[RuleMatch]) -> list[RuleMatch]:
    return [m for m in matches if m.type is not EscalationType.none]


def deciding(matches: list[RuleMatch]) -> list[RuleMatch]:
    """The escalating rules that decide type, trigger and severity: the safety rules that fired, if
    any (a safety concern is never outranked), else those of the highest priority among the
    escalating rules that fired (all of them while their priorities are equal, so the decision-tree
    order decides as before). Empty when no escalating rule fired."""
    esc = escalating(matches)
    safety = [m for m in esc if m.type is EscalationType.safety]
    esc = safety or esc
    if not esc:
        return []
    top = max(m.priority for m in esc)
    return [m for m in esc if m.priority == top]
