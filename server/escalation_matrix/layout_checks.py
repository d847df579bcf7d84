"""Checks for constraints on the shape of a requested text that cannot all hold at once.

Each check takes the request and returns short findings that say what conflicts:

- two different output formats ("formatted in JSON" … "written in Markdown format");
- two different openings ("begin with the phrase "X"" … "start with a question");
- a quoted term required both before and after another ("X" before "Y" … "X" after "Y");
- two quoted terms required both in the same and in different sentences or paragraphs, or kept
  apart while a required phrase holds both;
- a quoted word required exclusively in one part of speech and also in another;
- a topic the request asks for and also forbids ("cover the history of X" … "do not discuss the
  history of X");
- a format element or figure of speech required and forbidden ("one hyperlink" … "avoid any
  hyperlink");
- a required quoted phrase that breaks a style rule: capital letters under "all in lowercase",
  a passive sentence ("is loved by") under "active voice throughout".
"""

from __future__ import annotations

import re

QUOTE = r"[\"“]([^\"“”]{1,80})[\"”]"
NEGATED = re.compile(r"\b(avoid\w*|do not|don't|does not|never|without|must not|should not|shouldn't|cannot|"
                     r"can ?not|exclud\w*|refrain\w*|no)\b[^.!?;\"“”]{0,40}$", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"”])\s+")

FORMAT = re.compile(
    r"\b(?:(?:format|structur|present|writ|return|output|deliver)\w*\s+(?:[\w'-]+\s+){0,3}?(?:in|as|using)\s+"
    r"(?:valid\s+|an?\s+)?(?P<a>JSON|Markdown|plain text|HTML|CSV|YAML|XML)\b"
    r"|(?P<b>JSON|Markdown|plain[- ]text|HTML|CSV|YAML|XML)\s+format)", re.IGNORECASE)
PART_OF_OUTPUT = re.compile(r"([\"”]|\b(?:key|field|value|column|cell|section)s?)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)

OPENING = re.compile(
    r"\b(?:begin|start|open)(?:s|ning|ing)?\s+(?P<scope>(?:[\w'-]+\s+){0,3}?)with\s+"
    r"(?:the\s+(?:phrase|words?|sentence)\s+)?(?P<what>" + QUOTE + r"|an?\s+(?:rhetorical\s+)?question)",
    re.IGNORECASE)
NOT_THE_OPENING = re.compile(r"\b(each|every|all|second|third|fourth|fifth|last|final|bullet|items?|points?|lines?|"
                             r"keys?|sections?|sentences|paragraphs|headers?|headings?)\b", re.IGNORECASE)

ORDER = re.compile(
    QUOTE + r"[^.!?\"“”]{0,40}?\b(?P<rel>before|after|precedes?|follows?)\s+(?:the\s+\w+\s+)?" + QUOTE, re.IGNORECASE)
PAIR_PLACEMENT = re.compile(
    QUOTE + r",?\s+and\s+" + QUOTE + r"(?P<rest>[^.!?]{0,80}?\b(?:the same|different|separate)\s+"
    r"(?P<unit>sentence|paragraph)s?)\b", re.IGNORECASE)
ROLE = re.compile(QUOTE + r"(?P<between>[^.!?\"“”]{0,40}?)\bas an?\s+(?P<role>noun|verb|adjective|adverb)\b",
                  re.IGNORECASE)

TOPIC_VERB = (r"(?:describ|mention|discuss|cover|includ|address|explain|detail|talk\w* about|inquir\w* about|"
              r"ask\w* about|refer\w* to)\w*")
FORBIDDEN_TOPIC = re.compile(
    r"\b(?:do not|don't|does not|must not|should not|shouldn't|never|avoid(?:s|ing)?|refrain(?:ing)? from|without)\s+"
    + TOPIC_VERB + r"\s+(?:any\s+)?(?P<topic>[^.!?;:]{3,80})", re.IGNORECASE)
TOPIC_END = re.compile(r"\b(?:and|but|or|nor|in|within|throughout|anywhere|at all|from|because|since|as|unless|"
                       r"while|so|if)\b|[,;:(]", re.IGNORECASE)
FILLER = set("a an the any of to for at least one two three four five six seven eight nine ten some all each "
             "phrase phrases keyword keywords word words term terms".split())

ELEMENT = (r"(?P<element>hyperlinks?|links?|URLs?|bullet(?:ed)?(?: points?| lists?)?|bullets|headers?|headings?|"
           r"tables?|emojis?|hashtags?|metaphors?|similes?|idioms?|rhetorical questions?|questions?)")
FORBIDDEN_ELEMENT = re.compile(
    r"\b(?:avoid(?:s|ing)?|do not|don't|never|without|must not|should not|shouldn't|no)\s+"
    r"(?:(?:use|using|include|including|add|adding|any|the|of)\s+){0,3}(?:[\w-]+\s+)?" + ELEMENT + r"\b"
    r"(?!\s+(?:about|on|regarding|from|to|than)\b)", re.IGNORECASE)
REQUIRED_ELEMENT = re.compile(
    r"\b(?:one|a|an|include\w*|use|using|add\w*|with|contain\w*|incorporat\w*|featur\w*|at least \w+|exactly \w+|"
    r"\d+|two|three|four|five)\s+(?:[\w-]+\s+){0,2}?" + ELEMENT + r"\b", re.IGNORECASE)
ALL_LOWERCASE = re.compile(r"\b(?:(?:all|entire|whole)\s+(?:\w+\s+){0,2}|(?:write|written)\s+(?:\w+\s+){0,3})"
                           r"in lower ?case\b|\b(?:only|all) lower ?case\b", re.IGNORECASE)
ACTIVE_ONLY = re.compile(r"\bactive voice (?:throughout|only|exclusively)|\b(?:only|exclusively|entirely) (?:in )?"
                         r"(?:the )?active voice", re.IGNORECASE)
PASSIVE = re.compile(r"\b(?:is|are|was|were|be|been|being)\s+(?:\w+ly\s+)?(?:\w+(?:ed|en|wn|t)|made|done|held|led|paid|"
                     r"said|sold|told|found)\s+by\b", re.IGNORECASE)
AT_MOST = re.compile(r"\b(at most|no more than|up to|fewer than|less than|maximum of)\s+\w+\s+(?:[\w-]+\s+){0,2}$",
                     re.IGNORECASE)


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text) if s.strip()]


def _negated(sentence: str, start: int) -> bool:
    return bool(NEGATED.search(sentence[:start]))


def _norm(phrase: str) -> str:
    return re.sub(r"[^\w' ]", "", phrase.lower()).strip()


def formats(text: str) -> list[str]:
    demanded: dict[str, str] = {}
    for sentence in sentences(text):
        for m in FORMAT.finditer(sentence):
            if _negated(sentence, m.start()) or PART_OF_OUTPUT.search(sentence[max(0, m.start() - 30) : m.start()]):
                continue  # "do not use JSON", "the "body" key in Markdown": not the format of the whole output
            name = (m.group("a") or m.group("b")).replace("-", " ")
            demanded.setdefault(name.lower(), name)
    if len(demanded) < 2:
        return []
    return [f"the output cannot be in both {' and '.join(demanded.values())} format"]


def openings(text: str) -> list[str]:
    required: list[str] = []
    for sentence in sentences(text):
        for m in OPENING.finditer(sentence):
            before = sentence[max(0, m.start() - 40) : m.start()]
            if _negated(sentence, m.start()) or NOT_THE_OPENING.search(before + " " + m.group("scope")):
                continue  # "do not begin …", "each bullet point starting with …": not the text's opening
            required.append("a question" if m.group(3) is None else m.group(3).strip(" ,."))
    for i, first in enumerate(required):
        for second in required[i + 1 :]:
            if first == "a question" and second == "a question":
                continue
            if "a question" in (first, second):
                phrase = second if first == "a question" else first
                if not phrase.endswith("?"):
                    return [f'the text cannot open with both "{phrase}" and a question']
            elif not (_norm(first).startswith(_norm(second)) or _norm(second).startswith(_norm(first))):
                return [f'the text cannot open with both "{first}" and "{second}"']
    return []


def orderings(text: str) -> list[str]:
    before: set[tuple[str, str]] = set()
    for sentence in sentences(text):
        for m in ORDER.finditer(sentence):
            if _negated(sentence, m.start("rel")):
                continue
            a, b = m.group(1).lower().strip(" ,."), m.group(3).lower().strip(" ,.")
            before.add((a, b) if m.group("rel").lower().startswith(("before", "precede")) else (b, a))
    return [f'"{a}" must come both before and after "{b}"' for a, b in sorted(before) if (b, a) in before and a < b]


def placements(text: str) -> list[str]:
    together: dict[tuple[frozenset[str], str], set[bool]] = {}
    for sentence in sentences(text):
        for m in PAIR_PLACEMENT.finditer(sentence):
            rest = m.group("rest").lower()
            same = "same" in rest and not re.search(r"\b(not|never|cannot|can ?not)\b", rest)
            key = (frozenset({m.group(1).lower(), m.group(2).lower()}), m.group("unit").lower())
            together.setdefault(key, set()).add(same)
    found = []
    required = _required_quotes(text)
    for (pair, unit), flags in together.items():
        a, b = sorted(pair)
        if len(flags) == 2:
            found.append(f'"{a}" and "{b}" must be both in the same {unit} and in different {unit}s')
        elif flags == {False} and unit == "sentence":
            holder = next((q for q in required if all(re.search(rf"\b{re.escape(w)}\b", q) for w in pair)), None)
            if holder:
                found.append(f'"{a}" and "{b}" must be in different sentences, but the required "{holder}" holds both')
    return found


def word_roles(text: str) -> list[str]:
    roles: dict[str, dict[str, bool]] = {}
    for m in ROLE.finditer(text):
        exclusive = bool(re.search(r"\b(exclusively|only|solely|always)\b", m.group("between"), re.IGNORECASE))
        uses = roles.setdefault(m.group(1).lower(), {})
        uses[m.group("role").lower()] = uses.get(m.group("role").lower(), False) or exclusive
    found = []
    for word, kinds in roles.items():
        only = next((role for role, exclusive in kinds.items() if exclusive), None)
        other = next((role for role in kinds if role != only), None)
        if only and other:
            found.append(f'"{word}" cannot be used only as a {only} and also as a {other}')
    return found


def quoted_style(text: str) -> list[str]:
    found = []
    required = _required_quotes(text, lower=False)
    if ALL_LOWERCASE.search(text):
        found += [f'the text must be all lowercase, but the required "{q}" is not' for q in required
                  if len(q.split()) > 1 and q != q.lower()][:1]
    if ACTIVE_ONLY.search(text):
        found += [f'the text must be in the active voice, but the required "{q}" is passive' for q in required
                  if PASSIVE.search(q)][:1]
    return found


def _required_quotes(text: str, lower: bool = True) -> list[str]:
    quotes = []
    for sentence in sentences(text):
        for m in re.finditer(QUOTE, sentence):
            if not _negated(sentence, m.start()):
                quotes.append(m.group(1).lower() if lower else m.group(1))
    return quotes


def _topic_pattern(topic: str) -> re.Pattern[str] | None:
    topic = TOPIC_END.split(topic)[0]
    words = [w for w in re.findall(r"[A-Za-z][\w'-]*", topic) if w.lower() not in FILLER]
    if len(words) < 2:
        return None  # a single word is too common to tell a forbidden topic from a passing mention
    filler = r"(?:\W+(?:" + "|".join(sorted(FILLER)) + r"))*\W+"
    stems = [re.escape(w[:-1] if len(w) > 4 and w.endswith("s") else w) + r"\w*" for w in words]
    return re.compile(r"\b" + filler.join(stems) + r"\b", re.IGNORECASE)


def topics(text: str) -> list[str]:
    found = []
    parts = sentences(text)
    for i, sentence in enumerate(parts):
        for m in FORBIDDEN_TOPIC.finditer(sentence):
            pattern = _topic_pattern(m.group("topic"))
            if pattern is None:
                continue
            for j, other in enumerate(parts):
                hit = pattern.search(other) if j != i else None
                if hit and not _negated(other, hit.start()):
                    found.append(f'"{hit.group(0)}" is both asked for and forbidden')
                    break
    return found


def elements(text: str) -> list[str]:
    forbidden: dict[str, set[int]] = {}
    required: dict[str, set[int]] = {}
    for i, sentence in enumerate(sentences(text)):
        spans = []
        for m in FORBIDDEN_ELEMENT.finditer(sentence):
            forbidden.setdefault(_element(m.group("element")), set()).add(i)
            spans.append(range(m.start(), m.end()))
        for m in REQUIRED_ELEMENT.finditer(sentence):
            at = m.start("element")
            if any(at in span for span in spans) or _negated(sentence, at) or AT_MOST.search(sentence[:at]):
                continue  # "no tables", "at most one question": not a requirement
            required.setdefault(_element(m.group("element")), set()).add(i)
    return [f"{word!r} is both required and forbidden" for word in sorted(forbidden)
            if required.get(word, set()) - forbidden[word]]


def _element(phrase: str) -> str:
    word = "question" if "question" in phrase.lower() else phrase.lower().split()[0].rstrip("s")
    return {"hyperlink": "link", "url": "link", "heading": "header", "bulleted": "bullet"}.get(word, word)
