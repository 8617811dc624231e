"""Task: FID/KID of the best checkpoint, sample grid to MLflow and to the Prefect UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from canvascraft import tracking
from canvascraft.evaluation.stage import evaluate_checkpoint
from canvascraft.preprocess import ShardSet
from canvascraft.reports import evaluation_markdown
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.reporting import artifact_key


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_model(
    spec: PipelineSpec, checkpoint: str, shards: ShardSet, selection: dict[str, Any], parent_run_id: str
) -> dict[str, Any]:
    """Score the best checkpoint; log FID/KID with their comparability keys and the sample grid."""
    settings = get_settings()
    tracking.configure(settings)
    s3 = make_s3_client(settings) if (spec.evaluator.weights or "").startswith("s3://") else None
    result = evaluate_checkpoint(checkpoint, shards, selection["kept_image_ids"], spec, settings, s3_client=s3)
    score = result["score"]
    classifier = score.get("classifier") or {}
    tracking.log_to_run(
        parent_run_id,
        metrics={"fid": score["fid"], **({"kid_mean": score["kid_mean"], "kid_std": score["kid_std"]}
                                          if score["kid_mean"] is not None else {}),
                 **({"classifier_score": classifier["mean_top_probability"],
                     "classifier_coverage": classifier["coverage"],
                     "classifier_accuracy": classifier["classifier_accuracy"]} if classifier else {})},
        params={"fid_n": score["n"], "fid_dims": score["dims"], "fid_resize": score["resize"],
                "fid_weights_sha256": score["weights_sha256"],
                **({"classifier_confident": classifier["confident"]} if classifier else {})},
        artifacts=[Path(result["grid"])], artifact_path="samples",
    )
    create_markdown_artifact(
        key=artifact_key(spec.name, "evaluation"),
        markdown=evaluation_markdown(spec.name, score, parent_run_id, Path(result["grid"]).name),
        description="FID/KID of the best trial",
    )
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("http"):  # an MLflow server serves the grid: show it inline in the Prefect UI
        create_image_artifact(
            image_url=f"{uri}/get-artifact?path=samples/{Path(result['grid']).name}&run_uuid={parent_run_id}",
            key=artifact_key(spec.name, "samples"), description="Samples of the best trial",
        )
    return result
