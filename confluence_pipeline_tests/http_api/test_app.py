"""The app against a scripted Dagster GraphQL endpoint (httpx.MockTransport): launches, refusals, results, auth."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import SecretStr

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its TestClient; plain httpx still works and is what we have.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from confluence_pipeline.http_api import webserver as webserver_module
from confluence_pipeline.http_api.app import create_app
from confluence_pipeline.http_api.jobs import CLIENT_TAG, TRIGGER_TAG
from confluence_pipeline.http_api.settings import HttpApiSettings
from confluence_pipeline_tests.http_api.fake_dagster import (
    BASE_URL,
    LOCATION,
    REPOSITORY,
    FakeDagster,
    failure_event,
    int_entry,
    output_event,
)

TOKEN = "unit-Test-Token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(**overrides: Any) -> HttpApiSettings:
    values: dict[str, Any] = {"token": SecretStr(TOKEN), "dagster_webserver_url": BASE_URL, "dry_run_wait_seconds": 5}
    values.update(overrides)
    return HttpApiSettings(**values)


@pytest.fixture
def dagster() -> FakeDagster:
    return FakeDagster()


@pytest.fixture
def client(dagster: FakeDagster) -> Iterator[TestClient]:
    with TestClient(create_app(settings(), dagster.webserver()), headers=AUTH) as test_client:
        yield test_client


def tags_of(params: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}


# -- launches ------------------------------------------------------------------------------------------
def test_sync_launches_the_job_through_the_run_queue_with_the_trigger_tag(
    client: TestClient, dagster: FakeDagster
) -> None:
    answer = client.get("/sync")

    assert answer.status_code == 202
    (params,) = dagster.launches()
    run_id = answer.json()["run_id"]
    assert answer.json() == {"run_id": run_id, "url": f"{BASE_URL}/runs/{run_id}"}
    assert params["selector"] == {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "pipelineName": "confluence_sync",
        "solidSelection": None,
        "assetSelection": None,
    }
    assert params["runConfigData"] == {}
    assert tags_of(params) == {TRIGGER_TAG: "http_api", CLIENT_TAG: "testclient:50000"}


@pytest.mark.parametrize(
    ("query", "job"),
    [
        ({}, "confluence_sync"),
        ({"instance": "default"}, "confluence_sync"),
        ({"instance": "emea"}, "confluence_sync__emea"),
    ],
)
def test_instance_selects_the_job(dagster: FakeDagster, query: dict[str, str], job: str) -> None:
    dagster.jobs = (*dagster.jobs, "confluence_sync__emea")
    with TestClient(create_app(settings(), dagster.webserver()), headers=AUTH) as client:
        assert client.get("/sync", params=query).status_code == 202
    assert [p["selector"]["pipelineName"] for p in dagster.launches()] == [job]


def test_an_instance_without_its_job_is_404_and_launches_nothing(client: TestClient, dagster: FakeDagster) -> None:
    answer = client.delete("/content/cont_1", params={"instance": "emea"})

    assert answer.status_code == 404
    assert "confluence_delete_content__emea" in answer.json()["error"]
    assert dagster.launches() == []


def test_sync_answers_409_naming_the_run_in_progress(client: TestClient, dagster: FakeDagster) -> None:
    running = dagster.add_run("confluence_sync", "STARTED")
    dagster.add_run("confluence_sync__emea", "STARTED")  # another instance's sync does not block this one

    answer = client.get("/sync")

    assert answer.status_code == 409
    assert answer.json() == {
        "error": f"a confluence_sync run is already running: {running.run_id}; nothing was launched",
        "run_id": running.run_id,
        "status": "STARTED",
        "url": f"{BASE_URL}/runs/{running.run_id}",
    }
    assert dagster.launches() == []


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE", "CANCELED", "CANCELING"])
def test_finished_syncs_do_not_block_a_new_one(client: TestClient, dagster: FakeDagster, status: str) -> None:
    dagster.add_run("confluence_sync", status)
    assert client.get("/sync").status_code == 202


def test_concurrent_syncs_launch_once(dagster: FakeDagster) -> None:
    dagster.launch_delay = 0.3  # a slow launch widens the window between "nothing running" and "launched"
    with (
        TestClient(create_app(settings(), dagster.webserver()), headers=AUTH) as client,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):
        answers = list(pool.map(lambda _: client.get("/sync"), range(3)))

    assert sorted(a.status_code for a in answers) == [202, 409, 409]
    assert len(dagster.launches()) == 1


def test_head_never_starts_a_sync(client: TestClient, dagster: FakeDagster) -> None:
    assert client.head("/sync").status_code == 405
    assert dagster.launches() == []


def test_delete_content_run_config_and_values_travel_only_as_variables(
    client: TestClient, dagster: FakeDagster
) -> None:
    real = client.delete("/content/cont_abc-1")
    dry = client.delete("/content/cont_abc-2", params={"dry_run": "true"})

    assert real.status_code == dry.status_code == 202
    configs = [(p["selector"]["pipelineName"], p["runConfigData"]) for p in dagster.launches()]
    assert configs == [
        ("confluence_delete_content", {"content_ids": ["cont_abc-1"]}),
        ("confluence_delete_content", {"content_ids": ["cont_abc-2"], "dry_run": True}),
    ]
    assert not any("cont_abc" in request["query"] for request in dagster.requests)


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"", {}, {"scope_id": "scope_x"}),
        (
            b'{"partialKey": "111_ENG/"}',
            {"Content-Type": "application/json"},
            {"scope_id": "scope_x", "partial_key": "111_ENG/"},
        ),
        # What `curl -X DELETE -d '{…}'` sends: a JSON body labelled as a form.
        (
            b'{"partialKey": "111_ENG/"}',
            {"Content-Type": "application/x-www-form-urlencoded"},
            {"scope_id": "scope_x", "partial_key": "111_ENG/"},
        ),
        (b"{}", {"Content-Type": "application/json"}, {"scope_id": "scope_x"}),
        (b'{"partialKey": ""}', {"Content-Type": "application/json"}, {"scope_id": "scope_x"}),
    ],
)
def test_reset_run_config_from_the_body(
    client: TestClient, dagster: FakeDagster, body: bytes, headers: dict[str, str], expected: dict[str, Any]
) -> None:
    answer = client.request("DELETE", "/reset/scope_x", content=body, headers=headers)

    assert answer.status_code == 202, answer.text
    (params,) = dagster.launches()
    assert params["selector"]["pipelineName"] == "confluence_reset"
    assert params["runConfigData"] == expected


def test_reset_dry_run_waits_and_reports_matches(client: TestClient, dagster: FakeDagster) -> None:
    dagster.finish_launched_after = 3
    dagster.launched_events = [
        output_event(
            "reset_scope",
            [
                int_entry("matched", 2),
                {"__typename": "JsonMetadataEntry", "label": "keys", "jsonString": '["1_A/1", "1_A/2"]'},
                {"__typename": "BoolMetadataEntry", "label": "keys_truncated", "boolValue": False},
            ],
        )
    ]

    answer = client.request("DELETE", "/reset/scope_x?dry_run=true", content=b'{"partialKey": "1_A/"}')

    assert answer.status_code == 200, answer.text
    run_id = answer.json()["run_id"]
    assert answer.json() == {
        "run_id": run_id,
        "url": f"{BASE_URL}/runs/{run_id}",
        "status": "SUCCESS",
        "dry_run": True,
        "scope_id": "scope_x",
        "partial_key": "1_A/",
        "matched": 2,
        "keys": ["1_A/1", "1_A/2"],
        "keys_truncated": False,
    }
    assert dagster.launches()[0]["runConfigData"] == {"scope_id": "scope_x", "partial_key": "1_A/", "dry_run": True}


def test_reset_dry_run_still_running_after_the_wait_answers_202(dagster: FakeDagster) -> None:
    with TestClient(create_app(settings(dry_run_wait_seconds=0.3), dagster.webserver()), headers=AUTH) as client:
        answer = client.delete("/reset/scope_x", params={"dry_run": "true"})

    assert answer.status_code == 202
    assert answer.json()["status"] == "QUEUED"
    assert f"/runs/{answer.json()['run_id']}" in answer.json()["message"]


def test_a_failed_reset_dry_run_answers_502_with_the_failure(client: TestClient, dagster: FakeDagster) -> None:
    dagster.launched_events = [
        failure_event("reset_scope", "Scope 'scope_x' does not exist in Unique. Nothing was deleted.")
    ]
    dagster.finish_launched_after = 1
    dagster.finish_launched_as = "FAILURE"

    answer = client.delete("/reset/scope_x", params={"dry_run": "true"})

    assert answer.status_code == 502
    assert "does not exist in Unique" in answer.json()["error"]
    assert answer.json()["failures"] == [
        {"step": "reset_scope", "message": "Scope 'scope_x' does not exist in Unique. Nothing was deleted."}
    ]


def test_a_refused_launch_answers_502_naming_dagsters_reason(client: TestClient, dagster: FakeDagster) -> None:
    dagster.launch_refusal = {"__typename": "PythonError", "message": "DagsterInvalidConfigError: bad config"}

    answer = client.delete("/content/cont_1")

    assert answer.status_code == 502
    assert "PythonError" in answer.json()["error"] and "bad config" in answer.json()["error"]


def test_a_launch_without_an_answer_is_503_and_says_the_run_may_exist(client: TestClient, dagster: FakeDagster) -> None:
    dagster.launch_times_out = True

    answer = client.get("/sync")

    assert answer.status_code == 503
    assert "did not answer the launch of confluence_sync" in answer.json()["error"]
    assert "may or may not have been created" in answer.json()["error"]


# -- reading runs --------------------------------------------------------------------------------------
def test_runs_reports_a_finished_syncs_summary_and_failures(client: TestClient, dagster: FakeDagster) -> None:
    counts = {"discovered": 5, "new": 2, "updated": 1, "unchanged": 1, "deleted": 0, "failed": 1, "skipped": 0}
    entries = [int_entry(f"total_{k}", v) for k, v in counts.items()] + [int_entry("spaces", 2)]
    run = dagster.add_run(
        "confluence_sync",
        "FAILURE",
        events=[
            output_event("discover_labelled_pages", [int_entry("labelled", 5)]),
            failure_event("summarize_sync", "1 page(s) failed (tolerance 0): 123", entries),
        ],
    )

    answer = client.get(f"/runs/{run.run_id}")

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "FAILURE" and body["job"] == "confluence_sync"
    assert body["summary"] == {f"total_{k}": v for k, v in counts.items()}
    assert body["failures"] == [{"step": "summarize_sync", "message": "1 page(s) failed (tolerance 0): 123"}]
    assert body["created_at"] == "2027-01-15T08:00:00Z"


def test_runs_reads_the_whole_event_log_and_says_when_it_cannot(
    client: TestClient, dagster: FakeDagster, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [output_event("discover_labelled_pages", [int_entry("labelled", 1)])] * 5
    events.append(output_event("summarize_sync", [int_entry("total_new", 3)]))
    run = dagster.add_run("confluence_sync", "SUCCESS", events=events)
    endless = dagster.add_run("confluence_sync", "SUCCESS", events=events)
    endless.endless_log = True
    monkeypatch.setattr(webserver_module, "MAX_EVENT_PAGES", 4)

    whole = client.get(f"/runs/{run.run_id}").json()
    cut = client.get(f"/runs/{endless.run_id}").json()

    assert whole["summary"] == {"total_new": 3} and "note" not in whole  # found on the third page
    assert "too long" in cut["note"]


def test_runs_of_an_unfinished_run_has_no_summary(client: TestClient, dagster: FakeDagster) -> None:
    run = dagster.add_run("confluence_delete_content__emea", "STARTED")

    body = client.get(f"/runs/{run.run_id}").json()

    assert body["status"] == "STARTED" and "summary" not in body


def test_runs_of_delete_content_reports_not_found(client: TestClient, dagster: FakeDagster) -> None:
    entries = [int_entry("matched", 0), int_entry("deleted", 0), int_entry("unconfirmed", 0)]
    entries.append({"__typename": "JsonMetadataEntry", "label": "not_found", "jsonString": '["cont_gone"]'})
    entries.append({"__typename": "BoolMetadataEntry", "label": "dry_run", "boolValue": False})
    run = dagster.add_run(
        "confluence_delete_content", "SUCCESS", events=[output_event("delete_content_items", entries)]
    )

    body = client.get(f"/runs/{run.run_id}").json()

    assert body["summary"] == {
        "dry_run": False,
        "matched": 0,
        "deleted": 0,
        "unconfirmed": 0,
        "not_found": ["cont_gone"],
    }


def test_runs_of_other_jobs_and_unknown_runs_are_404(client: TestClient, dagster: FakeDagster) -> None:
    foreign = dagster.add_run("someone_elses_job", "SUCCESS")

    assert client.get(f"/runs/{foreign.run_id}").status_code == 404
    assert client.get("/runs/3c4c5d6e-0000-4000-8000-000000000000").status_code == 404


# -- health and an unreachable or broken Dagster ---------------------------------------------------------
def test_health_reports_location_last_sync_and_run_queue(dagster: FakeDagster) -> None:
    last = dagster.add_run("confluence_sync", "SUCCESS")
    with TestClient(create_app(settings(), dagster.webserver())) as anonymous:
        answer = anonymous.get("/health")

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "code_location": {"name": LOCATION, "status": "loaded"},
        "job": "confluence_sync",
        "last_sync": {
            "run_id": last.run_id,
            "status": "SUCCESS",
            "created_at": "2027-01-15T08:00:00Z",
            "started_at": None,
            "ended_at": None,
        },
        "run_queue": {"daemon_healthy": True, "last_heartbeat": "2027-01-15T08:00:00Z"},
    }


def test_a_code_location_that_failed_to_load_is_503_naming_the_error(dagster: FakeDagster) -> None:
    dagster.load_error = "LoadTimeConfigurationError: CRON_SCHEDULE: 'every day' is not a cron expression"
    with TestClient(create_app(settings(), dagster.webserver()), headers=AUTH) as client:
        health = client.get("/health")
        launch = client.get("/sync")

    assert health.status_code == launch.status_code == 503
    assert "CRON_SCHEDULE" in health.json()["error"] and "failed to load" in health.json()["error"]
    assert health.json()["code_location"]["status"] == "failed"
    assert "CRON_SCHEDULE" in launch.json()["error"]


def test_a_missing_code_location_names_the_setting(dagster: FakeDagster) -> None:
    webserver = dagster.webserver()
    webserver.code_location_name = "confluence-pipeline"
    with TestClient(create_app(settings(), webserver)) as anonymous:
        answer = anonymous.get("/health")

    assert answer.status_code == 503
    assert "HTTP_API_CODE_LOCATION" in answer.json()["error"] and LOCATION in answer.json()["error"]


def test_an_unreachable_webserver_is_503(dagster: FakeDagster) -> None:
    dagster.unreachable = True
    with TestClient(create_app(settings(), dagster.webserver()), headers=AUTH) as client:
        health = client.get("/health")
        launch = client.get("/sync")

    assert health.status_code == launch.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert f"webserver at {BASE_URL} cannot be reached" in health.json()["error"]
    assert "Connection refused" in launch.json()["error"]


# -- authentication and malformed requests ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="confluence_pipeline"'),
        (
            {"Authorization": "Bearer wrong-token-0123456789"},
            'Bearer realm="confluence_pipeline", error="invalid_token"',
        ),
        ({"Authorization": f"Basic {TOKEN}"}, 'Bearer realm="confluence_pipeline", error="invalid_token"'),
        ({"Authorization": f"Bearer {TOKEN}x"}, 'Bearer realm="confluence_pipeline", error="invalid_token"'),
    ],
)
def test_every_endpoint_but_health_needs_the_token(
    dagster: FakeDagster, headers: dict[str, str], challenge: str
) -> None:
    with TestClient(create_app(settings(), dagster.webserver()), headers=headers) as client:
        for method, path in (("GET", "/sync"), ("DELETE", "/content/c"), ("DELETE", "/reset/s"), ("GET", "/nowhere")):
            answer = client.request(method, path)
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"] == challenge
            assert "bearer token" in answer.json()["error"]
        assert client.get("/health").status_code == 200
    assert dagster.launches() == []


def test_without_a_token_configured_nothing_asks_for_one(dagster: FakeDagster) -> None:
    unauthenticated = settings(token=None, allow_unauthenticated=True)
    with TestClient(create_app(unauthenticated, dagster.webserver())) as client:
        assert client.get("/sync").status_code == 202


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("DELETE", "/content/cont_1;DROP", b"", 400, "content id"),
        ("DELETE", "/content/" + "c" * 129, b"", 400, "1 to 128"),
        ("DELETE", "/reset/scope%20x", b"", 400, "scope id"),
        ("DELETE", "/reset/scope_x", b'{"partialKey": "a\\u0007"}', 400, "U+0007"),
        ("DELETE", "/reset/scope_x", json.dumps({"partialKey": "k" * 1025}).encode(), 400, "at most 1024"),
        ("DELETE", "/reset/scope_x", b'{"partialKey": ["a"]}', 400, "must be a string"),
        ("DELETE", "/reset/scope_x", b"partialKey=a", 400, "not valid JSON"),
        ("DELETE", "/reset/scope_x", b"x" * 20_000, 413, "larger than"),
        ("DELETE", "/reset/scope_x?dryrun=true", b"", 400, "unknown query parameter 'dryrun'"),
        ("DELETE", "/reset/scope_x?dry_run=maybe", b"", 400, "true or false"),
        ("DELETE", "/reset/scope_x?dry_run=true&dry_run=false", b"", 400, "more than once"),
        ("GET", "/sync?instance=EMEA", b"", 400, "lower-case"),
        ("GET", "/runs/42", b"", 400, "UUID"),
        ("GET", "/nowhere", b"", 404, "no such endpoint"),
        ("POST", "/sync", b"", 405, "POST is not allowed"),
        ("PUT", "/content/cont_1", b"", 405, "PUT is not allowed"),
    ],
)
def test_malformed_requests_are_refused_in_json(
    client: TestClient, dagster: FakeDagster, method: str, path: str, body: bytes, status: int, fragment: str
) -> None:
    answer = client.request(method, path, content=body)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert fragment in answer.json()["error"]
    assert dagster.launches() == []
