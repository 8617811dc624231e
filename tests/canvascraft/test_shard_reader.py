"""ShardReader: the rows of a shard set read on demand, equal to the old load-everything path, shared per node."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import canvascraft.pieces as pieces
from canvascraft.artifact_root import ArtifactRoot, storage_options
from canvascraft.brushes import BrushStack
from canvascraft.datasets import seed_dataset
from canvascraft.errors import CanvasCraftError
from canvascraft.files import is_temp_name
from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
from canvascraft.preprocess import ShardSet, load_shards, preprocess
from canvascraft.settings import Settings, get_settings
from canvascraft.shard_reader import ShardReader, ShardReadError
from canvascraft.stack.s3_server import ARTIFACT_BUCKET
from tests.canvascraft.shard_reader_child import read_as_a_trial

STACK = [
    {"name": "resize", "params": {"size": 12}},
    {"name": "center_crop", "params": {"size": 12}},
    {"name": "grayscale"},
    {"name": "normalize"},
]
COUNT = 30


@pytest.fixture
def snapshot(s3_client, bucket: str, tmp_path: Path) -> SnapshotManifest:
    seed_dataset("digits", s3_client, f"s3://{bucket}/d", limit=COUNT)
    report = ingest([f"s3://{bucket}/d"], s3_client, tmp_path / "cache", ImageRules())
    return SnapshotManifest.load(report.manifest_path)


def make_shards(
    snapshot: SnapshotManifest, tmp_path: Path, artifacts: ArtifactRoot, monkeypatch: pytest.MonkeyPatch
) -> ShardSet:
    """The real preprocess stage, with small pieces so that one shard set has several files of unequal size."""
    monkeypatch.setattr(pieces, "MIN_SIZE", 3)
    monkeypatch.setattr(pieces, "MAX_SIZE", 8)
    monkeypatch.setattr(pieces, "DIVISOR", 3)
    shard_set = preprocess(snapshot, tmp_path / "cache", BrushStack.from_spec(STACK), artifacts, seed=0)
    sizes = [
        load_file(str(artifacts.local(key) if artifacts.is_local else artifacts.fetch(key)))["images"].shape[0]
        for key in shard_set.files()
    ]
    assert shard_set.count == COUNT and len(sizes) >= 4 and len(set(sizes)) >= 2, sizes
    return shard_set


@pytest.mark.parametrize("read", ["pread", "mmap"])
def test_reader_gathers_the_same_rows_as_load_shards(
    snapshot: SnapshotManifest, tmp_path: Path, artifacts: ArtifactRoot, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    everything = load_shards(shard_set, artifacts)
    # another machine: an empty read-through cache, so the reader fetches each shard file itself
    other = ArtifactRoot(artifacts.url, tmp_path / "other-cache", artifacts.fs.storage_options)
    reader = ShardReader(shard_set, other, read=read)  # type: ignore[arg-type]
    assert len(reader) == COUNT and reader.shape == (COUNT, 1, 12, 12)
    assert not (tmp_path / "other-cache").exists() or artifacts.is_local  # lazy: nothing fetched yet

    indices = torch.tensor([29, 0, 6, 7, 7, 13, 28, 14, 3, 21, 20, 0])  # unsorted, repeated, every shard
    assert torch.equal(reader.take(indices), everything[indices])
    assert torch.equal(reader.take(torch.arange(COUNT)), everything)
    assert reader.take(torch.tensor([], dtype=torch.long)).shape == (0, 1, 12, 12)
    random = torch.randperm(COUNT, generator=torch.Generator().manual_seed(3))
    assert torch.equal(reader.take(random), everything[random])
    if not artifacts.is_local:  # exactly the shard files were fetched, each one once
        fetched = sorted(p.name for p in (tmp_path / "other-cache").rglob("*.safetensors"))
        assert fetched == sorted(Path(key).name for key in shard_set.files())

    rows = torch.tensor([25, 2, 9, 16, 4])  # a training-set selection: an index map over the same files
    selected = reader.select(rows)
    assert len(selected) == 5 and selected.shape == (5, 1, 12, 12)
    assert torch.equal(selected.take(torch.tensor([4, 0, 3])), everything[rows[[4, 0, 3]]])
    assert torch.equal(selected.select(torch.tensor([1, 1])).take(torch.tensor([0, 1])), everything[[2, 2]])


def test_take_rejects_bad_indices_naming_the_shard_set(
    snapshot: SnapshotManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "cache-root")
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    reader = ShardReader(shard_set, artifacts)
    message = rf"shard reader of {shard_set.key}: indices must lie in 0\.\.29, got 0\.\.30"
    with pytest.raises(CanvasCraftError, match=message):
        reader.take(torch.tensor([0, 30]))
    with pytest.raises(CanvasCraftError, match="indices must be a 1-D integer tensor"):
        reader.take(torch.tensor([0.5]))
    with pytest.raises(CanvasCraftError, match=r"rows must lie in 0\.\.1, got 2\.\.2"):
        reader.select([0, 1]).select([2])


def test_take_is_thread_safe(snapshot: SnapshotManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "cache-root")
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    everything = load_shards(shard_set, artifacts)
    reader = ShardReader(shard_set, artifacts)  # first take from four threads at once: one lazy open
    mismatches: list[int] = []

    def work(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(40):
            indices = torch.randint(0, COUNT, (9,), generator=generator)
            if not torch.equal(reader.take(indices), everything[indices]):
                mismatches.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_missing_or_misshapen_shard_files_are_clear_errors(
    snapshot: SnapshotManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "cache-root")
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    first, second = shard_set.files()[:2]
    rows = load_file(str(artifacts.local(second)))["images"].shape[0]
    files = len(shard_set.files())

    save_file({"images": torch.zeros(rows, 1, 10, 10)}, str(artifacts.local(second)))
    with pytest.raises(
        ShardReadError,
        match=rf"shard set {shard_set.key}: shard file {second} holds images of "
        r"shape 1 x 10 x 10, but the shard set's shape is 1 x 12 x 12",
    ):
        ShardReader(shard_set, artifacts).take(torch.tensor([0]))

    save_file({"images": torch.zeros(rows - 1, 1, 12, 12)}, str(artifacts.local(second)))  # a row short
    with pytest.raises(
        ShardReadError,
        match=rf"shard set {shard_set.key}: its {files} shard files hold 29 rows, "
        "but the shard set's count is 30",
    ):
        ShardReader(shard_set, artifacts).take(torch.tensor([0]))

    artifacts.local(first).unlink()
    with pytest.raises(
        ShardReadError,
        match=rf"shard set {shard_set.key}: shard file {first} is not in the "
        "artifact root .*rerun the train flow's preprocess stage",
    ):
        ShardReader(shard_set, artifacts).take(torch.tensor([0]))


def test_pickle_carries_keys_and_selection_never_data_or_credentials(
    snapshot: SnapshotManifest, tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{ARTIFACT_BUCKET}/t-{uuid.uuid4().hex[:12]}"
    artifacts = ArtifactRoot(url, s3_settings.home / "cache" / "artifacts", storage_options(s3_settings))
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    reader = ShardReader(shard_set, artifacts).select(torch.arange(COUNT - 1, -1, -1))
    reader.take(torch.tensor([0]))  # opened: file handles must not travel either
    blob = pickle.dumps(reader)
    secret = s3_settings.s3_credentials()["aws_secret_access_key"]
    assert secret.encode() not in blob and len(blob) < 4096  # 30 float images alone are 17 KB
    restored = pickle.loads(blob)  # rebuilt from this process's settings: same root, same cache folder
    assert restored.artifacts.url == url and restored.artifacts.cache_dir == artifacts.cache_dir
    assert torch.equal(restored.take(torch.arange(COUNT)), load_shards(shard_set, artifacts).flip(0))


def test_two_concurrent_trials_share_one_shard_set(
    snapshot: SnapshotManifest, tmp_path: Path, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes reading one shard set on one node use one local copy of each shard file (same inode)."""
    url = f"s3://{ARTIFACT_BUCKET}/t-{uuid.uuid4().hex[:12]}"
    settings = get_settings()
    node = ArtifactRoot(url, settings.home / "cache" / "artifacts", storage_options(settings))
    shard_set = make_shards(
        snapshot, tmp_path, ArtifactRoot(url, tmp_path / "producer-cache", storage_options(settings)), monkeypatch
    )
    for key in shard_set.files():  # the node has no copy yet: both trials want to fetch each file
        node.local(key).unlink(missing_ok=True)
    blob = pickle.dumps(ShardReader(shard_set, node))

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    children = [context.Process(target=read_as_a_trial, args=(blob, barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    reports = [results.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    expected = {str(node.local(key)): node.local(key).stat().st_ino for key in shard_set.files()}
    assert reports[0]["opened"] == expected and reports[1]["opened"] == expected
    folder = node.local(shard_set.files()[0]).parent
    assert not [p.name for p in folder.iterdir() if is_temp_name(p.name)]  # no copy left half-written
    assert sorted(p.name for p in folder.glob("*.safetensors")) == sorted(Path(k).name for k in shard_set.files())
    everything = load_shards(shard_set, node).numpy()
    assert (reports[0]["rows"] == everything).all() and (reports[1]["rows"] == everything).all()


def test_trial_data_streams_the_kept_rows(
    snapshot: SnapshotManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainable's data: a reader of the training set's kept ids, equal to the old load-and-index tensor."""
    from canvascraft.tuning.trainable import trial_data

    monkeypatch.setenv("CANVASCRAFT_ARTIFACT_ROOT", str(tmp_path / "root"))
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "unused-cache")
    shard_set = make_shards(snapshot, tmp_path, artifacts, monkeypatch)
    kept = [image_id for i, image_id in enumerate(shard_set.image_ids) if i % 3 != 1]
    artifacts.put_json("training-sets/kept.json", kept)

    data = trial_data({"shards": shard_set.key, "kept_ids_key": "training-sets/kept.json"})
    assert isinstance(data, ShardReader) and len(data) == 20
    index = torch.tensor([i for i in range(COUNT) if i % 3 != 1])
    assert torch.equal(data.take(torch.arange(20)), load_shards(shard_set, artifacts)[index])
    assert len(trial_data({"shards": shard_set.key, "kept_ids_key": None})) == COUNT
