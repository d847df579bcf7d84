"""Replay of preference learning: one person, a stream of recurring questions an agent asks them
(reworded each time), answered through the real conversation guard with the real model, the shipped
policy and a clock that moves a few hours per question.

    .venv/bin/python benchmarks/bench_preferences.py [--days 90] [--per-day 6] [--seed 7] [--fake]

Ten question families, each asked in three wordings, with the person's answer (approve, reject or
a free-text choice). Two of them differ only by staging/production and get opposite answers: the
same-issue check must keep them apart. Every question comes in its own conversation (so the
never-re-ask rule inside a conversation plays no part) with context person=alice,
organisation=acme, and the agent asks it as a decision (``type="decision"``).

Two streams are replayed on fresh databases:

- consistent: the person always gives their family's answer;
- noisy: one answer in twenty is a slip (another answer, once), and on day 45 the person changes
  their mind on two families; when an auto-answer is not what they want any more, they revoke it.

Printed per window of days: questions, questions asked (an escalation created), auto-answered,
and auto-answers that contradict the person: their intent at that moment ("vs intent"), or their
next actual answer to that family ("vs later"; "(slips)": of those, the later answer was a slip).
Without preferences every question is asked."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from escalation_matrix import preferences as prefs  # noqa: E402
from escalation_matrix.classifier import Classifier  # noqa: E402
from escalation_matrix.guard import ConversationGuard  # noqa: E402
from escalation_matrix.loader import load_policy  # noqa: E402
from escalation_matrix.store import Store  # noqa: E402


@dataclass(frozen=True)
class Family:
    request: str
    wordings: tuple[str, ...]
    answer: str  # "approve", "reject" or a free-text answer
    changed: str | None = None  # the noisy stream's answer from day 45 on


FAMILIES = [
    Family("Roll out the login hotfix", ("Can I deploy the hotfix to staging now?",
                                         "Is it OK to push the hotfix to the staging environment now?",
                                         "Shall I ship the hotfix to staging right away?"), "approve"),
    Family("Roll out the login hotfix", ("Can I deploy the hotfix to production now?",
                                         "Is it OK to push the hotfix to the production environment now?",
                                         "Shall I ship the hotfix to production right away?"), "reject",
           changed="approve"),
    Family("Build the monthly report", ("Which colour palette should the charts use?",
                                        "What colours do you want for the charts?",
                                        "Which palette should I pick for the report charts?"), "Use the brand blues."),
    Family("Start the new prototype", ("Which database should I use for the new prototype?",
                                       "What database do you want the prototype built on?",
                                       "Which database engine should the prototype use?"), "PostgreSQL."),
    Family("Maintain the service", ("May I upgrade the minor versions of our dependencies?",
                                    "Can I bump the dependencies to their latest minor releases?",
                                    "Should I apply the minor dependency updates?"), "approve"),
    Family("Tidy the support queue", ("Should I close the support tickets with no reply for 30 days?",
                                      "May I close stale support tickets older than 30 days?",
                                      "Can I auto-close tickets nobody answered in 30 days?"), "reject",
           changed="approve"),
    Family("Plan the team calendar", ("What time of day should I book the weekly sync?",
                                      "When should I schedule the weekly sync meeting?",
                                      "Which time slot do you prefer for the weekly sync?"), "Mornings, before 11:00."),
    Family("Handle customer refunds", ("May I refund orders under 50 euros without asking?",
                                       "Can I approve refunds below 50 euros on my own?",
                                       "Should I issue refunds under 50 euros directly?"), "approve"),
    Family("Onboard new users", ("Should I add the new signups to the newsletter list?",
                                 "May I subscribe new sign-ups to the newsletter?",
                                 "Can I put newly registered users on the newsletter list?"), "reject"),
    Family("Configure logging", ("How long should I keep the application logs?",
                                 "What retention period do you want for the app logs?",
                                 "For how many days should application logs be retained?"), "Keep them for 90 days."),
]
CONTEXT = {"person": "alice", "organisation": "acme"}
ACTIONS = ("approve", "reject")
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        return self.moment


def key(answer: str) -> str:
    return prefs.answer_key(answer, answer if answer in ACTIONS else None)


def intent(family: Family, day: int, noisy: bool) -> str:
    return family.changed if noisy and family.changed and day >= 45 else family.answer


def replay(classifier: Classifier, policy, args: argparse.Namespace, noisy: bool) -> dict:
    rng = random.Random(args.seed)
    clock = Clock()
    folder = tempfile.mkdtemp(prefix="bench-prefs-")
    guard = ConversationGuard(policy, classifier, Store(Path(folder) / "state.db", clock=clock))
    windows: dict[int, Counter] = {}
    autos: list[tuple[int, str, int]] = []  # (family, auto-answer key, question number)
    answers: list[tuple[int, str, int, bool]] = []  # (family, the person's answer key, question number, a slip)
    n = 0
    for day in range(args.days):
        for slot in range(args.per_day):
            clock.moment = T0 + timedelta(days=day, hours=slot * 12 / args.per_day)
            f = rng.randrange(len(FAMILIES))
            fam = FAMILIES[f]
            question = rng.choice(fam.wordings)
            w = windows.setdefault(day // args.window, Counter())
            w["questions"] += 1
            n += 1
            result = guard.escalate(f"q-{n}", fam.request, question=question, context=CONTEXT, type="decision")
            wanted = intent(fam, day, noisy)
            if result.preference is not None:
                w["auto"] += 1
                got = key(result.response.action if result.response else result.answer or "")
                autos.append((f, got, n))
                if got != key(wanted):
                    w["against_intent"] += 1
                    prefs.revoke(guard.store, result.preference.id, "alice", "not what I want any more")
                    w["revoked"] += 1
                continue
            if result.escalation_id is None:
                w["other"] += 1
                continue
            w["asked"] += 1
            given = wanted
            if noisy and rng.random() < args.slip:
                given = rng.choice([a for a in ("approve", "reject", "Something else this time.") if key(a) != key(wanted)])
            answers.append((f, key(given), n, given != wanted))
            if given in ACTIONS:
                guard.respond(result.escalation_id, action=given, responder="alice")
            else:
                guard.respond(result.escalation_id, answer=given, responder="alice")
    contradicted: dict[int, bool] = {}  # question number of the auto-answer -> the later answer was a slip
    for f, answer, at in autos:
        later = next(((a, slip) for g, a, m, slip in answers if g == f and m > at), None)
        if later is not None and later[0] != answer:
            contradicted[at] = later[1]
    by_number: dict[int, int] = {}
    m = 0
    for day in range(args.days):
        for _ in range(args.per_day):
            m += 1
            by_number[m] = day // args.window
    for at, slip in contradicted.items():
        windows[by_number[at]]["contradicted_later"] += 1
        windows[by_number[at]]["by_a_slip"] += slip
    return {"windows": windows, "preferences": prefs.listing(guard.store, policy.decisions.preferences, revoked=True)}


def show(name: str, run: dict, args: argparse.Namespace) -> None:
    print(f"\n{name}")
    print(f"{'days':>9} {'questions':>9} {'asked':>6} {'auto':>5} {'auto %':>7} {'vs intent':>9} {'vs later':>9}"
          f" {'(slips)':>8} {'revoked':>8}")
    total: Counter = Counter()
    for i, w in sorted(run["windows"].items()):
        total.update(w)
        days = f"{i * args.window + 1}-{min((i + 1) * args.window, args.days)}"
        print(f"{days:>9} {w['questions']:>9} {w['asked']:>6} {w['auto']:>5} {w['auto'] / w['questions']:>7.0%} "
              f"{w['against_intent']:>9} {w['contradicted_later']:>9} {w['by_a_slip']:>8} {w['revoked']:>8}")
    print(f"{'all':>9} {total['questions']:>9} {total['asked']:>6} {total['auto']:>5} "
          f"{total['auto'] / total['questions']:>7.0%} {total['against_intent']:>9} {total['contradicted_later']:>9} "
          f"{total['by_a_slip']:>8} {total['revoked']:>8}")
    if total["other"]:
        print(f"(neither asked nor auto-answered: {total['other']})")
    live = [p for p in run["preferences"] if p["scope"] == "person" and not p["revoked_at"]]
    print(f"person preferences: {len(live)} live, {sum(1 for p in live if p['answers_now'])} answering now, "
          f"{sum(1 for p in run['preferences'] if p['revoked_at'])} revoked")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--per-day", type=int, default=6, help="questions per day")
    ap.add_argument("--window", type=int, default=15, help="days per printed window")
    ap.add_argument("--slip", type=float, default=0.05, help="noisy stream: share of answers that are a slip")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fake", action="store_true", help="the hashing test embedder (fast, not the real model)")
    args = ap.parse_args()
    policy = load_policy()
    if args.fake:
        from escalation_matrix.embedder import get_embedder

        classifier = Classifier(policy, embedder=get_embedder("fake"))
    else:
        classifier = Classifier(policy)
    limits = policy.decisions.preferences
    print(f"policy: threshold {limits.threshold:g}, cap {limits.cap:g}, half-life {limits.half_life_days:g} days, "
          f"consistency boost {limits.consistency_boost:g}, min answers {limits.min_answers}, "
          f"similarity {limits.similarity:g}; {args.days} days x {args.per_day} questions, seed {args.seed}"
          f"{', fake embedder' if args.fake else ''}")
    for name, noisy in (("consistent person", False),
                        (f"noisy person ({args.slip:.0%} slips, changes of mind on day 45)", True)):
        started = time.perf_counter()
        run = replay(classifier, policy, args, noisy)
        show(name, run, args)
        print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
