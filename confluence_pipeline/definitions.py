"""The code location: every job, schedule, sensor and resource of the connector, wired in one place."""

from __future__ import annotations

import dagster as dg

from confluence_pipeline.jobs.delete_content import confluence_delete_content
from confluence_pipeline.jobs.reset import confluence_reset
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline.schedules import build_sync_schedule
from confluence_pipeline.sensors import build_change_sensor, build_failure_sensor

defs = dg.Definitions(
    jobs=[confluence_sync, confluence_reset, confluence_delete_content],
    # Read from the environment now: an invalid CRON_SCHEDULE / CRON_TIMEZONE /
    # CHANGE_SENSOR_INTERVAL_SECONDS fails loading with a message naming the variable.
    schedules=[build_sync_schedule()],
    sensors=[build_change_sensor(), build_failure_sensor()],
    resources=resources_from_env(),
)
