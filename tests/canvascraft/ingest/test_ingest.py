"""Ingest's cache integrity and conditional downloads, against the real loopback S3 server (rclone serve s3).

Cached copies are trusted only when their size (and, re-judged or with ``verify``, their sha256) is right; a
download is conditional on the listed ETag and records the ETag of the bytes it received.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from canvascraft.hashing import sha256_bytes
from canvascraft.ingest import ImageRules, IngestReport, SnapshotManifest, ingest
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.ingest import CHANGE_ATTEMPTS
from canvascraft.object_reader import Boto3Reader, make_object_reader
from canvascraft.settings import Settings
from canvascraft.storage import make_s3_client
from tests.conftest import png_bytes
from tests.fault_proxy import fault_proxy

V1 = png_bytes((16, 16), color=10)
V2 = png_bytes((24, 24), color=240)  # another size, so a v1 size recorded with v2 bytes would show
PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>"
)


def seed(client: Any, bucket: str) -> None:
    for i in range(4):
        client.put_object(Bucket=bucket, Key=f"imgs/cat/{i}.png", Body=png_bytes((16, 16), color=30 * i))
    client.put_object(Bucket=bucket, Key="imgs/notes.txt", Body=b"not an image at all")


def run(client: Any, bucket: str, cache: Path, **kwargs: Any) -> IngestReport:
    kwargs.setdefault("min_valid_count", 0)
    return ingest([f"s3://{bucket}/imgs"], client, cache, kwargs.pop("rules", ImageRules()), **kwargs)


def entry_of(report: IngestReport, key: str):
    return next(e for e in SnapshotManifest.load(report.manifest_path).entries if e.key == key)


def index_of(cache: Path, bucket: str) -> dict[str, dict[str, Any]]:
    return ObjectCache(cache).load_index(f"s3://{bucket}/imgs")


def current_etag(client: Any, bucket: str, key: str) -> str:
    return client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


# -- cached copies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "longer"])
def test_a_cached_object_of_the_wrong_size_is_fetched_again(
    s3_client, bucket: str, tmp_path: Path, damage: str
) -> None:
    seed(s3_client, bucket)
    first = run(s3_client, bucket, tmp_path / "cache")
    entry = entry_of(first, "imgs/cat/2.png")
    path = ObjectCache(tmp_path / "cache").object_path(entry.sha256)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2] if damage == "truncated" else original + b"\0" * 7)
    again = run(s3_client, bucket, tmp_path / "cache")
    assert (again.downloaded, again.reused) == (1, first.total - 1)  # only the damaged object came again
    assert path.read_bytes() == original and sha256_bytes(path.read_bytes()) == entry.sha256
    assert again.dataset_version == first.dataset_version and again.valid == first.valid


def test_a_truncated_quarantined_copy_is_fetched_again(s3_client, bucket: str, tmp_path: Path) -> None:
    seed(s3_client, bucket)
    first = run(s3_client, bucket, tmp_path / "cache")
    rejected = next(q for q in first.quarantined if q.key == "imgs/notes.txt")
    path = ObjectCache(tmp_path / "cache").quarantine_path(rejected.sha256)
    path.write_bytes(b"not")
    again = run(s3_client, bucket, tmp_path / "cache")
    assert again.downloaded == 1 and path.read_bytes() == b"not an image at all"
    assert [q.reason for q in again.quarantined] == [q.reason for q in first.quarantined]


def test_same_size_damage_is_caught_by_verify_or_changed_rules(s3_client, bucket: str, tmp_path: Path) -> None:
    seed(s3_client, bucket)
    first = run(s3_client, bucket, tmp_path / "cache")
    entry = entry_of(first, "imgs/cat/1.png")
    path = ObjectCache(tmp_path / "cache").object_path(entry.sha256)
    original = path.read_bytes()
    corrupt = original[:-1] + bytes([original[-1] ^ 0xFF])  # one flipped byte: same size
    path.write_bytes(corrupt)
    plain = run(s3_client, bucket, tmp_path / "cache")  # a stat per object: same-size damage is not seen
    assert plain.downloaded == 0 and path.read_bytes() == corrupt
    verified = run(s3_client, bucket, tmp_path / "cache", verify=True)
    assert verified.downloaded == 1 and path.read_bytes() == original
    path.write_bytes(corrupt)
    rejudged = run(s3_client, bucket, tmp_path / "cache", rules=ImageRules(min_side=5))  # new rules: read and hashed
    assert rejudged.downloaded == 1 and path.read_bytes() == original
    assert rejudged.dataset_version == first.dataset_version


# -- an object replaced between the listing and the GET ---------------------------------------------------------------
# The tests that watch boto3's GetObject parameters read through the boto3 engine; the same cases with obstore (the
# default engine) are in test_object_reader.py.


def replace_before_first_get(client: Any, writer: Any, bucket: str, key: str, data: bytes) -> list[str]:
    """On the first GET of ``key`` (after the listing), PUT ``data`` over it; return the If-Match of every GET."""
    sent: list[str] = []

    def before_get(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") != key:
            return
        if not sent:
            writer.put_object(Bucket=bucket, Key=key, Body=data)
        sent.append(str(params.get("IfMatch", "")).strip('"'))

    client.meta.events.register("before-parameter-build.s3.GetObject", before_get)
    return sent


def server_honours_if_match(client: Any, bucket: str) -> bool:
    """Whether this S3 server refuses a GET whose If-Match names another ETag (AWS S3 and MinIO do)."""
    client.put_object(Bucket=bucket, Key="probe/if-match", Body=b"probe")
    try:
        client.get_object(Bucket=bucket, Key="probe/if-match", IfMatch='"0123456789abcdef0123456789abcdef"')
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    finally:
        client.delete_object(Bucket=bucket, Key="probe/if-match")
    return False


def assert_recorded_as_v2(report: IngestReport, cache: Path, client: Any, bucket: str) -> None:
    """The manifest and the verdict index pair v2's bytes with v2's ETag and size, never v1's."""
    etag_v2 = current_etag(client, bucket, "imgs/a.png")
    entry = entry_of(report, "imgs/a.png")
    assert (entry.etag, entry.sha256, entry.size, entry.width) == (etag_v2, sha256_bytes(V2), len(V2), 24)
    record = index_of(cache, bucket)["imgs/a.png"]
    assert (record["etag"], record["sha256"], record["size"]) == (etag_v2, sha256_bytes(V2), len(V2))
    assert ObjectCache(cache).object_path(sha256_bytes(V2)).read_bytes() == V2


def test_an_object_replaced_after_listing_is_recorded_as_the_new_version(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    etag_v1 = current_etag(s3_client, bucket, "imgs/a.png")
    client = make_s3_client(s3_settings)  # its own client: the event hook stays in this test
    sent = replace_before_first_get(client, s3_client, bucket, "imgs/a.png", V2)
    report = run(client, bucket, tmp_path / "cache", reader=Boto3Reader(client))
    assert sent[0] == etag_v1  # the GET was conditional on the listed ETag
    assert_recorded_as_v2(report, tmp_path / "cache", s3_client, bucket)
    again = run(s3_client, bucket, tmp_path / "cache")  # v2's ETag was recorded: nothing to fetch now
    assert again.downloaded == 0 and again.dataset_version == report.dataset_version


def test_a_server_refusing_the_stale_get_leads_to_a_fetch_of_the_new_etag(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    """The 412 path as the server itself takes it; only a server that honours If-Match on GET can run it."""
    if not server_honours_if_match(s3_client, bucket):
        pytest.skip(
            "the loopback S3 server (rclone serve s3) answers a GET with a stale If-Match with 200 and the "
            "current object instead of 412 PreconditionFailed; AWS S3 and MinIO honour it. The fault-proxy "
            "test below covers the 412 path, the test above the server's 200"
        )
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    etag_v1 = current_etag(s3_client, bucket, "imgs/a.png")
    client = make_s3_client(s3_settings)
    sent = replace_before_first_get(client, s3_client, bucket, "imgs/a.png", V2)
    report = run(client, bucket, tmp_path / "cache", reader=Boto3Reader(client))
    assert sent == [etag_v1, current_etag(s3_client, bucket, "imgs/a.png")]
    assert_recorded_as_v2(report, tmp_path / "cache", s3_client, bucket)


def client_through(proxy_url: str, s3_settings: Settings) -> Any:
    """A client of the product's kind that talks to the real server through a loopback fault proxy."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=proxy_url,
        region_name=s3_settings.s3_region,
        **s3_settings.s3_credentials(),
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


def get_of(key: str) -> Callable[[str, str], bool]:
    return lambda method, path: method == "GET" and path.split("?")[0].endswith("/" + key)


def test_a_412_is_followed_by_a_head_and_a_get_of_the_new_etag(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    """The proxy answers the first GET with the genuine 412 that S3 sends once the object was replaced."""
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    etag_v1 = current_etag(s3_client, bucket, "imgs/a.png")
    upstream = s3_settings.resolved_s3_endpoint_url
    with fault_proxy(upstream, failures=1, status=412, body=PRECONDITION_FAILED, when=get_of("imgs/a.png")) as proxy:
        client = client_through(proxy.url, s3_settings)
        sent = replace_before_first_get(client, s3_client, bucket, "imgs/a.png", V2)
        report = run(client, bucket, tmp_path / "cache", reader=Boto3Reader(client))
    etag_v2 = current_etag(s3_client, bucket, "imgs/a.png")
    assert sent == [etag_v1, etag_v2]  # refused under v1's ETag, then fetched under v2's (read by a HEAD)
    assert len(proxy.injected) == 1 and any(line.startswith(f"HEAD /{bucket}/imgs/a.png") for line in proxy.forwarded)
    assert_recorded_as_v2(report, tmp_path / "cache", s3_client, bucket)


@pytest.mark.parametrize("engine", ["obstore", "boto3"])
def test_an_object_changing_on_every_attempt_is_quarantined_and_retried_next_time(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path, engine: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key="imgs/a.png", Body=V1)
    s3_client.put_object(Bucket=bucket, Key="imgs/b.png", Body=V2)
    upstream = s3_settings.resolved_s3_endpoint_url
    with fault_proxy(upstream, failures=100, status=412, body=PRECONDITION_FAILED, when=get_of("imgs/a.png")) as proxy:
        client = client_through(proxy.url, s3_settings)
        report = run(client, bucket, tmp_path / "cache", reader=make_object_reader(s3_settings, client, engine))
    assert len(proxy.injected) == CHANGE_ATTEMPTS
    (changed,) = report.quarantined
    assert changed.key == "imgs/a.png" and changed.reason.startswith("changed during download")
    assert changed.sha256 is None and report.valid == 1
    assert index_of(tmp_path / "cache", bucket)["imgs/a.png"]["etag"] == ""  # never reused as a verdict
    again = run(s3_client, bucket, tmp_path / "cache")  # the writer is done: fetched and admitted now
    assert again.downloaded == 1 and again.valid == 2 and not again.quarantined


# -- two ingests of one source at once (two processes, one home) ------------------------------------------------------


def _ingest_in_process(
    endpoint: str, credentials: dict[str, str], region: str, source: str, cache: str, barrier, results
) -> None:
    """One run of ingest in its own process, started together with the other by the barrier."""
    try:
        from canvascraft.settings import get_settings

        # a spawned child imports tests.conftest again, which gives it another home (no embedded S3 state): the
        # settings' keys are not the client's, so the reader gets the session the client was made from
        session = boto3.session.Session(**credentials)
        client = session.client(
            "s3", endpoint_url=endpoint, region_name=region, config=Config(s3={"addressing_style": "path"})
        )
        reader = make_object_reader(get_settings(), client, session=session)
        barrier.wait(timeout=120)
        report = ingest([source], client, Path(cache), ImageRules(), max_workers=4, reader=reader)
        results.put(("ok", report.model_dump_json()))
    except BaseException:  # the parent asserts on this text: a crash in a child must fail the test visibly
        import traceback

        results.put(("error", traceback.format_exc()))
        barrier.abort()
        raise


def test_two_ingests_of_one_source_at_once_both_succeed(
    s3_settings: Settings, s3_client, bucket: str, tmp_path: Path
) -> None:
    import multiprocessing

    for i in range(40):
        s3_client.put_object(Bucket=bucket, Key=f"imgs/cat/{i}.png", Body=png_bytes((32, 32), color=i * 5))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    args = (
        s3_settings.resolved_s3_endpoint_url,
        s3_settings.s3_credentials(),
        s3_settings.s3_region,
        f"s3://{bucket}/imgs",
        str(tmp_path / "cache"),
        barrier,
        results,
    )
    workers = [ctx.Process(target=_ingest_in_process, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [kind for kind, _ in outcomes] == ["ok", "ok"], "\n".join(text for _, text in outcomes)
    reports = [IngestReport.model_validate_json(text) for _, text in outcomes]
    assert {r.dataset_version for r in reports} == {reports[0].dataset_version} and reports[0].valid == 40
    cache = ObjectCache(tmp_path / "cache")
    for entry in SnapshotManifest.load(reports[0].manifest_path).entries:
        assert cache.defect(entry.sha256, entry.size, verify=True) is None
    assert len(index_of(tmp_path / "cache", bucket)) == 40
    assert json.loads(Path(reports[0].manifest_path).read_text())["entries"]
    third = run(s3_client, bucket, tmp_path / "cache")
    assert third.downloaded == 0 and third.dataset_version == reports[0].dataset_version
