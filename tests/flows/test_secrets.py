"""Secrets planted the usual ways stay out of every sink of a real train run.

An MLflow server with its basic-auth app (real, on loopback) is reached through
``CANVASCRAFT_MLFLOW_TRACKING_URI=http://user:PASSWORD@host:port``; the S3 keys come from the environment. The real
train flow runs in its own process (as `python -c` from a shell would) against the session's Prefect test server,
with its artifact root on the loopback S3. Then the password, the S3 secret key and the Basic-auth header are
searched in: the process's stdout/stderr, the run's Prefect logs and artifacts, the Prefect database file, MLflow's
params/tags and its server files (database, artifacts), every file under the CanvasCraft home and PREFECT_HOME, the
artifact root on disk (Ray Tune's tuner.pkl and experiment state included), and the process table while it ran.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from canvascraft.settings import get_settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import mlflow_service
from tests.spec_helpers import tiny_dcgan_spec

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """Paths under ``root`` whose bytes contain any needle."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:  # a file removed while walking (a server's temp file)
                continue
            if any(needle in data for needle in needles):
                hits.append(str(path))
    return hits


def _process_table_watch(needles: list[bytes], stop: threading.Event, hits: list[str]) -> None:
    """Poll every process's argv (what any local user reads in the process table) until ``stop``."""
    while not stop.wait(0.3):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                for needle in needles:
                    if needle in argv:
                        at = argv.index(needle)
                        hits.append(argv[max(0, at - 150) : at + 20].replace(b"\0", b" ").decode(errors="replace"))


def test_planted_secrets_reach_no_sink_of_a_real_train_run(
    prefect_harness, s3_settings, s3_client, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promoted run through an authenticated MLflow; no password, key or auth header anywhere afterwards."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_DATABASE_CONNECTION_URL

    from canvascraft.datasets import seed_dataset

    user, password = "cc-admin", f"pw-{uuid.uuid4().hex}"
    s3_secret = s3_settings.s3_credentials()["aws_secret_access_key"]
    basic = base64.b64encode(f"{user}:{password}".encode())
    needles = [password.encode(), quote(password, safe="").encode(), s3_secret.encode(), basic]

    # the authenticated MLflow server: its admin is the client's user (passed in the server's environment)
    server_home = tmp_path / "mlflow-server"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    server = mlflow_service(
        get_settings(home=server_home, use_embedded=False, mlflow_auth=True, mlflow_port=free_port())
    )
    server.start()
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")  # from here on the only copy is in the URI
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    try:
        seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=60)
        model = f"secrets-{bucket[-6:]}"
        spec = tiny_dcgan_spec(f"secrets_{bucket[-6:]}", f"s3://{bucket}/digits", model)
        home = tmp_path / "home"
        run_name = f"secrets-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "CANVASCRAFT_HOME": str(home),
            "CANVASCRAFT_USE_EMBEDDED": "false",
            "CANVASCRAFT_S3_ENDPOINT_URL": s3_settings.resolved_s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": s3_settings.s3_credentials()["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": s3_secret,
            "CANVASCRAFT_ARTIFACT_ROOT": f"s3://{bucket}/artifacts",
            "CANVASCRAFT_MLFLOW_TRACKING_URI": server.url.replace("http://", f"http://{user}:{password}@"),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_LOGGING_LEVEL": "INFO",  # the flow's own lines (log_prints) are a sink too
        }
        script = (
            "import json, sys; from flows.train import train; "
            f"train.with_options(flow_run_name={run_name!r})(json.loads(sys.argv[1]))"
        )
        stop, table_hits = threading.Event(), []
        watcher = threading.Thread(target=_process_table_watch, args=(needles, stop, table_hits), daemon=True)
        watcher.start()
        try:
            run = subprocess.run(
                [sys.executable, "-c", script, json.dumps(spec)],
                check=False,  # the exit code is checked below, with the output
                cwd=PROJECT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            stop.set()
            watcher.join()
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "publish:" in run.stdout + run.stderr, run.stderr[-3000:]  # it reached the authenticated registry

        # the credentials were really needed and really used: without them the server refuses
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=server.url)
        with pytest.raises(mlflow.exceptions.MlflowException, match="401"):
            client.search_registered_models()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        versions = client.search_model_versions(f"name = '{model}'")
        assert versions, f"no version of {model} registered"
        runs = client.search_runs([client.get_experiment_by_name(spec["name"]).experiment_id])
        mlflow_text = json.dumps(
            [[r.data.params, r.data.tags] for r in runs] + [[v.tags, v.source, v.description] for v in versions]
        )

        with get_client(sync_client=True) as prefect:
            flow_runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
            run_ids = [flow_runs[0].id]
            logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
            artifacts = prefect.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
            )
        assert {a.key for a in artifacts} >= {f"secrets-{bucket[-6:]}-summary", f"secrets-{bucket[-6:]}-samples"}
        # the links a user clicks point at the server (without its credentials)
        assert server.url in " ".join(str(a.data) for a in artifacts)

        texts = {
            "stdout/stderr": run.stdout + run.stderr,
            "prefect logs": " ".join(log.message for log in logs),
            "prefect artifacts": " ".join(f"{a.data} {a.description} {a.metadata_}" for a in artifacts),
            "mlflow params/tags/versions": mlflow_text,
        }
        found = {where: [n.decode() for n in needles if n.decode() in text] for where, text in texts.items()}
        prefect_db = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split("///", 1)[1]).parent
        s3_data = Path(s3_settings.embedded_s3["data_dir"]) / bucket
        assert (s3_data / "artifacts" / "ray_results").is_dir()  # Tune's experiment state is among what is searched
        folders = {
            "prefect database": prefect_db,
            "mlflow server files": server_home,
            "canvascraft home": home,
            "PREFECT_HOME": Path(str(PREFECT_HOME.value())),
            "artifact root (S3 on disk)": s3_data,
        }
        found.update({where: _files_containing(root, needles) for where, root in folders.items()})
        found["process table"] = table_hits
        assert found == {where: [] for where in found}
    finally:
        server.stop()
