"""`confluence_change_sensor`: cursor handling, the CQL it sends, deterministic run keys, skips and bad settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from confluence_pipeline.config.instances import Instance, InstanceStatus, environment_bindings
from confluence_pipeline.config.location import DEFAULT_SENSOR_INTERVAL_SECONDS as DEFAULT_INTERVAL_SECONDS
from confluence_pipeline.config.location import load_location_settings
from confluence_pipeline.config.settings import LoadTimeConfigurationError as SensorConfigurationError
from confluence_pipeline.jobs.sync import build_sync_job, confluence_sync
from confluence_pipeline.resources import resources_for, resources_from_env
from confluence_pipeline.schedules import TRIGGER_TAG
from confluence_pipeline.sensors import CHANGE_SENSOR_NAME
from confluence_pipeline.sensors import build_change_sensor as build_from_settings
from confluence_pipeline_tests.support import Sandbox, fake_run
from confluence_sandbox.http import Fault

NOW = datetime(2024, 5, 6, 10, 20, 30, tzinfo=UTC)


def build_change_sensor(environ: dict[str, str], **kw: Any) -> dg.SensorDefinition:
    """The sensor as definitions.py builds it for one instance: its settings, its job, its resources."""
    resources = resources_from_env(environ)
    return build_from_settings(load_location_settings(environ), confluence_sync, environ, resources=resources, **kw)


def change_sensor_interval(environ: dict[str, str]) -> int:
    return load_location_settings(environ).change_sensor_interval_seconds


CURSOR = "2024-05-06T10:15:30Z"  # window starts at 10:14 UTC (cursor minute, one minute of overlap)
SEARCH = r"/content/search$"


def tick(box: Sandbox, cursor: str | None) -> Any:
    sensor = build_change_sensor(box.env, clock=lambda: NOW)
    with dg.build_sensor_context(cursor=cursor, instance=box.instance) as context:
        return sensor.evaluate_tick(context)


def searches(box: Sandbox) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in r.query.items()} for r in box.confluence.requests_to(SEARCH, "GET")]


def labelled_page(box: Sandbox, when: datetime, label: str = "ai-ingest") -> str:
    if "ENG" not in box.confluence.wiki.spaces:
        box.confluence.wiki.add_space("ENG", "Engineering")
    return box.confluence.wiki.add_page("ENG", f"Page {when:%H%M%S}", labels=[label], when=when).id


def test_first_tick_only_records_the_time(onprem: Sandbox) -> None:
    labelled_page(onprem, NOW - timedelta(seconds=5))

    result = tick(onprem, None)

    assert result.run_requests == []
    assert result.cursor == "2024-05-06T10:20:30Z"
    assert "first check" in result.skip_message
    assert onprem.confluence.requests == []


def test_a_labelled_change_requests_one_sync_with_a_deterministic_run_key(onprem: Sandbox) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 16, tzinfo=UTC))

    result = tick(onprem, CURSOR)

    assert [r.run_key for r in result.run_requests] == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:14Z"]
    assert result.run_requests[0].tags[TRIGGER_TAG] == CHANGE_SENSOR_NAME
    assert result.cursor == "2024-05-06T10:20:30Z"
    (query,) = searches(onprem)  # one request, the cheapest possible
    assert query["limit"] == "1" and "expand" not in query
    assert query["cql"].endswith('AND lastmodified >= "2024/05/06 10:14"')
    assert 'label="ai-ingest"' in query["cql"] and "space.type=global" in query["cql"]

    again = tick(onprem, CURSOR)
    assert [r.run_key for r in again.run_requests] == [result.run_requests[0].run_key]


def test_the_overlap_minute_catches_a_change_just_before_the_cursor(onprem: Sandbox) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 14, 5, tzinfo=UTC))

    assert len(tick(onprem, CURSOR).run_requests) == 1


def test_no_change_skips_and_moves_the_cursor(onprem: Sandbox) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 13, 59, tzinfo=UTC))  # before the window
    onprem.confluence.wiki.add_page("ENG", "Unlabelled", when=NOW - timedelta(minutes=1))

    result = tick(onprem, CURSOR)

    assert result.run_requests == []
    assert result.cursor == "2024-05-06T10:20:30Z"
    assert "no change since 2024/05/06 10:14" in result.skip_message


def test_an_unlabelled_descendant_of_an_all_page_counts_as_a_change(onprem: Sandbox) -> None:
    old = datetime(2024, 5, 1, tzinfo=UTC)
    root = labelled_page(onprem, old, label="ai-ingest-all")
    child = onprem.confluence.wiki.add_page("ENG", "Child", parent_id=root, when=old)
    onprem.confluence.wiki.add_page(
        "ENG", "Grandchild", parent_id=child.id, when=datetime(2024, 5, 6, 10, 17, tzinfo=UTC)
    )

    result = tick(onprem, CURSOR)

    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags["confluence_pipeline/change"] == "a descendant of a 'ai-ingest-all' page changed"
    cqls = [q["cql"] for q in searches(onprem)]
    assert len(cqls) == 3  # labelled changes, the all-label pages, their descendants
    assert cqls[2] == f'ancestor IN ({root}) AND type != attachment AND lastmodified >= "2024/05/06 10:14"'


def test_an_unchanged_descendant_tree_requests_nothing(onprem: Sandbox) -> None:
    old = datetime(2024, 5, 1, tzinfo=UTC)
    root = labelled_page(onprem, old, label="ai-ingest-all")
    onprem.confluence.wiki.add_page("ENG", "Child", parent_id=root, when=old)

    assert tick(onprem, CURSOR).run_requests == []


@pytest.mark.parametrize(("setting", "detected"), [("America/New_York", True), (None, False)])
def test_date_literals_are_written_in_the_confluence_server_zone(
    onprem: Sandbox, setting: str | None, detected: bool
) -> None:
    # The server reads CQL dates in New York time: a UTC literal there points four hours too late.
    onprem.confluence.cql_timezone = "America/New_York"
    onprem.set_env(CONFLUENCE_TIMEZONE=setting)
    labelled_page(onprem, datetime(2024, 5, 6, 10, 16, tzinfo=UTC))

    result = tick(onprem, CURSOR)

    assert bool(result.run_requests) is detected
    if setting:
        assert searches(onprem)[0]["cql"].endswith('lastmodified >= "2024/05/06 06:14"')


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_skips_without_asking_confluence_while_a_sync_is_on_its_way(
    onprem: Sandbox, status: dg.DagsterRunStatus
) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 16, tzinfo=UTC))
    busy = fake_run(onprem.instance, status)

    result = tick(onprem, CURSOR)

    assert result.run_requests == []
    assert busy.run_id in result.skip_message
    assert result.cursor in (None, CURSOR)  # kept: changes made meanwhile are still seen afterwards
    assert onprem.confluence.requests == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"CONFLUENCE_URL": None, "UNIQUE_SERVICE_AUTH_MODE": "sideways"},
            ["CONFLUENCE_URL", "UNIQUE_SERVICE_AUTH_MODE"],
        ),
        (
            {"CONFLUENCE_TIMEZONE": "Atlantis/Capital", "CONFLUENCE_PAT": None},
            ["CONFLUENCE_TIMEZONE", "CONFLUENCE_PAT"],
        ),
        # SSL_CERT_FILE/REQUESTS_CA_BUNDLE would replace the store (and make NODE_EXTRA_CA_CERTS moot): unset them.
        (
            {"NODE_EXTRA_CA_CERTS": "/nonexistent/ca.pem", "SSL_CERT_FILE": None, "REQUESTS_CA_BUNDLE": None},
            ["NODE_EXTRA_CA_CERTS"],
        ),
    ],
)
def test_bad_settings_skip_naming_the_variables(onprem: Sandbox, env: dict[str, str | None], named: list[str]) -> None:
    onprem.set_env(**env)

    result = tick(onprem, CURSOR)

    assert result.run_requests == []
    assert all(name in result.skip_message for name in named), result.skip_message
    assert result.cursor in (None, CURSOR)
    assert onprem.confluence.requests == []


def test_a_failing_confluence_skips_quickly_and_keeps_the_cursor(onprem: Sandbox) -> None:
    onprem.confluence.faults.add(SEARCH, Fault(status=503), times=None)

    result = tick(onprem, CURSOR)

    assert result.run_requests == []
    assert "Confluence check failed" in result.skip_message and "503" in result.skip_message
    assert result.cursor in (None, CURSOR)
    assert len(onprem.confluence.requests) == 2  # one retry only: a tick stays short


def test_the_sensor_is_stopped_by_default_and_its_interval_comes_from_the_environment() -> None:
    assert build_change_sensor({}).default_status == dg.DefaultSensorStatus.STOPPED
    assert build_change_sensor({}).minimum_interval_seconds == DEFAULT_INTERVAL_SECONDS
    assert build_change_sensor({"CHANGE_SENSOR_INTERVAL_SECONDS": " 60 "}).minimum_interval_seconds == 60


@pytest.mark.parametrize("value", ["often", "10", "1.5"])
def test_an_invalid_interval_fails_naming_the_variable(value: str) -> None:
    with pytest.raises(SensorConfigurationError, match="CHANGE_SENSOR_INTERVAL_SECONDS"):
        change_sensor_interval({"CHANGE_SENSOR_INTERVAL_SECONDS": value})


def test_an_instance_sensor_requests_its_own_job_and_waits_only_for_its_own_syncs(onprem: Sandbox) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 16, tzinfo=UTC))
    emea = Instance("emea", InstanceStatus.ACTIVE, environment_bindings(onprem.env), None)
    job = build_sync_job(emea)
    name = emea.change_sensor_name
    sensor = build_from_settings(
        load_location_settings(onprem.env), job, onprem.env, resources=resources_for(emea), name=name, clock=lambda: NOW
    )
    fake_run(onprem.instance, dg.DagsterRunStatus.STARTED)  # the default instance's sync: none of its business

    def evaluate() -> Any:
        with dg.build_sensor_context(cursor=CURSOR, instance=onprem.instance) as context:
            return sensor.evaluate_tick(context)

    (request,) = evaluate().run_requests
    assert (sensor.name, sensor.job_name) == ("confluence_change_sensor__emea", "confluence_sync__emea")
    assert request.tags[TRIGGER_TAG] == "confluence_change_sensor__emea"

    busy = fake_run(onprem.instance, dg.DagsterRunStatus.QUEUED, job.name, of_instance="emea")
    skipped = evaluate()
    assert skipped.run_requests == [] and busy.run_id in (skipped.skip_message or "")
