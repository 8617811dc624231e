"""The production stack in infra/ answers nobody unauthenticated on a public interface: every port compose publishes
beyond the host's loopback is a front door with its own authentication, services without auth sit on an internal
network, and the Kubernetes manifests expose nothing outside the cluster."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.infra_files import (
    command_args,
    flag_value,
    internal_networks,
    is_env_ref,
    k8s_docs,
    networks_of,
    public_ports,
    published,
    services,
)
from tests.test_infra import walk

# -- front doors: each published service names the check of its own authentication -----------------------------


def prefect_server_problems(service: dict[str, Any]) -> list[str]:
    """Why the Prefect server would answer without basic auth (empty: it would not)."""
    value = service.get("environment", {}).get("PREFECT_SERVER_API_AUTH_STRING")
    return [] if is_env_ref(value) else [f"PREFECT_SERVER_API_AUTH_STRING is {value!r}, not a ${{VAR}} reference"]


def mlflow_problems(service: dict[str, Any]) -> list[str]:
    """Why MLflow would answer without its basic-auth app (empty: it would not)."""
    env = service.get("environment", {})
    problems = []
    if flag_value(command_args(service), "--app-name") != "basic-auth":
        problems.append("mlflow server runs without --app-name basic-auth")
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        if not is_env_ref(env.get(key)):
            problems.append(f"{key} is {env.get(key)!r}, not a ${{VAR}} reference")
    mounts = [str(m) for m in service.get("volumes", [])]
    if not any(m.startswith("./mlflow/basic_auth.ini:" + str(env.get("MLFLOW_AUTH_CONFIG_PATH"))) for m in mounts):
        problems.append(f"MLFLOW_AUTH_CONFIG_PATH {env.get('MLFLOW_AUTH_CONFIG_PATH')!r} is not the mounted ini")
    return problems


def minio_problems(service: dict[str, Any]) -> list[str]:
    """Why MinIO would start with default keys (empty: it would not)."""
    env = service.get("environment", {})
    return [
        f"{key} is {env.get(key)!r}, not a ${{VAR}} reference"
        for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
        if not is_env_ref(env.get(key))
    ]


def grafana_problems(service: dict[str, Any]) -> list[str]:
    """Why Grafana would let someone in without the admin password (empty: it would not)."""
    env = service.get("environment", {})
    problems = []
    if str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() != "false":
        problems.append(f"GF_AUTH_ANONYMOUS_ENABLED is {env.get('GF_AUTH_ANONYMOUS_ENABLED')!r}, not 'false'")
    if str(env.get("GF_USERS_ALLOW_SIGN_UP")).lower() != "false":
        problems.append(f"GF_USERS_ALLOW_SIGN_UP is {env.get('GF_USERS_ALLOW_SIGN_UP')!r}, not 'false'")
    if not is_env_ref(env.get("GF_SECURITY_ADMIN_PASSWORD")):
        problems.append("GF_SECURITY_ADMIN_PASSWORD is not a ${VAR} reference (Grafana's default is admin/admin)")
    return problems


FRONT_DOORS = {
    "prefect-server": prefect_server_problems,
    "mlflow": mlflow_problems,
    "minio": minio_problems,
    "grafana": grafana_problems,
}


@pytest.mark.parametrize("name", sorted(services()))
def test_every_published_port_is_loopback_or_an_authenticated_front_door(name: str) -> None:
    service = services()[name]
    exposed = public_ports(service)
    if not exposed:
        return
    assert name in FRONT_DOORS, f"{name} publishes {exposed} on every interface with no auth: bind 127.0.0.1"
    assert FRONT_DOORS[name](service) == [], f"{name} publishes {exposed}"


def test_front_door_checks_catch_an_open_door() -> None:
    """Each front-door check fails on the service with its auth removed (the rule above can fail)."""
    open_doors = {
        "prefect-server": {"environment": {}},
        "mlflow": {"command": ["mlflow", "server"], "environment": {}},
        "minio": {"environment": {"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"}},
        "grafana": {"environment": {"GF_AUTH_ANONYMOUS_ENABLED": "true"}},
    }
    for name, service in open_doors.items():
        assert FRONT_DOORS[name](service), name
    assert public_ports({"ports": ["9091:9091", "127.0.0.1:9090:9090", "6379", {"target": 80, "published": 8080}]}) == [
        "9091:9091",
        "6379",
        "8080:80",
    ]


@pytest.mark.parametrize("name", ["pushgateway", "prometheus", "redis", "prefect-postgres", "mlflow-postgres"])
def test_services_without_auth_are_not_reachable_from_outside(name: str) -> None:
    service = services()[name]
    assert public_ports(service) == [], f"{name} has no auth of its own and must not publish {public_ports(service)}"
    if name != "prometheus":  # Prometheus also serves the host's loopback (127.0.0.1:9090)
        assert published(service) == [], f"{name}: no published port at all"
        outside = [net for net in networks_of(service) if net not in internal_networks()]
        assert outside == [], f"{name} joins non-internal networks {outside}; use the internal one only"


def test_clients_of_internal_services_share_their_internal_network() -> None:
    """Moving a service onto the internal network must not cut off the containers that talk to it."""
    svc = services()
    needs = {
        "redis": ["prefect-worker", "ray-head", "ray-worker"],
        "pushgateway": ["prefect-worker", "prometheus"],
        "prometheus": ["grafana"],
        "prefect-postgres": ["prefect-server"],
        "mlflow-postgres": ["mlflow"],
        "minio": ["minio-init"],
    }
    for target, clients in needs.items():
        for client in clients:
            shared = set(networks_of(svc[target])) & set(networks_of(svc[client]))
            assert shared, f"{client} cannot reach {target}: no common network"


def test_k8s_exposes_nothing_outside_the_cluster() -> None:
    for path, doc in k8s_docs():
        if doc.get("kind") == "Service":
            assert doc.get("spec", {}).get("type", "ClusterIP") == "ClusterIP", f"{path.name}: {doc['spec']['type']}"
        for key, value in walk(doc):
            if key in ("serviceType", "type") and value in ("LoadBalancer", "NodePort"):
                pytest.fail(f"{path.name}: {key}: {value} exposes a service outside the cluster")
            assert not (key == "hostNetwork" and value is True), f"{path.name}: hostNetwork"
            assert key != "hostPort", f"{path.name}: hostPort publishes on the node's interfaces"
    raycluster = next(doc for _, doc in k8s_docs() if doc.get("kind") == "RayCluster")
    assert raycluster["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"
