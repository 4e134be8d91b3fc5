"""Dagster jobs and the ops they orchestrate."""
