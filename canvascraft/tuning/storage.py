"""Where Ray Tune keeps experiments: ``<artifact root>/ray_results``, so a search resumes from any driver.

Tune's own S3 client (pyarrow's) writes a folder-marker object per directory level, which S3-compatible servers
such as the embedded rclone store as a file (every later key under it then fails with a 500). s3fs writes no
markers, so Tune gets s3fs wrapped as a pyarrow filesystem (``PyFileSystem(FSSpecHandler(...))``). Ray pickles
that filesystem into ``tuner.pkl``, the experiment state and every trial: the wrapper pickles *without* keys and
each process (driver, trial worker, a later driver) rebuilds it from its own settings, so no credential is ever
written to the bucket or Ray's GCS.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import s3fs

from canvascraft.artifact_root import storage_options
from canvascraft.settings import Settings, get_settings

RESULTS = "ray_results"


def _from_settings() -> SettingsS3FileSystem:
    """An s3fs filesystem for the artifact root of this process's settings (the unpickling side)."""
    return SettingsS3FileSystem(**storage_options(get_settings()))


class SettingsS3FileSystem(s3fs.S3FileSystem):
    """s3fs whose pickle carries no keys: it is rebuilt from the settings of whichever process unpickles it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _from_settings, ()


def tune_storage(settings: Settings) -> tuple[str, pafs.FileSystem | None]:
    """Tune's ``storage_path`` and ``storage_filesystem`` for the settings' artifact root."""
    root = settings.resolved_artifact_root
    if not root.startswith("s3://"):
        path = Path(root) / RESULTS
        path.mkdir(parents=True, exist_ok=True)
        return str(path), None
    fs = SettingsS3FileSystem(**storage_options(settings))
    # with a storage_filesystem Tune wants "bucket/prefix": an "s3://" path is normalised to "s3:/..." and breaks
    return f"{root[len('s3://') :].rstrip('/')}/{RESULTS}", pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def local_checkpoint(checkpoint: Any, cache_dir: Path) -> str:
    """A local folder holding a Tune checkpoint (downloaded once from remote storage into ``cache_dir``)."""
    if checkpoint.filesystem is None or checkpoint.filesystem.type_name == "local":
        return str(checkpoint.path)
    target = cache_dir / checkpoint.path.strip("/")
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        checkpoint.to_directory(str(target))
        (target / ".complete").touch()
    return str(target)
