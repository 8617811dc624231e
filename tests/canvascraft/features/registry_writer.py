"""One process writing to a shared Feast store (run twice at once by test_store_services): apply its palette's view,
write rows, materialize. argv: PALETTE BARRIER_DIR (settings come from the environment).
NO_REGISTRY_LOCK=1 drops the Redis lock around registry writes, to show the lost update the test guards against."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from canvascraft.features import store as fs
from canvascraft.palettes import PaletteSet, build_palette
from canvascraft.settings import get_settings
from tests.canvascraft.features.test_store import batch

if os.environ.get("NO_REGISTRY_LOCK"):
    fs.registry_write = lambda store: contextlib.nullcontext()  # type: ignore[assignment]
palette_name, barrier = sys.argv[1], Path(sys.argv[2])
settings = get_settings()
store = fs.open_store(settings)
palettes = PaletteSet((build_palette(palette_name, {"bins": 4} if palette_name == "rgb_histogram" else {}),))
(barrier / palette_name).touch()
while len(list(barrier.iterdir())) < 2:  # both processes have imported Feast and opened the store
    time.sleep(0.01)
fs.apply_definitions(store, {f"svc-{palette_name}": palettes}, fs.feast_data_dir(settings))
images, ids = batch(10, seed=11)
fs.write_new_features(store, images, ids, palettes)
print(fs.materialize(store, palettes).rows)
