"""Classifier commands: classify, policy check, fit, eval, train."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import numpy as np

from . import main
from ..errors import InputError
from .common import AppState, Bar, CliError, translate_errors

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..dataset import Item
    from ..models import Classification, EscalationType
    from ..trained import ProbabilityModel

T = TypeVar("T")

BATCH = 256  # the model sorts a batch by length: bigger chunks pad less


def _batches(items: list[T], size: int = BATCH) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def classify_items(state: AppState, items: list[Item], label: str) -> list[Classification]:
    classifier = state.classifier
    results: list[Classification] = []
    with state.bar(len(items), label) as bar, _quiet(classifier):
        for chunk in _batches(items):
            results.extend(classifier.classify_many([i.text for i in chunk], [i.context for i in chunk]))
            bar.update(len(chunk))
    return results


def score_items(state: AppState, items: list[Item], label: str) -> tuple[np.ndarray,
                                                                          list[tuple[EscalationType, float]]]:
    """``Classifier.score`` over a file in chunks under a bar; ``fit`` takes the result as is."""
    classifier = state.classifier
    scores: list[np.ndarray] = []
    nearest: list[tuple[EscalationType, float]] = []
    with state.bar(len(items), label) as bar, _quiet(classifier):
        for chunk in _batches(items):
            s, n = classifier.score([i.text for i in chunk])
            scores.append(s)
            nearest.extend(n)
            bar.update(len(chunk))
    return (np.concatenate(scores) if scores else np.zeros((0, 0))), nearest


def _quiet(classifier: Classifier) -> AbstractContextManager[object]:
    """The caller's bar counts requests: no second bar for the encoding inside each chunk."""
    quiet = getattr(classifier.embedder, "quiet", None)
    context: AbstractContextManager[object] = quiet() if quiet else contextlib.nullcontext()
    return context


def _explain(result: Any) -> str:
    lines = []
    if result.type.value == "none":
        lines.append(f"PROCEED  ({result.trigger})")
        if result.default:
            lines.append(f"default: {result.default}")
    else:
        lines.append(result.message.rstrip())
        lines.append("")
    severity = result.severity.value if result.severity else "-"
    lines.append(f"type: {result.type.value}  severity: {severity}  trigger: {result.trigger}  "
                 f"confidence: {result.confidence:.2f}  decided by: {result.decided_by}")
    for rule in result.rules:
        deciding = "  (decided)" if len(result.rules) > 1 and rule.name == result.rule else ""
        lines.append(f"rule {rule.name}: {rule.reason} [{'; '.join(rule.matched)}]{deciding}")
    for ex in result.exemplars:
        lines.append(f"exemplar {ex.similarity:.2f} {ex.type.value}: {ex.text!r} ({ex.file})")
    top = sorted(result.scores.items(), key=lambda kv: -kv[1])[:4]
    lines.append("scores: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    return "\n".join(lines)


@main.command()
@click.argument("text", required=False)
@click.option("--context", "context_json", help='Structured context as JSON, e.g. \'{"environment": "production"}\'.')
@click.option("--json", "as_json", is_flag=True, help="Print the full classification as JSON.")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False, exists=True, allow_dash=True),
              help="Classify every line of a JSONL file (objects with 'text', optional 'context'); - for stdin.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), default="-",
              help="Where batch results go (JSONL, default stdout).")
@click.pass_obj
@translate_errors
def classify(state: AppState, text: str | None, context_json: str | None, as_json: bool,
             input_path: str | None, output_path: str) -> None:
    """Classify TEXT (or every line of --input) and say why.

    TEXT "-" reads the request from standard input; --input - reads JSONL from standard input."""
    from ..dataset import read_jsonl

    if input_path:
        if text:
            raise CliError("give either TEXT or --input, not both")
        items = _read_items(input_path, read_jsonl)
        results = classify_items(state, items, "classify")
        with click.open_file(output_path, "w", encoding="utf-8") as out:
            for item, result in zip(items, results):
                row = dict(item.raw)
                row.update(type=result.type.value, severity=result.severity.value if result.severity else None,
                           confidence=result.confidence, trigger=result.trigger, phrase=result.phrase,
                           decided_by=result.decided_by)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if text == "-":
        text = sys.stdin.read().strip()
        if not text:
            raise CliError("standard input was empty; pipe the request in, e.g. echo \"Delete the table\" | "
                           "escalation-matrix classify -")
    if not text:
        raise CliError("give the TEXT to classify (or - to read it from standard input), or --input FILE.jsonl")
    context = _parse_context(context_json)
    result = state.classifier.classify(text, context)
    click.echo(result.model_dump_json(indent=2) if as_json else _explain(result))


def _read_items(path: str, read_jsonl: Callable[[Path], list[Item]]) -> list[Item]:
    if path != "-":
        return read_jsonl(Path(path))
    import tempfile

    # read_jsonl reports errors as file:line; a named temporary copy keeps that for stdin
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "stdin.jsonl"
        copy.write_text(sys.stdin.read(), encoding="utf-8")
        try:
            return read_jsonl(copy)
        except InputError as exc:
            raise InputError(str(exc).replace(str(copy), "<stdin>")) from None


def _parse_context(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--context is not valid JSON ({exc.msg}); pass an object like '{{\"environment\": \"production\"}}'") from None
    if not isinstance(value, dict):
        raise CliError("--context must be a JSON object")
    return value


@main.group()
def policy() -> None:
    """Validate policy, phrase and exemplar files."""


@policy.command("check")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.pass_obj
@translate_errors
def policy_check(state: AppState, folder: str | None) -> None:
    """Load every policy, phrase and exemplar file and report each problem as file: key: fix.

    FOLDER is a policy folder; when it holds phrases/ and embeddings/ too, those are checked."""
    from ..loader import load_policy

    policies, phrases, embeddings = state.folders
    if folder:
        root = Path(folder)
        nested = root / "policies"
        policies = str(nested if nested.is_dir() else root)
        base = nested.parent if nested.is_dir() else root
        phrases = str(base / "phrases") if (base / "phrases").is_dir() else phrases
        embeddings = str(base / "embeddings") if (base / "embeddings").is_dir() else embeddings
    loaded = load_policy(policies, phrases, embeddings)
    types = {e.type.value for e in loaded.exemplars}
    click.echo(f"ok: {loaded.paths.policies} ({len(loaded.rules.rules)} rules), "
               f"{loaded.paths.phrases} (locales {', '.join(loaded.locales)}, each with the same phrases and "
               f"{', '.join(loaded.phrases.formats)} templates, all rendered), "
               f"{loaded.paths.embeddings} ({len(loaded.exemplars)} exemplars over {len(types)} types)")
    from ..classifier import uses_trained

    if uses_trained(loaded.classifier):
        _check_trained(loaded)


def _check_trained(loaded: Any) -> None:
    """Warn when the exemplars differ from those the shipped model was trained on."""
    from ..classifier import trained_folder
    from ..trained import Manifest
    from ..training import changed_exemplars

    folder = trained_folder(loaded.classifier)
    manifest = Manifest.read(folder)
    manifest.verify(folder)
    added, removed = changed_exemplars(loaded, manifest)
    if added or removed:
        click.echo(f"warning: {added} exemplar(s) added or changed and {removed} removed since the model in "
                   f"{folder} was trained. New exemplars already take effect through the nearest-exemplar "
                   f"check; run `escalation-matrix train TRAIN.jsonl` to retrain the model on them.", err=True)
    else:
        click.echo(f"ok: the model in {folder} was trained on these exemplars")
    if loaded.conversation.same_issue_model == "pair":
        _check_pair_model(folder / "same_issue")


def _check_pair_model(folder: Path) -> None:
    """The same-issue pair model conversation.yaml chooses: its files intact and its labels right
    (without loading it)."""
    from ..pairmodel import checked
    from ..trained import Manifest

    if not (folder / "manifest.json").exists():
        click.echo(f"warning: no same-issue pair model in {folder}; same-issue checks use the cosine thresholds "
                   "(conversation.yaml: same_issue_model)", err=True)
        return
    manifest = Manifest.read(folder)
    manifest.verify(folder)
    click.echo(f"ok: the same-issue pair model in {folder} (same issue at P(same) >= "
               f"{checked(manifest, folder):.4f})")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Print the thresholds without writing classifier.yaml.")
@click.option("--shared", is_flag=True,
              help="Fit one threshold shared by every type but safety, plus safety's (default: one per type).")
@click.pass_obj
@translate_errors
def fit(state: AppState, file: str, dry_run: bool, shared: bool) -> None:
    """Tune the decision values on a labelled JSONL FILE and write them into classifier.yaml.

    With the fine-tuned model (method: trained) these are the safety threshold and the escalation
    margin; with the nearest-exemplar methods, the per-type thresholds. Fit on data you do not
    measure on: `train` already fits them on a held-out share of its training file."""
    from ..dataset import read_jsonl
    from ..fit import fit_thresholds, write_thresholds

    items = read_jsonl(Path(file), labelled=True)
    model = state.classifier.model
    if model is not None:
        _fit_trained(state, model, items, dry_run)
        return
    scored = score_items(state, items, "fit: scoring")
    result = fit_thresholds(state.classifier, items, scored=scored, shared=shared)
    click.echo(f"objective (macro-F1 with target penalties): {result.before:.3f} -> {result.after:.3f}")
    for etype, value in sorted(result.thresholds.items(), key=lambda kv: kv[0].value):
        click.echo(f"  {etype.value:<14}{value:.4f}")
    if not dry_run:
        target = state.policy.paths.policies / "classifier.yaml"
        write_thresholds(target, result.thresholds)
        click.echo(f"wrote {target}")


def _fit_trained(state: AppState, model: ProbabilityModel, items: list[Item], dry_run: bool) -> None:
    from ..calibrate import fit_decision
    from ..classifier import decide_trained
    from ..dataset import labels
    from ..training import write_decision

    clf = state.classifier
    texts = [" ".join(i.text.split()) for i in items]
    probs = model.probabilities(clf.embedder.encode(texts))
    matches = [clf.rules.match(t, i.context or {}) for t, i in zip(texts, items)]
    base, order = clf.settings.trained, clf.policy.matrix.order

    def predict(safety: float, margin: float) -> list[str]:
        decision = base.model_copy(update={"safety": safety, "margin": margin, "margins": {}})
        return [decide_trained(p, m, decision, order).type.value for p, m in zip(probs, matches)]

    fitted = fit_decision(labels(items), predict)
    rep = fitted.report
    click.echo(f"safety >= {fitted.safety}, margin {fitted.margin}: macro-F1 {rep.macro_f1:.3f}, "
               f"none escalated {rep.none_escalated}, safety recall {rep.safety_recall}")
    if not dry_run:
        target = state.policy.paths.policies / "classifier.yaml"
        write_decision(target, fitted.safety, fitted.margin)
        click.echo(f"wrote {target}")


@main.command("eval")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--errors", "show_errors", is_flag=True, help="List the misclassified items.")
@click.pass_obj
@translate_errors
def eval_cmd(state: AppState, file: str, as_json: bool, show_errors: bool) -> None:
    """Per-type precision/recall/F1, macro-F1, confusion matrix and escalation figures on FILE."""
    from ..dataset import labels, read_jsonl
    from ..evaluate import evaluate, format_report

    items = read_jsonl(Path(file), labelled=True)
    results = classify_items(state, items, "eval")
    report = evaluate(labels(items), [r.type.value for r in results], [i.text for i in items])
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(format_report(report))
    if show_errors:
        click.echo("\nerrors:")
        for err in report.errors:
            click.echo(f"  {err['label']:>13} -> {err['predicted']:<13} {err['text'][:110]}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Model folder to write (default: the one classifier.yaml uses).")
@click.option("--epochs", type=click.IntRange(1, 20), default=None, help="Passes over the data (default 5).")
@click.option("--seed", type=int, default=None, help="Random seed (default 13): the same inputs give the same model.")
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.15, show_default=True,
              help="Share of FILE held out to calibrate probabilities and fit the decision values.")
@click.option("--cv", "cv_folds", type=click.IntRange(2, 10), default=None,
              help="Instead of training the shipped model, cross-validate the whole procedure with this many folds.")
@click.option("--frozen-layers", type=click.IntRange(0, 5), default=None,
              help="Encoder layers below this index stay frozen; the adapter trains the layers above (default 3).")
@click.option("--max-steps", type=click.IntRange(1), default=None, hidden=True)
@click.option("--no-write-policy", is_flag=True, help="Do not write the fitted decision values into classifier.yaml.")
@click.pass_obj
@translate_errors
def train(state: AppState, file: str, out_dir: str | None, epochs: int | None, seed: int | None, holdout: float,
          cv_folds: int | None, frozen_layers: int | None, max_steps: int | None, no_write_policy: bool) -> None:
    """Fine-tune the bundled encoder on a labelled JSONL FILE plus the exemplars.

    Trains a LoRA adapter and a classification head on the CPU (about 5 minutes on 2 idle cores),
    calibrates the probabilities and fits the safety threshold and the escalation margin on a
    held-out share of FILE, then writes the model folder (adapter, head, manifest) and the
    decision values into classifier.yaml. Run it again after editing exemplars."""
    from tqdm import tqdm

    from .. import finetune
    from ..classifier import trained_folder
    from ..dataset import read_jsonl
    from ..loader import load_policy
    from ..training import cross_validate, file_inputs, train_folder, write_decision

    policies, phrases, embeddings = state.folders
    policy = load_policy(policies, phrases, embeddings)
    items = read_jsonl(Path(file), labelled=True)
    default = finetune.TrainConfig()
    config = finetune.TrainConfig(epochs=default.epochs if epochs is None else epochs,
                                  seed=default.seed if seed is None else seed,
                                  max_steps=max_steps,
                                  frozen_layers=default.frozen_layers if frozen_layers is None else frozen_layers)
    bars: dict[str, Bar] = {}

    def progress_for(label: str) -> Callable[[int, int, float], None]:
        def update(step: int, total: int, loss: float) -> None:
            bar = bars.get(label)
            if bar is None:
                bar = bars[label] = tqdm(total=total, desc=label, unit="step", file=sys.stderr)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(1)
            if step >= total:
                bar.close()
        return update

    if cv_folds:
        def on_fold(n: int, rep: Any) -> None:
            click.echo(f"fold {n + 1}/{cv_folds}: macro-F1 {rep.macro_f1:.3f}, none escalated "
                       f"{rep.none_escalated:.3f}, safety recall {rep.safety_recall:.3f} ({rep.total} items)")
            sys.stdout.flush()

        pooled, per_fold = cross_validate(items, policy, config, cv_folds,
                                          progress=lambda n, k: progress_for(f"fold {n + 1}/{k}"), on_fold=on_fold)
        from ..evaluate import format_report

        click.echo(f"{cv_folds}-fold cross-validation on {Path(file).name} (pooled over folds):")
        click.echo(format_report(pooled))
        f1s = [r.macro_f1 for r in per_fold]
        click.echo(f"macro-F1 per fold: {', '.join(f'{v:.3f}' for v in f1s)} "
                   f"(mean {np.mean(f1s):.3f}, sd {np.std(f1s):.3f})")
        return
    out = Path(out_dir) if out_dir else trained_folder(policy.classifier)
    result = train_folder(items, policy, out, config, holdout, progress_for("train"), file_inputs(Path(file)))
    from ..durations import measured_label

    click.echo(f"trained in {measured_label(result.seconds)}; wrote {out}")
    click.echo(f"calibration on the held-out {holdout:.0%}: temperature {result.temperature} "
               f"(expected calibration error {result.ece_before} -> {result.ece_after})")
    rep = result.holdout
    click.echo(f"decision fitted there: safety >= {result.safety}, margin {result.margin}; "
               f"macro-F1 {rep.macro_f1:.3f}, none escalated {rep.none_escalated}, safety recall {rep.safety_recall}")
    if policy.classifier.backend == "onnx":
        # the serving encoder is built now, not on the first start after training: a server started
        # with this model finds it in the cache (named by the adapter's digest)
        from ..classifier import trained_model

        served = trained_model(out, policy.classifier)
        click.echo(f"built the ONNX serving encoder {served._encoder.model_file} (and its -upper and -branch parts)")
    if not no_write_policy:
        target = policy.paths.policies / "classifier.yaml"
        write_decision(target, result.safety, result.margin)
        click.echo(f"wrote the decision values into {target}")
