"""Who holds which credential in infra/: Prefect, MLflow, MinIO and Redis clients send what their servers require,
workers log in as non-admin users with least-privilege S3 policies, and Kubernetes workers read them from a Secret.

Setting names are checked against the installed libraries, not against a list written here: Prefect's settings
models read the auth strings, prefect-kubernetes' settings read the worker's secret reference, MLflow's own
``read_auth_config`` reads the committed basic-auth ini."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.infra.infra_files import (
    INFRA,
    K8S,
    MINIO_INIT,
    MLFLOW_INI,
    MLFLOW_POLICY,
    READ_ACTIONS,
    SECRET_NAME,
    WORKER_POLICY,
    artifact_bucket,
    command_args,
    fill,
    flag_value,
    helm_worker,
    k8s_docs,
    load_compose,
    policy_allows,
    ref_name,
    resolve_default,
    secret_example,
    services,
    source_buckets,
)


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
