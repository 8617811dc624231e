"""infra/ is configuration only (no Docker engine here): parse it and check it against the code it runs."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from canvascraft.metrics import exposed_names
from canvascraft.settings import Settings
from canvascraft.stack.services import WORK_POOL

INFRA = Path(__file__).resolve().parents[1] / "infra"
COMPOSE = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
K8S = [doc for path in sorted((INFRA / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
DASHBOARD = json.loads((INFRA / "grafana" / "dashboards" / "canvascraft.json").read_text())
SETTINGS_ENV = {f"CANVASCRAFT_{name.upper()}" for name in Settings.model_fields}
METRIC = re.compile(r"\bcanvascraft_[a-z0-9_]+\b")


def is_pinned(image: str) -> bool:
    """``repo[:tag]`` with an explicit tag that is not ``latest`` (digests count as pinned)."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(tag) and tag != "latest" and not tag.endswith("-latest")


def walk(node: Any) -> Any:
    """Every (key, value) of a nested document; `{name: X, value: Y}` list items (k8s env) also as (X, Y)."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and "value" in node:
            yield node["name"], node["value"]
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports a compose service publishes or exposes."""
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def test_production_stack_has_every_service() -> None:
    assert {
        "prefect-server",
        "prefect-postgres",
        "minio",
        "mlflow",
        "mlflow-postgres",
        "ray-head",
        "ray-worker",
        "prefect-worker",
        "prometheus",
        "pushgateway",
        "grafana",
    } <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_compose_image_is_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    assert image, f"{name}: every service names its image (built ones too, with a version tag)"
    assert is_pinned(image), f"{name}: {image} is not pinned to a version tag"


def test_every_dockerfile_base_and_k8s_image_is_pinned() -> None:
    bases = [
        line.split()[1]
        for path in INFRA.rglob("Dockerfile")
        for line in path.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    k8s_images = [value for doc in K8S for key, value in walk(doc) if key == "image" and isinstance(value, str)]
    helm = yaml.safe_load((INFRA / "k8s" / "prefect-worker-values.yaml").read_text())["worker"]["image"]
    assert len(bases) >= 2 and len(k8s_images) >= 2
    for image in bases + k8s_images + [f"{helm['repository']}:{helm['prefectTag']}"]:
        assert is_pinned(image), image


def test_images_match_the_versions_the_code_runs_with() -> None:
    assert SERVICES["prefect-server"]["image"].split(":")[1].startswith(version("prefect") + "-")
    assert (INFRA / "mlflow" / "Dockerfile").read_text().count(f"ghcr.io/mlflow/mlflow:v{version('mlflow')}") == 1
    assert f"rayproject/ray:{version('ray')}-" in (INFRA / "Dockerfile").read_text()
    raycluster = next(doc for doc in K8S if doc.get("kind") == "RayCluster")
    assert raycluster["spec"]["rayVersion"] == version("ray")


def test_env_names_are_canvascraft_settings() -> None:
    names = {
        key
        for _, value in walk(COMPOSE)
        if isinstance(value, dict)
        for key in value
        if str(key).startswith("CANVASCRAFT_")
    }
    names |= {
        key for doc in K8S if doc.get("kind") == "ConfigMap" for key in doc["data"] if key.startswith("CANVASCRAFT_")
    }
    assert {
        "CANVASCRAFT_S3_ENDPOINT_URL",
        "CANVASCRAFT_MLFLOW_TRACKING_URI",
        "CANVASCRAFT_RAY_ADDRESS",
        "CANVASCRAFT_PUSHGATEWAY_URL",
    } <= names
    assert names - SETTINGS_ENV == set(), "env names the settings would silently ignore"


def test_service_addresses_point_at_services_and_their_ports() -> None:
    env = COMPOSE["x-canvascraft-env"]
    for key in (
        "CANVASCRAFT_S3_ENDPOINT_URL",
        "CANVASCRAFT_MLFLOW_TRACKING_URI",
        "CANVASCRAFT_RAY_ADDRESS",
        "CANVASCRAFT_PUSHGATEWAY_URL",
        "PREFECT_API_URL",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        url = env[key] if "://" in env[key] else f"http://{env[key]}"
        host, port = urlparse(url).hostname, urlparse(url).port
        assert host in SERVICES, f"{key}: {host} is not a compose service"
        assert port in container_ports(SERVICES[host]), f"{key}: {host} does not listen on {port}"
    assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in env  # Ray 2.59+ head uses token auth
    for name in ("prefect-worker", "ray-head", "ray-worker"):
        assert SERVICES[name]["environment"] == env  # one set of settings for every CanvasCraft process


def test_prefect_worker_and_ray_worker_get_gpus() -> None:
    for name in ("prefect-worker", "ray-worker"):
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices), name
    assert "--pool" in SERVICES["prefect-worker"]["command"]
    assert SERVICES["prefect-worker"]["command"][SERVICES["prefect-worker"]["command"].index("--pool") + 1] == WORK_POOL
    raycluster = next(doc for doc in K8S if doc.get("kind") == "RayCluster")
    gpu_group = raycluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert gpu_group["resources"]["limits"]["nvidia.com/gpu"] == "1"
    helm = yaml.safe_load((INFRA / "k8s" / "prefect-worker-values.yaml").read_text())["worker"]
    assert helm["config"]["workPool"] == WORK_POOL and helm["config"]["type"] == "kubernetes"


def test_prometheus_scrapes_the_pushgateway_keeping_its_labels() -> None:
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "pushgateway")
    assert job["honor_labels"] is True  # else job/pipeline become exported_job/exported_pipeline
    host, port = job["static_configs"][0]["targets"][0].split(":")
    assert host in SERVICES and int(port) in container_ports(SERVICES[host])
    mounts = " ".join(SERVICES["prometheus"]["volumes"])
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    datasource = yaml.safe_load((INFRA / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][
        0
    ]
    provider = yaml.safe_load((INFRA / "grafana/provisioning/dashboards/canvascraft.yml").read_text())["providers"][0]
    assert urlparse(datasource["url"]).hostname == "prometheus"
    mounts = SERVICES["grafana"]["volumes"]
    assert any(m.startswith("./grafana/dashboards:" + provider["options"]["path"]) for m in mounts)
    uids = {value["uid"] for key, value in walk(DASHBOARD) if key == "datasource" and isinstance(value, dict)}
    assert uids == {datasource["uid"]}


def test_dashboard_and_alerts_query_only_metrics_the_code_emits() -> None:
    exprs = [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]
    exprs += [DASHBOARD["templating"]["list"][0]["definition"]]
    alerts = yaml.safe_load((INFRA / "prometheus" / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in METRIC.findall(re.sub(r'"[^"]*"', '""', expr))}  # not label values
    assert used - exposed_names() == set(), "queries name metrics canvascraft.metrics never emits"
    assert {
        "canvascraft_fid",
        "canvascraft_kid",
        "canvascraft_stage_duration_seconds",
        "canvascraft_trial_loss",
        "canvascraft_trial_images_per_second",
        "canvascraft_drift_share",
        "canvascraft_promotions_total",
        "canvascraft_images_ingested_total",
        "canvascraft_flow_failures_total",
    } <= used
    assert all(panel["targets"] for panel in DASHBOARD["panels"])


def test_no_secret_values_in_infra() -> None:
    text = (INFRA / "docker-compose.yml").read_text()
    for key in (
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "RAY_AUTH_TOKEN",
        "GF_SECURITY_ADMIN_PASSWORD",
    ):
        for match in re.finditer(rf"{key}: (.+)", text):
            assert match.group(1).strip().startswith("${"), f"{key} must come from infra/.env, got {match.group(1)}"
