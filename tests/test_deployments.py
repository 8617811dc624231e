"""prefect.yaml, the work-pool templates and the drift/deploy commands, without a server (see
tests/flows/test_drift_automation.py for the same files applied to a real one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
        "flows/train.py:train",
        "flows/drift_check.py:drift_check",
        "flows/rollback.py:rollback",
    }


def test_drift_and_deploy_commands_name_what_is_missing(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ndata: {source: 's3://bkt/p'}\n")
    result = runner.invoke(app, ["drift", "check", str(spec)])
    assert result.exit_code == 1 and "drift.incoming is not set" in result.output
    result = runner.invoke(app, ["deploy", "--pool-type", "ecs"])
    assert result.exit_code == 1 and "allowed values: process, kubernetes" in result.output
    for command in (["drift", "check", "--help"], ["deploy", "--help"]):
        assert runner.invoke(app, command).exit_code == 0


def test_every_automation_file_renders_into_a_valid_prefect_automation() -> None:
    from prefect.settings import get_current_settings

    from cli.automation_files import Pipeline, load_files, render_for, to_automation

    files = load_files(ROOT)
    plain = {f.path.stem: to_automation(f.document, f.path.name) for f in files if f.notify_event is None}
    zombie = plain["crash-zombie-runs"]
    # three missed heartbeats at Prefect's heartbeat interval, then Crashed (frees the deployment's slot)
    assert zombie.trigger.within.total_seconds() == 3 * get_current_settings().flows.heartbeat_frequency
    assert [a.type for a in zombie.actions] == ["change-flow-run-state"] and zombie.actions[0].state.value == "CRASHED"
    pipeline = Pipeline(
        "digits-quick",
        "canvascraft-digits",
        "custom-webhook/a",
        ("drift_detected", "model_promoted", "rollback", "flow_failure"),
        deployment_ids=["d1", "d2"],
    )
    block = "00000000-0000-0000-0000-000000000001"
    rendered = {f.notify_event: render_for(f, pipeline, block) for f in files if f.notify_event}
    assert set(rendered) == {"drift_detected", "model_promoted", "rollback", "flow_failure"}
    for event, automation in rendered.items():
        (action,) = automation.actions
        assert action.type == "send-notification" and str(action.block_document_id) == block, event
        assert automation.name.startswith("canvascraft-notify-") and "${" not in automation.model_dump_json(), event
    assert rendered["rollback"].name == "canvascraft-notify-rollback-canvascraft-digits"
    assert rendered["drift_detected"].trigger.match.root == {"prefect.resource.id": "canvascraft.pipeline.digits-quick"}
    assert rendered["model_promoted"].trigger.match.root["canvascraft.promoted"] == "true"
    assert rendered["flow_failure"].trigger.match_related.root["prefect.resource.id"] == [
        "prefect.deployment.d1",
        "prefect.deployment.d2",
    ]
    # what a template needs and a pipeline lacks: skipped for it, not an automation matching nothing
    bare = Pipeline("no-publish", None, "custom-webhook/a", ("rollback", "flow_failure"))
    assert [render_for(f, bare, block) for f in files if f.notify_event in ("rollback", "flow_failure")] == [None, None]


def test_bad_automation_placeholders_and_prefect_yaml_keys_are_named(tmp_path: Path) -> None:
    import shutil

    from canvascraft.errors import CanvasCraftError
    from cli.automation_files import Pipeline, load_files, render_for
    from cli.prefect_project import read_project

    (tmp_path / "deployments" / "automations").mkdir(parents=True)
    template = (ROOT / "deployments/automations/notify-rollback.yaml").read_text()
    (tmp_path / "deployments/automations/x.yaml").write_text(template.replace("${registered_model}", "${model}", 1))
    (file,) = load_files(tmp_path)
    pipeline = Pipeline("p", "m", "custom-webhook/a", ("rollback",))
    with pytest.raises(
        CanvasCraftError,
        match=r"x\.yaml \(pipeline p\): unknown placeholder \$\{model\}; allowed: "
        r"\$\{automation_name\}",
    ):
        render_for(file, pipeline, "00000000-0000-0000-0000-000000000001")
    (tmp_path / "deployments/automations/x.yaml").write_text(
        template.replace("notify_event: rollback", "notify_event: weather")
    )
    with pytest.raises(CanvasCraftError, match="notify_event 'weather'; allowed values: drift_detected"):
        load_files(tmp_path)

    shutil.copy(ROOT / "prefect.yaml", tmp_path / "prefect.yaml")
    assert [d.full_name for d in read_project(tmp_path).deployments][:2] == ["train/digits-quick", "train/fashion-gpu"]
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    document["deployments"][3]["schedules"][0] = {"interval": 3600}
    document["deployments"][0]["build"] = [{"prefect_docker.deployments.steps.build_docker_image": {}}]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(CanvasCraftError) as failed:
        read_project(tmp_path)
    assert "deployments[0] (train/digits-quick).build: Extra inputs are not permitted" in str(failed.value)
    assert "deployments[3] (drift_check/fashion-gpu).schedules[0].interval: Extra inputs" in str(failed.value)
