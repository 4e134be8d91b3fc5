"""The service's view of the jobs matches the code location: names, run config schemas, result steps, tags."""

from __future__ import annotations

import dagster as dg
import pytest

from confluence_pipeline.http_api import jobs
from confluence_pipeline.http_api.jobs import RESULT_STEPS, JobKind, job_name, kind_of
from confluence_pipeline.schedules import TRIGGER_TAG as SCHEDULES_TRIGGER_TAG


@pytest.mark.parametrize(
    ("kind", "instance", "name"),
    [
        (JobKind.SYNC, None, "confluence_sync"),
        (JobKind.SYNC, "default", "confluence_sync"),
        (JobKind.SYNC, "emea", "confluence_sync__emea"),
        (JobKind.RESET, "emea", "confluence_reset__emea"),
        (JobKind.DELETE_CONTENT, None, "confluence_delete_content"),
        (JobKind.DELETE_CONTENT, "x_1", "confluence_delete_content__x_1"),
    ],
)
def test_job_names_per_instance(kind: JobKind, instance: str | None, name: str) -> None:
    assert job_name(kind, instance) == name
    assert kind_of(name) is kind


@pytest.mark.parametrize("name", ["confluence_sync__", "confluence_syncer", "sync", "other_job", "confluence_sync_x"])
def test_other_jobs_are_not_ours(name: str) -> None:
    assert kind_of(name) is None


def test_the_trigger_tag_is_the_one_the_failure_alert_reads() -> None:
    assert jobs.TRIGGER_TAG == SCHEDULES_TRIGGER_TAG


def test_run_configs_are_valid_for_the_real_jobs() -> None:
    from confluence_pipeline.definitions import defs

    cases = [
        (JobKind.SYNC, {}),
        (JobKind.DELETE_CONTENT, jobs.delete_content_config("cont_1", dry_run=False)),
        (JobKind.DELETE_CONTENT, jobs.delete_content_config("cont_1", dry_run=True)),
        (JobKind.RESET, jobs.reset_config("scope_1", None, dry_run=False)),
        (JobKind.RESET, jobs.reset_config("scope_1", "98307_ENG/", dry_run=True)),
    ]
    for kind, run_config in cases:
        dg.validate_run_config(defs.get_job_def(kind.value), run_config)


def test_result_steps_exist_in_the_real_jobs() -> None:
    from confluence_pipeline.definitions import defs

    for kind, step in RESULT_STEPS.items():
        assert step.step_key in {node.name for node in defs.get_job_def(kind.value).nodes}, kind
