"""The code location: every job, schedule, sensor and resource of the connector, wired in one place."""

from __future__ import annotations

import dagster as dg

from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env

defs = dg.Definitions(
    jobs=[confluence_sync],
    resources=resources_from_env(),
)
