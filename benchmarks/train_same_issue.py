"""A pair-trained encoder for same-issue detection: the bundled MiniLM with a LoRA adapter on its
top layers, trained so that rewordings of one issue embed close together and different issues that
share most words embed apart. Tried against the base encoder; see
benchmarks/results/same_issue_finetune.md for the figures.

    .venv/bin/python benchmarks/train_same_issue.py --train tests/data/same_issue_train.jsonl \
        [--train tests/data/same_issue_pairs.jsonl] [--eval NAME=PATH ...] [--folds 5] \
        [--loss contrastive|mse] [--epochs 6] [--margin 0.5] [--save /tmp/same-issue-encoder]

1. ``--folds`` k-fold cross-validation on the training pairs (folds keep pairs that share a text
   together): per fold the adapter is trained on the other folds, the threshold(s) fitted there
   (the lowest keeping precision >= --min-precision) and measured on the left-out fold. The base
   encoder is measured the same way, side by side.
2. The adapter trained on all training pairs, thresholds fitted on the training pairs only, then
   measured on each --eval set. Only aggregate figures are printed for --eval sets.

Decisions are made as the server makes them (escalation_matrix.sameissue): texts embedded with
abbreviations written out, the lexical check vetoes a pair it finds a difference in, and the cosine
must reach one threshold (or a lower one when values and action agree: "two thresholds").
CPU only; torch runs on --threads threads."""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_same_issue import fit, measure  # noqa: E402
from escalation_matrix.embedder import _resolve_model  # noqa: E402
from escalation_matrix.finetune import _frozen_states, _mask, _pad, _pool, warmup_schedule  # noqa: E402
from escalation_matrix.sameissue import agree, conflict, expand_abbreviations  # noqa: E402


def load(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def groups(pairs: list[dict]) -> list[int]:
    """A group id per pair: pairs that share a text (case-folded) are in one group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        parent[find(p["a"].casefold())] = find(p["b"].casefold())
    roots: dict[str, int] = {}
    return [roots.setdefault(find(p["a"].casefold()), len(roots)) for p in pairs]


class Encoder:
    """The bundled encoder split at ``frozen`` layers: the frozen part's outputs computed once per
    text; the top layers adapted with LoRA per run."""

    def __init__(self, texts: list[str], frozen: int, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.torch = torch
        self.st = SentenceTransformer(_resolve_model("bundled"), device="cpu")
        self.bert = self.st[0].auto_model
        self.frozen = frozen
        self.index = {t: i for i, t in enumerate(texts)}
        encoded = self.st.tokenizer([expand_abbreviations(t) for t in texts], truncation=True, max_length=128)
        self.lengths = [len(ids) for ids in encoded["input_ids"]]
        self.states = _frozen_states(torch, self.bert, self.st.tokenizer, encoded, self.lengths, frozen)
        self.base_top = [layer for layer in self.bert.encoder.layer][frozen:]

    def train(self, pairs: list[dict], args: Any) -> Any:
        """A fresh LoRA-adapted copy of the top layers trained on ``pairs``; returns the layers."""
        import copy

        from peft import LoraConfig, get_peft_model

        torch = self.torch
        random.seed(args.seed)
        torch.manual_seed(args.seed)
        bert = copy.deepcopy(self.bert)
        layers = bert.config.num_hidden_layers
        lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.1,
                          target_modules=["query", "key", "value", "dense"], bias="none",
                          layers_to_transform=list(range(self.frozen, layers)))
        model = get_peft_model(bert, lora)
        top = list(bert.encoder.layer)[self.frozen:]
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
        per_epoch = math.ceil(len(pairs) / args.batch)
        total = per_epoch * args.epochs
        scheduler = warmup_schedule(torch, optimizer, total, 0.06)
        rng = random.Random(args.seed)
        model.train()
        order = list(range(len(pairs)))
        for _ in range(args.epochs):
            rng.shuffle(order)
            for start in range(0, len(order), args.batch):
                batch = [pairs[i] for i in order[start:start + args.batch]]
                texts = sorted({t for p in batch for t in (p["a"], p["b"])})
                at = {t: i for i, t in enumerate(texts)}
                emb = self._embed(bert, top, texts)
                a = emb[[at[p["a"]] for p in batch]]
                b = emb[[at[p["b"]] for p in batch]]
                cos = (a * b).sum(1)
                same = torch.tensor([1.0 if p["same"] else 0.0 for p in batch])
                if args.loss == "mse":
                    loss = ((cos - same) ** 2).mean()
                else:
                    loss = (same * (1 - cos) ** 2 + (1 - same) * torch.relu(cos - args.margin) ** 2).mean()
                if args.mnrl:
                    pos = same.bool()
                    if int(pos.sum()) > 1:
                        sims = a[pos] @ emb.T * 20.0
                        sims = sims.masked_fill(
                            torch.tensor([[at[p["a"]] == j for j in range(len(texts))] for p in batch])[pos],
                            -1e4)
                        target = torch.tensor([at[p["b"]] for p in batch])[pos]
                        loss = loss + args.mnrl * torch.nn.functional.cross_entropy(sims, target)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
        model.eval()
        return model, top

    def _embed(self, bert: Any, top: list[Any], texts: list[str]) -> Any:
        hidden, mask = _pad(self.torch, [self.states[self.index[t]] for t in texts])
        extended = _mask(self.torch, bert, hidden, mask)
        for layer in top:
            hidden = layer(hidden, extended)
        return _pool(self.torch, hidden, mask)

    def vectors(self, texts: list[str], trained: Any | None) -> dict[str, np.ndarray]:
        bert, top = (self.bert, self.base_top) if trained is None else (trained[0].base_model.model, trained[1])
        out = {}
        with self.torch.no_grad():
            for start in range(0, len(texts), 64):
                chunk = texts[start:start + 64]
                for t, v in zip(chunk, self._embed(bert, top, chunk).numpy()):
                    out[t] = v
        return out


def rows_for(pairs: list[dict], vectors: dict[str, np.ndarray]) -> list[dict]:
    return [{**p, "cos": float(vectors[p["a"]] @ vectors[p["b"]])} for p in pairs]


def decide(train_rows: list[dict], test_rows: list[dict], min_precision: float) -> dict[str, tuple]:
    """Per variant: (thresholds, precision, recall, outcome) on ``test_rows``, fitted on ``train_rows``."""
    out = {}
    for label, two, lexical in (("lexical + one cosine", False, True), ("lexical + two thresholds", True, True),
                                ("cosine alone", False, False)):
        thresholds = fit(train_rows, min_precision, two, lexical)
        p, r, o = measure(test_rows, thresholds, lexical)
        out[label] = (thresholds, p, r, o)
    return out


def auc(rows: list[dict], key: str = "cos") -> float:
    """Area under the ROC curve of ``key`` (the chance a rewording scores above a different issue)."""
    pos = [r[key] for r in rows if r["same"]]
    neg = [r[key] for r in rows if not r["same"]]
    if not pos or not neg:
        return float("nan")
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def pair_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the same-issue training scripts that name their data and its cross-validation."""
    parser.add_argument("--train", action="append", required=True)
    parser.add_argument("--eval", action="append", default=[], help="NAME=PATH, aggregate figures only")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-precision", type=float, default=0.97)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-final", action="store_true", help="cross-validation only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    pair_set_arguments(parser)
    parser.add_argument("--loss", choices=["contrastive", "mse"], default="contrastive")
    parser.add_argument("--margin", type=float, default=0.5)
    parser.add_argument("--mnrl", type=float, default=0.0, help="weight of an in-batch ranking loss on rewordings")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--frozen", type=int, default=3)
    parser.add_argument("--save", help="folder to write the adapter trained on all training pairs into")
    parser.add_argument("--fit-on", help="an --eval set's NAME: also fit the thresholds on that set (not trained on) "
                        "and measure them on the other --eval sets")
    args = parser.parse_args()
    pairs = [p for path in args.train for p in load(path)]
    evals = {name: load(path) for name, path in (e.split("=", 1) for e in args.eval) if Path(path).exists()}
    for p in [*pairs, *(q for e in evals.values() for q in e)]:
        p["conflict"] = conflict(p["a"], p["b"])
        p["agree"] = agree(p["a"], p["b"])
    texts = sorted({t for p in [*pairs, *(q for e in evals.values() for q in e)] for t in (p["a"], p["b"])})
    started = time.perf_counter()
    enc = Encoder(texts, args.frozen, args.threads)
    print(f"{len(pairs)} training pairs, {len(texts)} texts; loss {args.loss} margin {args.margin} mnrl {args.mnrl} "
          f"epochs {args.epochs} lr {args.lr} rank {args.rank} frozen {args.frozen} seed {args.seed}")
    base = enc.vectors(texts, None)
    if args.folds > 1:
        gid = groups(pairs)
        ids = sorted(set(gid))
        random.Random(args.seed).shuffle(ids)
        fold_of = {g: i % args.folds for i, g in enumerate(ids)}
        results: dict[str, dict[str, list]] = {"base": {}, "pair-trained": {}}
        aucs: dict[str, list] = {"base": [], "pair-trained": []}
        for k in range(args.folds):
            train = [p for p, g in zip(pairs, gid) if fold_of[g] != k]
            test = [p for p, g in zip(pairs, gid) if fold_of[g] == k]
            trained = enc.train(train, args)
            tuned = enc.vectors(sorted({t for p in pairs for t in (p["a"], p["b"])}), trained)
            for name, vec in (("base", base), ("pair-trained", tuned)):
                tr, te = rows_for(train, vec), rows_for(test, vec)
                aucs[name].append(auc([r for r in te if not r["conflict"]]))
                for label, (_th, p, r, o) in decide(tr, te, args.min_precision).items():
                    results[name].setdefault(label, []).append((p, r, o))
            print(f"  fold {k + 1}/{args.folds} done ({time.perf_counter() - started:.0f} s)", flush=True)
        print(f"== {args.folds}-fold cross-validation on the training pairs (threshold fitted on the other folds)")
        for name in results:
            print(f"  {name}: AUC over pairs the lexical check lets through, mean {np.nanmean(aucs[name]):.3f}")
            for label, found in results[name].items():
                tp = sum(o["tp"] for _, _, o in found)
                fp = sum(o["fp"] for _, _, o in found)
                fn = sum(o["fn"] for _, _, o in found)
                print(f"    {label:<26} pooled precision {tp / max(1, tp + fp):.3f} recall {tp / max(1, tp + fn):.3f}"
                      f"  (per fold: precision {' '.join(f'{p:.2f}' for p, _, _ in found)};"
                      f" recall {' '.join(f'{r:.2f}' for _, r, _ in found)})")
    if args.no_final:
        return
    trained = enc.train(pairs, args)
    tuned = enc.vectors(texts, trained)
    print(f"== trained on all {len(pairs)} training pairs; thresholds fitted on them ({time.perf_counter() - started:.0f} s)")
    for name, vec in (("base", base), ("pair-trained", tuned)):
        tr = rows_for(pairs, vec)
        fitted = decide(tr, tr, args.min_precision)
        print(f"  {name}: AUC on the training pairs past the lexical check {auc([r for r in tr if not r['conflict']]):.3f}")
        print(f"  {name}: on the training pairs themselves: "
              + "; ".join(f"{label} {th[0]:.2f}/{th[1]:.2f} p {p:.3f} r {r:.3f}" for label, (th, p, r, o) in fitted.items()))
        for set_name, found in evals.items():
            te = rows_for(found, vec)
            print(f"    {set_name} ({len(found)} pairs), AUC past the lexical check "
                  f"{auc([r for r in te if not r['conflict']]):.3f}")
            for label, (th, _, _, _) in fitted.items():
                p, r, o = measure(te, th, label != "cosine alone")
                print(f"      {label:<26} thresholds {th[0]:.2f}/{th[1]:.2f}  precision {p:.3f}  recall {r:.3f}  "
                      f"(tp {o['tp']}, fp {o['fp']}, fn {o['fn']}, tn {o['tn']})")
        if args.fit_on in evals:
            on = rows_for(evals[args.fit_on], vec)
            refit = decide(on, on, args.min_precision)
            print(f"    thresholds fitted on {args.fit_on} instead (precision >= {args.min_precision} there)")
            for set_name, found in evals.items():
                if set_name == args.fit_on:
                    continue
                te = rows_for(found, vec)
                for label, (th, _, _, _) in refit.items():
                    p, r, o = measure(te, th, label != "cosine alone")
                    print(f"      {set_name}: {label:<26} thresholds {th[0]:.2f}/{th[1]:.2f}  precision {p:.3f}  "
                          f"recall {r:.3f}  (tp {o['tp']}, fp {o['fp']}, fn {o['fn']}, tn {o['tn']})")
    if args.save:
        save(trained[0], Path(args.save), args, pairs)


def save(model: Any, folder: Path, args: Any, pairs: list[dict]) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().cpu().numpy().astype(np.float16) for n, p in model.named_parameters() if "lora_" in n}
    save_file(state, str(folder / "adapter.safetensors"))
    (folder / "manifest.json").write_text(json.dumps({"args": vars(args), "pairs": len(pairs)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
