"""The sync's stages as plain Python (clients in, reports out); the Dagster ops only orchestrate them."""
