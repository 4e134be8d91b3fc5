"""`confluence_sync_failure_sensor`: a concise report of a failed sync (instance, stage, spaces, pages), POSTed."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from confluence_pipeline.alerts import AlertDeliveryError, build_failure_report
from confluence_pipeline.config.instances import (
    INSTANCES_FILE_VARIABLE,
    Instance,
    InstanceStatus,
    environment_bindings,
    load_instances,
)
from confluence_pipeline.config.location import load_location_settings
from confluence_pipeline.config.settings import scrubber_for_variables
from confluence_pipeline.definitions import scrubber_for_instances
from confluence_pipeline.jobs.sync import build_sync_job, confluence_sync
from confluence_pipeline.sensors import FAILURE_SENSOR_NAME, build_failure_sensor
from confluence_pipeline_tests.support import (
    HOOK_PATH,
    OAUTH_CLIENT_SECRET,
    PAT,
    ZITADEL_SECRET,
    Sandbox,
    WebhookReceiver,
    fake_run,
)
from confluence_sandbox.http import Fault


def report_failure(box: Sandbox, result: dg.ExecuteInProcessResult) -> None:
    assert not result.success
    sensor = build_failure_sensor(load_location_settings(box.env), [confluence_sync], scrubber_for_variables(box.env))
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR_NAME,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=box.instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sensor(context)


def test_discovery_failure_is_reported_with_its_stage_and_guard(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}", DAGSTER_WEBSERVER_URL="http://dagster.example/")
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    onprem.confluence.faults.add(r"/content/search$", Fault(401, body=b'{"message":"token revoked"}'), times=None)
    result = onprem.run_sync(expect_success=False)

    report_failure(onprem, result)

    (payload,) = webhook.payloads()
    assert payload["job"] == "confluence_sync" and payload["run_id"] == result.run_id
    assert payload["run_url"] == f"http://dagster.example/runs/{result.run_id}"
    (failure,) = payload["failures"]
    assert (failure["stage"], failure["step"], failure["guard"]) == (
        "discover",
        "discover_labelled_pages",
        "discovery-incomplete",
    )
    assert "401" in failure["description"]
    assert "discover" in payload["text"] and "discovery-incomplete" in payload["text"]
    body = b"".join(r.body for r in webhook.requests)
    assert PAT.encode() not in body and ZITADEL_SECRET.encode() not in body


def test_page_failures_name_the_pages(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]).id for n in range(2)]
    onprem.unique.faults.add(r".*", Fault(400, body=b"rejected"), method="PUT", times=None)
    result = onprem.run_sync(expect_success=False)

    report_failure(onprem, result)

    (payload,) = webhook.payloads()
    (failure,) = payload["failures"]
    assert failure["stage"] == "report"
    assert sorted(failure["failed_pages"]) == sorted(pages)
    assert "SYNC_FAILURE_TOLERANCE" in failure["description"]
    assert all(page in payload["text"] for page in pages)


def test_a_guard_trip_names_the_spaces(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OPS", "Operations")
    eng = [wiki.add_page("ENG", f"E{n}", labels=["ai-ingest"]).id for n in range(2)]
    wiki.add_page("OPS", "O", labels=["ai-ingest"])
    onprem.run_sync()
    broken = {"newFiles": [], "updatedFiles": [], "movedFiles": [], "deletedFiles": eng}
    onprem.unique.faults.add(
        r"/v2/content/file-diff$",
        Fault(200, {"Content-Type": "application/json"}, json.dumps(broken).encode()),
        when=lambda r: b"_ENG" in r.body,
    )
    result = onprem.run_sync(expect_success=False)

    report_failure(onprem, result)

    (payload,) = webhook.payloads()
    guard = next(f for f in payload["failures"] if f["stage"] == "guard")
    assert guard["spaces"] == ["ENG"]
    assert "full-deletion" in payload["text"]


def test_without_a_webhook_the_report_is_only_logged(
    onprem: Sandbox, webhook: WebhookReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    onprem.confluence.faults.add(r"/content/search$", Fault(401), times=None)
    result = onprem.run_sync(expect_success=False)
    capfd.readouterr()

    report_failure(onprem, result)

    assert webhook.requests == []
    logged = capfd.readouterr().err
    assert f"confluence_sync run {result.run_id} failed" in logged and "discover_labelled_pages" in logged


def test_a_refusing_webhook_fails_the_tick_without_showing_its_url(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    webhook.status = 500
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}")
    onprem.confluence.faults.add(r"/content/search$", Fault(401), times=None)
    result = onprem.run_sync(expect_success=False)

    with pytest.raises(AlertDeliveryError) as raised:
        report_failure(onprem, result)

    assert "HTTP 500" in str(raised.value) and "ALERT_WEBHOOK_URL" in str(raised.value)
    assert HOOK_PATH not in str(raised.value) and webhook.url not in str(raised.value)
    assert len(webhook.payloads()) == 1


def test_a_run_without_step_failures_reports_the_run_message_and_scrubs_secrets() -> None:
    instance = dg.DagsterInstance.ephemeral()
    run = fake_run(instance, dg.DagsterRunStatus.FAILURE)
    env = {
        "CONFLUENCE_PAT": PAT,
        "CONFLUENCE_CLIENT_SECRET": OAUTH_CLIENT_SECRET,
        "UNIQUE_SERVICE_EXTRA_HEADERS": json.dumps({"x-api-key": 'k3y-Value-"quoted'}),
    }

    scrubber = scrubber_for_variables(env)
    message = f'worker crashed with {PAT}, {OAUTH_CLIENT_SECRET} and k3y-Value-"quoted in memory'
    report = build_failure_report(run, message, [], scrubber=scrubber)

    assert report.steps == ()
    assert "worker crashed" in report.summary()
    dumped = json.dumps(report.payload())
    assert PAT not in dumped and PAT not in report.summary() and "k3y-Value" not in dumped
    assert OAUTH_CLIENT_SECRET not in dumped and OAUTH_CLIENT_SECRET not in report.summary()
    # Each secret is replaced whole: a shorter one never leaves part of a longer one behind.
    assert scrubber.scrub(f'{PAT} k3y-Value-"quoted') == "*** ***"


def test_the_report_names_the_instance_of_the_failed_run(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}")
    onprem.confluence.faults.add(r"/content/search$", Fault(401), times=None)
    job = build_sync_job(Instance("emea", InstanceStatus.ACTIVE, environment_bindings(onprem.env), None))
    result = job.execute_in_process(instance=onprem.instance, raise_on_error=False)
    sensor = build_failure_sensor(load_location_settings(onprem.env), [job], scrubber_for_variables(onprem.env))
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR_NAME,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=onprem.instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()

    sensor(context)

    (payload,) = webhook.payloads()
    assert (payload["job"], payload["instance"]) == ("confluence_sync__emea", "emea")
    assert payload["text"].startswith(f"confluence_sync__emea run {result.run_id} failed (instance emea)")


def test_the_scrubber_knows_the_secrets_of_every_instance(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(
        "defaults:\n"
        "  UNIQUE_INGESTION_URL: https://gw.example.com/ingestion/v1/content\n"
        "  UNIQUE_INGESTION_URL_GRAPHQL: https://gw.example.com/ingestion/graphql\n"
        "  UNIQUE_SERVICE_AUTH_MODE: cluster_local\n"
        "  UNIQUE_SERVICE_EXTRA_HEADERS_ENV: HEADERS\n"
        "instances:\n"
        "  - {name: dc, CONFLUENCE_INSTANCE_TYPE: ONPREM, CONFLUENCE_URL: 'https://a.x', CONFLUENCE_PAT_ENV: A}\n"
        "  - {name: dc2, CONFLUENCE_INSTANCE_TYPE: ONPREM, CONFLUENCE_URL: 'https://b.x', CONFLUENCE_PAT_ENV: B}\n",
        encoding="utf-8",
    )
    headers = json.dumps({"x-company-id": "company-Secret-1", "x-user-id": "user-Secret-22"})
    environ = {INSTANCES_FILE_VARIABLE: str(path), "A": "pat-Secret-A-111", "B": "pat-Secret-B-222", "HEADERS": headers}

    scrubber = scrubber_for_instances(load_instances(environ), environ)

    text = "pat-Secret-A-111 pat-Secret-B-222 company-Secret-1 user-Secret-22"
    assert scrubber.scrub(text) == "*** *** *** ***"
