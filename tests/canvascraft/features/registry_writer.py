"""One process writing to a shared Feast store (run twice at once by test_store_services): apply its palette's view,
write rows, materialize. argv: PALETTE BARRIER_DIR (settings come from the environment).
NO_REGISTRY_LOCK=1 drops the Redis lock around registry writes, to show the lost update the test guards against."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from canvascraft.features import materialize as materialize_module
from canvascraft.features import store as store_module
from canvascraft.features.location import feast_data_dir
from canvascraft.features.materialize import materialize
from canvascraft.features.offline import write_new_features
from canvascraft.features.store import apply_definitions, open_store
from canvascraft.palettes import PaletteSet, build_palette
from canvascraft.settings import get_settings
from tests.canvascraft.features.test_store import batch

if os.environ.get("NO_REGISTRY_LOCK"):
    # both registry writers of this script: apply (store) and materialize (materialize)
    store_module.registry_write = lambda store: contextlib.nullcontext()  # type: ignore[assignment]
    materialize_module.registry_write = lambda store: contextlib.nullcontext()  # type: ignore[assignment]
palette_name, barrier = sys.argv[1], Path(sys.argv[2])
settings = get_settings()
store = open_store(settings)
palettes = PaletteSet((build_palette(palette_name, {"bins": 4} if palette_name == "rgb_histogram" else {}),))
(barrier / palette_name).touch()
while len(list(barrier.iterdir())) < 2:  # both processes have imported Feast and opened the store
    time.sleep(0.01)
apply_definitions(store, {f"svc-{palette_name}": palettes}, feast_data_dir(settings))
images, ids = batch(10, seed=11)
write_new_features(store, images, ids, palettes)
print(materialize(store, palettes).rows)
