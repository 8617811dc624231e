"""infra/prometheus/alerts.yml under `promtool test rules` (Debian's prometheus package), fed with the series the
project's own RunMetrics produce for a failed run, a drift check, a stale pipeline and an FID regression."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from canvascraft.metrics import RunMetrics, train_result_metrics
from tests.outcome_factories import published, score, train_result

ALERTS = Path(__file__).resolve().parents[1] / "infra" / "prometheus" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found: install Debian's prometheus package (`make apt` does where apt works)"
)


def pushed_series(metrics: RunMetrics) -> list[tuple[str, float]]:
    """The series a push of ``metrics`` exposes (as the Pushgateway shows them: job and grouping labels added)."""
    from prometheus_client import generate_latest

    series = []
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = {**sample.labels, "job": metrics.job, **metrics.grouping_key}
            rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append((f"{sample.name}{{{rendered}}}", sample.value))
    return series


def promtool_case(series: list[tuple[str, float]], alerts: list[dict], eval_minutes: int = 5) -> dict:
    """One promtool test: constant input series, expected alerts per alert name at ``eval_minutes``."""
    inputs = [{"series": name, "values": f"{value:.6g}x{eval_minutes + 5}"} for name, value in series]
    return {"interval": "1m", "input_series": inputs, "alert_rule_test": alerts}


def run_promtool(tmp_path: Path, cases: list[dict]) -> subprocess.CompletedProcess[str]:
    """Write the test file next to a copy of alerts.yml and run `promtool test rules`."""
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    test_file = tmp_path / "alerts.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": cases}))
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(test_file)], check=False, capture_output=True, text=True, timeout=60
    )


def test_rules_parse() -> None:
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_failed_run_drift_and_fid_regression_fire_and_healthy_runs_do_not(tmp_path: Path) -> None:
    failed = RunMetrics("train", "digits-quick")
    failed.finished(ok=False, duration_seconds=12.0, when=0.0)
    ok = RunMetrics("train", "fashion-gpu")
    ok.finished(ok=True, duration_seconds=30.0, when=0.0)
    drift = RunMetrics("drift_check", "digits-quick")
    drift.drift(0.8391, True, 12)
    calm = RunMetrics("drift_check", "fashion-gpu")
    calm.drift(0.1, False, 1)
    regressed = train_result_metrics(
        RunMetrics("train", "faces"),
        train_result(evaluation=score(4.5), publish=published(score(4.5), "2", champion=score(3.0), promoted=False)),
    )
    fine = train_result_metrics(
        RunMetrics("train", "cats"),
        train_result(evaluation=score(3.1), publish=published(score(3.1), "2", champion=score(3.0), promoted=False)),
    )
    series = [s for m in (failed, ok, drift, calm, regressed, fine) for s in pushed_series(m)]
    assert any(name.startswith("canvascraft_champion_fid{") for name, _ in series)  # the code pushes the pair
    alerts = [
        {
            "eval_time": "5m",
            "alertname": "CanvasCraftFlowFailed",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "warning", "job": "canvascraft_train", "pipeline": "digits-quick"},
                    "exp_annotations": {"summary": "Last canvascraft_train run of digits-quick failed"},
                }
            ],
        },
        {
            "eval_time": "5m",
            "alertname": "CanvasCraftDatasetDrift",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "info", "job": "canvascraft_drift_check", "pipeline": "digits-quick"},
                    "exp_annotations": {"summary": "Drift detected for digits-quick (share 0.84)"},
                }
            ],
        },
        {
            "eval_time": "5m",
            "alertname": "CanvasCraftFidRegression",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "warning", "job": "canvascraft_train", "pipeline": "faces"},
                    "exp_annotations": {
                        "summary": "faces: new model's FID 4.50 is >20% worse than the champion's on the same terms"
                    },
                }
            ],
        },
    ]
    done = run_promtool(tmp_path, [promtool_case(series, alerts)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_stale_pipeline_fires_after_seven_days_without_success(tmp_path: Path) -> None:
    # promtool's clock starts at 0: a success at t=0 is 7 days old after 7d; 10 days shows the alert
    stale = RunMetrics("train", "digits-quick")
    stale.finished(ok=True, duration_seconds=30.0, when=0.0)
    series = pushed_series(stale)
    inputs = [{"series": name, "values": f"{value:.6g}+0x20"} for name, value in series]
    case = {
        "interval": "12h",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": "6d", "alertname": "CanvasCraftNoSuccessfulTrain", "exp_alerts": []},
            {
                "eval_time": "8d",
                "alertname": "CanvasCraftNoSuccessfulTrain",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "job": "canvascraft_train", "pipeline": "digits-quick"},
                        "exp_annotations": {"summary": "No successful train run of digits-quick for 7 days"},
                    }
                ],
            },
        ],
    }
    done = run_promtool(tmp_path, [case])
    assert done.returncode == 0, done.stdout + done.stderr
