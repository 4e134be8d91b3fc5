"""Dagster code location that syncs labelled Confluence pages into Unique AI."""
