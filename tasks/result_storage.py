"""Prefect task results (and cache records) in the artifact root, so a cached task hits on any worker.

``stack env --worker`` registers an ``s3-bucket`` block (prefect-aws) over ``<artifact root>/prefect-results`` and
prints ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`` for the worker. The block holds the endpoint only, never keys:
Prefect stores block documents in its database, readable by any API client; each worker brings its own
credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance role, a Kubernetes Secret).
"""

from __future__ import annotations

from canvascraft.errors import SettingsError
from canvascraft.settings import Settings

BLOCK_NAME = "canvascraft-results"
BLOCK_SLUG = f"s3-bucket/{BLOCK_NAME}"
RESULTS = "prefect-results"


def register_result_storage(settings: Settings, api_url: str) -> str:
    """Save (or update) the results block for the settings' artifact root on the Prefect server; its slug."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    root = settings.resolved_artifact_root
    if not root.startswith("s3://"):
        raise SettingsError(f"Prefect results need an S3 artifact root; CANVASCRAFT_ARTIFACT_ROOT is {root}")
    bucket, _, prefix = root[len("s3://") :].partition("/")
    endpoint = settings.resolved_s3_endpoint_url
    credentials = AwsCredentials(
        region_name=settings.s3_region,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint) if endpoint else AwsClientParameters(),
    )
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        S3Bucket(
            bucket_name=bucket, bucket_folder=f"{prefix.strip('/')}/{RESULTS}".strip("/"), credentials=credentials
        ).save(BLOCK_NAME, overwrite=True)
    return BLOCK_SLUG
