"""Freshness: an instance turns stale without a successful sync in FRESHNESS_HOURS, and alerts once per episode."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest

from confluence_pipeline.alerts import AlertDeliveryError
from confluence_pipeline.config.location import AlertSettings, load_location_settings
from confluence_pipeline.freshness import (
    CHECK_NAME,
    FRESH_UNTIL_KEY,
    FRESHNESS_SENSOR_NAME,
    Watched,
    build_freshness_sensor,
    freshness_checks,
    instance_asset,
)
from confluence_pipeline.jobs import DEFAULT_FROM_ENVIRONMENT
from confluence_pipeline.jobs.assets import LAST_UPDATED_KEY, instance_asset_key
from confluence_pipeline_tests.support import HOOK_PATH, Sandbox, WebhookReceiver
from confluence_sandbox.http import Fault

HOUR = 3600.0
WATCHED = Watched("default", "confluence_sync", 1.0)  # a successful sync at least every hour


def labelled(box: Sandbox) -> None:
    box.confluence.wiki.add_space("ENG", "Engineering")
    box.confluence.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])


def observe(instance: dg.DagsterInstance, ended: float) -> None:
    """What a successful sync leaves: an observation of the instance's asset saying when it ended."""
    metadata = {LAST_UPDATED_KEY: dg.MetadataValue.timestamp(ended)}
    instance.report_runless_asset_event(dg.AssetObservation(instance_asset_key("default"), metadata=metadata))


# -- Dagster's own check on the observed asset ----------------------------------------------------------------
def run_check(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    checks = freshness_checks([WATCHED])
    defs = dg.Definitions(
        assets=[instance_asset(DEFAULT_FROM_ENVIRONMENT)],
        asset_checks=checks,
        jobs=[dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(*checks))],
    )
    result = defs.resolve_job_def("freshness").execute_in_process(instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME
    return evaluation


def test_dagsters_freshness_check_reads_the_observation_of_a_successful_sync(onprem: Sandbox) -> None:
    assert not run_check(onprem.instance).passed  # never synced

    labelled(onprem)
    onprem.run_sync()
    assert run_check(onprem.instance).passed

    observe(onprem.instance, time.time() - 2 * HOUR)  # the newest sync ended longer ago than the window
    evaluation = run_check(onprem.instance)
    assert not evaluation.passed and "overdue" in (evaluation.description or "")


def test_a_failed_sync_leaves_the_asset_stale(onprem: Sandbox) -> None:
    labelled(onprem)
    onprem.confluence.faults.add(r"/content/search$", Fault(503), times=None)
    onprem.run_sync(expect_success=False)
    assert not run_check(onprem.instance).passed


# -- the sensor: the check's state in the UI, and one alert per stale episode --------------------------------------
class Ticks:
    """The freshness sensor evaluated at chosen times, its cursor carried from tick to tick."""

    def __init__(self, instance: dg.DagsterInstance, alerts: AlertSettings) -> None:
        self.instance = instance
        self.now = 0.0
        self.cursor: str | None = None
        self.sensor = build_freshness_sensor([WATCHED], alerts, clock=lambda: self.now)

    def at(self, moment: float) -> dg.SensorExecutionData:
        self.now = moment
        with dg.build_sensor_context(cursor=self.cursor, instance=self.instance) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result


def evaluations(result: dg.SensorExecutionData) -> list[bool]:
    return [event.passed for event in result.asset_events if isinstance(event, dg.AssetCheckEvaluation)]


def test_stale_then_fresh_then_stale_again_alerts_once_per_episode(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}", DAGSTER_WEBSERVER_URL="http://dagster.example")
    ticks = Ticks(onprem.instance, load_location_settings(onprem.env))
    start = time.time() - 10 * HOUR

    # Never synced: watched from the first tick on, stale only once the window has passed without a sync.
    first = ticks.at(start)
    assert evaluations(first) == [] and "not yet due" in (first.skip_message or "")
    assert evaluations(ticks.at(start + 0.5 * HOUR)) == []
    assert evaluations(ticks.at(start + 1.5 * HOUR)) == [False]
    (never,) = webhook.payloads()
    assert (never["status"], never["instance"], never["job"]) == ("STALE", "default", "confluence_sync")
    assert never["run_id"] is None
    assert "no successful sync within FRESHNESS_HOURS (1 h)" in never["text"]
    assert evaluations(ticks.at(start + 3 * HOUR)) == []  # still stale: no second alert
    assert len(webhook.payloads()) == 1

    # A successful sync: fresh again at the next tick, the check passes, nothing is posted.
    labelled(onprem)
    run = onprem.run_sync()
    synced = time.time()
    fresh = ticks.at(synced + 60)
    (passed,) = [e for e in fresh.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert passed.passed and passed.asset_key == instance_asset_key("default") and passed.check_name == CHECK_NAME
    assert passed.metadata[FRESH_UNTIL_KEY].value == pytest.approx(synced + HOUR, abs=30)
    assert len(webhook.payloads()) == 1

    # No sync within the window: stale again, a second episode, one more alert naming the last good run.
    stale = ticks.at(synced + 1.5 * HOUR)
    (failed,) = [e for e in stale.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    assert evaluations(ticks.at(synced + 2 * HOUR)) == []
    _, again = webhook.payloads()
    assert again["run_id"] == run.run_id and again["run_url"] == f"http://dagster.example/runs/{run.run_id}"
    assert again["trigger"] == FRESHNESS_SENSOR_NAME and again["failures"] == []
    assert "no successful sync for 1.5 h (FRESHNESS_HOURS 1 h)" in again["text"]


def test_only_a_successful_sync_makes_it_fresh(onprem: Sandbox) -> None:
    ticks = Ticks(onprem.instance, load_location_settings({}))
    start = time.time()
    ticks.at(start)
    labelled(onprem)
    onprem.run_sync({"test_mode": True})  # writes nothing: no freshness from it
    assert evaluations(ticks.at(start + 2 * HOUR)) == [False]


def test_a_refused_alert_fails_the_tick_and_is_sent_again(onprem: Sandbox, webhook: WebhookReceiver) -> None:
    onprem.set_env(ALERT_WEBHOOK_URL=f"{webhook.url}{HOOK_PATH}")
    ticks = Ticks(onprem.instance, load_location_settings(onprem.env))
    start = time.time() - 5 * HOUR
    observe(onprem.instance, start - 2 * HOUR)
    webhook.status = 500

    with pytest.raises(AlertDeliveryError):
        ticks.at(start)

    webhook.status = 200
    assert evaluations(ticks.at(start + 60)) == [False]
    assert len(webhook.payloads()) == 2 and json.dumps(webhook.payloads()).count(HOOK_PATH) == 0
