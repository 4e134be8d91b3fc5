"""Each instance's asset, its freshness check, and the sensor that keeps the check current and alerts on staleness.

Every active or inactive instance is an external asset, `unique/confluence/<instance>`, that its successful syncs
observe. Dagster 1.13's `FreshnessPolicy` judges an asset by its materializations only, so an observed asset would
stay "unknown" under it; the freshness checks of `build_last_update_freshness_checks` read observations that carry
`dagster/last_updated_timestamp`, so each active instance gets one for its FRESHNESS_HOURS. Dagster's sensor for those
checks re-runs a failed check only after a materialization, which would leave an observed asset stale after the next
good sync. `confluence_freshness_sensor` therefore applies the check's rule itself on every tick (a successful sync
within the window), records each change as the check's evaluation, so the asset turns stale or fresh in the UI, and
sends one alert per stale episode, shaped like the failure sensor's.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg

from confluence_pipeline.alerts import WEBHOOK_VARIABLE, StaleReport, post_alert, run_url, utc_text
from confluence_pipeline.config.instances import Instance, InstanceStatus
from confluence_pipeline.config.location import AlertSettings
from confluence_pipeline.jobs.assets import LAST_UPDATED_KEY, instance_asset_key
from confluence_pipeline.jobs.writers import INSTANCE_TAG

CHECK_NAME = "freshness_check"  # the name build_last_update_freshness_checks gives its checks
FRESHNESS_SENSOR_NAME = "confluence_freshness_sensor"
FRESHNESS_SENSOR_INTERVAL_SECONDS = 300
FRESH_UNTIL_KEY = "dagster/fresh_until_timestamp"  # the entries Dagster's own freshness checks write
LOWER_BOUND_KEY = "dagster/freshness_lower_bound_timestamp"


@dataclass(frozen=True)
class Watched:
    """An active instance whose asset must be observed (a successful sync) at least every `hours`."""

    instance: str
    job_name: str
    hours: float

    @property
    def asset_key(self) -> dg.AssetKey:
        return instance_asset_key(self.instance)

    @property
    def check_key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset_key, CHECK_NAME)

    @classmethod
    def of(cls, instance: Instance) -> Watched | None:
        if instance.status is not InstanceStatus.ACTIVE or instance.location is None:
            return None
        return cls(instance.name, instance.sync_job_name, instance.location.freshness_hours)


def instance_asset(instance: Instance) -> dg.AssetSpec:
    """The content one instance keeps in Unique, as an asset its successful syncs observe."""
    state = (
        f"observed by every successful {instance.sync_job_name} run"
        if instance.status is InstanceStatus.ACTIVE
        else "inactive: no runs, its content stays in Unique"
    )
    return dg.AssetSpec(
        instance_asset_key(instance.name),
        description=f"Confluence instance {instance.name}: the pages it keeps in Unique; {state}.",
        group_name="confluence_instances",
        kinds={"confluence"},
        tags={INSTANCE_TAG: instance.name},
        metadata={"instance": instance.name, "status": instance.status.value, "sync_job": instance.sync_job_name},
    )


def freshness_checks(watched: Sequence[Watched]) -> list[dg.AssetChecksDefinition]:
    """Dagster's last-update freshness check on each watched asset, with the instance's FRESHNESS_HOURS."""
    checks: list[dg.AssetChecksDefinition] = []
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, which cannot judge an observed asset on this Dagster version.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        for item in watched:
            checks.extend(
                dg.build_last_update_freshness_checks(
                    assets=[item.asset_key], lower_bound_delta=timedelta(hours=item.hours)
                )
            )
    return checks


@dataclass(frozen=True)
class _LastSync:
    ended: float
    run_id: str


def last_successful_sync(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> _LastSync | None:
    """When the newest observation of the asset (one per successful sync) says the sync ended."""
    records = instance.fetch_observations(asset_key, limit=1).records
    if not records:
        return None
    record = records[0]
    observation = record.asset_observation
    stamp = observation.metadata.get(LAST_UPDATED_KEY) if observation is not None else None
    ended = getattr(stamp, "value", None)
    return _LastSync(float(ended) if isinstance(ended, int | float) else record.timestamp, record.run_id)


def build_freshness_sensor(
    watched: Sequence[Watched],
    alerts: AlertSettings,
    *,
    clock: Callable[[], float] = time.time,
    minimum_interval_seconds: int = FRESHNESS_SENSOR_INTERVAL_SECONDS,
) -> dg.SensorDefinition:
    """Every few minutes: is each instance fresh? Record a change as its check's evaluation; alert when it turns stale.

    The cursor keeps, per instance, since when the sensor watches it (an instance that never synced counts from
    then, so deploying the code location alerts nobody) and whether it was stale at the last tick.
    """
    webhook = alerts.alert_webhook_url

    @dg.sensor(
        name=FRESHNESS_SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Marks an instance's asset stale (its freshness check fails) when no sync succeeded within its "
            f"FRESHNESS_HOURS, fresh again after the next one; reports each stale instance once to the log and, "
            f"when {WEBHOOK_VARIABLE} is set, to it."
        ),
    )
    def confluence_freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = clock()
        previous = _read_cursor(context.cursor)
        state: dict[str, dict[str, Any]] = {}
        events: list[dg.AssetCheckEvaluation] = []
        reports: list[StaleReport] = []
        for item in watched:
            since = previous.get(item.instance, {}).get("since", now)
            was_stale = previous.get(item.instance, {}).get("stale")
            last = last_successful_sync(context.instance, item.asset_key)
            stale = now - (last.ended if last else since) >= item.hours * 3600
            is_stale = None if last is None and not stale else stale  # never synced, still within its window
            state[item.instance] = {"since": since, "stale": is_stale}
            if is_stale is None or is_stale == was_stale:
                continue
            report = StaleReport(
                instance=item.instance,
                job_name=item.job_name,
                freshness_hours=item.hours,
                checked_at=now,
                last_success=last.ended if last else None,
                run_id=last.run_id if last else None,
                run_url=run_url(alerts.dagster_webserver_url, last.run_id) if last else None,
                trigger=FRESHNESS_SENSOR_NAME,
            )
            events.append(_evaluation(item, report, stale=is_stale))
            if is_stale:
                reports.append(report)
        for report in reports:
            context.log.error(report.summary())
            if webhook is not None:
                # A refused delivery fails the tick; the cursor stays, so the next tick sends it again.
                status = post_alert(webhook.get_secret_value(), report.payload())
                context.log.info(f"Stale report for {report.instance} delivered ({WEBHOOK_VARIABLE}: HTTP {status})")
        cursor = json.dumps(state, sort_keys=True)
        if not events:
            stale_now = sorted(name for name, s in state.items() if s["stale"])
            summary = f"stale: {', '.join(stale_now)}" if stale_now else "every instance is fresh or not yet due"
            return dg.SensorResult(skip_reason=f"no change ({summary})", cursor=cursor)
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return confluence_freshness_sensor


def _evaluation(item: Watched, report: StaleReport, *, stale: bool) -> dg.AssetCheckEvaluation:
    window = item.hours * 3600
    metadata: dict[str, Any] = {LOWER_BOUND_KEY: dg.MetadataValue.timestamp(report.checked_at - window)}
    if report.last_success is not None:
        metadata[LAST_UPDATED_KEY] = dg.MetadataValue.timestamp(report.last_success)
    if not stale and report.last_success is not None:
        metadata[FRESH_UNTIL_KEY] = dg.MetadataValue.timestamp(report.last_success + window)
    if report.run_id:
        metadata["last_sync_run_id"] = report.run_id
    if stale or report.last_success is None:  # a fresh instance has synced: only a stale one may have not
        description = report.message()
    else:
        description = (
            f"A sync succeeded within FRESHNESS_HOURS ({item.hours:g} h): the last one ended "
            f"{utc_text(report.last_success)}"
        )
    return dg.AssetCheckEvaluation(
        asset_key=item.asset_key,
        check_name=CHECK_NAME,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _read_cursor(cursor: str | None) -> dict[str, dict[str, Any]]:
    try:
        value = json.loads(cursor or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, dict) and isinstance(v.get("since"), int | float)}
