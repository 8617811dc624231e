"""The production stack in infra/ answers nobody unauthenticated on a public interface (no Docker engine here: the
compose file, manifests, policies and ini are parsed with PyYAML / json / configparser and checked rule by rule).

Setting names are checked against the installed libraries, not against a list written here: Prefect's settings
models read the auth strings, prefect-kubernetes' settings read the worker's secret reference, MLflow's own
``read_auth_config`` reads the committed basic-auth ini. One e2e test starts a real ``mlflow server --app-name
basic-auth`` with that ini and runs ``infra/mlflow/init_users.py`` against it."""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.test_infra import walk

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


def test_prefect_server_and_every_client_use_basic_auth() -> None:
    from prefect.settings import Settings

    svc = services()
    variable = ref_name(svc["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"])
    client_env = load_compose()["x-canvascraft-env"]
    assert ref_name(client_env.get("PREFECT_API_AUTH_STRING")) == variable, "clients must send the server's string"
    for name in ("prefect-worker", "ray-head", "ray-worker"):
        assert svc[name]["environment"]["PREFECT_API_AUTH_STRING"] == client_env["PREFECT_API_AUTH_STRING"], name
    # the names are the ones installed Prefect reads (server: server.api.auth_string, clients: api.auth_string)
    env = {"PREFECT_SERVER_API_AUTH_STRING": "admin:s3rver", "PREFECT_API_AUTH_STRING": "admin:cl1ent"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    assert settings.server.api.auth_string.get_secret_value() == "admin:s3rver"
    assert settings.api.auth_string.get_secret_value() == "admin:cl1ent"
    # the healthcheck works with auth on: Prefect lets GET /api/health through unauthenticated
    assert "/api/health" in " ".join(svc["prefect-server"]["healthcheck"]["test"])


def test_mlflow_runs_the_basic_auth_app_with_the_committed_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import entry_points

    from mlflow.server.auth.config import read_auth_config
    from mlflow.server.auth.permissions import get_permission
    from sqlalchemy.engine import make_url

    service = services()["mlflow"]
    env = service["environment"]
    assert "basic-auth" in {e.name for e in entry_points(group="mlflow.app")}
    assert "flask-wtf==" in (INFRA / "mlflow" / "Dockerfile").read_text().lower(), "the basic-auth app imports it"
    raw = configparser.ConfigParser()
    raw.read(MLFLOW_INI)
    assert "admin_password" not in raw["mlflow"], "the admin password comes from MLFLOW_AUTH_ADMIN_PASSWORD"
    # MLflow's own reader over the committed file, with the environment compose gives the server
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(MLFLOW_INI))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin-from-env")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "password-from-env")
    config = read_auth_config()
    assert (config.admin_username, config.admin_password) == ("admin-from-env", "password-from-env")
    default = get_permission(config.default_permission)  # signed-in users may write, not delete or grant
    assert default.can_read and not default.can_delete and not default.can_manage
    assert config.authorization_function == "mlflow.server.auth:authenticate_request_basic_auth"
    # the user store lives on a volume, so users and grants survive a container restart
    store_dir = str(Path(make_url(config.database_uri).database).parent)
    assert any(str(m).endswith(":" + store_dir) for m in service["volumes"]), f"{store_dir} is not a volume"
    assert ref_name(env["MLFLOW_AUTH_ADMIN_USERNAME"]) and ref_name(env["MLFLOW_AUTH_ADMIN_PASSWORD"])


def test_mlflow_accepts_the_host_name_clients_use() -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = resolve_default(flag_value(command_args(services()["mlflow"]), "--allowed-hosts") or "").split(",")
    tracking = urlparse(load_compose()["x-canvascraft-env"]["CANVASCRAFT_MLFLOW_TRACKING_URI"])
    assert is_allowed_host_header(allowed, tracking.netloc), f"MLflow would reject Host: {tracking.netloc}"
    assert "*" not in allowed


def test_workers_log_in_to_mlflow_as_a_non_admin_user() -> None:
    svc = services()
    client_env = load_compose()["x-canvascraft-env"]
    worker_user = ref_name(client_env.get("MLFLOW_TRACKING_USERNAME"))
    worker_password = ref_name(client_env.get("MLFLOW_TRACKING_PASSWORD"))
    admin_password = ref_name(svc["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert worker_user and worker_password, "workers need MLFLOW_TRACKING_USERNAME/PASSWORD from infra/.env"
    assert worker_password != admin_password, "workers must not hold the MLflow admin password"
    init = svc["mlflow-init"]
    assert ref_name(init["environment"]["MLFLOW_WORKER_USERNAME"]) == worker_user
    assert ref_name(init["environment"]["MLFLOW_WORKER_PASSWORD"]) == worker_password
    assert ref_name(init["environment"]["MLFLOW_TRACKING_PASSWORD"]) == admin_password
    assert svc["prefect-worker"]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"


def test_minio_root_keys_stay_with_minio_and_its_init_job() -> None:
    holders = {
        name
        for name, service in services().items()
        if re.search(r"\$\{MINIO_ROOT_", json.dumps(service.get("environment", {})))
    }
    assert holders == {"minio", "minio-init"}
    client_env = load_compose()["x-canvascraft-env"]
    worker_key = ref_name(client_env["AWS_ACCESS_KEY_ID"])
    worker_secret = ref_name(client_env["AWS_SECRET_ACCESS_KEY"])
    init_env = services()["minio-init"]["environment"]
    assert worker_key and worker_secret and not worker_key.startswith("MINIO_ROOT_")
    # minio-init creates exactly that user and attaches the committed worker policy to it
    script = MINIO_INIT.read_text()
    key_var = next(k for k, v in init_env.items() if ref_name(v) == worker_key)
    secret_var = next(k for k, v in init_env.items() if ref_name(v) == worker_secret)
    assert f'mc admin user add cc "${key_var}" "${secret_var}"' in script
    assert f"mc admin policy create cc canvascraft-worker /init/{WORKER_POLICY.name}" in script
    assert f'attach canvascraft-worker "${key_var}"' in script
    assert "./minio:/init:ro" in services()["minio-init"]["volumes"]


def test_minio_init_creates_every_bucket_and_makes_none_public() -> None:
    script = MINIO_INIT.read_text()
    made = {
        b.removeprefix("cc/")
        for line in script.splitlines()
        if line.strip().startswith("mc mb")
        for b in line.split()
        if b.startswith("cc/")
    }
    mlflow_bucket = urlparse(flag_value(command_args(services()["mlflow"]), "--artifacts-destination")).netloc
    assert {artifact_bucket(), mlflow_bucket} | source_buckets() <= made
    assert not re.search(r"mc anonymous set (?!none)", script), "a bucket would answer unsigned requests"
    loop = re.search(r"for bucket in ([^;]+); do\s+mc anonymous set none", script)
    assert loop and set(loop[1].split()) == made


def test_worker_policy_reads_sources_and_writes_only_the_artifact_bucket() -> None:
    policy = json.loads(WORKER_POLICY.read_text())
    artifacts = artifact_bucket()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and not {"NotAction", "NotResource"} & set(statement)
        writes = [a for a in statement["Action"] if a not in READ_ACTIONS]
        if writes:
            outside = [r for r in statement["Resource"] if not r.startswith(f"arn:aws:s3:::{artifacts}/")]
            assert outside == [], f"{writes} allowed on {outside}: the worker writes only {artifacts}/*"
    assert policy_allows(policy, "s3:PutObject", f"arn:aws:s3:::{artifacts}/prod/shards/x")
    assert policy_allows(policy, "s3:DeleteObject", f"arn:aws:s3:::{artifacts}/prod/x")
    for bucket in source_buckets():
        assert policy_allows(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/digits/0.png"), bucket
        assert policy_allows(policy, "s3:ListBucket", f"arn:aws:s3:::{bucket}"), bucket
        assert not policy_allows(policy, "s3:PutObject", f"arn:aws:s3:::{bucket}/digits/0.png"), bucket
        assert not policy_allows(policy, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/digits/0.png"), bucket
    assert not policy_allows(policy, "s3:PutObject", "arn:aws:s3:::mlflow-artifacts/x")
    assert not policy_allows(policy, "s3:DeleteBucket", f"arn:aws:s3:::{artifacts}")
    # the k8s ConfigMap's artifact root is in the same bucket
    config_map = yaml.safe_load((K8S / "canvascraft-config.yaml").read_text())
    assert urlparse(config_map["data"]["CANVASCRAFT_ARTIFACT_ROOT"]).netloc == artifacts


def test_policy_check_sees_a_write_outside_the_artifact_bucket() -> None:
    """The evaluator the rule uses flags a broadened policy (so the rule above can fail)."""
    policy = json.loads(WORKER_POLICY.read_text())
    policy["Statement"].append({"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::canvascraft/*"]})
    assert policy_allows(policy, "s3:PutObject", "arn:aws:s3:::canvascraft/digits/0.png")


def test_mlflow_server_s3_user_is_limited_to_its_artifact_bucket() -> None:
    service = services()["mlflow"]
    bucket = urlparse(flag_value(command_args(service), "--artifacts-destination")).netloc
    policy = json.loads(MLFLOW_POLICY.read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert not ref_name(service["environment"]["AWS_ACCESS_KEY_ID"]).startswith("MINIO_ROOT_")
    assert "mc admin policy create cc mlflow-server /init/mlflow-server-policy.json" in MINIO_INIT.read_text()


def test_redis_requires_the_password_clients_send() -> None:
    from canvascraft.features.store import feast_redis_connection

    redis = services()["redis"]
    command = " ".join(command_args(redis))
    match = re.search(r"--requirepass \"?\$\$(\w+)", command)
    assert match, f"redis-server runs without --requirepass from its environment: {command}"
    variable = ref_name(redis["environment"][match[1]])
    assert variable
    url = load_compose()["x-canvascraft-env"]["CANVASCRAFT_REDIS_URL"]
    assert f"${{{variable}" in url, "clients' CANVASCRAFT_REDIS_URL must carry the same password"
    # CanvasCraft's own translation hands Feast the password
    assert "password=s3cret" in feast_redis_connection(fill(url, **{variable: "s3cret"})).split(",")


def test_gitignore_covers_infra_env_but_not_the_example() -> None:
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", "infra/.env"], cwd=ROOT, check=False)
    example = subprocess.run(["git", "check-ignore", "--no-index", "-q", "infra/.env.example"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "infra/.env is not in .gitignore"
    assert example.returncode == 1, "infra/.env.example must stay committed"


def test_env_example_names_every_required_variable_with_placeholders_only() -> None:
    text = COMPOSE_PATH.read_text()
    required = {m["name"] for m in ENV_REF.finditer(text) if m.group(0).startswith("${" + m["name"] + ":?")}
    example = env_example()
    assert required - set(example) == set(), "compose requires variables infra/.env.example does not name"
    for key, value in example.items():
        if SECRET_NAME.fullmatch(key):
            assert PLACEHOLDER in value, f"infra/.env.example {key}={value!r}: use a {PLACEHOLDER} placeholder"
    user, _, password = example["PREFECT_API_AUTH_STRING"].partition(":")
    assert user and PLACEHOLDER in password, "PREFECT_API_AUTH_STRING is user:password"


def secret_literals(path: Path) -> list[str]:
    """Secret-looking literal values in one committed infra file (empty: none)."""
    text = path.read_text()
    found = [
        f"credentials in a URL: {m.group(0)}"
        for m in URL_CREDENTIALS.finditer(text)
        if not ENV_REF.fullmatch(m["password"]) and PLACEHOLDER not in m["password"]
    ]
    found += [
        f"literal flag value: {m.group(0)}"
        for m in FLAG_SECRET.finditer(text)
        if not m["value"].lstrip("\\\"'").startswith("$")
    ]
    pairs: list[tuple[Any, Any]] = []
    if path.suffix in (".yml", ".yaml"):
        pairs = [pair for doc in yaml.safe_load_all(text) for pair in walk(doc)]
    elif path.suffix == ".json":
        pairs = list(walk(json.loads(text)))
    elif path.suffix == ".ini":
        parser = configparser.ConfigParser()
        parser.read_string(text)
        pairs = [(key, value) for section in parser.sections() for key, value in parser[section].items()]
    elif path.suffix in (".sh", ".py", ".example") or path.name == "Dockerfile":
        pairs = [
            tuple(part.strip() for part in m.groups())
            for m in re.finditer(r"^\s*(?:export\s+|ENV\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", text, re.MULTILINE)
        ]
    secret = secret_example()
    references = {secret["metadata"]["name"], *secret["stringData"]}  # naming the Secret or a key of it is fine
    for key, value in pairs:
        if not isinstance(key, str) or not SECRET_NAME.fullmatch(key) or not isinstance(value, (str, int)):
            continue
        value = str(value).strip().strip("\"'")
        if value and not is_env_ref(value) and PLACEHOLDER not in value and value not in references:
            found.append(f"{key}: {value}")
    return found


def test_no_secret_literal_in_any_committed_infra_file() -> None:
    files = committed_infra_files()
    assert COMPOSE_PATH in files and ENV_EXAMPLE in files and WORKER_POLICY in files
    assert INFRA / ".env" not in files
    problems = {str(path.relative_to(ROOT)): found for path in files if (found := secret_literals(path))}
    assert problems == {}


def test_secret_literal_scan_finds_literals(tmp_path: Path) -> None:
    """The scan flags each kind of literal it looks for (so the rule above can fail)."""
    cases = {
        "compose.yml": "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: hunter2\n",
        "url.yml": "x: postgresql://mlflow:hunter2@db:5432/mlflow\n",
        "env.yaml": "env:\n  - name: PREFECT_API_AUTH_STRING\n    value: admin:hunter2\n",
        "redis.yml": "command: redis-server --requirepass hunter2\n",
        "auth.ini": "[mlflow]\nadmin_password = hunter2\n",
        "x.example": "RAY_AUTH_TOKEN=hunter2\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert secret_literals(tmp_path / name), name
    (tmp_path / "ok.yml").write_text("a:\n  POSTGRES_PASSWORD: ${PG_PASSWORD:?set}\n  u: redis://:${P:?x y/z}@r:1/0\n")
    assert secret_literals(tmp_path / "ok.yml") == []


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document under infra/k8s with its file."""
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


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


def test_k8s_workers_get_the_auth_strings_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_kubernetes.settings import KubernetesSettings

    secret = secret_example()
    name, keys = secret["metadata"]["name"], set(secret["stringData"])
    worker = helm_worker()
    assert worker["extraEnvVarsSecret"] == name
    assert {"PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= keys
    assert not [k for k in keys if k.startswith("MINIO_ROOT")], "workers get the worker user's keys, not root"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "worker" in secret["stringData"][key], f"{key} must be the MinIO worker user's"
    # flow-run Jobs reference the Secret instead of a plain-text copy (names as installed prefect-kubernetes reads)
    for item in worker.get("extraEnvVars", []):
        monkeypatch.setenv(item["name"], str(item["value"]))
    settings = KubernetesSettings().worker
    assert settings.api_auth_string_secret_name == name
    assert settings.api_auth_string_secret_key == "PREFECT_API_AUTH_STRING"
    plain = [
        item["name"]
        for item in worker.get("extraEnvVars", [])
        if SECRET_NAME.fullmatch(item["name"]) and item["value"] not in {name, *keys}
    ]
    assert plain == [], f"credentials as plain Helm values: {plain}"
    raycluster = next(doc for _, doc in k8s_docs() if doc.get("kind") == "RayCluster")
    refs = [
        c["envFrom"]
        for group in [raycluster["spec"]["headGroupSpec"], *raycluster["spec"]["workerGroupSpecs"]]
        for c in group["template"]["spec"]["containers"]
    ]
    assert all({"secretRef": {"name": name}} in env_from for env_from in refs)


# -- e2e: the committed MLflow config and init script against a real basic-auth server ---------------------------


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
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def mlflow_basic_auth(tmp_path: Path) -> Iterator[tuple[str, tuple[str, str]]]:
    """`mlflow server --app-name basic-auth` on loopback with the committed ini (its user store moved to tmp)."""
    ini = tmp_path / "basic_auth.ini"
    parser = configparser.ConfigParser()
    parser.read(MLFLOW_INI)
    parser["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'basic_auth.db'}"  # /var/lib is not writable here
    with ini.open("w") as handle:
        parser.write(handle)
    admin = ("admin", "admin-password-for-test")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (_listening(port) and http_status(url + "/health") == 200):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url, admin
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group this fixture started (uvicorn's worker included)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _listening(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_init_users(url: str, admin: tuple[str, str], worker: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    """infra/mlflow/init_users.py as the mlflow-init service runs it."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": admin[0],
        "MLFLOW_TRACKING_PASSWORD": admin[1],
        "MLFLOW_WORKER_USERNAME": worker[0],
        "MLFLOW_WORKER_PASSWORD": worker[1],
    }
    return subprocess.run(
        [sys.executable, str(INFRA / "mlflow" / "init_users.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.e2e
def test_mlflow_basic_auth_refuses_anonymous_and_init_creates_a_non_admin_worker(
    mlflow_basic_auth: tuple[str, tuple[str, str]],
) -> None:
    url, admin = mlflow_basic_auth
    search = url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 401
    assert http_status(search, auth=admin) == 200
    worker = ("canvascraft-worker", "worker-password-one")
    first = run_init_users(url, admin, worker)
    assert first.returncode == 0 and "created" in first.stdout, first.stderr[-2000:]
    assert http_status(search, auth=worker) == 200
    rotated = ("canvascraft-worker", "worker-password-two")
    again = run_init_users(url, admin, rotated)
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr[-2000:]
    assert http_status(search, auth=worker) == 401 and http_status(search, auth=rotated) == 200
    # the worker may write (default_permission) but not manage users
    create_experiment = json.dumps({"name": "auth-check"}).encode()
    assert http_status(url + "/api/2.0/mlflow/experiments/create", auth=rotated, data=create_experiment) == 200
    new_user = json.dumps({"username": "intruder", "password": "intruder-password"}).encode()
    assert http_status(url + "/api/2.0/mlflow/users/create", auth=rotated, data=new_user) == 403
