"""`confluence_sync_schedule` (one per instance): the sync on `CRON_SCHEDULE` in `CRON_TIMEZONE`, stopped when empty."""

from __future__ import annotations

import dagster as dg
from dagster import RunsFilter

from confluence_pipeline.config.location import ScheduleSettings
from confluence_pipeline.jobs.writers import IN_PROGRESS

SCHEDULE_NAME = "confluence_sync_schedule"
TRIGGER_TAG = "confluence_pipeline/trigger"


def sync_in_progress(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Ids of runs of `job_name` that are queued or running (at most a few)."""
    runs = instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=IN_PROGRESS), limit=3)
    return [run.run_id for run in runs]


def build_sync_schedule(
    location: ScheduleSettings, job: dg.JobDefinition, *, name: str = SCHEDULE_NAME
) -> dg.ScheduleDefinition:
    """The schedule as its instance configures it: running on CRON_SCHEDULE, or stopped on 01:00 daily."""
    cron, timezone, running = location.cron, location.cron_timezone, location.schedule_running

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"{job.name} on '{cron}' ({timezone}), from CRON_SCHEDULE"
            if running
            else f"CRON_SCHEDULE is empty: stopped, on '{cron}' ({timezone}) once switched on"
        ),
    )
    def confluence_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        busy = sync_in_progress(context.instance, job.name)
        if busy:
            return dg.SkipReason(f"a {job.name} run is already queued or running ({', '.join(busy)})")
        return dg.RunRequest(tags={TRIGGER_TAG: name})

    return confluence_sync_schedule
