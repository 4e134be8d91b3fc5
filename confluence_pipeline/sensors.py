"""Sensors: `confluence_change_sensor` requests a sync when labelled content changed; the failure sensor reports.

`confluence_change_sensor` keeps as its cursor the newest modification time Confluence reported for what it
watches. Each tick asks for the most recently modified labelled content (`<discovery query> ORDER BY lastmodified
DESC`, with `version` expanded) and compares its `version.when`, an absolute instant by Confluence's own clock,
with the cursor: neither the zone Confluence reads CQL date literals in nor the skew between two clocks plays a
part. It asks the same about the descendants of `INGEST_ALL_LABEL` pages, which carry no label of their own (one
search listing those pages, then one per 100 of them). The first tick only records: switching the sensor on does
not start a sync by itself. Label changes and deletions do not change `lastmodified`; the scheduled sync picks
those up.
"""

# No `from __future__ import annotations` here: Dagster resolves the resource parameters of a sensor
# function from their annotations, which must therefore be real classes, not strings.

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import httpx

from confluence_pipeline.alerts import WEBHOOK_VARIABLE, build_failure_report, post_alert
from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.tls import TrustStoreError, build_ssl_context
from confluence_pipeline.clients.transport import RetryPolicy
from confluence_pipeline.config.location import AlertSettings, ScheduleSettings
from confluence_pipeline.config.secrets import Scrubber
from confluence_pipeline.config.settings import CloudSettings, ConfigurationError, OnPremSettings
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import ANCESTOR_BATCH, discovery_cql, newest_descendant_cql, newest_labelled_cql
from confluence_pipeline.domain.timefmt import to_utc_iso
from confluence_pipeline.resources import VariablesResource
from confluence_pipeline.schedules import TRIGGER_TAG, sync_in_progress

log = logging.getLogger(__name__)

CHANGE_SENSOR_NAME = "confluence_change_sensor"
FAILURE_SENSOR_NAME = "confluence_sync_failure_sensor"
TIMEZONE_VARIABLE = "CONFLUENCE_TIMEZONE"
"""No longer read: the sensor sends no date literal. Deployments that still set it keep working."""
CURSOR_KEY = "newest_modified"
LEGACY_OVERLAP = timedelta(minutes=1)
MAX_ANCESTOR_QUERIES = 10
"""Descendants of at most 1000 subtree-label pages are watched; beyond that the schedule catches them."""
ROOTS_PAGE_SIZE = 200
# A tick must stay far below Dagster's 60 s sensor timeout: short timeouts, one retry, and no new search once
# TICK_BUDGET has passed (permission-filtered pages can make one question take several requests).
SENSOR_RETRY = RetryPolicy(attempts=2, backoff_initial=0.5, backoff_max=2.0, retry_after_max=5.0)
SENSOR_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TICK_BUDGET = timedelta(seconds=30)


@dataclass(frozen=True)
class Seen:
    """What the cursor says the last check saw: the newest modification, or None when nothing watched existed."""

    newest: datetime | None


def format_cursor(newest: datetime | None) -> str:
    return json.dumps({CURSOR_KEY: None if newest is None else _utc_text(newest)})


def parse_cursor(cursor: str | None) -> Seen | None:
    """The cursor's meaning; None when there is none or it cannot be read (the tick then starts afresh).

    A cursor written before the sensor compared modification times is a bare ISO instant: the local time of
    the last check, after which that sensor looked for changes from the start of the previous minute on.
    Taken as the newest modification seen, that start keeps its promise across the upgrade; the cursor written
    next is Confluence's own time.
    """
    if not cursor:
        return None
    try:
        value = json.loads(cursor)
    except ValueError:
        return _legacy_cursor(cursor)
    if not isinstance(value, dict) or CURSOR_KEY not in value:
        return None
    newest = value[CURSOR_KEY]
    if newest is None:
        return Seen(None)
    try:
        return Seen(_instant(newest))
    except ValueError:
        return None


def _legacy_cursor(cursor: str) -> Seen | None:
    try:
        checked = datetime.fromisoformat(cursor.strip())
    except ValueError:
        return None
    if checked.tzinfo is None:
        return None
    return Seen(checked.astimezone(UTC).replace(second=0, microsecond=0) - LEGACY_OVERLAP)


def _instant(text: object) -> datetime:
    """A `version.when` (any offset) as an aware UTC datetime with millisecond precision."""
    if not isinstance(text, str):
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}")
    return datetime.fromisoformat(to_utc_iso(text))


def _utc_text(moment: datetime) -> str:
    return to_utc_iso(moment.isoformat())


@dataclass(frozen=True)
class Latest:
    """The newest modifications Confluence reports: of labelled content, and below `INGEST_ALL_LABEL` pages."""

    labelled: datetime | None
    descendants: datetime | None

    @property
    def newest(self) -> datetime | None:
        return max((when for when in (self.labelled, self.descendants) if when is not None), default=None)

    def change_since(self, seen: Seen, all_label: str) -> str | None:
        """What changed after what `seen` recorded (None for nothing)."""

        def newer(when: datetime | None) -> bool:
            return when is not None and (seen.newest is None or when > seen.newest)

        if newer(self.labelled):
            return "labelled content changed"
        if newer(self.descendants):
            return f"a descendant of a '{all_label}' page changed"
        return None


class TickBudgetExceeded(Exception):
    """The tick ran out of time before it had asked every question."""


def latest_changes(
    client: ConfluenceClient, settings: OnPremSettings | CloudSettings, *, over_budget: Callable[[], bool]
) -> Latest:
    """Ask Confluence when labelled content, and unlabelled content below subtree-label pages, last changed."""
    single, everything = settings.labels.single, settings.labels.subtree
    platform = settings.platform
    labelled = client.newest_modified(newest_labelled_cql(single, everything, platform))
    roots: list[str] = []
    for results in client.search(discovery_cql(everything, everything, platform), expand=(), limit=ROOTS_PAGE_SIZE):
        roots.extend(str(item["id"]) for item in results if str(item.get("id", "")).isdigit())
        if len(roots) > ANCESTOR_BATCH * MAX_ANCESTOR_QUERIES:
            log.warning(
                "More than %d '%s' pages: their unlabelled descendants are not watched, the schedule syncs them",
                ANCESTOR_BATCH * MAX_ANCESTOR_QUERIES,
                everything,
            )
            return Latest(_maybe_instant(labelled), None)
        if over_budget():
            raise TickBudgetExceeded
    descendants: list[str] = []
    for batch in batched(roots, ANCESTOR_BATCH):
        if over_budget():
            raise TickBudgetExceeded
        when = client.newest_modified(newest_descendant_cql(batch))
        if when is not None:
            descendants.append(when)
    return Latest(_maybe_instant(labelled), max(map(_instant, descendants), default=None))


def _maybe_instant(text: str | None) -> datetime | None:
    return None if text is None else _instant(text)


def _describe(moment: datetime | None) -> str:
    return "nothing watched exists yet" if moment is None else _utc_text(moment)


def run_key_for(newest: datetime, sensor_name: str = CHANGE_SENSOR_NAME) -> str:
    """The change's own time: a re-evaluated tick sees the same newest modification and cannot start a second run."""
    return f"{sensor_name}:{_utc_text(newest)}"


def open_sensor_client(settings: OnPremSettings | CloudSettings) -> ConfluenceClient:
    return build_confluence_client(settings, verify=build_ssl_context(), retry=SENSOR_RETRY, timeout=SENSOR_TIMEOUT)


def build_change_sensor(
    location: ScheduleSettings,
    job: dg.JobDefinition,
    environ: Mapping[str, str] | None = None,
    *,
    resources: Mapping[str, VariablesResource],
    name: str = CHANGE_SENSOR_NAME,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dg.SensorDefinition:
    """The change sensor of one instance: `job` and the instance's `resources`, every CHANGE_SENSOR_INTERVAL_SECONDS.

    `clock` measures the tick against TICK_BUDGET; `environ` (default: the process environment) is read only to
    point out a CONFLUENCE_TIMEZONE that is still set.
    """
    interval = location.change_sensor_interval_seconds

    def confluence_change_sensor(
        context: dg.SensorEvaluationContext,
        confluence: VariablesResource,
        unique: VariablesResource,
        sync_options: VariablesResource,
    ) -> dg.RunRequest | dg.SkipReason:
        busy = sync_in_progress(context.instance, job.name)
        if busy:
            # The cursor stays put, so changes made meanwhile are still seen once that run is done.
            return dg.SkipReason(f"a {job.name} run is already queued or running ({', '.join(busy)})")
        # Checked without setting the resources up: the tick builds only its own short-timeout client.
        problems: dict[str, str] = {}
        try:
            settings: OnPremSettings | CloudSettings = confluence.validate()
        except ConfigurationError as exc:
            problems.update(exc.problems)
        problems.update(unique.check())
        problems.update(sync_options.check())
        if problems:
            return dg.SkipReason(
                f"cannot check Confluence until the configuration is fixed. {ConfigurationError(problems)}"
            )
        started = clock()
        try:
            client = open_sensor_client(settings)
        except TrustStoreError as exc:
            return dg.SkipReason(f"cannot check Confluence: {exc}")
        try:
            latest = latest_changes(client, settings, over_budget=lambda: clock() - started > TICK_BUDGET)
        except RemoteError as exc:
            return dg.SkipReason(f"Confluence check failed, retrying on the next tick: {exc}")
        except TickBudgetExceeded:
            return dg.SkipReason(
                f"Confluence answered too slowly to finish the check within {TICK_BUDGET.seconds} s; "
                "retrying on the next tick"
            )
        finally:
            client.close()
        previous = context.cursor
        seen = parse_cursor(previous)
        # The cursor is what Confluence reported now, even when that is older than what was seen before (the
        # newest page was deleted or restricted, or an old cursor came from a clock ahead of Confluence's).
        context.update_cursor(format_cursor(latest.newest))
        if seen is None:
            env = os.environ if environ is None else environ
            notes = [f"unreadable cursor {previous!r} replaced"] if previous else []
            if (env.get(TIMEZONE_VARIABLE) or "").strip():
                notes.append(f"{TIMEZONE_VARIABLE} is no longer needed and is ignored")
            note = f" ({'; '.join(notes)})" if notes else ""
            return dg.SkipReason(f"first check{note}: watching for changes after {_describe(latest.newest)}")
        change = latest.change_since(seen, settings.labels.subtree)
        if change is None or latest.newest is None:
            return dg.SkipReason(
                f"no change after {_describe(seen.newest)} (newest modification: {_describe(latest.newest)})"
            )
        tags = {
            TRIGGER_TAG: name,
            "confluence_pipeline/change": change,
            "confluence_pipeline/newest_modified": _utc_text(latest.newest),
        }
        if seen.newest is not None:
            tags["confluence_pipeline/changed_since"] = _utc_text(seen.newest)
        return dg.RunRequest(run_key=run_key_for(latest.newest, name), tags=tags)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every {interval} s (CHANGE_SENSOR_INTERVAL_SECONDS): request a {job.name} run when labelled "
            "Confluence content (or a descendant of an INGEST_ALL_LABEL page) was modified after the newest "
            "modification the last check saw."
        ),
    )
    def instance_change_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # A sensor binds no resources of its own, and each instance has its own: its variables are read per tick.
        return confluence_change_sensor(
            context, resources["confluence"], resources["unique"], resources["sync_options"]
        )

    return instance_change_sensor


def build_failure_sensor(
    location: AlertSettings, jobs: list[dg.JobDefinition], scrubber: Scrubber
) -> dg.SensorDefinition:
    """Reports every failed sync run of every instance: a log line always, a POST when ALERT_WEBHOOK_URL is set."""
    webhook = location.alert_webhook_url

    @dg.run_failure_sensor(
        name=FAILURE_SENSOR_NAME,
        monitored_jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Report failed sync runs of every instance in the log and, when {WEBHOOK_VARIABLE} is set, to it.",
    )
    def confluence_sync_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        report = build_failure_report(
            context.dagster_run,
            context.failure_event.message or "",
            context.get_step_failure_events(),
            scrubber=scrubber,
            webserver_url=location.dagster_webserver_url,
        )
        context.log.error(report.summary())
        if webhook is not None:
            # A failed delivery fails this sensor tick, visibly in the UI; the run is not reported twice.
            status = post_alert(webhook.get_secret_value(), report.payload())
            context.log.info(f"Failure report for run {report.run_id} delivered ({WEBHOOK_VARIABLE}: HTTP {status})")

    return confluence_sync_failure_sensor
