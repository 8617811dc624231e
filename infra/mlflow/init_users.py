"""One-shot (compose service ``mlflow-init``): create or update the MLflow user CanvasCraft's workers log in as.

Runs in the MLflow image against the basic-auth server, authenticated as the admin through
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (mlflow.server.auth.client.AuthServiceClient reads them). The
worker user gets the config's ``default_permission`` and no admin rights, so a leaked worker password cannot manage
users. Rerunning sets the password from the environment again (rotation).
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import RestException
from mlflow.server import get_app_client


def ensure_user(tracking_uri: str, username: str, password: str) -> str:
    """Create ``username`` (not an admin) or reset its password; "created" or "updated"."""
    client = get_app_client("basic-auth", tracking_uri=tracking_uri)
    try:
        client.get_user(username)
    except RestException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_user(username, password)
        return "created"
    client.update_user_password(username, password)
    client.update_user_admin(username, False)
    return "updated"


def main() -> int:
    """Ensure the worker user named by MLFLOW_WORKER_USERNAME / MLFLOW_WORKER_PASSWORD exists; exit status."""
    missing = [
        name
        for name in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_WORKER_USERNAME",
            "MLFLOW_WORKER_PASSWORD",
        )
        if not os.environ.get(name)
    ]
    if missing:
        print(f"mlflow-init: set {', '.join(missing)} (infra/.env, see infra/.env.example)", file=sys.stderr)
        return 2
    username = os.environ["MLFLOW_WORKER_USERNAME"]
    if username == os.environ["MLFLOW_TRACKING_USERNAME"]:
        print(
            "mlflow-init: MLFLOW_WORKER_USERNAME must differ from the admin user MLFLOW_ADMIN_USERNAME", file=sys.stderr
        )
        return 2
    outcome = ensure_user(os.environ["MLFLOW_TRACKING_URI"], username, os.environ["MLFLOW_WORKER_PASSWORD"])
    print(f"mlflow-init: worker user {username!r} {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
