"""The embedded S3 service: idempotent start, status, persistent keys, clean stop (a real rclone process)."""

from __future__ import annotations

import json
from pathlib import Path

from canvascraft.settings import Settings
from canvascraft.stack.process import free_port, pid_alive
from canvascraft.stack.s3_server import s3_service
from canvascraft.storage import make_s3_client


def test_start_is_idempotent_and_stop_is_clean(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", s3_port=free_port())
    service = s3_service(settings)
    first = service.start()
    try:
        assert first["healthy"] and service.start()["pid"] == first["pid"]
        client = make_s3_client(Settings(home=tmp_path / "home", s3_port=settings.s3_port))
        client.create_bucket(Bucket="bkt1")
        client.put_object(Bucket="bkt1", Key="x/y.txt", Body=b"hello")
        assert (tmp_path / "home" / "s3" / "bkt1" / "x" / "y.txt").read_bytes() == b"hello"  # a folder-backed store
        keys = (tmp_path / "home" / "stack" / "s3-credentials.json").read_text()
        secret = json.loads(keys)["secret_access_key"]
        # the keys reach rclone through its environment, never its argv (world-readable in the process table)
        assert secret not in Path(f"/proc/{first['pid']}/cmdline").read_bytes().decode(errors="replace")
    finally:
        assert service.stop()
    assert not pid_alive(first["pid"]) and not service.status()["running"]
    assert not service.stop()
    restarted = s3_service(settings).start()  # keys persist across restarts; data too
    try:
        assert (tmp_path / "home" / "stack" / "s3-credentials.json").read_text() == keys
        body = make_s3_client(Settings(home=tmp_path / "home", s3_port=settings.s3_port)).get_object(
            Bucket="bkt1", Key="x/y.txt"
        )
        assert body["Body"].read() == b"hello"
    finally:
        s3_service(settings).stop()
    assert not pid_alive(restarted["pid"])


def test_wrong_keys_are_refused(s3_settings: Settings, tmp_path: Path) -> None:
    import boto3
    import botocore.exceptions
    import pytest

    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.resolved_s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="wrong",
        aws_secret_access_key="wrong",
    )
    with pytest.raises(botocore.exceptions.ClientError):
        client.list_buckets()
