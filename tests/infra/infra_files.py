"""What the infra tests read: the committed compose file, manifests, policies and env example, parsed with PyYAML /
json (no Docker engine here), and small HTTP helpers for the one e2e test against a real MLflow server."""

from __future__ import annotations

import fnmatch
import re
import socket
import subprocess
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_PATH = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
WORKER_POLICY = INFRA / "minio" / "canvascraft-worker-policy.json"
MLFLOW_POLICY = INFRA / "minio" / "mlflow-server-policy.json"
MINIO_INIT = INFRA / "minio" / "init.sh"
MLFLOW_INI = INFRA / "mlflow" / "basic_auth.ini"
K8S = INFRA / "k8s"
SECRET_EXAMPLE = K8S / "canvascraft-secrets.example.yaml"
HELM_VALUES = K8S / "prefect-worker-values.yaml"

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PLACEHOLDER = "CHANGE-ME"
# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`: compose fills it from infra/.env
ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?](?P<rest>[^}]*))?\}")
SECRET_NAME = re.compile(r"(?i)[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|AUTH_STRING|API_KEY)[A-Z0-9_]*")
# user:password@ in a URL; the password may be a `${...}` reference (which may hold spaces and slashes)
URL_CREDENTIALS = re.compile(r"://[^:/@\s\"']*:(?P<password>\$\{[^}]*\}|[^@\s\"']+)@")
FLAG_SECRET = re.compile(r"--(?:requirepass|password|token|secret)[= ]+(?P<value>\S+)")
# S3 actions that only read; any other allowed action counts as a write
READ_ACTIONS = {
    "s3:GetObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListMultipartUploadParts",
    "s3:ListBucketMultipartUploads",
}


def load_compose() -> dict[str, Any]:
    """infra/docker-compose.yml as PyYAML reads it (`<<` merges and `*` aliases resolved)."""
    return yaml.safe_load(COMPOSE_PATH.read_text())


def services() -> dict[str, dict[str, Any]]:
    """The compose services by name."""
    return load_compose()["services"]


def is_env_ref(value: Any) -> bool:
    """The whole value is one `${VAR...}` reference."""
    return isinstance(value, str) and ENV_REF.fullmatch(value.strip()) is not None


def ref_name(value: Any) -> str | None:
    """VAR of a value that is exactly `${VAR...}`, else None."""
    match = ENV_REF.fullmatch(str(value).strip())
    return match["name"] if match else None


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host IP, "host port:container port") of every port the service publishes; host IP "" means all."""
    result = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            result.append((str(port.get("host_ip", "")), f"{port.get('published', '')}:{port['target']}"))
            continue
        spec = str(port).split("/")[0]
        host_ip = ""
        if spec.startswith("["):  # [::1]:8080:80
            host_ip, _, spec = spec[1:].partition("]:")
        elif spec.count(":") == 2:
            host_ip, _, spec = spec.partition(":")
        result.append((host_ip, spec))  # a bare "80" publishes a random host port on every interface
    return result


def public_ports(service: dict[str, Any]) -> list[str]:
    """Published ports reachable from other machines (not bound to the host's loopback)."""
    return [spec for host_ip, spec in published(service) if host_ip not in LOOPBACK]


def networks_of(service: dict[str, Any]) -> list[str]:
    """Compose networks a service joins (none listed: `default`)."""
    nets = service.get("networks", ["default"])
    return list(nets) if isinstance(nets, (list, dict)) else ["default"]


def internal_networks() -> set[str]:
    """Networks declared `internal: true` (no route to or from outside the Docker host's containers)."""
    return {name for name, spec in (load_compose().get("networks") or {}).items() if (spec or {}).get("internal")}


def command_args(service: dict[str, Any]) -> list[str]:
    """The service's command as a list of arguments."""
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def flag_value(args: list[str], flag: str) -> str | None:
    """Value of `--flag=value` or `--flag value` in a command."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


def resolve_default(value: str) -> str:
    """Fill every `${VAR:-default}` with its default (what compose uses when infra/.env leaves VAR unset)."""
    return ENV_REF.sub(lambda m: m["rest"] or "", value)


def fill(value: str, **values: str) -> str:
    """Fill `${VAR...}` references with the given values (unnamed ones: their default)."""
    return ENV_REF.sub(lambda m: values.get(m["name"], m["rest"] or ""), value)


def env_example() -> dict[str, str]:
    """KEY=value lines of infra/.env.example."""
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def secret_example() -> dict[str, Any]:
    """The k8s Secret example document."""
    (doc,) = [doc for doc in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if doc]
    return doc


def helm_worker() -> dict[str, Any]:
    """`worker:` of the prefect-worker Helm values."""
    return yaml.safe_load(HELM_VALUES.read_text())["worker"]


def policy_allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an IAM-style policy (Allow statements only, as the committed ones) allows action on the ARN."""
    allowed = False
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        matches = any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        )
        if matches and statement["Effect"] == "Deny":
            return False
        allowed = allowed or (matches and statement["Effect"] == "Allow")
    return allowed


def artifact_bucket() -> str:
    """Bucket of CANVASCRAFT_ARTIFACT_ROOT in compose."""
    return urlparse(load_compose()["x-canvascraft-env"]["CANVASCRAFT_ARTIFACT_ROOT"]).netloc


def source_buckets() -> set[str]:
    """Buckets the pipelines read images from: every spec's data.source and drift.incoming."""
    buckets = set()
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        for uri in (spec["data"]["source"], (spec.get("drift") or {}).get("incoming")):
            if uri and str(uri).startswith("s3://"):
                buckets.add(urlparse(uri).netloc)
    return buckets


def committed_infra_files() -> list[Path]:
    """Files under infra/ git would commit (tracked or new, not ignored): never a local infra/.env."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "infra"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document under infra/k8s with its file."""
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- HTTP on loopback (the e2e test) -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, auth: tuple[str, str] | None = None, data: bytes | None = None) -> int:
    """HTTP status of a GET (or a JSON POST with data), optionally with basic auth."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    try:
        # generous: the basic-auth app hashes the password on the first authenticated request, slow on a loaded VM
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
