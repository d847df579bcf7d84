"""Training pairs for the same-issue pair model: the same issue with a small change. Without them
the model learns a shortcut from the training pairs, where two texts that share almost every word
are nearly always different issues ("... analytics schema" / "... reporting schema"): it then takes
an agent asking again with one small word changed, or a "please" added, for a new issue.

    .venv/bin/python benchmarks/make_same_issue_small_edits.py   # rewrites the generated part

Writes tests/data/same_issue_train_small_edits.jsonl: the hand-written pairs (kind
"small_edit_written": a preposition, an article, a possessive, a contraction or a near-synonym
changed) kept as they are, then one generated pair for each of --count texts drawn (seed 13) from
tests/data/same_issue_train.jsonl (kind "small_edit_generated"), made by one change that keeps the
issue by construction: a politeness or re-ask wrapper, the end punctuation dropped, a contraction."""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "same_issue_train_small_edits.jsonl"
TRAIN = ROOT / "tests" / "data" / "same_issue_train.jsonl"

CONTRACTIONS = [("do not", "don't"), ("does not", "doesn't"), ("should not", "shouldn't"), ("is not", "isn't"),
                ("it is", "it's"), ("we are", "we're"), ("I am", "I'm"), ("cannot", "can't"), ("they are", "they're")]
QUESTION_WRAPPERS = ["Quick question: {}", "Just to check, {lc}", "Sorry to ask again: {}", "One more time: {}",
                     "I still need to know: {lc}", "{q} Could you tell me?"]
ORDER_WRAPPERS = ["Please {lc}", "Can you {lc_q}", "Could you {lc_q}", "{s}, please.", "I need you to {lc}",
                  "Go ahead and {lc}", "Reminder: {}"]


def lower_first(text: str, common: set[str]) -> str:
    first = text.split()[0]
    return text[0].lower() + text[1:] if first.lower() in common else text


def small_edit(text: str, rng: random.Random, common: set[str]) -> str | None:
    for long, short in CONTRACTIONS:
        pattern = re.compile(rf"\b{long}\b")
        if pattern.search(text) and rng.random() < 0.5:
            return pattern.sub(short, text, count=1)
        if re.search(rf"\b{re.escape(short)}", text) and rng.random() < 0.5:
            return text.replace(short, long, 1)
    lc = lower_first(text, common)
    stem = text.rstrip(".?! ")
    if rng.random() < 0.15:
        return stem
    if text.endswith("?"):
        return rng.choice(QUESTION_WRAPPERS).format(text, lc=lc, q=text)
    wrapper = rng.choice(ORDER_WRAPPERS)
    return wrapper.format(text, lc=lc, lc_q=lower_first(stem, common) + "?", s=stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    written = [line for line in OUT.read_text().splitlines()
               if line.strip() and json.loads(line)["kind"] == "small_edit_written"] if OUT.exists() else []
    rows = [json.loads(line) for line in TRAIN.read_text().splitlines() if line.strip()]
    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    common = {w for t in texts for w in re.findall(r"\b[a-z]+\b", t)}
    rng = random.Random(13)
    generated = []
    for text in rng.sample(texts, args.count):
        edited = small_edit(text, rng, common)
        if edited and edited != text:
            generated.append(json.dumps({"a": text, "b": edited, "same": True, "kind": "small_edit_generated"}))
    OUT.write_text("\n".join([*written, *generated]) + "\n")
    print(f"{OUT}: {len(written)} written, {len(generated)} generated")


if __name__ == "__main__":
    main()
