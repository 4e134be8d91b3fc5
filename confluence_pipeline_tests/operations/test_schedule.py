"""`confluence_sync_schedule`: from CRON_SCHEDULE/CRON_TIMEZONE, stopped when empty, skips while a sync is busy."""

from __future__ import annotations

import dagster as dg
import pytest

from confluence_pipeline.config.location import DEFAULT_CRON, load_location_settings
from confluence_pipeline.config.settings import LoadTimeConfigurationError as ScheduleConfigurationError
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.schedules import SCHEDULE_NAME, TRIGGER_TAG
from confluence_pipeline.schedules import build_sync_schedule as build_from_settings
from confluence_pipeline_tests.support import fake_run


def build_sync_schedule(environ: dict[str, str]) -> dg.ScheduleDefinition:
    return build_from_settings(load_location_settings(environ), confluence_sync)


@pytest.mark.parametrize("environ", [{}, {"CRON_SCHEDULE": ""}, {"CRON_SCHEDULE": "   "}])
def test_empty_cron_gives_a_stopped_schedule_on_the_default_time(environ: dict[str, str]) -> None:
    schedule = build_sync_schedule(environ)

    assert schedule.name == SCHEDULE_NAME
    assert schedule.job_name == "confluence_sync"
    assert schedule.cron_schedule == DEFAULT_CRON
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_set_cron_runs_by_default_in_its_timezone() -> None:
    schedule = build_sync_schedule({"CRON_SCHEDULE": " */30  6-18 * * 1-5 ", "CRON_TIMEZONE": "Europe/Zurich"})

    assert schedule.cron_schedule == "*/30 6-18 * * 1-5"
    assert schedule.execution_timezone == "Europe/Zurich"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize("cron", ["every day", "0 1 * *", "61 1 * * *", "0 0 30 2 *", "* * * * * *"])
def test_an_invalid_cron_fails_naming_the_variable(cron: str) -> None:
    with pytest.raises(ScheduleConfigurationError, match="CRON_SCHEDULE") as raised:
        build_sync_schedule({"CRON_SCHEDULE": cron})
    assert "CRON_TIMEZONE" not in str(raised.value)


def test_an_invalid_timezone_fails_naming_the_variable_even_with_an_empty_cron() -> None:
    with pytest.raises(ScheduleConfigurationError, match=r"CRON_TIMEZONE: 'Mars/Olympus'"):
        build_sync_schedule({"CRON_SCHEDULE": "", "CRON_TIMEZONE": "Mars/Olympus"})


def test_both_bad_variables_are_named_at_once() -> None:
    with pytest.raises(ScheduleConfigurationError) as raised:
        build_sync_schedule({"CRON_SCHEDULE": "nope", "CRON_TIMEZONE": "Nowhere"})
    assert "CRON_SCHEDULE" in str(raised.value) and "CRON_TIMEZONE" in str(raised.value)


def test_requests_a_sync_when_none_is_on_its_way(instance: dg.DagsterInstance) -> None:
    schedule = build_sync_schedule({"CRON_SCHEDULE": "0 1 * * *"})
    fake_run(instance, dg.DagsterRunStatus.SUCCESS)
    fake_run(instance, dg.DagsterRunStatus.STARTED, job_name="confluence_reset")

    result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))

    assert result.skip_message is None
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags[TRIGGER_TAG] == SCHEDULE_NAME


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_skips_while_a_sync_is_queued_or_running(instance: dg.DagsterInstance, status: dg.DagsterRunStatus) -> None:
    schedule = build_sync_schedule({"CRON_SCHEDULE": "0 1 * * *"})
    busy = fake_run(instance, status)

    result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))

    assert result.run_requests == []
    assert result.skip_message is not None and busy.run_id in result.skip_message
