"""The body of one 'trial' process of the shard-reader tests (a light module: a spawned child imports only this)."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch


def read_as_a_trial(blob: bytes, barrier: Any, results: Any) -> None:
    """Unpickle the reader, read rows, and report the inodes of the shard files this process holds open."""
    torch.set_num_threads(1)
    reader = pickle.loads(blob)
    barrier.wait()  # both trials fetch and open at the same moment
    generator = torch.Generator().manual_seed(os.getpid())
    for _ in range(5):
        reader.take(torch.randint(0, len(reader), (8,), generator=generator))
    cache = str(reader.artifacts.cache_dir)
    opened = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(cache) and ".safetensors" in target:
                opened[target] = os.stat(f"/proc/self/fd/{fd}").st_ino  # the open file's inode, even if replaced
        except OSError:
            continue
    barrier.wait()  # both still hold their files while the other reports
    results.put({"opened": opened, "rows": reader.take(torch.arange(len(reader))).numpy()})
