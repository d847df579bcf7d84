"""Find requests that require and forbid the same thing — the definition of conflicting
instructions — with explainable checks:

- a thing one clause requires and another forbids: a quoted term ("include "mentor"" … "avoid
  the keyword "mentor""), a forbidden quoted word inside a required quoted phrase, or the object
  of a requirement and of a prohibition sharing a content word ("include a bulleted list" …
  "avoid using bullet points");
- a count that one clause sets above what another allows ("at least 500 words" … "at most 250
  words"), two different exact counts of the same unit, or a total that the parts cannot add up
  to ("exactly three paragraphs, each at most 60 words" … "at least 250 words"); numbers may be
  digits or words;
- the shape checks of ``layout_checks``: output formats, openings, orderings, placements, parts
  of speech, forbidden topics, format elements and the style of required phrases;
- a pair of opposite directives from the policy (``opposites`` in classifier.yaml), such as
  "shorter" and "more detail"; a directive under a negation ("avoid a casual tone") does not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import layout_checks
from .models import EscalationType, RuleMatch

NEGATION = re.compile(
    r"\b(avoid\w*|do not|don't|never|without|must not|should not|shouldn't|exclud\w*|refrain\w*|"
    r"no(?! (more|less|fewer) than))\b[^.!?\"]{0,40}$", re.IGNORECASE)
QUOTED = re.compile(r"[\"“]([^\"“”]{2,60})[\"”]")
UNITS = r"(words?|sentences?|paragraphs?|bullet points?|bullets?|items?|points?|lines?|pages?)"
NUMBER_WORDS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "fifty": 50, "hundred": 100}
COUNT = re.compile(
    rf"\b(?P<kind>at least|no (?:less|fewer) than|minimum of|more than|over|at most|no more than|maximum of|"
    rf"fewer than|less than|under|exactly)\s+(?P<n>\d+|{'|'.join(NUMBER_WORDS)})\s+{UNITS}\b", re.IGNORECASE)
FORBID = re.compile(r"\b(avoid(?:ing)?|do not|don't|never|without|must not|should not|shouldn't|exclude|excluding|"
                    r"refrain from|no(?! (?:more|less|fewer) than))\b\s+((?:[\w'-]+\s*){1,4})", re.IGNORECASE)
REQUIRE = re.compile(r"\b(include|including|includes|use|using|add|adding|contain|containing|incorporate|"
                     r"incorporating|with|feature|featuring|mention|provide|providing)\b\s+((?:[\w'-]+\s*){1,4})",
                     re.IGNORECASE)
# Generic words that say nothing about *what* is required or forbidden.
GENERIC = set(
    "a an the any of to in for and or with your you it its this that be is are each at least one all some using use "
    "include word words term terms response text content story essay email article sentence sentences must should "
    "keyword keywords phrase phrases more less than one two three four five six seven eight nine ten twice once "
    "tone style voice".split())
CLAUSE_END = re.compile(r"\b(?:and|but|or|nor|no|not|without)\b|[,;:.]", re.IGNORECASE)
SCOPED = re.compile(r"\b(first|second|third|fourth|fifth|last|final|opening|closing)\b", re.IGNORECASE)
EACH = re.compile(rf"\b(?:each|every|per)\b(?:\s+{UNITS})?", re.IGNORECASE)
WHOLE = re.compile(r"\b(whole|entire|total|overall|altogether|in all)\b", re.IGNORECASE)
# "the "body" must contain …": the count of one part of the output, not of the whole
PART = re.compile(r"[\"”]\s+(?:key\s+|field\s+|section\s+)?(?:must|should|will|shall|can)?\s*"
                  r"(?:contains?|has|have|includes?|be|being|consists?)\b", re.IGNORECASE)
ELSEWHERE = re.compile(r"\s+(?:per\b|for (?:each|every)\b|in (?:each|every|upper ?case|lower ?case|bold|capitals?)\b|"
                       r"in the (?!(?:response|answer|text|story|article|essay|email|letter|review|guide|post|report|"
                       r"document|message|output|piece|summary|speech|poem|itinerary|blog)\b))", re.IGNORECASE)
PARTITIONS = {"paragraph", "sentence"}  # the text is made of these, so they bound its totals from above too
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
        found = self._quoted(text) + self._objects(text) + self._counts(text)
        found += [f for check in LAYOUT_CHECKS for f in check(text)] + self._opposites(text)
        return list(dict.fromkeys(found))

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
        found = [f'"{term}" is both required and forbidden' for term, flags in seen.items() if len(flags) == 2]
        required = [term for term, flags in seen.items() if flags == {False}]
        for term in (t for t, flags in seen.items() if flags == {True}):
            holder = next((r for r in required if re.search(rf"\b{re.escape(term)}\b", r)), None)
            if holder:
                found.append(f'"{term}" is forbidden but the required "{holder}" contains it')
        return found

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
        totals: dict[str, list[tuple[str, int]]] = {}
        each: dict[tuple[str, str], list[tuple[str, int]]] = {}  # (container, unit) -> limits per container
        last_unit = None
        for m in COUNT.finditer(text):
            unit, limit = _unit(m.group(3)), (m.group("kind").lower(), _number(m.group("n")))
            clause = re.split(r"[,;:.!?—]", text[max(0, m.start() - 120) : m.start()])[-1]
            scope = list(EACH.finditer(clause))
            previous, last_unit = last_unit, unit
            if SCOPED.search(clause[-60:]) or PART.search(clause) or ELSEWHERE.match(text, m.end()):
                continue  # "the first sentence", "the "body" key", "per day": a different scope
            if scope and not WHOLE.search(clause[scope[-1].end() :]):
                container = _unit(scope[-1].group(1)) if scope[-1].group(1) else previous
                if container and container != unit:
                    each.setdefault((container, unit), []).append(limit)
                continue
            totals.setdefault(unit, []).append(limit)
        found = []
        for unit, limits in totals.items():
            low, high = _bounds(limits)
            exact = {n for k, n in limits if k == "exactly"}
            if (low is not None and high is not None and low > high) or len(exact) > 1:
                found.append(f"the number of {unit}s cannot meet every limit ({', '.join(f'{k} {n}' for k, n in limits)})")
        for (container, unit), limits in each.items():
            parts_low, parts_high = _bounds(totals.get(container, []))
            each_low, each_high = _bounds(limits)
            low, high = _bounds(totals.get(unit, []))
            if parts_low is not None and each_low is not None and high is not None and parts_low * each_low > high:
                found.append(f"{parts_low} {container}s of at least {each_low} {unit}s each exceed "
                             f"the limit of {high} {unit}s")
            elif (container in PARTITIONS and parts_high is not None and each_high is not None and low is not None
                  and parts_high * each_high < low):
                found.append(f"{parts_high} {container}s of at most {each_high} {unit}s each fall short of "
                             f"the required {low} {unit}s")
        return found

    def _opposites(self, text: str) -> list[str]:
        found = []
        for a, b in self.opposites:
            ma, mb = _directive(a, text), _directive(b, text)
            if ma and mb:
                found.append(f"{ma.group(0)!r} and {mb.group(0)!r} pull in opposite directions")
        return found


LAYOUT_CHECKS = (layout_checks.formats, layout_checks.openings, layout_checks.orderings, layout_checks.placements,
                 layout_checks.word_roles, layout_checks.topics, layout_checks.elements, layout_checks.quoted_style)
DIRECTIVE_NEGATED = re.compile(r"\b(avoid\w*|do not|don't|never|not|no|without|instead of|rather than|"
                               r"except(?: for)?|apart from)\b"
                               r"(?:(?!\b(?:and|but|while|yet)\b)[^.,;!?\"]){0,30}$", re.IGNORECASE)


def _directive(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of pattern that is not itself negated ("avoid a casual tone")."""
    for m in pattern.finditer(text):
        if not DIRECTIVE_NEGATED.search(text[max(0, m.start() - 60) : m.start()]):
            return m
    return None


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _unit(word: str) -> str:
    unit = word.lower().rstrip("s")
    return "bullet point" if unit in ("bullet", "point") else unit


def _bounds(limits: list[tuple[str, int]]) -> tuple[int | None, int | None]:
    low = max((n for k, n in limits if k in LOWER or k == "exactly"), default=None)
    high = min((n for k, n in limits if k in UPPER or k == "exactly"), default=None)
    return low, high
