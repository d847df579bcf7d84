"""Check that no shipped exemplar or test sentence is a copy or near-copy of a labelled
request (training or evaluation), so that figures measured on those requests stay honest and
no labelled item is smuggled into the exemplars.

    .venv/bin/python scripts/check_overlap.py      # train.jsonl, dev.jsonl and agent_dev.jsonl
    .venv/bin/python scripts/check_overlap.py ../shared/eval/dev.jsonl

A sentence counts as a near-copy when its cosine similarity to an evaluation request is at least
--max-similarity (default 0.85, the bundled model) or when the two share a run of --ngram words
(default 7). Prints every such pair and exits 1 if there is one; prints the closest pairs
either way.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from escalation_matrix.dataset import read_jsonl
from escalation_matrix.embedder import get_embedder
from escalation_matrix.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]


def _words(text: str, n: int) -> set[str]:
    w = re.findall(r"[a-z0-9']+", text.lower())
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}


def shipped_sentences() -> list[tuple[str, str]]:
    """Exemplars, plus the string literals of tests, examples and benchmarks that read like requests."""
    found = [(e.text, f"embeddings/{e.file}") for e in load_policy().exemplars]
    for folder in ("tests", "examples", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value \
                        and 15 < len(node.value) < 400:
                    found.append((node.value, str(path.relative_to(ROOT))))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path,
                        help="labelled JSONL files (a 'text' per line); default: the three files in ../shared/eval")
    parser.add_argument("--max-similarity", type=float, default=0.85)
    parser.add_argument("--ngram", type=int, default=7)
    parser.add_argument("--show", type=int, default=5, help="closest pairs to print")
    args = parser.parse_args()
    if not args.files:
        shared = ROOT.parent / "shared" / "eval"
        args.files = [shared / name for name in ("train.jsonl", "dev.jsonl", "agent_dev.jsonl")]

    evaluation = [(item.text, path.name) for path in args.files for item in read_jsonl(path)]
    ours = shipped_sentences()
    embedder = get_embedder("bundled")
    sims = embedder.encode([" ".join(t.split()) for t, _ in ours]) @ embedder.encode(
        [" ".join(t.split()) for t, _ in evaluation]).T
    grams = [_words(t, args.ngram) for t, _ in evaluation]

    bad = 0
    best = sims.argmax(axis=1)
    closest_first = sorted(range(len(ours)), key=lambda i: -sims[i, best[i]])
    for i in closest_first:
        text, where = ours[i]
        j = int(best[i])
        mine = _words(text, args.ngram)
        shared = [k for k, g in enumerate(grams) if g & mine]
        near = sims[i, j] >= args.max_similarity
        if near or shared:
            bad += 1
            k = j if near else shared[0]
            print(f"NEAR-COPY {sims[i, k]:.3f} {where}: {text[:90]!r} ~ {evaluation[k][1]}: {evaluation[k][0][:90]!r}")
    print(f"closest {args.show} of {len(ours)} shipped sentences to {len(evaluation)} evaluation requests:")
    for i in closest_first[: args.show]:
        j = int(best[i])
        print(f"  {sims[i, j]:.3f} {ours[i][1]}: {ours[i][0][:70]!r} ~ {evaluation[j][0][:70]!r}")
    print("near-copies:", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
