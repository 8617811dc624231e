"""One "machine" publishing one registered version through the gate (run as a subprocess by the two-machines test).

argv: MODEL VERSION FID BARRIER_DIR DELAY LOCK   (LOCK: lease = the Prefect promotion lease, none = no lock at all)
Both processes wait at a file barrier (after their imports, which take seconds on a loaded machine), then this one
enters the gate DELAY seconds after the other.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import mlflow

from canvascraft.evaluation.scores import FidScore
from canvascraft.publishing import model_registry as registry
from canvascraft.settings import get_settings
from tasks.promotion_lock import promotion_lock

name, version, fid, barrier, delay, mode = (
    sys.argv[1],
    sys.argv[2],
    float(sys.argv[3]),
    Path(sys.argv[4]),
    float(sys.argv[5]),
    sys.argv[6],
)
mlflow.set_tracking_uri(get_settings().resolved_mlflow_tracking_uri)
score = FidScore(
    fid=fid,
    kid_mean=None,
    kid_std=None,
    n=32,
    n_real=32,
    dims=64,
    weights_sha256="a" * 64,
    resize="bilinear",
    reference="two-machines",
)
lock = promotion_lock(name) if mode == "lease" else (lambda: contextlib.nullcontext())
(barrier / version).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.01)
time.sleep(delay)
entered = time.time()
outcome = registry.gate_and_alias(name, version, score, metric="fid", margin=0.5, tag="candidate", lock=lock)
print(
    json.dumps(
        {
            "version": version,
            "promoted": outcome.promoted,
            "previous_champion": outcome.previous_champion,
            "entered": entered,
            "left": time.time(),
        }
    )
)
