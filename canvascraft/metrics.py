"""Prometheus metrics of one flow run: a per-run registry pushed to a Pushgateway (an outage never fails a run).

Each flow run owns a fresh :class:`RunMetrics` (its own ``CollectorRegistry``), fills it from the run's results and
pushes it under the grouping key ``job=canvascraft_<flow>, pipeline=<name>``. A successful run *replaces* its group
(``push_to_gateway``), so the group always shows the latest run; a failed run only *adds* its failure series
(``pushadd_to_gateway``), so the last good run's scores stay visible next to the failure. No metric carries a label
named like a grouping-key label (the Pushgateway would silently overwrite it).
"""

from __future__ import annotations

import logging
import math
import re
import time
import urllib.error
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, push_to_gateway, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from canvascraft.errors import CanvasCraftError
from canvascraft.outcomes import TrainRunResult

log = logging.getLogger(__name__)

PREFIX = "canvascraft"
GROUPING_LABELS = frozenset({"job", "pipeline", "instance"})
PROMOTION_OUTCOMES = ("promoted", "kept", "rolled_back")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricsError(CanvasCraftError):
    """A metric was given an invalid name, label or value."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric CanvasCraft emits: its exposed name, kind, labels and help text."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()


# The catalogue: docs/operations.md, the Grafana dashboard and tests read it; counters are declared with their
# exposed ``_total`` name.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("canvascraft_run_duration_seconds", "gauge", "Wall time of the flow run."),
    MetricSpec("canvascraft_stage_duration_seconds", "gauge", "Wall time of one stage of the run.", ("stage",)),
    MetricSpec("canvascraft_last_success_timestamp_seconds", "gauge", "Unix time the last successful run ended."),
    MetricSpec("canvascraft_last_failure_timestamp_seconds", "gauge", "Unix time the last failed run ended."),
    MetricSpec("canvascraft_flow_failures_total", "counter", "Failed flow runs (0 or 1 per pushed run)."),
    MetricSpec("canvascraft_images_ingested_total", "counter", "Valid images in the ingested snapshot."),
    MetricSpec("canvascraft_images_quarantined_total", "counter", "Objects quarantined by ingest validation."),
    MetricSpec("canvascraft_images_preprocessed", "gauge", "Images in the preprocessed shard set."),
    MetricSpec("canvascraft_features_materialized_total", "counter", "Feature rows materialized into Feast."),
    MetricSpec("canvascraft_training_set_images", "gauge", "Images kept in the training set after filters."),
    MetricSpec("canvascraft_trials_total", "counter", "Ray Tune trials of the search by status.", ("status",)),
    MetricSpec("canvascraft_trial_loss", "gauge", "Final training loss of a trial.", ("trial",)),
    MetricSpec("canvascraft_trial_images_per_second", "gauge", "Training throughput of a trial.", ("trial",)),
    MetricSpec("canvascraft_best_trial_loss", "gauge", "Training loss of the best trial."),
    MetricSpec("canvascraft_fid", "gauge", "FID of the best checkpoint (lower is better)."),
    MetricSpec("canvascraft_kid", "gauge", "KID (mean) of the best checkpoint (lower is better)."),
    MetricSpec("canvascraft_fid_samples", "gauge", "N of generated images behind the FID/KID scores."),
    MetricSpec(
        "canvascraft_classifier_score",
        "gauge",
        "Mean top-class probability of the best checkpoint's samples "
        "under the training set's classifier (higher is better; evaluator.classifier_score).",
    ),
    MetricSpec("canvascraft_classifier_coverage", "gauge", "Classes the best checkpoint draws confidently."),
    MetricSpec(
        "canvascraft_champion_fid",
        "gauge",
        "FID of the champion scored on this run's terms (like for like; "
        "the promotion gate's other side; absent for a first version).",
    ),
    MetricSpec("canvascraft_model_version", "gauge", "Registered model version published by the run."),
    MetricSpec("canvascraft_promotions_total", "counter", "Publish outcomes by outcome.", ("outcome",)),
    MetricSpec("canvascraft_drift_share", "gauge", "Share of feature columns that drifted."),
    MetricSpec("canvascraft_dataset_drift", "gauge", "1 when the drift check found dataset drift, else 0."),
    MetricSpec("canvascraft_drifted_columns", "gauge", "Feature columns that drifted."),
)
METRICS_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}


def exposed_names() -> set[str]:
    """Every series name a run can expose (the catalogue; counters carry their ``_total`` name, no ``_created``)."""
    return {m.name for m in METRICS}


def grouping_key(flow: str, pipeline: str) -> tuple[str, dict[str, str]]:
    """``(job, {"pipeline": name})`` of a flow run's push group; job is ``canvascraft_<flow>``."""
    job = f"{PREFIX}_{re.sub(r'[^a-zA-Z0-9_]', '_', flow)}"
    if not pipeline:
        raise MetricsError("grouping key: pipeline name is empty; give the spec's name")
    return job, {"pipeline": pipeline}


def _finite(value: Any) -> float | None:
    """A float for a number that is finite, else None (None/NaN/inf are not pushed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _RunCollector:
    """Exposes one run's recorded values as metric families (counters as ``<base>_total``)."""

    def __init__(self, values: dict[str, dict[tuple[str, ...], float]]) -> None:
        self.values = values

    def collect(self) -> Iterable[Metric]:
        """One family per recorded catalogue metric, in catalogue order."""
        for spec in METRICS:
            series = self.values.get(spec.name)
            if not series:
                continue
            family: Metric
            if spec.kind == "counter":
                family = CounterMetricFamily(spec.name[: -len("_total")], spec.help, labels=list(spec.labels))
            else:
                family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            for labels, number in sorted(series.items()):
                family.add_metric(list(labels), number)
            yield family


class RunMetrics:
    """The metrics of one flow run in a private ``CollectorRegistry`` (never the process-global one).

    Values live in this object and are exposed by a custom collector, not by ``Gauge``/``Counter`` objects: when
    ``PROMETHEUS_MULTIPROC_DIR`` is set (importing ``feast`` sets it), prometheus-client stores metric values in
    per-process files shared by every metric of the same name, so two runs in one process would add up.
    """

    def __init__(self, flow: str, pipeline: str) -> None:
        self.flow, self.pipeline = flow, pipeline
        self.job, self.grouping_key = grouping_key(flow, pipeline)
        self._values: dict[str, dict[tuple[str, ...], float]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RunCollector(self._values))

    def record(self, name: str, value: Any, **labels: str) -> bool:
        """Set a gauge (or add to a counter) when ``value`` is a finite number; return whether it was recorded."""
        number = _finite(value)
        if number is None:
            return False
        spec = METRICS_BY_NAME.get(name)
        if spec is None:
            raise MetricsError(f"unknown metric {name!r}; allowed values: {', '.join(sorted(METRICS_BY_NAME))}")
        clash = set(spec.labels) & GROUPING_LABELS
        if clash:  # the Pushgateway would overwrite it with the grouping key's value
            raise MetricsError(f"metric {name}: label(s) {sorted(clash)} collide with the grouping key")
        if set(labels) != set(spec.labels):
            raise MetricsError(f"metric {name} takes labels {list(spec.labels)}, got {sorted(labels)}")
        key = tuple(str(labels[label]) for label in spec.labels)
        series = self._values.setdefault(name, {})
        if spec.kind == "counter":
            if number < 0:
                raise MetricsError(f"counter {name} cannot decrease (got {number})")
            series[key] = series.get(key, 0.0) + number
        else:
            series[key] = number
        return True

    @property
    def names(self) -> set[str]:
        """Catalogue names recorded so far."""
        return set(self._values)

    def value(self, name: str, **labels: str) -> float | None:
        """The recorded value of one series (None when never recorded)."""
        spec = METRICS_BY_NAME[name]
        return self._values.get(name, {}).get(tuple(str(labels[label]) for label in spec.labels))

    # Domain-level recorders: each takes the plain values a stage returns.

    def stage_durations(self, durations: Mapping[str, float]) -> None:
        """``canvascraft_stage_duration_seconds{stage}`` for each stage that ran."""
        for stage, seconds in durations.items():
            self.record("canvascraft_stage_duration_seconds", seconds, stage=stage)

    def ingest(self, valid: int, quarantined: int, images: int | None = None) -> None:
        """Images ingested and quarantined, and the preprocessed count."""
        self.record("canvascraft_images_ingested_total", valid)
        self.record("canvascraft_images_quarantined_total", quarantined)
        self.record("canvascraft_images_preprocessed", images)

    def features(self, materialized: int, training_images: int | None = None) -> None:
        """Feature rows materialized and the training-set size."""
        self.record("canvascraft_features_materialized_total", materialized)
        self.record("canvascraft_training_set_images", training_images)

    def trials(self, rows: Iterable[Mapping[str, Any]], metric: str = "loss") -> None:
        """Per-trial loss (the tuner's metric) and images/s; trial counts by status."""
        for row in rows:
            trial = str(row.get("trial", ""))
            self.record("canvascraft_trial_loss", row.get(metric, row.get("loss")), trial=trial)
            self.record("canvascraft_trial_images_per_second", row.get("images_per_sec"), trial=trial)
            self.record("canvascraft_trials_total", 1, status=str(row.get("status", "ok")))

    def scores(self, fid: float | None, kid: float | None, n: int | None = None) -> None:
        """FID/KID of the best checkpoint and their N."""
        self.record("canvascraft_fid", fid)
        self.record("canvascraft_kid", kid)
        self.record("canvascraft_fid_samples", n)

    def promotion(self, outcome: str, version: int | str | None = None) -> None:
        """One publish outcome (promoted, kept, rolled_back) and the registered version."""
        if outcome not in PROMOTION_OUTCOMES:
            raise MetricsError(f"promotion outcome {outcome!r}; allowed values: {', '.join(PROMOTION_OUTCOMES)}")
        for name in PROMOTION_OUTCOMES:  # every outcome series exists (0 or 1): rate() and sums need no absent()
            self.record("canvascraft_promotions_total", 1 if name == outcome else 0, outcome=name)
        if version is not None and str(version).isdigit():
            self.record("canvascraft_model_version", int(version))

    def drift(self, share: float, dataset_drift: bool, drifted_columns: int | None = None) -> None:
        """Drift share, verdict (0/1) and number of drifted columns of a drift check."""
        self.record("canvascraft_drift_share", share)
        self.record("canvascraft_dataset_drift", 1 if dataset_drift else 0)
        self.record("canvascraft_drifted_columns", drifted_columns)

    def finished(self, ok: bool, duration_seconds: float | None = None, when: float | None = None) -> None:
        """Run outcome: duration, failure count (0/1) and the success or failure timestamp."""
        self.record("canvascraft_run_duration_seconds", duration_seconds)
        self.record("canvascraft_flow_failures_total", 0 if ok else 1)
        stamp = time.time() if when is None else when
        self.record(
            "canvascraft_last_success_timestamp_seconds" if ok else "canvascraft_last_failure_timestamp_seconds", stamp
        )

    def push(self, gateway: str, *, replace: bool = True, timeout: float = 5.0) -> bool:
        """Push to the Pushgateway; True when it accepted, False (logged, never raised) when it is unreachable."""
        push = push_to_gateway if replace else pushadd_to_gateway
        try:
            push(gateway, job=self.job, registry=self.registry, grouping_key=self.grouping_key, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError; timeouts are OSError
            log.warning(
                "metrics of %s/%s not pushed to Pushgateway %s: %s (the run goes on)",
                self.job,
                self.pipeline,
                gateway,
                exc,
            )
            return False
        return True


def train_result_metrics(metrics: RunMetrics, result: TrainRunResult, metric: str = "loss") -> RunMetrics:
    """Fill ``metrics`` from the ``train`` flow's result (search, evaluation and publish are absent without a
    trainer)."""
    metrics.ingest(result.valid, result.quarantined, result.images)
    metrics.features(result.features.rows_materialized, result.training_set.kept)
    search = result.search
    if search is not None and search.trials:
        metrics.trials(search.trials, metric)
        metrics.record("canvascraft_best_trial_loss", search.best_metrics.get(metric))
    if result.evaluation is not None:
        score = result.evaluation.score
        metrics.scores(score.fid, score.kid_mean, score.n)
        if score.classifier is not None:
            metrics.record("canvascraft_classifier_score", score.classifier.mean_top_probability)
            metrics.record("canvascraft_classifier_coverage", score.classifier.coverage)
    published = result.publish
    if published is not None and published.published:
        metrics.promotion("promoted" if published.promoted else "kept", published.version)
        champion = published.verdict.champion if published.verdict is not None else None
        metrics.record("canvascraft_champion_fid", champion.fid if champion is not None else None)
    return metrics
