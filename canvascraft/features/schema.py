"""Names shared by the Feast definitions and the offline files, importable without Feast (palette chunk tasks on
any worker compute frames keyed by ``JOIN_KEY`` and never need Feast itself)."""

ENTITY_NAME = "image"
JOIN_KEY = "image_id"
TIMESTAMP_FIELD = "event_timestamp"
CREATED_FIELD = "created"
OFFLINE_FOLDER = "offline"
PART_GLOB = "part-*.parquet"
