"""Rows of a shard set read on demand from its safetensors files, so a trial's memory does not grow with the data.

A ``ShardReader`` is the streaming ``TrainingData`` of the trainers (``canvascraft/trainers/data.py``): ``take``
gathers the requested rows from the shard files (grouped and sorted per shard for locality, returned in the
requested order) and nothing else is held in memory. The files are this machine's read-through copies
(``ArtifactRoot.fetch``), downloaded once per node under a file lock, so concurrent trials on one node open the
same files and share one copy in the page cache.

Rows are read with positional reads (``os.preadv``) straight into the output tensor: the page cache holds the
data once per node, and no part of a shard is mapped into the trial. A memory map (safetensors' ``safe_open``,
``read="mmap"``) reads the same bytes, but every page it touches stays in the trial's resident set (on ext4 with
large folios, each 64-row batch of a 20k x 64 x 64 shard mapped ~50 MB more); it is kept for comparison
(``bench/memory.py``). Each shard's row count, dtype and shape come from its own header (``safe_open``), never from
an assumed shard size.

A reader pickles as its shard set's keys, count, shape, row selection and the artifact root's URL, never data or
credentials: the unpickling process (a Ray worker on any node) rebuilds the root from its own settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from canvascraft.artifact_root import ArtifactRoot, storage_options
from canvascraft.errors import CanvasCraftError
from canvascraft.settings import get_settings

if TYPE_CHECKING:  # the reader needs the index's keys only; preprocess (brushes, torchvision) stays unimported
    from canvascraft.preprocess import ShardSet

TENSOR = "images"  # the one tensor of a shard file: N x C x H x W
ReadMode = Literal["pread", "mmap"]
READ_MODES: tuple[ReadMode, ...] = ("pread", "mmap")
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class ShardReadError(CanvasCraftError):
    """A shard file of a shard set is missing, unreadable or does not match the shard set's shape and count."""


@contextmanager
def node_lock(artifacts: ArtifactRoot, key: str) -> Iterator[None]:
    """Hold this machine's lock for ``key`` while fetching it: concurrent trials make one local copy, not two.

    Without it two trials starting together each download the object and the later rename replaces the file the
    earlier one already opened, leaving two copies in the page cache. A local root is read in place: no lock.
    """
    if artifacts.is_local:
        yield
        return
    folder = artifacts.cache_dir / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock"
    with open(lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released on close, also when the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Shard:
    """One opened shard file: its rows' place in the shard set and how to read them."""

    key: str
    path: Path
    start: int  # global index of its first row
    rows: int
    offset: int  # byte offset of row 0 in the file
    row_bytes: int
    dtype: torch.dtype
    fd: int | None = None  # read="pread"
    view: torch.Tensor | None = None  # read="mmap": zero-copy view of the mapped tensor
    handle: Any = None  # read="mmap": keeps the safe_open mapping alive


class ShardReader:
    """The images of a shard set (optionally a row selection of it), gathered by index from its shard files."""

    def __init__(self, shard_set: ShardSet, artifacts: ArtifactRoot, *, read: ReadMode = "pread") -> None:
        self._setup(shard_set.key, shard_set.files(), shard_set.count, tuple(shard_set.shape), artifacts, None, read)

    def _setup(
        self,
        key: str,
        files: list[str],
        count: int,
        row_shape: tuple[int, ...],
        artifacts: ArtifactRoot,
        rows: torch.Tensor | None,
        read: str,
    ) -> None:
        if read not in READ_MODES:
            raise CanvasCraftError(
                f"shard reader of {key}: read={read!r} is not supported; allowed values: {', '.join(READ_MODES)}"
            )
        self.key, self.files, self.count, self.row_shape = key, list(files), int(count), tuple(row_shape)
        self.artifacts, self.read = artifacts, read
        self._rows = rows  # global row of each of this reader's rows (a selection is an index map, not a copy)
        self._lock = threading.Lock()
        self._shards: list[_Shard] | None = None
        self._starts: torch.Tensor | None = None
        self._dtype = torch.float32

    def __repr__(self) -> str:
        return f"ShardReader({self.key!r}, {len(self)} of {self.count} rows, {len(self.files)} files, {self.read})"

    # -- TrainingData ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.count if self._rows is None else len(self._rows)

    @property
    def shape(self) -> tuple[int, ...]:
        """N x C x H x W of this reader's rows (from the shard set's index: no file is opened)."""
        return (len(self), *self.row_shape)

    def take(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """The rows at ``indices`` (of this reader), in that order, as a new CPU tensor; safe to call from threads."""
        local = self._check_indices(torch.as_tensor(indices), len(self), "indices")
        wanted = local if self._rows is None else self._rows[local]
        shards = self._open()
        out = torch.empty((len(wanted), *self.row_shape), dtype=self._dtype)
        if len(wanted) == 0:
            return out
        order = torch.argsort(wanted, stable=True)  # per shard, ascending offsets: sequential reads
        sorted_rows = wanted[order]
        assert self._starts is not None
        owner = torch.searchsorted(self._starts, sorted_rows, right=True) - 1
        if self.read == "mmap":
            self._gather_mapped(shards, out, order, sorted_rows, owner)
        else:
            self._gather_pread(shards, out, order.tolist(), sorted_rows.tolist(), owner.tolist())
        return out

    def select(self, rows: torch.Tensor | Sequence[int]) -> ShardReader:
        """A reader of ``rows`` of this one (in that order): an index map over the same files, no data copied."""
        chosen = self._check_indices(torch.as_tensor(rows), len(self), "rows").clone()
        selected = ShardReader.__new__(ShardReader)
        selected._setup(
            self.key,
            self.files,
            self.count,
            self.row_shape,
            self.artifacts,
            chosen if self._rows is None else self._rows[chosen],
            self.read,
        )
        return selected

    def local_files(self) -> list[Path]:
        """This machine's copies of the shard files (fetched and opened if they were not yet)."""
        return [shard.path for shard in self._open()]

    def close(self) -> None:
        """Close the shard files (a later ``take`` opens them again)."""
        with self._lock:
            _close(self._shards or [])
            self._shards, self._starts = None, None

    def __del__(self) -> None:
        if getattr(self, "_shards", None):  # absent when _setup raised
            with contextlib.suppress(OSError):
                _close(self._shards or [])

    # -- pickling: keys and the root's URL, never data, file handles or credentials ------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "files": self.files,
            "count": self.count,
            "shape": list(self.row_shape),
            "url": self.artifacts.url,
            "read": self.read,
            "rows": None if self._rows is None else self._rows.numpy().copy(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        rows = None if state["rows"] is None else torch.from_numpy(np.asarray(state["rows"], dtype=np.int64))
        self._setup(
            state["key"],
            state["files"],
            state["count"],
            tuple(state["shape"]),
            _root_from_settings(state["url"]),
            rows,
            state["read"],
        )

    # -- internals ------------------------------------------------------------------------------------------------
    def _check_indices(self, indices: torch.Tensor, size: int, what: str) -> torch.Tensor:
        if indices.dtype == torch.bool or indices.is_floating_point() or indices.is_complex() or indices.ndim != 1:
            raise CanvasCraftError(
                f"shard reader of {self.key}: {what} must be a 1-D integer tensor, got "
                f"dtype {indices.dtype} with shape {tuple(indices.shape)}"
            )
        indices = indices.to("cpu", torch.long)
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= size):
            raise CanvasCraftError(
                f"shard reader of {self.key}: {what} must lie in 0..{size - 1}, got "
                f"{int(indices.min())}..{int(indices.max())}"
            )
        return indices

    def _open(self) -> list[_Shard]:
        shards = self._shards
        if shards is None:
            with self._lock:
                if self._shards is None:
                    opened = self._open_all()
                    self._dtype = opened[0].dtype if opened else torch.float32
                    self._starts = torch.tensor([shard.start for shard in opened], dtype=torch.long)
                    self._shards = opened  # last: a thread that sees it without the lock sees the rest too
                shards = self._shards
        return shards

    def _open_all(self) -> list[_Shard]:
        shards: list[_Shard] = []
        try:
            for key in self.files:
                with node_lock(self.artifacts, key):
                    path = self.artifacts.fetch(key)
                if path is None:
                    raise ShardReadError(
                        f"shard set {self.key}: shard file {key} is not in the artifact root "
                        f"{self.artifacts.url}; rerun the train flow's preprocess stage"
                    )
                shards.append(self._open_shard(key, path, sum(shard.rows for shard in shards)))
                if shards[-1].dtype != shards[0].dtype:
                    raise ShardReadError(
                        f"shard set {self.key}: shard file {key} has dtype {shards[-1].dtype}, "
                        f"but {shards[0].key} has {shards[0].dtype}"
                    )
            total = sum(shard.rows for shard in shards)
            if total != self.count:
                raise ShardReadError(
                    f"shard set {self.key}: its {len(self.files)} shard files hold {total} rows, "
                    f"but the shard set's count is {self.count}"
                )
        except BaseException:
            _close(shards)
            raise
        return shards

    def _open_shard(self, key: str, path: Path, start: int) -> _Shard:
        try:
            with safe_open(str(path), framework="pt") as handle:
                names = set(handle.keys())
                if TENSOR not in names:
                    raise ShardReadError(
                        f"shard set {self.key}: shard file {key} has no tensor {TENSOR!r} (it holds {sorted(names)})"
                    )
                sliced = handle.get_slice(TENSOR)
                shape, dtype_name = list(sliced.get_shape()), sliced.get_dtype()
        except SafetensorError as exc:
            raise ShardReadError(
                f"shard set {self.key}: shard file {key} is not a readable safetensors file: {exc}"
            ) from exc
        if len(shape) != 1 + len(self.row_shape) or tuple(shape[1:]) != self.row_shape:
            raise ShardReadError(
                f"shard set {self.key}: shard file {key} holds images of shape "
                f"{' x '.join(map(str, shape[1:]))}, but the shard set's shape is "
                f"{' x '.join(map(str, self.row_shape))}"
            )
        if dtype_name not in _DTYPES:
            raise ShardReadError(
                f"shard set {self.key}: shard file {key} has dtype {dtype_name}; allowed values: {', '.join(_DTYPES)}"
            )
        dtype = _DTYPES[dtype_name]
        row_bytes = int(np.prod(self.row_shape)) * dtype.itemsize
        shard = _Shard(key, path, start, shape[0], _data_offset(path), row_bytes, dtype)
        if self.read == "mmap":
            shard.handle = safe_open(str(path), framework="pt")
            shard.view = shard.handle.get_tensor(TENSOR)  # zero-copy: a view of the memory-mapped file
        else:
            shard.fd = os.open(path, os.O_RDONLY)
        return shard

    def _gather_pread(
        self, shards: list[_Shard], out: torch.Tensor, positions: list[int], rows: list[int], owners: list[int]
    ) -> None:
        """Read each run of consecutive rows (same shard, consecutive output slots) with one positional read."""
        raw = out.view(len(out), -1).view(torch.uint8).numpy()  # writable bytes of ``out``, one line per row
        i = 0
        while i < len(rows):
            j = i + 1
            while (
                j < len(rows)
                and owners[j] == owners[i]
                and rows[j] == rows[j - 1] + 1
                and positions[j] == positions[j - 1] + 1
            ):
                j += 1
            shard = shards[owners[i]]
            _read_exactly(shard, raw[positions[i] : positions[i] + (j - i)], rows[i] - shard.start, self.key)
            i = j

    def _gather_mapped(
        self, shards: list[_Shard], out: torch.Tensor, order: torch.Tensor, rows: torch.Tensor, owners: torch.Tensor
    ) -> None:
        """Copy each shard's rows out of its memory-mapped view (one ``index_select`` per shard)."""
        owner_ids, counts = torch.unique_consecutive(owners, return_counts=True)
        begin = 0
        for owner, count in zip(owner_ids.tolist(), counts.tolist(), strict=True):
            shard = shards[owner]
            assert shard.view is not None
            chunk = shard.view.index_select(0, rows[begin : begin + count] - shard.start)
            out.index_copy_(0, order[begin : begin + count], chunk)
            begin += count


def _close(shards: list[_Shard]) -> None:
    """Close the files of opened shards (a mapped view is released with its handle)."""
    for shard in shards:
        if shard.fd is not None:
            os.close(shard.fd)
            shard.fd = None
        shard.view = shard.handle = None


def _read_exactly(shard: _Shard, target: np.ndarray, first_row: int, set_key: str) -> None:
    """Fill ``target`` (rows x row_bytes) from ``shard`` starting at ``first_row`` (positional: thread-safe)."""
    assert shard.fd is not None
    view = target.data.cast("B")
    offset, done = shard.offset + first_row * shard.row_bytes, 0
    while done < len(view):  # one preadv may return fewer bytes than asked (very large reads, signals)
        got = os.preadv(shard.fd, [view[done:]], offset + done)
        if got == 0:
            raise ShardReadError(
                f"shard set {set_key}: shard file {shard.key} ended at byte {offset + done}; "
                "the local copy is truncated (delete it to fetch it again)"
            )
        done += got


def _data_offset(path: Path) -> int:
    """Byte offset of the ``images`` tensor's data: 8-byte header length, JSON header, then the data buffer."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))  # the safetensors format: little-endian u64 header size
        header = json.loads(handle.read(length))
    return 8 + length + int(header[TENSOR]["data_offsets"][0])


def _root_from_settings(url: str) -> ArtifactRoot:
    """The artifact root at ``url`` with this process's cache folder and S3 credentials (as ``artifact_root``)."""
    settings = get_settings()
    options = storage_options(settings, force_s3=True) if url.startswith("s3://") else {}
    return ArtifactRoot(url, settings.home / "cache" / "artifacts", options)
