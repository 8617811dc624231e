"""Ingest's two download engines (canvascraft/object_reader.py) against real S3 servers on loopback.

rclone ``serve s3`` is the project's S3 (it ignores If-Match on GET); moto's server honours If-Match with a real 412,
so the replaced-object path of the obstore engine runs against a server that refuses the stale GET itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from canvascraft.errors import StorageError
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest import ImageRules, IngestReport, SnapshotManifest, ingest
from canvascraft.ingest.cache import ObjectCache
from canvascraft.object_reader import Boto3Reader, ObstoreReader, make_object_reader
from canvascraft.settings import Settings, get_settings
from tests.canvascraft.ingest.test_ingest_s3 import seed_mixed
from tests.conftest import png_bytes

V1 = png_bytes((16, 16), color=10)
V2 = png_bytes((24, 24), color=240)


def run(client: Any, bucket: str, cache: Path, reader: Any = None, **kwargs: Any) -> IngestReport:
    kwargs.setdefault("min_valid_count", 0)
    return ingest([f"s3://{bucket}/imgs"], client, cache, ImageRules(), reader=reader, **kwargs)


def entries(report: IngestReport) -> list[dict[str, Any]]:
    return [e.model_dump() for e in SnapshotManifest.load(report.manifest_path).entries]


def after_listing(client: Any, action: Any) -> list[int]:
    """Run ``action()`` once, right after the client's first ListObjectsV2 of ``imgs/`` returns (before any GET)."""
    calls: list[int] = []

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        if not calls and parsed.get("Prefix") == "imgs/":
            action()
            calls.append(1)

    client.meta.events.register("after-call.s3.ListObjectsV2", hook)
    return calls


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's S3 server on a free loopback port (in-memory; honours If-Match on GET)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


MOTO_SESSION = boto3.session.Session(aws_access_key_id="moto", aws_secret_access_key="moto-secret")


def moto_client(url: str) -> Any:
    return MOTO_SESSION.client(
        "s3", endpoint_url=url, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
    )


def moto_reader(client: Any) -> Any:
    """The obstore reader of a moto client: its keys are not the settings', so it passes the session it came from."""
    return make_object_reader(get_settings(), client, "obstore", session=MOTO_SESSION)


# -- the engine the settings choose ----------------------------------------------------------------------------------


def test_settings_choose_the_engine_obstore_by_default(
    s3_settings: Settings, s3_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.model_fields["ingest_engine"].default == "obstore"
    reader = make_object_reader(get_settings(), s3_client)
    assert isinstance(reader, ObstoreReader) and reader.endpoint_url == s3_settings.resolved_s3_endpoint_url
    monkeypatch.setenv("CANVASCRAFT_INGEST_ENGINE", "boto3")
    assert isinstance(make_object_reader(get_settings(), s3_client), Boto3Reader)
    monkeypatch.setenv("CANVASCRAFT_INGEST_ENGINE", "curl")
    with pytest.raises(ValueError, match="ingest_engine"):
        get_settings()


def test_ingest_reads_through_the_engine_the_settings_name(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_settings.resolved_s3_endpoint_url,
        region_name="us-east-1",
        **s3_settings.s3_credentials(),
        config=Config(s3={"addressing_style": "path"}),
    )
    boto3_gets: list[str] = []
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: boto3_gets.append(params["Key"])
    )
    default = run(client, bucket, tmp_path / "default")
    assert default.downloaded == 1 and "imgs/a.png" not in boto3_gets  # obstore fetched it (labels.csv is boto3's)
    monkeypatch.setenv("CANVASCRAFT_INGEST_ENGINE", "boto3")
    chosen = run(client, bucket, tmp_path / "boto3")
    assert chosen.downloaded == 1 and boto3_gets.count("imgs/a.png") == 1
    assert chosen.dataset_version == default.dataset_version


def test_both_engines_produce_the_same_manifest(s3_settings: Settings, s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    reports = {
        engine: run(s3_client, bucket, tmp_path / engine / "cache", make_object_reader(s3_settings, s3_client, engine))
        for engine in ("obstore", "boto3")
    }
    obstore_report, boto3_report = reports["obstore"], reports["boto3"]
    assert obstore_report.downloaded == boto3_report.downloaded == 10
    assert obstore_report.bytes_downloaded == boto3_report.bytes_downloaded > 0
    assert obstore_report.dataset_version == boto3_report.dataset_version
    assert entries(obstore_report) == entries(boto3_report) and len(entries(obstore_report)) == 7
    assert [q.model_dump() for q in obstore_report.quarantined] == [q.model_dump() for q in boto3_report.quarantined]
    listed = {o["Key"]: o["ETag"].strip('"') for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert all(e["etag"] == listed[e["key"]] for e in entries(obstore_report))  # the GET response's ETag, unquoted
    cache = ObjectCache(tmp_path / "obstore" / "cache")
    for entry in SnapshotManifest.load(obstore_report.manifest_path).entries:
        assert cache.defect(entry.sha256, entry.size, verify=True) is None


# -- an object replaced between the listing and the GET ---------------------------------------------------------------


def assert_recorded_as_v2(report: IngestReport, cache: Path, client: Any, bucket: str) -> None:
    etag_v2 = client.head_object(Bucket=bucket, Key="imgs/a.png")["ETag"].strip('"')
    (entry,) = SnapshotManifest.load(report.manifest_path).entries
    assert (entry.etag, entry.sha256, entry.size, entry.width) == (etag_v2, sha256_bytes(V2), len(V2), 24)
    record = ObjectCache(cache).load_index(f"s3://{bucket}/imgs")["imgs/a.png"]
    assert (record["etag"], record["sha256"], record["size"]) == (etag_v2, sha256_bytes(V2), len(V2))


def test_obstore_records_a_replaced_object_as_served_by_a_server_ignoring_if_match(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    client = boto3.session.Session().client(  # its own client: the listing hook stays in this test
        "s3",
        endpoint_url=s3_settings.resolved_s3_endpoint_url,
        region_name="us-east-1",
        **s3_settings.s3_credentials(),
        config=Config(s3={"addressing_style": "path"}),
    )
    replaced = after_listing(client, lambda: s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V2))
    report = run(client, bucket, tmp_path / "cache")  # the default engine: obstore
    assert replaced and report.downloaded == 1
    assert_recorded_as_v2(report, tmp_path / "cache", s3_client, bucket)
    again = run(s3_client, bucket, tmp_path / "cache")  # v2's ETag was recorded: nothing to fetch now
    assert again.downloaded == 0 and again.dataset_version == report.dataset_version


def test_obstore_meets_a_real_412_then_heads_and_fetches_the_new_version(moto_url: str, tmp_path: Path) -> None:
    client = moto_client(moto_url)
    bucket = "replaced"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    etag_v1 = client.head_object(Bucket=bucket, Key="imgs/a.png")["ETag"].strip('"')
    with pytest.raises(ClientError, match="PreconditionFailed"):  # this server refuses a stale If-Match itself
        client.get_object(Bucket=bucket, Key="imgs/a.png", IfMatch='"0123456789abcdef0123456789abcdef"')
    writer = moto_client(moto_url)
    replaced = after_listing(client, lambda: writer.put_object(Bucket=bucket, Key="imgs/a.png", Body=V2))
    reader = moto_reader(client)
    calls: list[tuple[str, str]] = []
    get, head = reader.get, reader.head_etag
    reader.get = lambda b, k, etag: (calls.append(("GET", etag)), get(b, k, etag))[1]  # type: ignore[method-assign]
    reader.head_etag = lambda b, k: (calls.append(("HEAD", "")), head(b, k))[1]  # type: ignore[method-assign]
    report = run(client, bucket, tmp_path / "cache", reader)
    etag_v2 = client.head_object(Bucket=bucket, Key="imgs/a.png")["ETag"].strip('"')
    assert isinstance(reader, ObstoreReader) and replaced
    assert calls == [("GET", etag_v1), ("HEAD", ""), ("GET", etag_v2)]  # refused under v1's ETag, then v2's
    assert_recorded_as_v2(report, tmp_path / "cache", client, bucket)


def test_obstore_quarantines_an_object_changing_on_every_attempt(moto_url: str, tmp_path: Path) -> None:
    """Every HEAD is followed by a new PUT, so every GET meets a 412: quarantined, never recorded as a verdict."""
    client, writer = moto_client(moto_url), moto_client(moto_url)
    bucket = "churning"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    reader = moto_reader(client)
    versions = iter(range(100))
    head = reader.head_etag

    def head_then_replace(b: str, k: str) -> str:
        etag = head(b, k)
        writer.put_object(Bucket=b, Key=k, Body=png_bytes((16, 16), color=next(versions)))
        return etag

    reader.head_etag = head_then_replace  # type: ignore[method-assign]
    after_listing(client, lambda: writer.put_object(Bucket=bucket, Key="imgs/a.png", Body=V2))
    report = run(client, bucket, tmp_path / "cache", reader)
    (changed,) = report.quarantined
    assert changed.reason.startswith("changed during download") and report.valid == 0
    assert ObjectCache(tmp_path / "cache").load_index(f"s3://{bucket}/imgs")["imgs/a.png"]["etag"] == ""


def test_a_key_obstore_cannot_address_is_read_through_boto3(moto_url: str, tmp_path: Path) -> None:
    """``a//b.png`` (an empty path segment) is a valid S3 key that object_store refuses to parse."""
    client = moto_client(moto_url)
    bucket = "odd-keys"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="imgs/cat//0.png", Body=V1)
    client.put_object(Bucket=bucket, Key="imgs/cat/1.png", Body=V2)
    report = run(client, bucket, tmp_path / "cache", moto_reader(client))
    assert report.valid == 2 and report.downloaded == 2
    assert {e["key"] for e in entries(report)} == {"imgs/cat//0.png", "imgs/cat/1.png"}


# -- failures: StorageError naming the object, classified like boto3's -----------------------------------------------


def test_an_object_deleted_after_listing_fails_naming_it_with_either_engine(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    for engine in ("obstore", "boto3"):
        s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=s3_settings.resolved_s3_endpoint_url,
            region_name="us-east-1",
            **s3_settings.s3_credentials(),
            config=Config(s3={"addressing_style": "path"}),
        )
        after_listing(client, lambda: s3_client.delete_object(Bucket=bucket, Key="imgs/a.png"))
        with pytest.raises(StorageError, match=re.escape(f"download of s3://{bucket}/imgs/a.png failed")) as caught:
            run(client, bucket, tmp_path / engine, make_object_reader(s3_settings, client, engine))
        cause = caught.value.__cause__
        assert isinstance(cause, ClientError), engine  # the retry policy sees a 404: not retried
        assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 404, engine


def test_refused_keys_surface_as_a_credential_error_without_the_secret(
    s3_settings: Settings, bucket: str, tmp_path: Path
) -> None:
    session = boto3.session.Session(aws_access_key_id="AKIANOTAKEY", aws_secret_access_key="wrong-secret-value-123")
    wrong = session.client("s3", endpoint_url=s3_settings.resolved_s3_endpoint_url, region_name="us-east-1")
    reader = make_object_reader(s3_settings, wrong, "obstore", session=session)
    with pytest.raises(StorageError) as caught:
        reader.get(bucket, "imgs/a.png", "0" * 32)
    message = str(caught.value)
    assert message.startswith(f"download of s3://{bucket}/imgs/a.png failed after retries: ") and "\n" not in message
    assert "wrong-secret-value-123" not in message
    cause = caught.value.__cause__
    assert isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_endpoint_that_does_not_answer_is_a_connection_error(tmp_path: Path) -> None:
    from canvascraft.stack.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b")
    client = session.client("s3", endpoint_url=url, region_name="us-east-1")
    reader = make_object_reader(get_settings(s3_max_attempts=1), client, "obstore", session=session)
    expected = re.escape("download of s3://some-bucket/k.png failed after retries")
    with pytest.raises(StorageError, match=expected) as caught:
        reader.get("some-bucket", "k.png", "0" * 32)
    assert isinstance(caught.value.__cause__, EndpointConnectionError)
    assert url in str(caught.value.__cause__)


def test_no_credentials_anywhere_is_an_error_naming_the_sources_and_the_engine_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(var, str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = Settings(home=tmp_path / "home")  # no embedded stack: boto3's chain decides, and finds nothing
    client = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="client-secret-456").client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    with pytest.raises(StorageError, match=r"found no S3 credentials.*CANVASCRAFT_INGEST_ENGINE") as caught:
        make_object_reader(settings, client, "obstore")
    assert "client-secret-456" not in str(caught.value)
    assert isinstance(make_object_reader(settings, client, "boto3"), Boto3Reader)  # boto3 signs as its client does


def test_obstore_retries_a_503_as_botocore_does(s3_settings: Settings, s3_client, bucket: str, tmp_path: Path) -> None:
    from tests.fault_proxy import fault_proxy

    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    upstream = s3_settings.resolved_s3_endpoint_url
    when = lambda method, path: method == "GET" and path.split("?")[0].endswith("/imgs/a.png")
    with fault_proxy(upstream, failures=2, status=503, when=when) as proxy:
        client = boto3.session.Session().client(
            "s3", endpoint_url=proxy.url, region_name="us-east-1", **s3_settings.s3_credentials()
        )
        report = run(client, bucket, tmp_path / "ok", make_object_reader(get_settings(s3_max_attempts=2), client))
    assert len(proxy.injected) == 2 and report.valid == 1
    with fault_proxy(upstream, failures=100, status=503, when=when) as proxy:
        client = boto3.session.Session().client(
            "s3", endpoint_url=proxy.url, region_name="us-east-1", **s3_settings.s3_credentials()
        )
        expected = re.escape(f"download of s3://{bucket}/imgs/a.png failed after retries")
        with pytest.raises(StorageError, match=expected) as caught:
            run(client, bucket, tmp_path / "down", make_object_reader(get_settings(s3_max_attempts=1), client))
    assert len(proxy.injected) == 2  # one retry, as settings.s3_max_attempts=1 gives botocore
    assert caught.value.__cause__.response["ResponseMetadata"]["HTTPStatusCode"] == 503  # transient: task retries


# -- the listing client -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2026-12-01T09:04:33.000Z",
        "2026-12-01T09:04:33.123456+02:00",
        "Tue, 01 Dec 2026 09:04:33 GMT",
        "1796115873",
        1796115873,
        "20261201",
    ],
)
def test_fast_timestamps_equal_botocores(raw: Any) -> None:
    from botocore.utils import parse_timestamp

    from canvascraft.storage import fast_timestamp

    parsed = fast_timestamp(raw)
    assert parsed == parse_timestamp(raw) and parsed.utcoffset() == parse_timestamp(raw).utcoffset()


def test_the_product_client_lists_the_same_rows_as_stock_boto3(s3_settings: Settings, s3_client, bucket: str) -> None:
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"imgs/{i}.png", Body=V1)
    stock = boto3.session.Session().client(
        "s3", endpoint_url=s3_settings.resolved_s3_endpoint_url, region_name="us-east-1", **s3_settings.s3_credentials()
    )
    ours, theirs = (c.list_objects_v2(Bucket=bucket)["Contents"] for c in (s3_client, stock))
    assert ours == theirs and all(row["LastModified"].tzinfo is not None for row in ours)
