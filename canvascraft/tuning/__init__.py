"""Hyper-parameter search on Ray Tune (the seeds' ``IHpTunerStrategy``): search space, trainable, search run."""
