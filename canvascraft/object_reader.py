"""How ingest reads object bytes: the ``ObjectReader`` seam, a boto3 reader and an obstore reader.

Both make one conditional GET (``If-Match`` on the listed ETag) and answer with the bytes and the ETag of the very
response that carried them, or None when the server refused the GET with 412 (the object was replaced after the
listing); a HEAD gives the current ETag. obstore (the Rust ``object_store`` crate over reqwest,
https://developmentseed.org/obstore) does the HTTP work without holding the GIL, which a threaded boto3 download
holds for most of each request (bench/ingest.py measures both against the same server in the same run).

Failures raise StorageError naming the object, never a credential. An obstore failure is chained from the botocore
error boto3 would have raised for the same answer (a ``ClientError`` with the S3 code and HTTP status, an
``EndpointConnectionError``), so the task retry policy and the CLI's error lines treat both engines alike.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import boto3.session
from botocore import UNSIGNED
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from canvascraft.errors import StorageError
from canvascraft.redaction import redact
from canvascraft.settings import Settings, get_settings

if TYPE_CHECKING:  # obstore's config and credential types exist only in its stubs
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Credential, S3CredentialProvider

Engine = Literal["obstore", "boto3"]
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]+)</Code>")


class ObjectReader(Protocol):
    """Reads single objects for ingest; one instance is shared by all download threads."""

    @property
    def engine(self) -> str:
        """The engine's name (read-only: a class attribute or a property satisfies it)."""
        ...

    def get(self, bucket: str, key: str, if_match: str) -> tuple[bytes, str] | None:
        """(bytes, ETag of this response) while the object's ETag is ``if_match``; None when S3 answers 412."""
        ...

    def head_etag(self, bucket: str, key: str) -> str:
        """The object's current ETag (without quotes)."""
        ...


def _unquote(etag: Any) -> str:
    """An ETag header value without its quotes."""
    return str(etag or "").strip('"')


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ClientError (the HTTP status when the answer had no body, as for a HEAD)."""
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


class Boto3Reader:
    """GET/HEAD through a boto3 client (its retries, endpoint and credentials as configured)."""

    engine = "boto3"

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, bucket: str, key: str, if_match: str) -> tuple[bytes, str] | None:
        """One ``get_object`` with ``IfMatch``; None on 412 PreconditionFailed."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, IfMatch=f'"{if_match}"')
            return response["Body"].read(), _unquote(response.get("ETag"))
        except ClientError as exc:
            if error_code(exc) in PRECONDITION_FAILED:
                return None
            raise StorageError(f"download of s3://{bucket}/{key} failed after retries: {exc}") from exc
        except Exception as exc:  # botocore already retried with backoff; surface the object that failed
            raise StorageError(f"download of s3://{bucket}/{key} failed after retries: {exc}") from exc

    def head_etag(self, bucket: str, key: str) -> str:
        """One ``head_object``."""
        try:
            return _unquote(self.client.head_object(Bucket=bucket, Key=key)["ETag"])
        except Exception as exc:
            raise StorageError(f"HEAD of s3://{bucket}/{key} failed: {exc}") from exc


class ObstoreReader:
    """GET/HEAD through obstore: one ``S3Store`` per bucket, made on first use and shared by the threads.

    ``credentials`` is obstore's credential provider (None: unsigned requests). Keys that ``object_store`` cannot
    address (an empty path segment, ``a//b.png``, is a valid S3 key) go to
    ``fallback`` (the boto3 reader of the same client) instead of failing.
    """

    engine = "obstore"

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        max_retries: int,
        credentials: S3CredentialProvider | None,
        fallback: ObjectReader | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.fallback = fallback
        self._config: S3Config = {"region": region}
        if endpoint_url:
            self._config["endpoint"] = endpoint_url
        if credentials is None:
            self._config["skip_signature"] = True
        self._credentials = credentials
        # botocore's standard mode (max_attempts counts retries, base-2 backoff with jitter, capped at 20 s)
        self._retry: RetryConfig = {
            "max_retries": max_retries,
            "retry_timeout": timedelta(minutes=3),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=20), "base": 2},
        }
        self._client_options: ClientConfig = {
            "allow_http": bool(endpoint_url and endpoint_url.startswith("http://")),
            "connect_timeout": timedelta(seconds=60),
            "timeout": timedelta(minutes=5),
        }
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _store(self, bucket: str) -> Any:
        """The bucket's store (made once)."""
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                from obstore.store import S3Store

                store = S3Store(
                    bucket,
                    config=self._config,
                    client_options=self._client_options,
                    retry_config=self._retry,
                    credential_provider=self._credentials,
                )
                self._stores[bucket] = store
            return store

    def get(self, bucket: str, key: str, if_match: str) -> tuple[bytes, str] | None:
        """One GET with ``If-Match``; None on 412 (obstore's PreconditionError)."""
        import obstore
        from obstore.exceptions import PreconditionError

        try:
            result = obstore.get(self._store(bucket), key, options={"if_match": f'"{if_match}"'})
            return bytes(result.bytes()), _unquote(result.meta.get("e_tag"))
        except PreconditionError:
            return None
        except Exception as exc:  # noqa: BLE001 - obstore already retried: name the object, keep the cause
            if self.fallback is not None and _unaddressable(exc):
                return self.fallback.get(bucket, key, if_match)
            message, cause = self._failure(exc, "GetObject")
            raise StorageError(f"download of s3://{bucket}/{key} failed after retries: {message}") from cause

    def head_etag(self, bucket: str, key: str) -> str:
        """One HEAD."""
        import obstore

        try:
            return _unquote(obstore.head(self._store(bucket), key).get("e_tag"))
        except Exception as exc:  # noqa: BLE001 - as in get
            if self.fallback is not None and _unaddressable(exc):
                return self.fallback.head_etag(bucket, key)
            message, cause = self._failure(exc, "HeadObject")
            raise StorageError(f"HEAD of s3://{bucket}/{key} failed: {message}") from cause

    def _failure(self, exc: Exception, operation: str) -> tuple[str, BaseException]:
        """(first line of obstore's message, secrets masked; the botocore error boto3 raises for the same answer)."""
        secret = getattr(self._credentials, "secret", None)
        detail = redact(str(exc).split("\n\nDebug source:", 1)[0].strip(), [secret] if secret else [])
        return (
            detail.splitlines()[0] if detail else type(exc).__name__,
            as_botocore_error(exc, detail, operation, self.endpoint_url),
        )


def _unaddressable(exc: Exception) -> bool:
    """obstore refused the key itself (object_store paths have no empty segments; S3 keys may)."""
    return isinstance(exc, ValueError) and "Could not parse path" in str(exc)


def as_botocore_error(exc: Exception, detail: str, operation: str, endpoint_url: str | None) -> BaseException:
    """The botocore exception boto3 raises for the same S3 answer, caused by ``exc`` (else ``exc`` itself).

    An HTTP answer becomes a ``ClientError`` with its S3 code and status; a failed connection an
    ``EndpointConnectionError``: what tasks/retry_policy.py and the CLI's error line already classify.
    """
    status = _STATUS.search(detail)
    if status:
        code = _CODE.search(detail)
        translated: BaseException = ClientError(
            {
                "Error": {"Code": code.group(1) if code else status.group(1), "Message": detail.splitlines()[0]},
                "ResponseMetadata": {"HTTPStatusCode": int(status.group(1))},
            },
            operation,
        )
    elif "error sending request" in detail:
        translated = EndpointConnectionError(endpoint_url=endpoint_url or "https://s3.amazonaws.com")
    else:
        return exc
    translated.__cause__ = exc
    return translated


class SessionCredentials:
    """obstore credential provider handing out a boto3 session's credentials (static keys, env, profile, role).

    Refreshable credentials (an instance role, SSO) are re-read every few minutes; botocore refreshes them.
    """

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    @property
    def secret(self) -> str | None:
        """The secret key (for redaction only)."""
        return self.credentials.secret_key

    def __call__(self) -> S3Credential:
        """One S3Credential; static keys never expire (obstore then asks once)."""
        frozen = self.credentials.get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:
            raise NoCredentialsError()
        refreshable = isinstance(self.credentials, RefreshableCredentials)
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + timedelta(minutes=5) if refreshable else None,
        }


def settings_session(settings: Settings) -> boto3.session.Session:
    """A boto3 session with the credentials ``make_s3_client(settings)`` signs with (embedded keys, else the chain)."""
    return boto3.session.Session(**settings.s3_credentials())


def make_object_reader(
    settings: Settings, client: Any, engine: Engine | None = None, *, session: boto3.session.Session | None = None
) -> ObjectReader:
    """The reader ``settings.ingest_engine`` (or ``engine``) names, reading the same S3 as ``client``, as it.

    obstore takes the client's region and endpoint (on AWS obstore's own endpoint for that region) and the
    credentials of ``session``, by default the settings' (:func:`settings_session`: what ``make_s3_client`` builds
    the client from), so listing and GETs meet one server with one identity, a test's fault proxy included. A client
    made with other keys passes the session it was made from. Retries: ``settings.s3_max_attempts``, as botocore's.
    """
    engine = engine or settings.ingest_engine
    boto3_reader = Boto3Reader(client)
    if engine == "boto3":
        return boto3_reader
    credentials = None
    if client.meta.config.signature_version is not UNSIGNED:
        credentials = (session or settings_session(settings)).get_credentials()
        if credentials is None:
            raise StorageError(
                "ingest's obstore reader found no S3 credentials: neither the embedded stack's keys nor boto3's "
                "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role) gave any; "
                "configure one, or set CANVASCRAFT_INGEST_ENGINE to one of: obstore, boto3 (boto3 then decides)"
            ) from NoCredentialsError()
    endpoint = client.meta.endpoint_url
    if (urlsplit(endpoint).hostname or "").endswith(".amazonaws.com"):
        endpoint = None
    return ObstoreReader(
        endpoint_url=endpoint,
        region=client.meta.region_name or settings.s3_region,
        max_retries=settings.s3_max_attempts,
        credentials=SessionCredentials(credentials) if credentials is not None else None,
        fallback=boto3_reader,
    )


class SettingsReader:
    """The reader the current settings choose for ``client`` (:func:`make_object_reader`), made on first use.

    obstore then signs with the settings' credentials: ``client`` is one ``make_s3_client`` made from the same
    settings (ingest's callers all pass one); a client with other keys comes with its own reader.

    A re-ingest that downloads nothing never reads the settings (pydantic-settings takes 10-40 ms here, which was
    most of a 100-object re-ingest).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._reader: ObjectReader | None = None
        self._lock = threading.Lock()

    @property
    def reader(self) -> ObjectReader:
        """The chosen reader (made once)."""
        with self._lock:
            if self._reader is None:
                self._reader = make_object_reader(get_settings(), self.client)
            return self._reader

    @property
    def engine(self) -> str:
        """The chosen engine's name."""
        return self.reader.engine

    def get(self, bucket: str, key: str, if_match: str) -> tuple[bytes, str] | None:
        """The chosen reader's GET."""
        return self.reader.get(bucket, key, if_match)

    def head_etag(self, bucket: str, key: str) -> str:
        """The chosen reader's HEAD."""
        return self.reader.head_etag(bucket, key)
