"""The code location: every job, schedule, sensor and resource of the connector, wired in one place."""

from __future__ import annotations

import os

import dagster as dg

from confluence_pipeline.config.location import load_location_settings
from confluence_pipeline.config.settings import scrubber_for_variables
from confluence_pipeline.jobs.delete_content import confluence_delete_content
from confluence_pipeline.jobs.reset import confluence_reset
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline.schedules import build_sync_schedule
from confluence_pipeline.sensors import build_change_sensor, build_failure_sensor

# Read now: an invalid CRON_SCHEDULE, CRON_TIMEZONE, CHANGE_SENSOR_INTERVAL_SECONDS, ALERT_WEBHOOK_URL or
# DAGSTER_WEBSERVER_URL fails loading with one message naming each bad variable.
_location = load_location_settings(os.environ)

defs = dg.Definitions(
    jobs=[confluence_sync, confluence_reset, confluence_delete_content],
    schedules=[build_sync_schedule(_location, confluence_sync)],
    sensors=[
        build_change_sensor(_location, confluence_sync),
        build_failure_sensor(_location, [confluence_sync], scrubber_for_variables(os.environ)),
    ],
    resources=resources_from_env(),
)
