"""Precision of every text rule (and the conflict detector) on a labelled file.

A text rule is policy: it must be right on the requests it fires on. This prints, per rule, how
many requests of the file it fires on and how many of those carry the rule's own type, so a
policy author can see what a rule costs before shipping it. Rules that only test structured
context (no keywords or patterns) are skipped: a request text cannot exercise them.

    python scripts/rule_precision.py ../shared/eval/train.jsonl [--annotate]

--annotate rewrites the ``precision:`` comment line above each rule in policies/rules.yaml.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from escalation_matrix.dataset import read_jsonl
from escalation_matrix.loader import load_policy
from escalation_matrix.rules import CompiledRule, RuleEngine


def measure(path: Path) -> tuple[list[tuple[str, str, int, int, Counter]], int]:
    policy = load_policy()
    items = read_jsonl(path, labelled=True)
    texts = [" ".join(i.text.split()) for i in items]
    rows = []
    for rule in policy.rules.rules:
        if not (rule.keywords or rule.patterns):
            continue
        compiled = CompiledRule.of(rule)
        # as shipped, on a request with no structured context: a rule that needs a field set (an
        # environment, a granted capability) does not fire on these items
        fired = [i for i, t in enumerate(texts) if compiled.match(t, items[i].context or {})]
        labels = Counter(items[i].label for i in fired)
        rows.append((rule.name, rule.type.value, len(fired), labels.get(rule.type.value, 0), labels))
    engine = RuleEngine([], policy.classifier.contradictions)
    fired = [i for i, t in enumerate(texts) if engine.match(t, {})]
    labels = Counter(items[i].label for i in fired)
    rows.append(("contradictions (conflict detector)", "conflict", len(fired), labels.get("conflict", 0), labels))
    return rows, len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--annotate", action="store_true", help="write the figures into policies/rules.yaml")
    args = parser.parse_args()
    rows, total = measure(args.file)
    print(f"{total} labelled requests in {args.file.name}")
    print(f"{'rule':38s} {'type':13s} {'fires':>5s} {'right':>5s} {'precision':>9s}  labels it fired on")
    for name, etype, fires, right, labels in rows:
        prec = f"{right / fires:.2f}" if fires else "-"
        print(f"{name:38s} {etype:13s} {fires:5d} {right:5d} {prec:>9s}  {dict(labels.most_common())}")
    if args.annotate:
        annotate(Path(__file__).resolve().parents[1] / "policies" / "rules.yaml", rows, args.file.name)
    return 0


def annotate(path: Path, rows, source: str) -> None:
    figures = {name: (fires, right) for name, _, fires, right, _ in rows}
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"\s*# precision on ", line):
            continue  # replaced below
        m = re.match(r"(\s*)- name: (\S+)", line)
        if m and m.group(2) in figures:
            fires, right = figures[m.group(2)]
            prec = f"{right / fires:.2f} ({right}/{fires})" if fires else "n/a (fires on none of its requests)"
            out.append(f"{m.group(1)}# precision on {source}: {prec}")
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
