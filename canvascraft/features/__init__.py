"""Feature palettes served by Feast.

``location`` (where Feast's files live) and ``schema`` (column names) are light; ``palette_chunks`` computes
palettes per content-defined chunk without Feast. ``definitions`` builds the Feast objects, ``store`` opens the
repo and applies them, ``offline`` appends part files, ``materialize`` fills the online store, ``retrieval`` reads
historical and online features, ``filters`` curates a training set and ``stage`` is the features stage of a run.
Feast modules import feast (slow, ~15 s cold), so this package imports none of them eagerly.
"""
