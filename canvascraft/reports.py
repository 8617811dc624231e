"""Markdown renderings of stage reports (shown as Prefect artifacts and in the README's demo output)."""

from __future__ import annotations

from canvascraft.ingest import IngestReport


def ingest_markdown(report: IngestReport, max_rows: int = 50) -> str:
    """Ingest counts and a table of quarantined objects (first ``max_rows``)."""
    lines = [
        f"# Ingest: dataset version `{report.dataset_version}`",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in report.sources)}",
        "",
        "| objects | valid | quarantined | downloaded | reused | MB downloaded | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report.total} | {report.valid} | {len(report.quarantined)} | {report.downloaded} | {report.reused} "
        f"| {report.bytes_downloaded / 1e6:.2f} | {report.seconds:.2f} |",
        "",
    ]
    if report.quarantined:
        lines += ["## Quarantined", "", "| object | reason |", "|---|---|"]
        lines += [f"| `{q.uri}` | {q.reason} |" for q in report.quarantined[:max_rows]]
        if len(report.quarantined) > max_rows:
            lines.append(f"| ... | {len(report.quarantined) - max_rows} more in `{report.manifest_path}` |")
    return "\n".join(lines)


def gate_metric_value(score: dict | None, metric: str) -> float | None:
    """A gate metric read from a score mapping (``classifier_score`` lives in its classifier part)."""
    if not score:
        return None
    if metric == "classifier_score":
        return (score.get("classifier") or {}).get("mean_top_probability")
    return score.get(metric)


def classifier_summary(score: dict | None) -> str:
    """``0.873 (10/10 classes)`` for a score with a classifier part, else ``-``."""
    classifier = (score or {}).get("classifier")
    if not classifier:
        return "-"
    return (
        f"{float(classifier['mean_top_probability']):.3f} "
        f"({classifier['coverage']}/{classifier['num_classes']} classes)"
    )


def _score_row(label: str, score: dict | None) -> str:
    """One table row of a FidScore mapping with its comparability keys."""
    if not score:
        return f"| {label} | - | - | - | - | - | - | - | - |"
    kid = score.get("kid_mean")
    return (
        f"| {label} | {float(score['fid']):.3f} | {kid if kid is None else round(float(kid), 5)} "
        f"| {classifier_summary(score)} | {score['n']} "
        f"| {score['dims']} | {score['resize']} | `{str(score['weights_sha256'])[:12]}` | `{score.get('reference')}` |"
    )


def evaluation_markdown(
    pipeline: str, score: dict, mlflow_run_id: str, grid_name: str, verdict: dict | None = None
) -> str:
    """The evaluation artifact: the candidate's FID/KID with its keys and, after publish, the gate's verdict."""
    lines = [
        f"# Evaluation of `{pipeline}`",
        "",
        "| model | FID | KID | classifier score | N | dims | resize | weights | reference |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
        _score_row("candidate", score),
    ]
    if verdict:
        champion = verdict.get("champion_version")
        lines.append(
            _score_row(
                f"champion v{champion} ({verdict.get('basis')})" if champion else "champion", verdict.get("champion")
            )
        )
        lines += [
            "",
            f"**Gate ({verdict.get('metric')}):** {'promoted' if verdict.get('promoted') else 'not promoted'}"
            f" - {verdict.get('reason')}",
        ]
    classifier = score.get("classifier")
    if classifier:
        lines += [
            "",
            (
                f"Classifier score: mean top-class probability of the samples under a classifier fitted on "
                f"the training set (held-out accuracy {float(classifier['classifier_accuracy']):.3f}); classes "
                f"drawn confidently (p >= {classifier['confident']}): {classifier.get('class_counts')}"
            ),
        ]
    lines += ["", f"Sample grid: MLflow run `{mlflow_run_id}`, artifact `samples/{grid_name}`"]
    return "\n".join(lines)


def _link(text: str, url: str | None) -> str:
    """A markdown link when ``url`` is known, else the text in code style."""
    return f"[{text}]({url})" if url else f"`{text}`"


def run_summary_markdown(result: dict, links: dict[str, str | None], stages: dict[str, float] | None = None) -> str:
    """Summary of a ``train`` run: data, features, best trial, scores, registered version, links, stage times."""
    pipeline = result.get("pipeline", "?")
    lines = [
        f"# Run summary: `{pipeline}`",
        "",
        "| dataset version | valid | quarantined | images | features materialized | training set |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `{result.get('dataset_version')}` | {result.get('valid')} | {result.get('quarantined')} "
        f"| {result.get('images')} | {(result.get('features') or {}).get('rows_materialized', 0)} "
        f"| {(result.get('training_set') or {}).get('kept', '')} |",
        "",
    ]
    run_id = result.get("mlflow_run_id")
    if run_id:
        lines.append(f"- MLflow run: {_link(run_id, links.get('mlflow_run'))}")
    search = result.get("search") or {}
    if search:
        best = search.get("best_metrics") or {}
        lines.append(
            f"- Tune: {len(search.get('trials') or [])} trials; best loss {best.get('loss')} at "
            f"{float(best.get('images_per_sec') or 0.0):.0f} images/s"
        )
    score = (result.get("evaluation") or {}).get("score") or {}
    if score:
        fid = score.get("fid")
        lines.append(
            f"- FID {fid if fid is None else round(float(fid), 3)}, KID {score.get('kid_mean')} (N={score.get('n')}, "
            f"dims={score.get('dims')}, resize={score.get('resize')})"
            + (f"; classifier score {classifier_summary(score)}" if score.get("classifier") else "")
        )
    published = result.get("publish") or {}
    if published.get("published"):
        name = f"{published.get('model')} v{published.get('version')}"
        lines.append(
            f"- Registered: {_link(name, links.get('model_version'))}, aliases "
            f"{', '.join('@' + a for a in published.get('aliases') or [])}; "
            f"{'promoted' if published.get('promoted') else 'not promoted'}: "
            f"{published.get('summary') or published.get('reason')}"
        )
    elif published:
        lines.append(f"- Not published: {published.get('reason')}")
    drift = links.get("drift_report")
    lines.append(
        f"- Drift report: {_link('latest drift check', drift) if drift else 'no drift check of this pipeline yet'}"
    )
    if stages:
        lines += ["", "| stage | seconds |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in stages.items()]
    return "\n".join(lines)
