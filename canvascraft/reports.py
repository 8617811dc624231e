"""Renderings of a run's typed results: markdown artifacts and the log lines of the train flow (README demo output)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from canvascraft.evaluation.score_records import FidScore
from canvascraft.ingest import IngestReport
from canvascraft.outcomes import (
    Evaluation,
    FeaturesOutcome,
    PublishOutcome,
    TrainingSelection,
    TrainRunResult,
    TuneOutcome,
)
from canvascraft.publishing.gate import GateVerdict

if TYPE_CHECKING:  # the shard set's module loads torch; the CLI renders scores without it
    from canvascraft.preprocess import ShardSet


def ingest_markdown(report: IngestReport, max_rows: int = 50) -> str:
    """Ingest counts and a table of quarantined objects (first ``max_rows``)."""
    lines = [
        f"# Ingest: dataset version `{report.dataset_version}`",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in report.sources)}",
        "",
        "| objects | valid | quarantined | downloaded | reused | MB downloaded | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {report.total} | {report.valid} | {len(report.quarantined)} | {report.downloaded} | {report.reused} "
            f"| {report.bytes_downloaded / 1e6:.2f} | {report.seconds:.2f} |"
        ),
        "",
    ]
    if report.quarantined:
        lines += ["## Quarantined", "", "| object | reason |", "|---|---|"]
        lines += [f"| `{q.uri}` | {q.reason} |" for q in report.quarantined[:max_rows]]
        if len(report.quarantined) > max_rows:
            lines.append(f"| ... | {len(report.quarantined) - max_rows} more in `{report.manifest_path}` |")
    return "\n".join(lines)


def classifier_summary(score: FidScore | None) -> str:
    """``0.873 (10/10 classes)`` for a score with a classifier part, else ``-``."""
    classifier = score.classifier if score is not None else None
    if classifier is None:
        return "-"
    return f"{classifier.mean_top_probability:.3f} ({classifier.coverage}/{classifier.num_classes} classes)"


def _score_row(label: str, score: FidScore | None) -> str:
    """One table row of a score with its comparability keys."""
    if score is None:
        return f"| {label} | - | - | - | - | - | - | - | - |"
    kid = score.kid_mean
    return (
        f"| {label} | {score.fid:.3f} | {kid if kid is None else round(kid, 5)} "
        f"| {classifier_summary(score)} | {score.n} "
        f"| {score.dims} | {score.resize} | `{score.weights_sha256[:12]}` | `{score.reference}` |"
    )


def evaluation_markdown(
    pipeline: str, score: FidScore, mlflow_run_id: str, grid_name: str, verdict: GateVerdict | None = None
) -> str:
    """The evaluation artifact: the candidate's FID/KID with its keys and, after publish, the gate's verdict."""
    lines = [
        f"# Evaluation of `{pipeline}`",
        "",
        "| model | FID | KID | classifier score | N | dims | resize | weights | reference |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
        _score_row("candidate", score),
    ]
    if verdict is not None:
        champion = verdict.champion_version
        label = f"champion v{champion} ({verdict.basis})" if champion else "champion"
        lines.append(_score_row(label, verdict.champion))
        outcome = "promoted" if verdict.promoted else "not promoted"
        lines += ["", f"**Gate ({verdict.metric}):** {outcome} - {verdict.reason}"]
    classifier = score.classifier
    if classifier is not None:
        lines += [
            "",
            (
                f"Classifier score: mean top-class probability of the samples under a classifier fitted on "
                f"the training set (held-out accuracy {classifier.classifier_accuracy:.3f}); classes "
                f"drawn confidently (p >= {classifier.confident}): {classifier.class_counts}"
            ),
        ]
    lines += ["", f"Sample grid: MLflow run `{mlflow_run_id}`, artifact `samples/{grid_name}`"]
    return "\n".join(lines)


def _link(text: str, url: str | None) -> str:
    """A markdown link when ``url`` is known, else the text in code style."""
    return f"[{text}]({url})" if url else f"`{text}`"


def _with_classifier(score: FidScore) -> str:
    """``; classifier score 0.873 (10/10 classes)`` when the score has a classifier part, else nothing."""
    return f"; classifier score {classifier_summary(score)}" if score.classifier is not None else ""


def data_lines(
    report: IngestReport, shards: ShardSet, features: FeaturesOutcome, selection: TrainingSelection
) -> list[str]:
    """Log lines of a run's data stages: ingest and preprocess counts, features and the training set."""
    return [
        (
            f"dataset version {report.dataset_version}: {report.valid} valid, {len(report.quarantined)} quarantined, "
            f"{report.downloaded} downloaded; {shards.count} images preprocessed to {shards.shape} ({shards.reuse}): "
            f"{len(shards.pieces)} pieces, {shards.pieces_computed} computed"
        ),
        (
            f"features: {features.rows_computed} rows computed, {features.rows_written} written, "
            f"{features.rows_materialized} materialized; training set keeps {selection.kept} of {selection.rows} images"
        ),
    ]


def tune_line(search: TuneOutcome, metric: str) -> str:
    """The search in one line: trials, the best trial's metric and throughput, its checkpoint."""
    best = search.best_metrics
    return (
        f"tune: {len(search.trials)} trials, best {metric}={best.get(metric)} "
        f"at {best.get('images_per_sec', 0.0):.0f} images/s; checkpoint {search.best_checkpoint}"
    )


def evaluation_line(evaluation: Evaluation) -> str:
    """The score in one line with its comparability keys."""
    score = evaluation.score
    return (
        f"evaluate: FID {score.fid:.3f}, KID {score.kid_mean} (N={score.n}, dims={score.dims}, "
        f"resize={score.resize}, weights {score.weights_sha256[:12]}){_with_classifier(score)}"
    )


def publish_line(published: PublishOutcome) -> str:
    """The registered version, its aliases and the gate's summary (or why nothing was published)."""
    if not published.published:
        return f"publish: not published: {published.reason}"
    return f"publish: {published.model} v{published.version} aliases {published.aliases}: {published.summary}"


def model_lines(result: TrainRunResult, metric: str) -> list[str]:
    """Log lines of a run's model stages: tune, evaluate, publish, and where the run's samples are."""
    lines = [tune_line(result.search, metric)] if result.search is not None else []
    evaluation = result.evaluation
    if evaluation is not None:
        lines.append(evaluation_line(evaluation))
    if result.publish is not None:
        lines.append(publish_line(result.publish))
    if evaluation is not None:
        lines.append(
            f"samples of this run: {evaluation.grid} (MLflow run {result.mlflow_run_id}, artifact samples/"
            f"{Path(evaluation.grid).name}); FID {evaluation.score.fid:.3f}"
            + _with_classifier(evaluation.score).replace(";", ",", 1)
        )
    return lines


def run_summary_markdown(
    result: TrainRunResult, links: dict[str, str | None], stages: dict[str, float] | None = None
) -> str:
    """Summary of a ``train`` run: data, features, best trial, scores, registered version, links, stage times."""
    lines = [
        f"# Run summary: `{result.pipeline}`",
        "",
        "| dataset version | valid | quarantined | images | features materialized | training set |",
        "|---|---:|---:|---:|---:|---:|",
        (
            f"| `{result.dataset_version}` | {result.valid} | {result.quarantined} | {result.images} "
            f"| {result.features.rows_materialized} | {result.training_set.kept} |"
        ),
        "",
    ]
    if result.mlflow_run_id:
        lines.append(f"- MLflow run: {_link(result.mlflow_run_id, links.get('mlflow_run'))}")
    search = result.search
    if search is not None:
        best = search.best_metrics
        lines.append(
            f"- Tune: {len(search.trials)} trials; best loss {best.get('loss')} at "
            f"{best.get('images_per_sec', 0.0):.0f} images/s"
        )
    if result.evaluation is not None:
        score = result.evaluation.score
        lines.append(
            f"- FID {round(score.fid, 3)}, KID {score.kid_mean} (N={score.n}, dims={score.dims}, "
            f"resize={score.resize}){_with_classifier(score)}"
        )
    published = result.publish
    if published is not None and published.published:
        name = f"{published.model} v{published.version}"
        lines.append(
            f"- Registered: {_link(name, links.get('model_version'))}, aliases "
            f"{', '.join('@' + a for a in published.aliases)}; "
            f"{'promoted' if published.promoted else 'not promoted'}: {published.summary or published.reason}"
        )
    elif published is not None:
        lines.append(f"- Not published: {published.reason}")
    drift = links.get("drift_report")
    lines.append(
        f"- Drift report: {_link('latest drift check', drift) if drift else 'no drift check of this pipeline yet'}"
    )
    if stages:
        lines += ["", "| stage | seconds |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in stages.items()]
    return "\n".join(lines)
