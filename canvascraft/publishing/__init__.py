"""Publishing to the MLflow model registry: the pyfunc generator, the promotion gate, rollback and generation."""
