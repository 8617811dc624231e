"""The rest of the local stack: Redis, MLflow server, Prefect server, a Prefect process worker, Prometheus Pushgateway.

Each is a real service bound to 127.0.0.1 on a configurable port, started detached with a health check.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sysconfig
from pathlib import Path

from canvascraft.errors import StackError
from canvascraft.settings import Settings
from canvascraft.stack.process import ManagedService, http_answers
from canvascraft.stack.s3_server import (
    ARTIFACT_BUCKET,
    embedded_credentials,
    s3_service,
)

WORK_POOL = "gpu-pool"


def _script(name: str) -> str:
    """A console script of this environment (mlflow, prefect), else one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found; install the project (make install)")
    return found


def mlflow_service(settings: Settings) -> ManagedService:
    """MLflow tracking server + UI on sqlite under the home; artifacts proxied to ``<artifact root>/mlflow``.

    The server proxies artifact traffic (``mlflow-artifacts:/``), so clients need no S3 keys of their own and a
    model logged from one machine loads on any other. The destination is the artifact root: the embedded S3
    (its endpoint and keys passed in the server's environment, never in argv) or the configured one.
    """
    url = f"http://127.0.0.1:{settings.mlflow_port}"
    root, env = artifact_destination(settings)
    command = [
        _script("mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",  # the default 4 gunicorn workers are heavy on 2 cores
        "--backend-store-uri",
        f"sqlite:///{settings.home / 'mlflow.db'}",
        "--artifacts-destination",
        f"{root}/mlflow",
    ]
    if settings.mlflow_auth:
        command += ["--app-name", "basic-auth"]
        env = {**env, **_basic_auth_environment(settings)}
    return ManagedService(
        "mlflow",
        settings.home,
        command,
        url,
        lambda: http_answers(url + "/health"),
        port=settings.mlflow_port,
        port_setting="CANVASCRAFT_MLFLOW_PORT",
        env=env,
        state={"tracking_uri": url, "artifacts_destination": f"{root}/mlflow"},
        startup_timeout=120,
    )


def _basic_auth_environment(settings: Settings) -> dict[str, str]:
    """Environment of MLflow's basic-auth app: its config file (users database under the home) and the admin.

    The admin is the client's own MLFLOW_TRACKING_USERNAME/PASSWORD, passed in the server's environment (never argv);
    MLflow creates that user on the first start (``MLFLOW_AUTH_ADMIN_PASSWORD``, mlflow/server/auth).
    """
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise StackError(
            "CANVASCRAFT_MLFLOW_AUTH=true needs MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(the admin the server creates and the credentials every client sends)"
        )
    config = settings.home / "stack" / "mlflow-auth.ini"
    config.parent.mkdir(parents=True, exist_ok=True)
    text = (
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{settings.home / 'mlflow-auth.db'}\n"
        f"admin_username = {user}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a PBKDF2 check per request made every Tune result callback take ~10 s on 2 cores; one per minute
        "auth_cache_ttl_seconds = 60\n"
    )
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        # Flask-WTF's CSRF protection signs with this key; a fresh one per start is enough for API clients
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }


def artifact_destination(settings: Settings) -> tuple[str, dict[str, str]]:
    """The artifact root a server started now writes to, and the environment its S3 client needs.

    Resolved before the embedded S3 runs (services are built before any starts): an explicit root uses the
    configured endpoint and the normal AWS credential chain; otherwise the embedded S3's bucket and keys.
    """
    if settings.artifact_root:
        env = {"MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url} if settings.s3_endpoint_url else {}
        return settings.artifact_root.rstrip("/"), env
    if not settings.use_embedded:
        return str(settings.home / "artifacts"), {}
    creds = embedded_credentials(settings.home)
    return f"s3://{ARTIFACT_BUCKET}", {
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{settings.s3_port}",
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_DEFAULT_REGION": settings.s3_region,
    }


def prefect_service(settings: Settings) -> ManagedService:
    """A Prefect server + UI with its own PREFECT_HOME (sqlite) under the CanvasCraft home."""
    url = f"http://127.0.0.1:{settings.prefect_port}"
    env = {
        "PREFECT_HOME": str(settings.home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"{url}/api",
        # concurrency leases (the promotion lock) survive a server restart instead of leaking a held slot
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
        # a waiter re-polls a held slot within seconds, not the default 30 s (+ jitter)
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
    }
    command = [_script("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)]
    return ManagedService(
        "prefect",
        settings.home,
        command,
        url,
        lambda: http_answers(url + "/api/health"),
        port=settings.prefect_port,
        port_setting="CANVASCRAFT_PREFECT_PORT",
        env=env,
        state={"api_url": f"{url}/api"},
        startup_timeout=120,
    )


def worker_service(settings: Settings, project_dir: Path) -> ManagedService:
    """A Prefect process worker polling ``gpu-pool`` (the pool is created if missing), running from the project."""
    api_url = f"http://127.0.0.1:{settings.prefect_port}/api"
    command = [_script("prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"]
    env = {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(settings.home / "prefect-worker"),
        "CANVASCRAFT_PROJECT_DIR": str(project_dir),
        "CANVASCRAFT_HOME": str(settings.home),
    }
    service = ManagedService(
        "worker",
        settings.home,
        command,
        f"pool {WORK_POOL} @ {api_url}",
        lambda: False,
        env=env,
        cwd=project_dir,
        startup_timeout=60,
    )

    def started() -> bool:
        # A worker has no port of its own: it answers once it logged its start. The log is rotated at every
        # start and the probe only counts together with the recorded (live) process, so an old line never does.
        # Its Prefect server must answer too: a worker whose API is gone is not doing anything.
        return "started!" in service.tail_log(200) and http_answers(api_url + "/health")

    service.probe = started
    return service


def pushgateway_service(settings: Settings) -> ManagedService:
    """Debian's ``prometheus-pushgateway`` with a persistence file under the home."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        raise StackError(
            "prometheus-pushgateway not found; install the Debian package "
            "(apt-get install prometheus-pushgateway; `make stack` does this where apt works)"
        )
    url = f"http://127.0.0.1:{settings.pushgateway_port}"
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{settings.pushgateway_port}",
        f"--persistence.file={settings.home / 'pushgateway.db'}",
    ]
    return ManagedService(
        "pushgateway",
        settings.home,
        command,
        url,
        lambda: http_answers(url + "/-/ready"),
        port=settings.pushgateway_port,
        port_setting="CANVASCRAFT_PUSHGATEWAY_PORT",
        state={"url": url},
        startup_timeout=30,
    )


def redis_service(settings: Settings) -> ManagedService:
    """Debian's ``redis-server`` on loopback: Feast's online store, persisted (append-only file) under the home."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "redis-server not found; install the Debian package "
            "(apt-get install redis-server; `make stack` does this where apt works)"
        )
    data_dir = settings.home / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = settings.redis_port
    command = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    return ManagedService(
        "redis",
        settings.home,
        command,
        f"redis://127.0.0.1:{port}",
        lambda: redis_answers("127.0.0.1", port),
        port=port,
        port_setting="CANVASCRAFT_REDIS_PORT",
        state={"url": f"redis://127.0.0.1:{port}/0"},
        startup_timeout=30,
    )


def redis_answers(host: str, port: int) -> bool:
    """True when a Redis server answers PING."""
    import redis

    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def stack_services(settings: Settings, project_dir: Path, names: list[str] | None = None) -> list[ManagedService]:
    """The local stack in start order (optionally only the named services)."""
    factories = {
        "s3": lambda: s3_service(settings),
        "redis": lambda: redis_service(settings),
        "pushgateway": lambda: pushgateway_service(settings),
        "mlflow": lambda: mlflow_service(settings),
        "prefect": lambda: prefect_service(settings),
        "worker": lambda: worker_service(settings, project_dir),
    }
    chosen = names or list(factories)
    unknown = [n for n in chosen if n not in factories]
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; allowed values: {', '.join(factories)}")
    return [factories[name]() for name in chosen]
