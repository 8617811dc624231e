"""Ray Tune's storage on the artifact root: s3fs without folder markers, pickled without keys."""

from __future__ import annotations

import pickle
from pathlib import Path

from canvascraft.settings import Settings, get_settings
from canvascraft.tuning.storage import tune_storage


def test_s3_storage_pickles_without_keys_and_writes_no_folder_markers(s3_settings: Settings) -> None:
    settings = get_settings()
    path, fs = tune_storage(settings)
    assert fs is not None and path == "canvascraft-artifacts/ray_results"
    blob = pickle.dumps(fs)
    secret = settings.s3_credentials()["aws_secret_access_key"]
    assert secret.encode() not in blob  # Ray pickles the filesystem into tuner.pkl and every trial
    clone = pickle.loads(blob)  # rebuilt from this process's settings: it can read and write
    target = f"{path}/pickle-check/a/b/file.txt"
    with clone.open_output_stream(target) as out:
        out.write(b"ok")
    with fs.open_input_stream(target) as handle:
        assert handle.read() == b"ok"
    # no folder-marker objects: rclone would store "a/" as a file and fail every later key under it
    data_dir = Path(settings.embedded_s3["data_dir"]) / "canvascraft-artifacts" / "ray_results" / "pickle-check"
    assert (data_dir / "a").is_dir() and (data_dir / "a" / "b" / "file.txt").read_bytes() == b"ok"


def test_local_artifact_root_uses_a_plain_folder(tmp_path: Path) -> None:
    path, fs = tune_storage(Settings(home=tmp_path, use_embedded=False))
    assert fs is None and Path(path) == tmp_path / "artifacts" / "ray_results" and Path(path).is_dir()
