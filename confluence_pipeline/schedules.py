"""`confluence_sync_schedule`: the sync on `CRON_SCHEDULE` in `CRON_TIMEZONE`, read when the code location loads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster import RunsFilter

# The same check ScheduleDefinition runs (dagster's vendored croniter); calling it first lets us name
# the variable instead of failing the whole code location with a bare cron error.
from dagster._utils.schedules import is_valid_cron_string

from confluence_pipeline.jobs.runtime import IN_PROGRESS
from confluence_pipeline.jobs.sync import JOB_NAME as SYNC_JOB_NAME
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.settings import LoadTimeConfigurationError

SCHEDULE_NAME = "confluence_sync_schedule"
DEFAULT_CRON = "0 1 * * *"
DEFAULT_TIMEZONE = "UTC"
TRIGGER_TAG = "confluence_pipeline/trigger"


class ScheduleConfigurationError(LoadTimeConfigurationError):
    """CRON_SCHEDULE or CRON_TIMEZONE is invalid; the message names the variable."""


def schedule_settings(environ: Mapping[str, str] | None = None) -> tuple[str, str, bool]:
    """(cron, timezone, running by default) from the environment; raises naming every bad variable."""
    env = os.environ if environ is None else environ
    cron = " ".join((env.get("CRON_SCHEDULE") or "").split())
    timezone = (env.get("CRON_TIMEZONE") or "").strip() or DEFAULT_TIMEZONE
    problems: list[str] = []
    if cron and not is_valid_cron_string(cron):
        problems.append(
            f"CRON_SCHEDULE: {cron!r} is not a valid 5-field cron expression (e.g. '0 1 * * *' for 01:00 daily); "
            "leave it empty to keep the schedule stopped"
        )
    if not valid_timezone(timezone):
        problems.append(f"CRON_TIMEZONE: {timezone!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Zurich')")
    if problems:
        raise ScheduleConfigurationError("Invalid schedule configuration:\n  " + "\n  ".join(problems))
    return cron or DEFAULT_CRON, timezone, bool(cron)


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def sync_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Ids of confluence_sync runs that are queued or running (at most a few)."""
    runs = instance.get_runs(filters=RunsFilter(job_name=SYNC_JOB_NAME, statuses=IN_PROGRESS), limit=3)
    return [run.run_id for run in runs]


def build_sync_schedule(environ: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    """The schedule as the environment configures it: running on CRON_SCHEDULE, or stopped on 01:00 daily."""
    cron, timezone, running = schedule_settings(environ)

    @dg.schedule(
        name=SCHEDULE_NAME,
        job=confluence_sync,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"confluence_sync on '{cron}' ({timezone}), from CRON_SCHEDULE"
            if running
            else f"CRON_SCHEDULE is empty: stopped, on '{cron}' ({timezone}) once switched on"
        ),
    )
    def confluence_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        busy = sync_in_progress(context.instance)
        if busy:
            return dg.SkipReason(f"a confluence_sync run is already queued or running ({', '.join(busy)})")
        return dg.RunRequest(tags={TRIGGER_TAG: SCHEDULE_NAME})

    return confluence_sync_schedule
