"""A Tune driver in a process of its own, for the killed-driver test: ``python search_driver.py SPEC_JSON SHARDS_JSON``.

Runs ``run_search`` exactly as the tune task does; the test SIGKILLs this process's group mid-search.
"""

from __future__ import annotations

import json
import sys

from canvascraft.preprocess import ShardSet
from canvascraft.settings import get_settings
from canvascraft.spec import load_spec
from canvascraft.tuning.search import run_search

if __name__ == "__main__":
    spec = load_spec(json.loads(sys.argv[1]))
    shard_set = ShardSet.model_validate_json(sys.argv[2])
    run_search(spec, shard_set, None, get_settings(), dataset_version=shard_set.dataset_version)
