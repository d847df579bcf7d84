"""Find requests that require and forbid the same thing — the definition of conflicting
instructions — with three explainable checks:

- a thing one clause requires and another forbids: a quoted term ("include "mentor"" … "avoid
  the keyword "mentor""), or the object of a requirement and of a prohibition sharing a content
  word ("include a bulleted list" … "avoid using bullet points");
- a count that one clause sets above what another allows ("at least 500 words" … "at most 250
  words"), or two different exact counts of the same unit;
- a pair of opposite directives from the policy (``opposites`` in classifier.yaml), such as
  "shorter" and "more detail".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models import EscalationType, RuleMatch

NEGATION = re.compile(
    r"\b(avoid\w*|do not|don't|never|without|must not|should not|shouldn't|exclud\w*|refrain\w*|"
    r"no(?! (more|less|fewer) than))\b[^.!?\"]{0,40}$", re.IGNORECASE)
QUOTED = re.compile(r"[\"“]([^\"“”]{2,60})[\"”]")
UNITS = r"(words?|sentences?|paragraphs?|bullet points?|bullets?|items?|points?|lines?|pages?)"
COUNT = re.compile(
    rf"\b(?P<kind>at least|no (?:less|fewer) than|minimum of|more than|over|at most|no more than|maximum of|"
    rf"fewer than|less than|under|exactly)\s+(?P<n>\d+)\s+{UNITS}", re.IGNORECASE)
FORBID = re.compile(r"\b(avoid(?:ing)?|do not|don't|never|without|must not|should not|shouldn't|exclude|excluding|"
                    r"refrain from|no(?! (?:more|less|fewer) than))\b\s+((?:[\w'-]+\s*){1,4})", re.IGNORECASE)
REQUIRE = re.compile(r"\b(include|including|includes|use|using|add|adding|contain|containing|incorporate|"
                     r"incorporating|with|feature|featuring|mention|provide|providing)\b\s+((?:[\w'-]+\s*){1,4})",
                     re.IGNORECASE)
# Generic words that say nothing about *what* is required or forbidden.
GENERIC = set(
    "a an the any of to in for and or with your you it its this that be is are each at least one all some using use "
    "include word words term terms response text content story essay email article sentence sentences must should "
    "keyword keywords phrase phrases more less than one two three four five six seven eight nine ten twice once".split())
CLAUSE_END = re.compile(r"\b(?:and|but|or|nor|no|not|without)\b|[,;:.]", re.IGNORECASE)
SCOPED = re.compile(r"\b(each|per|every|first|second|third|fourth|fifth|last|final|opening|closing)\b", re.IGNORECASE)
LOWER = ("at least", "no less than", "no fewer than", "minimum of", "more than", "over")
UPPER = ("at most", "no more than", "maximum of", "fewer than", "less than", "under")


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ings", "ing", "es", "s", "ed", "ly"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content(phrase: str) -> set[str]:
    phrase = CLAUSE_END.split(phrase)[0]  # "with auto-renewal and no cancellation": only "auto-renewal"
    return {_stem(w) for w in re.findall(r"[A-Za-z][A-Za-z'-]+", phrase) if w.lower() not in GENERIC and len(w) > 2}


@dataclass(frozen=True)
class ContradictionFinder:
    opposites: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = ()

    @classmethod
    def of(cls, pairs: list[list[str]]) -> "ContradictionFinder":
        compiled = tuple(
            (re.compile(rf"\b({a})\b", re.IGNORECASE), re.compile(rf"\b({b})\b", re.IGNORECASE)) for a, b in pairs
        )
        return cls(compiled)

    def find(self, text: str) -> list[str]:
        return self._quoted(text) + self._objects(text) + self._counts(text) + self._opposites(text)

    def match(self, text: str) -> RuleMatch | None:
        found = self.find(text)
        if not found:
            return None
        return RuleMatch(name="contradicting_constraints", type=EscalationType.conflict,
                         trigger="conflicting_instructions",
                         reason="The request requires and forbids the same thing.", matched=found)

    @staticmethod
    def _quoted(text: str) -> list[str]:
        seen: dict[str, set[bool]] = {}
        for m in QUOTED.finditer(text):
            before = re.split(r"[.!?;]\s", text[max(0, m.start() - 60) : m.start()])[-1]
            term = m.group(1).lower().strip(" ,.")
            seen.setdefault(term, set()).add(bool(NEGATION.search(before)))
        return [f'"{term}" is both required and forbidden' for term, flags in seen.items() if len(flags) == 2]

    @staticmethod
    def _objects(text: str) -> list[str]:
        forbidden = [(m.start(), _content(m.group(2))) for m in FORBID.finditer(text)]
        required = [(m.start(), _content(m.group(2))) for m in REQUIRE.finditer(text)]
        shared = set()
        for fpos, fwords in forbidden:
            for rpos, rwords in required:
                if abs(fpos - rpos) >= 20:
                    shared |= fwords & rwords
        return [f"{word!r} is both required and forbidden" for word in sorted(shared)]

    @staticmethod
    def _counts(text: str) -> list[str]:
        by_unit: dict[str, list[tuple[str, int]]] = {}
        for m in COUNT.finditer(text):
            if SCOPED.search(text[max(0, m.start() - 40) : m.start()]):
                continue  # "each paragraph", "the first sentence": a different scope, not a conflict
            unit = m.group(3).lower().rstrip("s")
            by_unit.setdefault(unit, []).append((m.group("kind").lower(), int(m.group("n"))))
        found = []
        for unit, limits in by_unit.items():
            low = max((n for k, n in limits if k in LOWER or k == "exactly"), default=None)
            high = min((n for k, n in limits if k in UPPER or k == "exactly"), default=None)
            exact = {n for k, n in limits if k == "exactly"}
            if (low is not None and high is not None and low > high) or len(exact) > 1:
                found.append(f"the number of {unit}s cannot meet every limit ({', '.join(f'{k} {n}' for k, n in limits)})")
        return found

    def _opposites(self, text: str) -> list[str]:
        found = []
        for a, b in self.opposites:
            ma, mb = a.search(text), b.search(text)
            if ma and mb:
                found.append(f"{ma.group(0)!r} and {mb.group(0)!r} pull in opposite directions")
        return found
