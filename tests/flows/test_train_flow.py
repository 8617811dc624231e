"""The train flow under the Prefect test harness, against the real loopback S3."""

from __future__ import annotations

from canvascraft.datasets import seed_dataset


def test_train_flow_ingests_and_preprocesses_with_caching(prefect_harness, s3_client, bucket: str) -> None:
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    from flows.train import train

    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=24)
    spec = {
        "name": "flowtest",
        "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 10},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "normalize"}],
    }
    first = train(spec, return_state=True)
    assert first.is_completed()
    result = first.result()
    assert result.valid == 24 and result.quarantined == 0 and result.images == 24

    second = train(spec, return_state=True)  # shards exist now: this run stores the cache record
    assert second.result().dataset_version == result.dataset_version
    third = train(spec, return_state=True)
    with get_client(sync_client=True) as client:  # this test's third flow run only, not the shared server's runs
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[third.state_details.flow_run_id]))
        )
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[third.state_details.flow_run_id])
            )
        )
    preprocess_states = [r.state.name for r in runs if r.name.startswith("preprocess")]
    # the third run's preprocess stage hit Prefect's content-keyed cache at its lookup: no piece ran again
    assert preprocess_states == ["Cached"], [(r.name, r.state.name) for r in runs]
    assert subflows == []  # the stages ran inside the train flow run (a subflow costs ~1.7 s of Prefect's own)
    artifact = Artifact.get("flowtest-ingest")
    assert artifact is not None and result.dataset_version in artifact.data


def test_train_flow_fails_clearly_on_bad_spec(prefect_harness) -> None:
    from flows.train import train

    state = train({"name": "bad", "data": {"source": "s3://bkt/p"}, "device": "tpu"}, return_state=True)
    assert state.is_failed()
    assert "device: Input should be 'auto', 'cpu' or 'cuda' (got 'tpu')" in str(state.message)
