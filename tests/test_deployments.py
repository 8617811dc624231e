"""prefect.yaml, the work-pool templates and the drift/deploy commands, without a server (see
tests/flows/test_drift_automation.py for the same files applied to a real one)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def rendered_pod(variables: dict) -> dict:
    """The Kubernetes job's pod spec after Prefect fills the template with ``variables`` (unset ones removed)."""
    from prefect.utilities.templating import apply_values

    template = json.loads((ROOT / "deployments/work-pools/kubernetes-gpu.json").read_text())
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    job = apply_values(template["job_configuration"], {**defaults, **variables})
    return job["job_manifest"]["spec"]["template"]["spec"]


def test_kubernetes_template_requests_gpus_only_when_asked() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    gpu = next(d for d in deployments if d["name"] == "fashion-gpu" and "train" in d["entrypoint"])
    pod = rendered_pod(gpu["work_pool"]["job_variables"])
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu = rendered_pod({})
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"] and "nodeSelector" not in cpu


def test_every_train_deployment_retrains_on_its_pipelines_drift_once() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    trains = [d for d in deployments if d["entrypoint"] == "flows/train.py:train"]
    assert {d["name"] for d in trains} == {p.stem for p in (ROOT / "pipelines").glob("*.yaml")}
    for d in trains:
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        (trigger,) = d["triggers"]
        assert trigger["expect"] == ["canvascraft.drift.detected"] and trigger["within"] >= 60
        assert trigger["match"] == {"prefect.resource.id": f"canvascraft.pipeline.{d['name']}"}
        assert trigger["parameters"]["extra_sources"] == "{{ event.payload.extra_sources }}"
        assert "spec" not in trigger["parameters"]  # events are data: the deployment keeps its own spec
    assert {d["entrypoint"] for d in deployments} == {
        "flows/train.py:train", "flows/drift_check.py:drift_check", "flows/rollback.py:rollback"}


def test_drift_and_deploy_commands_name_what_is_missing(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ndata: {source: 's3://bkt/p'}\n")
    result = runner.invoke(app, ["drift", "check", str(spec)])
    assert result.exit_code == 1 and "drift.incoming is not set" in result.output
    result = runner.invoke(app, ["deploy", "--pool-type", "ecs"])
    assert result.exit_code == 1 and "allowed values: process, kubernetes" in result.output
    for command in (["drift", "check", "--help"], ["deploy", "--help"]):
        assert runner.invoke(app, command).exit_code == 0


def test_every_automation_file_is_a_valid_prefect_automation() -> None:
    from prefect.events.schemas.automations import AutomationCore

    files = sorted((ROOT / "deployments/automations").glob("*.yaml"))
    parsed = {path.stem: AutomationCore.model_validate(yaml.safe_load(path.read_text().replace(
        "{{ notify_block_id }}", "00000000-0000-0000-0000-000000000000"))) for path in files}
    zombie = parsed["crash-zombie-runs"]
    # three missed heartbeats at Prefect's heartbeat interval, then Crashed (frees the deployment's slot)
    from prefect.settings import get_current_settings

    assert zombie.trigger.within.total_seconds() == 3 * get_current_settings().flows.heartbeat_frequency
    assert [a.type for a in zombie.actions] == ["change-flow-run-state"] and zombie.actions[0].state.value == "CRASHED"
