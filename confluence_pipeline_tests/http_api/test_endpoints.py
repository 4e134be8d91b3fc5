"""The endpoints over real sockets: each launches the right job through a real webserver and daemon, runs complete."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from confluence_pipeline.http_api.jobs import CLIENT_TAG, TRIGGER_TAG
from confluence_pipeline.schedules import TRIGGER_TAG as SCHEDULES_TRIGGER_TAG
from confluence_pipeline_tests.http_api.conftest import TOKEN, WRONG_TOKEN, Stack

pytestmark = pytest.mark.timeout(300)


def test_sync_launches_one_run_answers_409_while_it_runs_and_the_content_lands(api: Stack) -> None:
    wiki = api.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    api.confluence.faults.latency = 0.5  # keeps the run in progress while the other calls arrive
    runs_before = {run.run_id for run in api.runs()}

    def call_sync(_: int) -> httpx.Response:
        with api.client() as client:
            return client.get("/sync")

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(call_sync, range(4)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202, 409, 409, 409], [a.text for a in answers]
    launched = next(a.json() for a in answers if a.status_code == 202)
    run_id = launched["run_id"]
    assert launched == {"run_id": run_id, "url": f"{api.webserver_url}/runs/{run_id}"}
    for busy in (a.json() for a in answers if a.status_code == 409):
        assert busy["run_id"] == run_id and run_id in busy["error"]
        assert busy["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
    assert {run.run_id for run in api.runs()} - runs_before == {run_id}

    result = api.wait_for_run(run_id)

    assert result["status"] == "SUCCESS", result
    assert result["job"] == "confluence_sync"
    assert result["summary"] == {
        "total_discovered": 1,
        "total_new": 1,
        "total_updated": 0,
        "total_unchanged": 0,
        "total_deleted": 0,
        "total_failed": 0,
        "total_skipped": 0,
    }
    space = wiki.spaces["ENG"]
    assert {c.key for c in api.unique.store.contents.values()} == {f"{space.id}_ENG/{page.id}"}
    run = api.run(run_id)
    assert run.job_name == "confluence_sync" and run.run_config == {}
    assert run.tags[TRIGGER_TAG] == "http_api" == run.tags[SCHEDULES_TRIGGER_TAG]
    assert run.tags[CLIENT_TAG].startswith("127.0.0.1:")


def test_delete_content_launches_the_delete_job_and_only_that_item_goes(api: Stack) -> None:
    store = api.unique.store
    doomed = store.seed_content("111_ENG/1", owner_id=api.scope_id)
    kept = store.seed_content("111_ENG/2", owner_id=api.scope_id)

    with api.client() as client:
        dry = client.delete(f"/content/{kept.id}", params={"dry_run": "true"})
        assert dry.status_code == 202, dry.text
        dry_result = api.wait_for_run(dry.json()["run_id"])
        real = client.delete(f"/content/{doomed.id}")
        assert real.status_code == 202, real.text
        result = api.wait_for_run(real.json()["run_id"])

    assert dry_result["status"] == "SUCCESS", dry_result
    assert dry_result["summary"] == {"dry_run": True, "matched": 1, "deleted": 0, "unconfirmed": 0, "not_found": []}
    assert api.run(dry.json()["run_id"]).run_config == {"content_ids": [kept.id], "dry_run": True}
    assert result["status"] == "SUCCESS", result
    assert result["job"] == "confluence_delete_content"
    assert result["summary"] == {"dry_run": False, "matched": 1, "deleted": 1, "unconfirmed": 0, "not_found": []}
    assert api.run(real.json()["run_id"]).run_config == {"content_ids": [doomed.id]}
    assert set(store.contents) == {kept.id}


def test_reset_dry_run_reports_matches_and_reset_deletes_only_the_partial_key(api: Stack) -> None:
    store = api.unique.store
    scope = store.add_scope("Reset me").id
    other_scope = store.add_scope("Keep me").id
    for key in ("111_ENG/1", "111_ENG/2", "222_OPS/3"):
        store.seed_content(key, owner_id=scope)
    elsewhere = store.seed_content("111_ENG/9", owner_id=other_scope)

    with api.client() as client:
        # No body and no Content-Type, as an old cron job sends it.
        dry = client.delete(f"/reset/{scope}", params={"dry_run": "true"})
        assert dry.status_code == 200, dry.text
        assert len(store.contents) == 4  # a dry run deletes nothing
        real = client.request(
            "DELETE",
            f"/reset/{scope}",
            content=json.dumps({"partialKey": "111_ENG/"}),
            headers={"Content-Type": "application/json"},
        )
        assert real.status_code == 202, real.text
        result = api.wait_for_run(real.json()["run_id"])

    report = dry.json()
    assert report == {
        "run_id": report["run_id"],
        "url": f"{api.webserver_url}/runs/{report['run_id']}",
        "status": "SUCCESS",
        "dry_run": True,
        "scope_id": scope,
        "partial_key": None,
        "matched": 3,
        "keys": ["111_ENG/1", "111_ENG/2", "222_OPS/3"],
        "keys_truncated": False,
    }
    assert api.run(report["run_id"]).run_config == {"scope_id": scope, "dry_run": True}
    assert result["status"] == "SUCCESS", result
    assert result["summary"] == {"dry_run": False, "matched": 2, "deleted": 2, "unconfirmed": 0}
    assert api.run(real.json()["run_id"]).run_config == {"scope_id": scope, "partial_key": "111_ENG/"}
    remaining = {(c.owner_id, c.key) for c in store.contents.values()}
    assert remaining == {(scope, "222_OPS/3"), (other_scope, elsewhere.key)}


def test_refusals_launch_nothing_and_never_echo_a_token(api: Stack) -> None:
    runs_before = len(api.runs())
    with api.client(token=None) as anonymous, api.client(token=WRONG_TOKEN) as wrong, api.client() as client:
        missing = anonymous.get("/sync")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "bearer token" in missing.json()["error"]
        invalid = wrong.delete("/content/cont_abc")
        assert invalid.status_code == 401 and 'error="invalid_token"' in invalid.headers["WWW-Authenticate"]
        assert anonymous.get(f"/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}").status_code == 401

        health = anonymous.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["code_location"] == {"name": "confluence_pipeline", "status": "loaded"}
        assert health.json()["run_queue"]["daemon_healthy"] is True

        for method, path, job in (
            ("GET", "/sync", "confluence_sync__nope"),
            ("DELETE", "/content/cont_abc", "confluence_delete_content__nope"),
            ("DELETE", "/reset/scope_abc", "confluence_reset__nope"),
        ):
            unknown = client.request(method, path, params={"instance": "nope"})
            assert unknown.status_code == 404 and job in unknown.json()["error"], unknown.text

        bad_id = client.delete("/content/cont$abc")
        assert bad_id.status_code == 400 and "content id" in bad_id.json()["error"]
        control = client.request("DELETE", "/reset/scope_abc", content=json.dumps({"partialKey": "111_ENG/\n"}))
        assert control.status_code == 400 and "U+000A" in control.json()["error"]
        snake = client.request("DELETE", "/reset/scope_abc", content=json.dumps({"partial_key": "111_ENG/"}))
        assert snake.status_code == 400 and "partial_key" in snake.json()["error"]
        assert client.get("/sync", params={"instance": "Not-Valid"}).status_code == 400
        assert client.get(f"/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}").status_code == 404
        assert client.get("/runs/not-a-run").status_code == 400
        nowhere = client.get("/nowhere")
        assert nowhere.status_code == 404 and nowhere.json() == {"error": "no such endpoint"}
        wrong_method = client.post("/sync")
        assert wrong_method.status_code == 405 and "error" in wrong_method.json()

    assert len(api.runs()) == runs_before
    output = api.processes["http_api"].output()
    assert "/sync" in output and "127.0.0.1" in output  # requests are logged with the caller
    assert TOKEN not in output and WRONG_TOKEN not in output


def test_health_answers_503_naming_the_problem_once_the_webserver_stops(stack: Stack) -> None:
    # Last in the module: the webserver stays down for the rest of this stack's life.
    stack.stop("webserver")
    with stack.client(token=None) as anonymous, stack.client() as client:
        health = anonymous.get("/health")
        launch = client.get("/sync")

    assert health.status_code == 503, health.text
    assert "cannot be reached" in health.json()["error"] and stack.webserver_url in health.json()["error"]
    assert launch.status_code == 503 and "cannot be reached" in launch.json()["error"]
