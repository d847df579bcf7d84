"""The product speaks about itself: the policy and phrase files a policy author edits, the README,
and the package's own text say what a rule is, never where it came from (no references to the
internal source documents the product was written from)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# "seed 002 §5", "seed 000's", "(seed 004)": a document number; "seed 7" (a random seed) is fine
INTERNAL = re.compile(r"\bseeds? 00\d|§|\bissue \d+\b", re.IGNORECASE)
FILES = sorted([*ROOT.glob("policies/**/*.yaml"), *ROOT.glob("phrases/**/*"), ROOT / "README.md",
                *ROOT.glob("server/escalation_matrix/**/*.py"), *ROOT.glob("server/escalation_matrix/**/*.j2"),
                *ROOT.glob("examples/**/*.py"), *ROOT.glob("examples/**/*.md")])


@pytest.mark.parametrize("path", [p for p in FILES if p.is_file()], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_internal_documents(path):
    found = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if INTERNAL.search(line)]
    assert not found, f"{path.relative_to(ROOT)} cites internal documents; say what the rule is:\n" + "\n".join(found)
