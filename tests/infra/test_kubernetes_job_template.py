"""The Kubernetes work pool's base job template (deployments/work-pools/kubernetes-gpu.json), rendered by
prefect-kubernetes' own code: ``KubernetesWorkerJobConfiguration.from_template_and_values`` then
``prepare_for_flow_run`` -- the two steps the worker runs before it creates a Job. No cluster and no Prefect API:
flow run, flow and deployment are in-memory client schema objects, and the client handed to the template
resolution raises on any use (the template references no blocks or Prefect variables, so it needs none).

Also checks the manifests the template names: the ConfigMap (infra/k8s/canvascraft-config.yaml) holds every
setting a pool pod needs and no credential; the Secret example holds placeholders only."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "deployments/work-pools/kubernetes-gpu.json"
K8S = ROOT / "infra/k8s"
CONFIG_MAP_PATH = K8S / "canvascraft-config.yaml"
SECRET_EXAMPLE_PATH = K8S / "canvascraft-secrets.example.yaml"

DEFAULT_ENV_FROM = [{"configMapRef": {"name": "canvascraft-config"}}, {"secretRef": {"name": "canvascraft-secrets"}}]
# Settings a pool pod cannot run without: no embedded services, and the address of every service holding state.
REQUIRED_SETTINGS = {
    "CANVASCRAFT_USE_EMBEDDED",
    "CANVASCRAFT_HOME",
    "CANVASCRAFT_ARTIFACT_ROOT",
    "CANVASCRAFT_S3_ENDPOINT_URL",
    "CANVASCRAFT_MLFLOW_TRACKING_URI",
    "CANVASCRAFT_RAY_ADDRESS",
    "CANVASCRAFT_PUSHGATEWAY_URL",
    "CANVASCRAFT_REDIS_URL",
    "PREFECT_API_URL",
}
REQUIRED_SECRETS = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}
PLACEHOLDER = "CHANGE-ME"
SECRET_NAME = re.compile(r"[A-Z0-9_]*(?:SECRET_ACCESS_KEY|PASSWORD|TOKEN|AUTH_STRING|API_KEY)[A-Z0-9_]*")


def template() -> dict[str, Any]:
    return json.loads(TEMPLATE_PATH.read_text())


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def config_map() -> dict[str, Any]:
    (doc,) = yaml_docs(CONFIG_MAP_PATH)
    assert doc["kind"] == "ConfigMap"
    return doc


def secret_example() -> dict[str, Any]:
    (doc,) = yaml_docs(SECRET_EXAMPLE_PATH)
    assert doc["kind"] == "Secret"
    return doc


def job_variables(pool: str) -> dict[str, Any]:
    """``definitions.work_pools.<pool>.job_variables`` of prefect.yaml (what the deployments send)."""
    work_pools = yaml.safe_load((ROOT / "prefect.yaml").read_text())["definitions"]["work_pools"]
    assert work_pools[pool]["name"] == "gpu-pool"
    return work_pools[pool]["job_variables"]


class NoPrefectAPI:
    """Stands in for the PrefectClient: any use means rendering would need a server."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"rendering the job template called the Prefect API (client.{name})")


def render(values: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The Job manifest the Kubernetes worker would create for a flow run with these job variables."""
    from prefect.client.schemas.objects import Flow, FlowRun
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    configuration = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            base_job_template=template(), values=values, client=NoPrefectAPI()
        )
    )
    flow = Flow(id=uuid.uuid4(), name="train")
    deployment = DeploymentResponse(id=uuid.uuid4(), name="fashion-gpu", flow_id=flow.id, job_variables=values)
    flow_run = FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=flow.id, deployment_id=deployment.id)
    configuration.prepare_for_flow_run(flow_run=flow_run, deployment=deployment, flow=flow)
    return configuration.job_manifest, flow_run


def pod_and_container(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


@pytest.mark.parametrize("pool", ["cpu_run", "gpu_run"])
def test_flow_run_job_gets_settings_and_credentials_by_env_from(pool: str) -> None:
    variables = job_variables(pool)
    assert set(variables) <= set(template()["variables"]["properties"]), "job variable the template does not declare"
    manifest, flow_run = render(variables)
    pod, container = pod_and_container(manifest)

    # the Secret comes last: a key in both takes the Secret's value
    assert container["envFrom"] == DEFAULT_ENV_FROM
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)  # what the pod's `prefect flow-run execute` runs
    assert env["PREFECT__DEPLOYMENT_ID"] == str(flow_run.deployment_id)
    assert container["args"] == ["prefect", "flow-run", "execute"]

    limits = container["resources"]["limits"]
    if pool == "gpu_run":
        assert str(limits["nvidia.com/gpu"]) == "1"  # Kubernetes reads the quantity 1 as a number or a string
        assert pod["nodeSelector"] == variables["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
        assert pod["tolerations"] == variables["tolerations"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    else:
        assert "nvidia.com/gpu" not in limits
        assert "nodeSelector" not in pod and "tolerations" not in pod


@pytest.mark.parametrize("pool", ["cpu_run", "gpu_run"])
def test_no_shared_volume_only_an_empty_dir_cache(pool: str) -> None:
    manifest, _ = render(job_variables(pool))
    pod, container = pod_and_container(manifest)
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for name, volume in volumes.items():
        assert set(volume) == {"name", "emptyDir"}, f"volume {name} is not a pod-local emptyDir: {volume}"
    mounts = container.get("volumeMounts", [])
    assert {mount["name"] for mount in mounts} <= set(volumes)
    # CANVASCRAFT_HOME (a disposable cache) lies on the emptyDir, never on the image's read-only layers
    home = config_map()["data"]["CANVASCRAFT_HOME"]
    assert any(Path(home).is_relative_to(mount["mountPath"]) for mount in mounts), f"{home} is on no mounted volume"


def test_config_map_and_secret_names_are_job_variables() -> None:
    manifest, _ = render({"config_map": "canvascraft-config-staging", "secret": "canvascraft-secrets-staging"})
    _, container = pod_and_container(manifest)
    assert container["envFrom"] == [
        {"configMapRef": {"name": "canvascraft-config-staging"}},
        {"secretRef": {"name": "canvascraft-secrets-staging"}},
    ]
    manifest, _ = render({"config_map": "canvascraft-config-staging"})
    assert pod_and_container(manifest)[1]["envFrom"][1] == DEFAULT_ENV_FROM[1]


def test_template_defaults_name_the_manifests_every_pod_reads() -> None:
    properties = template()["variables"]["properties"]
    assert properties["config_map"]["default"] == config_map()["metadata"]["name"]
    assert properties["secret"]["default"] == secret_example()["metadata"]["name"]
    helm = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())["worker"]
    assert (helm["extraEnvVarsCM"], helm["extraEnvVarsSecret"]) == (
        properties["config_map"]["default"],
        properties["secret"]["default"],
    )


def test_config_map_holds_every_setting_a_pool_pod_needs() -> None:
    from canvascraft.settings import Settings

    data = config_map()["data"]
    assert set(data) >= REQUIRED_SETTINGS, f"missing: {sorted(REQUIRED_SETTINGS - set(data))}"
    fields = {key: key.removeprefix("CANVASCRAFT_").lower() for key in data if key.startswith("CANVASCRAFT_")}
    assert set(fields.values()) <= set(Settings.model_fields), "keys the settings would silently ignore"
    settings = Settings(**{field: data[key] for key, field in fields.items()})
    assert settings.use_embedded is False
    assert settings.home == Path(data["CANVASCRAFT_HOME"])
    assert settings.resolved_artifact_root == data["CANVASCRAFT_ARTIFACT_ROOT"].rstrip("/")
    assert urlparse(settings.resolved_artifact_root).scheme == "s3"  # run state is shared, never on a pod's disk
    assert settings.resolved_redis_url == data["CANVASCRAFT_REDIS_URL"]
    assert urlparse(settings.resolved_redis_url).scheme == "redis"
    for key in REQUIRED_SETTINGS - {"CANVASCRAFT_USE_EMBEDDED", "CANVASCRAFT_HOME", "CANVASCRAFT_ARTIFACT_ROOT"}:
        host = urlparse(data[key] if "://" in data[key] else f"http://{data[key]}").hostname
        assert host and host.endswith(".svc"), f"{key}: {data[key]} is not a cluster service"
    helm = yaml.safe_load((K8S / "prefect-worker-values.yaml").read_text())["worker"]
    assert data["PREFECT_API_URL"] == helm["selfHostedServerApiConfig"]["apiUrl"]


def test_no_credentials_in_the_config_map_or_the_job_template() -> None:
    data = config_map()["data"]
    secret_keys = set(secret_example()["stringData"])
    assert not secret_keys & set(data), "a Secret key is in the ConfigMap"
    assert not [key for key in data if SECRET_NAME.fullmatch(key)]
    for key, value in data.items():
        assert urlparse(str(value)).password is None, f"{key} embeds a password"
    text = TEMPLATE_PATH.read_text()
    assert not SECRET_NAME.search(text), f"credential-like name in the job template: {SECRET_NAME.search(text)[0]}"
    assert not [key for key in secret_keys if key in text]


def test_secret_example_holds_placeholders_only() -> None:
    doc = secret_example()
    assert "data" not in doc  # base64 `data` could hide a real value; the example uses stringData
    values = doc["stringData"]
    assert set(values) >= REQUIRED_SECRETS, f"missing: {sorted(REQUIRED_SECRETS - set(values))}"
    assert {"PREFECT_API_AUTH_STRING", "PREFECT_API_KEY"} & set(values)
    for key, value in values.items():
        assert PLACEHOLDER in str(value), f"{key} has a value that is not a {PLACEHOLDER} placeholder"
    text = SECRET_EXAMPLE_PATH.read_text()
    assert "kubectl create secret generic canvascraft-secrets" in text and "--from-env-file" in text
