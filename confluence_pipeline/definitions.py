"""The code location: every job, schedule, sensor and resource of the connector, wired in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import dagster as dg

from confluence_pipeline.jobs.delete_content import confluence_delete_content
from confluence_pipeline.jobs.reset import confluence_reset
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline.schedules import build_sync_schedule
from confluence_pipeline.sensors import build_change_sensor, build_failure_sensor
from confluence_pipeline.settings import LoadTimeConfigurationError

T = TypeVar("T")


def _build_all(*builders: Callable[[], T]) -> list[T]:
    """Run every builder, so one load error names every bad load-time variable, not just the first."""
    built: list[T] = []
    errors: list[LoadTimeConfigurationError] = []
    for build in builders:
        try:
            built.append(build())
        except LoadTimeConfigurationError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise LoadTimeConfigurationError("\n".join(str(e) for e in errors))
    return built


# Read from the environment now: an invalid CRON_SCHEDULE / CRON_TIMEZONE / CHANGE_SENSOR_INTERVAL_SECONDS
# fails loading with a message naming each bad variable (Dagster alone would fail on a bare cron error).
_schedule, _change_sensor, _failure_sensor = _build_all(build_sync_schedule, build_change_sensor, build_failure_sensor)

defs = dg.Definitions(
    jobs=[confluence_sync, confluence_reset, confluence_delete_content],
    schedules=[_schedule],
    sensors=[_change_sensor, _failure_sensor],
    resources=resources_from_env(),
)
