"""`confluence_change_sensor`: cursor handling, the CQL it sends, deterministic run keys, skips, bad settings, and
server time zones and clocks that differ from ours."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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
from confluence_pipeline.sensors import CHANGE_SENSOR_NAME, TICK_BUDGET
from confluence_pipeline.sensors import build_change_sensor as build_from_settings
from confluence_pipeline_tests.support import Sandbox, fake_run
from confluence_sandbox.http import Fault

NOW = datetime(2024, 5, 6, 10, 20, 30, tzinfo=UTC)
SEARCH = r"/content/search$"
NEWEST_FIRST = " ORDER BY lastmodified DESC"


def build_change_sensor(environ: dict[str, str], **kw: Any) -> dg.SensorDefinition:
    """The sensor as definitions.py builds it for one instance: its settings, its job, its resources."""
    resources = resources_from_env(environ)
    return build_from_settings(load_location_settings(environ), confluence_sync, environ, resources=resources, **kw)


def change_sensor_interval(environ: dict[str, str]) -> int:
    return load_location_settings(environ).change_sensor_interval_seconds


def cursor_for(newest: datetime | None) -> str:
    """The cursor a check leaves when `newest` was the latest modification Confluence reported."""
    text = None if newest is None else newest.astimezone(UTC).isoformat(timespec="milliseconds")
    return json.dumps({"newest_modified": None if text is None else text.replace("+00:00", "Z")})


def tick(box: Sandbox, cursor: str | None, *, clock: Callable[[], datetime] = lambda: NOW) -> Any:
    sensor = build_change_sensor(box.env, clock=clock)
    with dg.build_sensor_context(cursor=cursor, instance=box.instance) as context:
        return sensor.evaluate_tick(context)


def searches(box: Sandbox) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in r.query.items()} for r in box.confluence.requests_to(SEARCH, "GET")]


def labelled_page(box: Sandbox, when: datetime, label: str = "ai-ingest", title: str | None = None) -> str:
    if "ENG" not in box.confluence.wiki.spaces:
        box.confluence.wiki.add_space("ENG", "Engineering")
    return box.confluence.wiki.add_page("ENG", title or f"Page {when:%H%M%S.%f}", labels=[label], when=when).id


def run_keys(result: Any) -> list[str]:
    return [request.run_key for request in result.run_requests]


# -- the first check ---------------------------------------------------------------------------------------------
def test_first_tick_only_records_the_newest_modification(sandbox: Sandbox) -> None:
    sandbox.confluence.dc_time_offset_minutes = 120  # DC writes local times; the cursor is UTC either way
    labelled_page(sandbox, datetime(2024, 5, 6, 10, 20, 25, 123000, tzinfo=UTC))
    labelled_page(sandbox, datetime(2024, 5, 6, 9, 0, tzinfo=UTC))

    result = tick(sandbox, None)

    assert result.run_requests == []
    assert result.cursor == '{"newest_modified": "2024-05-06T10:20:25.123Z"}'
    assert "first check" in result.skip_message and "2024-05-06T10:20:25.123Z" in result.skip_message
    first = searches(sandbox)[0]
    assert first["cql"].endswith("AND type != attachment" + NEWEST_FIRST)
    assert 'label="ai-ingest"' in first["cql"] and "space.type=global" in first["cql"]
    assert "lastmodified >" not in first["cql"] and "lastmodified <" not in first["cql"]  # no date literal at all
    assert first["limit"] == "1" and first["expand"] == "version"  # the usual answer: one small result


def test_with_nothing_labelled_yet_the_first_labelled_page_is_a_change(onprem: Sandbox) -> None:
    onprem.confluence.wiki.add_space("ENG", "Engineering")

    first = tick(onprem, None)
    assert first.cursor == cursor_for(None) and first.run_requests == []
    assert tick(onprem, first.cursor).run_requests == []

    labelled_page(onprem, datetime(2024, 5, 6, 10, 21, tzinfo=UTC))
    result = tick(onprem, first.cursor)

    assert run_keys(result) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:21:00.000Z"]
    assert "confluence_pipeline/changed_since" not in result.run_requests[0].tags


# -- changes and their run keys ------------------------------------------------------------------------------------
def test_a_labelled_change_requests_one_sync_with_a_deterministic_run_key(onprem: Sandbox) -> None:
    before = datetime(2024, 5, 6, 10, 15, 30, tzinfo=UTC)
    page = labelled_page(onprem, before)
    onprem.confluence.wiki.update_page(page, when=datetime(2024, 5, 6, 10, 16, 1, 500000, tzinfo=UTC))

    result = tick(onprem, cursor_for(before))

    assert run_keys(result) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:16:01.500Z"]
    tags = result.run_requests[0].tags
    assert tags[TRIGGER_TAG] == CHANGE_SENSOR_NAME
    assert tags["confluence_pipeline/change"] == "labelled content changed"
    assert tags["confluence_pipeline/changed_since"] == "2024-05-06T10:15:30.000Z"
    assert tags["confluence_pipeline/newest_modified"] == "2024-05-06T10:16:01.500Z"
    assert result.cursor == cursor_for(datetime(2024, 5, 6, 10, 16, 1, 500000, tzinfo=UTC))
    assert len(searches(onprem)) == 2  # the newest labelled content, then the (empty) list of subtree pages

    again = tick(onprem, cursor_for(before))  # a re-evaluated tick asks again and gets the same key
    assert run_keys(again) == run_keys(result)
    assert tick(onprem, result.cursor).run_requests == []  # and from the new cursor there is nothing new


@pytest.mark.parametrize(("offset_ms", "detected"), [(1, True), (0, False), (-1, False)])
def test_only_a_modification_after_the_cursor_counts(onprem: Sandbox, offset_ms: int, detected: bool) -> None:
    seen = datetime(2024, 5, 6, 10, 15, 30, 250000, tzinfo=UTC)
    labelled_page(onprem, seen + timedelta(milliseconds=offset_ms))

    result = tick(onprem, cursor_for(seen))

    assert bool(result.run_requests) is detected


def test_no_change_skips_and_an_unlabelled_edit_does_not_count(onprem: Sandbox) -> None:
    seen = datetime(2024, 5, 6, 10, 13, 59, tzinfo=UTC)
    labelled_page(onprem, seen)
    onprem.confluence.wiki.add_page("ENG", "Unlabelled", when=NOW - timedelta(seconds=10))

    result = tick(onprem, cursor_for(seen))

    assert result.run_requests == []
    assert result.cursor == cursor_for(seen)
    assert "no change after 2024-05-06T10:13:59.000Z" in result.skip_message


def test_an_unlabelled_descendant_of_an_all_page_counts_as_a_change(onprem: Sandbox) -> None:
    old = datetime(2024, 5, 1, tzinfo=UTC)
    root = labelled_page(onprem, old, label="ai-ingest-all")
    child = onprem.confluence.wiki.add_page("ENG", "Child", parent_id=root, when=old)
    onprem.confluence.wiki.add_page(
        "ENG", "Grandchild", parent_id=child.id, when=datetime(2024, 5, 6, 10, 17, tzinfo=UTC)
    )

    result = tick(onprem, cursor_for(datetime(2024, 5, 6, 10, 15, tzinfo=UTC)))

    assert run_keys(result) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:17:00.000Z"]
    assert result.run_requests[0].tags["confluence_pipeline/change"] == "a descendant of a 'ai-ingest-all' page changed"
    queries = searches(onprem)
    assert len(queries) == 3  # the newest labelled content, the all-label pages, the newest of their descendants
    assert queries[1]["cql"].startswith('((label="ai-ingest-all") OR (label="ai-ingest-all"))')
    assert queries[2]["cql"] == f"ancestor IN ({root}) AND type != attachment" + NEWEST_FIRST
    assert queries[2]["expand"] == "version"
    assert result.cursor == cursor_for(datetime(2024, 5, 6, 10, 17, tzinfo=UTC))


def test_an_unchanged_descendant_tree_requests_nothing(onprem: Sandbox) -> None:
    old = datetime(2024, 5, 1, tzinfo=UTC)
    root = labelled_page(onprem, old, label="ai-ingest-all")
    onprem.confluence.wiki.add_page("ENG", "Child", parent_id=root, when=old + timedelta(hours=1))

    result = tick(onprem, cursor_for(old + timedelta(hours=1)))

    assert result.run_requests == []


def test_the_newest_visible_change_counts_when_permissions_empty_the_first_result_page(sandbox: Sandbox) -> None:
    # Confluence filters view permissions after cutting the page: the newest match is restricted, so the
    # one-result answer is `results: []` with a `next`, while a visible change follows.
    sandbox.confluence.filter_after_paging = True
    labelled_page(sandbox, NOW - timedelta(hours=1), title="Old")
    first = tick(sandbox, None, clock=lambda: NOW)
    assert first.cursor == cursor_for(NOW - timedelta(hours=1))
    restricted = labelled_page(sandbox, NOW + timedelta(minutes=2), title="Restricted")
    labelled_page(sandbox, NOW + timedelta(minutes=1), title="Visible")
    sandbox.confluence.wiki.hide_page(restricted)

    result = tick(sandbox, first.cursor, clock=lambda: NOW + timedelta(minutes=5))

    assert run_keys(result) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:21:30.000Z"]  # the visible page's time


# -- time zones and clocks ----------------------------------------------------------------------------------------
ZONES = [
    # (the zone Confluence reads CQL date literals in, the offset DC writes into version.when)
    pytest.param("America/New_York", -240, id="new-york-edt"),
    pytest.param("America/New_York", -300, id="new-york-est-offset"),
    pytest.param("Asia/Tokyo", 540, id="tokyo"),
    pytest.param("Asia/Kolkata", 330, id="kolkata"),
    pytest.param("UTC", 0, id="utc"),
]


@pytest.mark.parametrize(("zone", "dc_offset"), ZONES)
def test_changes_are_seen_exactly_whatever_the_server_zone(sandbox: Sandbox, zone: str, dc_offset: int) -> None:
    sandbox.confluence.cql_timezone = zone
    sandbox.confluence.dc_time_offset_minutes = dc_offset
    labelled_page(sandbox, NOW - timedelta(hours=2), title="Old")  # unchanged since long before the first check
    page = labelled_page(sandbox, NOW - timedelta(hours=3), title="Edited later")

    first = tick(sandbox, None, clock=lambda: NOW)
    assert first.run_requests == []
    # East of UTC, a zone-blind date literal reaches back hours and reports the old page as a change.
    quiet = tick(sandbox, first.cursor, clock=lambda: NOW + timedelta(minutes=5))
    assert quiet.run_requests == [], quiet.skip_message

    sandbox.confluence.wiki.update_page(page, when=NOW + timedelta(minutes=6))
    # West of UTC, a zone-blind date literal points hours into the future and never sees this edit.
    changed = tick(sandbox, quiet.cursor, clock=lambda: NOW + timedelta(minutes=10))

    assert run_keys(changed) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:26:30.000Z"]
    assert changed.cursor == cursor_for(NOW + timedelta(minutes=6))
    assert tick(sandbox, changed.cursor, clock=lambda: NOW + timedelta(minutes=15)).run_requests == []


@pytest.mark.parametrize("skew", [timedelta(minutes=30), -timedelta(minutes=30)], ids=["ours-ahead", "ours-behind"])
def test_the_local_clock_plays_no_part(onprem: Sandbox, skew: timedelta) -> None:
    labelled_page(onprem, NOW - timedelta(minutes=10), title="Before")
    first = tick(onprem, None, clock=lambda: NOW + skew)
    # A clock behind Confluence's would report the edit before the first check again; one ahead would miss the next.
    quiet = tick(onprem, first.cursor, clock=lambda: NOW + skew + timedelta(minutes=2))
    assert quiet.run_requests == [], quiet.skip_message

    labelled_page(onprem, NOW + timedelta(minutes=1), title="After")  # by Confluence's clock
    result = tick(onprem, quiet.cursor, clock=lambda: NOW + skew + timedelta(minutes=5))

    assert run_keys(result) == [f"{CHANGE_SENSOR_NAME}:2024-05-06T10:21:30.000Z"]


@pytest.mark.parametrize("setting", ["Atlantis/Capital", "Europe/Zurich", "UTC"])
def test_confluence_timezone_is_accepted_and_ignored(onprem: Sandbox, setting: str) -> None:
    onprem.confluence.cql_timezone = "America/New_York"
    onprem.set_env(CONFLUENCE_TIMEZONE=setting)
    labelled_page(onprem, NOW - timedelta(hours=1), title="Before")

    first = tick(onprem, None)
    assert first.cursor == cursor_for(NOW - timedelta(hours=1))
    assert "CONFLUENCE_TIMEZONE is no longer needed and is ignored" in first.skip_message
    labelled_page(onprem, NOW + timedelta(minutes=1), title="After")

    assert len(tick(onprem, first.cursor).run_requests) == 1


# -- cursors written before the sensor compared modification times ----------------------------------------------
LEGACY_CURSOR = "2024-05-06T10:15:30Z"  # the local time of the last check; that sensor re-checked from 10:14 on


@pytest.mark.parametrize(
    ("modified", "detected"),
    [
        (datetime(2024, 5, 6, 10, 14, 5, tzinfo=UTC), True),  # inside the minute of overlap it promised
        (datetime(2024, 5, 6, 10, 16, tzinfo=UTC), True),
        (datetime(2024, 5, 6, 10, 13, 59, tzinfo=UTC), False),
    ],
)
def test_a_cursor_from_before_the_upgrade_keeps_its_promise(
    onprem: Sandbox, modified: datetime, detected: bool
) -> None:
    labelled_page(onprem, modified)

    result = tick(onprem, LEGACY_CURSOR)

    assert bool(result.run_requests) is detected
    assert result.cursor == cursor_for(modified)  # from now on, Confluence's clock


def test_a_cursor_from_a_clock_ahead_of_confluence_is_replaced_by_confluence_s_time(onprem: Sandbox) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 10, tzinfo=UTC), title="Before")
    ahead = tick(onprem, "2024-05-06T10:40:00Z")  # our clock ran half an hour ahead of Confluence's
    assert ahead.run_requests == [] and ahead.cursor == cursor_for(datetime(2024, 5, 6, 10, 10, tzinfo=UTC))

    labelled_page(onprem, datetime(2024, 5, 6, 10, 25, tzinfo=UTC), title="After")

    assert len(tick(onprem, ahead.cursor).run_requests) == 1


@pytest.mark.parametrize("cursor", ["not a cursor", "2024-05-06T10:15:30", '{"something": "else"}', "[1]"])
def test_an_unreadable_cursor_is_replaced_like_a_first_check(onprem: Sandbox, cursor: str) -> None:
    labelled_page(onprem, datetime(2024, 5, 6, 10, 16, tzinfo=UTC))

    result = tick(onprem, cursor)

    assert result.run_requests == []
    assert f"first check (unreadable cursor {cursor!r} replaced)" in result.skip_message
    assert result.cursor == cursor_for(datetime(2024, 5, 6, 10, 16, tzinfo=UTC))


# -- skips ---------------------------------------------------------------------------------------------------------
CURSOR = cursor_for(datetime(2024, 5, 6, 10, 15, 30, tzinfo=UTC))


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
        ({"CONFLUENCE_PAT": None}, ["CONFLUENCE_PAT"]),
        # SSL_CERT_FILE/REQUESTS_CA_BUNDLE would replace the store (and make NODE_EXTRA_CA_CERTS moot): unset them.
        (
            {"NODE_EXTRA_CA_CERTS": "/nonexistent/ca.pem", "SSL_CERT_FILE": None, "REQUESTS_CA_BUNDLE": None},
            ["NODE_EXTRA_CA_CERTS"],
        ),
    ],
)
@pytest.mark.parametrize("cursor", [CURSOR, None], ids=["watching", "first-check"])
def test_bad_settings_skip_naming_the_variables(
    onprem: Sandbox, env: dict[str, str | None], named: list[str], cursor: str | None
) -> None:
    onprem.set_env(**env)

    result = tick(onprem, cursor)

    assert result.run_requests == []
    assert all(name in result.skip_message for name in named), result.skip_message
    assert result.cursor in (None, cursor)
    assert onprem.confluence.requests == []


@pytest.mark.parametrize("cursor", [CURSOR, None], ids=["watching", "first-check"])
def test_a_failing_confluence_skips_quickly_and_keeps_the_cursor(onprem: Sandbox, cursor: str | None) -> None:
    onprem.confluence.faults.add(SEARCH, Fault(status=503), times=None)

    result = tick(onprem, cursor)

    assert result.run_requests == []
    assert "Confluence check failed" in result.skip_message and "503" in result.skip_message
    assert result.cursor in (None, cursor)
    assert len(onprem.confluence.requests) == 2  # one retry only: a tick stays short


def advancing_clock(step: timedelta) -> Callable[[], datetime]:
    """A clock that moves on by `step` every time it is read."""
    ticks: Iterator[int] = iter(range(10**6))
    return lambda: NOW + step * next(ticks)


def test_a_tick_that_runs_out_of_time_skips_and_keeps_the_cursor(onprem: Sandbox) -> None:
    old = datetime(2024, 5, 1, tzinfo=UTC)
    root = labelled_page(onprem, old, label="ai-ingest-all")
    onprem.confluence.wiki.add_page("ENG", "Child", parent_id=root, when=datetime(2024, 5, 6, 10, 17, tzinfo=UTC))

    result = tick(onprem, CURSOR, clock=advancing_clock(TICK_BUDGET + timedelta(seconds=1)))

    assert result.run_requests == []
    assert "too slowly" in result.skip_message
    assert result.cursor in (None, CURSOR)
    assert len(searches(onprem)) == 2  # no descendant search was started after the budget was spent


# -- definition ----------------------------------------------------------------------------------------------------
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
