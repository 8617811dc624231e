"""Thin Prefect task wrappers around the pure ``canvascraft`` core (retries on I/O only, caching by content)."""
