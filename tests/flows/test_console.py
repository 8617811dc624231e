"""A quiet, useful console: the train flow run as a user runs it (`python -m flows.train SPEC` against the stack's
Prefect and MLflow servers) prints CanvasCraft's and Prefect's lines, and none of the library noise that tells a
user nothing (each line below was in the demo's output before it was silenced at its source)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from canvascraft.datasets import seed_dataset
from tests.prefect_server_helpers import PROJECT
from tests.spec_helpers import tiny_dcgan_spec

pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

NOISE = {
    "Ray Tune slow-callback warning": "may be a performance bottleneck",
    "Tune's experiment box": "Configuration for experiment",
    "Tune's TensorBoard hint": "tensorboard --logdir",
    "Tune's results hint": "View detailed results here",
    "Ray token-auth notice": "Token authentication is enabled for this Ray cluster",
    "MLflow pickling caution for our own model": "Passing a Python object as `python_model`",
    "MLflow type-hint request": "Add type hints to the `predict` method",
    "MLflow artifact download bars": "Downloading artifacts",
    "MLflow run URL prints": "View run ",
    "Feast materialize report": "Materializing ",
    "ibis/duckdb deprecation": "fetch_arrow_table() is deprecated",
    "duckdb exit dump": "nanobind: leaked",
}


def test_train_flow_console_has_no_library_noise(prefect_api: str, s3_client, bucket: str, tmp_path: Path) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=96)
    spec = tiny_dcgan_spec(f"console-{bucket}", f"s3://{bucket}/digits", f"console-{bucket}")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "INFO"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.train", str(path)],
        check=False,  # the exit code is checked below, with the output
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-5000:]
    # what a user needs is there ...
    assert "publish: " in console and "Finished in state Completed()" in console
    # ... and the noise is not
    found = {name: line for name, needle in NOISE.items() for line in console.splitlines() if needle in line}
    assert not found, found
    print(f"train flow console: {len(console.splitlines())} lines")
