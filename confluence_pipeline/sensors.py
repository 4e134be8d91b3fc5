"""Sensors: `confluence_change_sensor` requests a sync when labelled content changed; the failure sensor reports.

`confluence_change_sensor` keeps as its cursor the UTC time of its last completed check. Each tick asks
Confluence (one small CQL search, `limit=1`, no expansion) whether labelled content was modified since
then, with one minute of overlap because CQL dates have minute precision and the two clocks differ. When
nothing labelled changed it also asks about descendants of `INGEST_ALL_LABEL` pages, which carry no label
of their own (one search listing those pages, then one per 100 of them). The first tick only records the
time: switching the sensor on does not start a sync by itself. Label changes and deletions do not change
`lastmodified`; the scheduled sync picks those up.
"""

# No `from __future__ import annotations` here: Dagster resolves the resource parameters of a sensor
# function from their annotations, which must therefore be real classes, not strings.

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from confluence_pipeline.domain.cql import ANCESTOR_BATCH, changed_since_cql, descendants_cql, discovery_cql, quote
from confluence_pipeline.domain.timefmt import cql_datetime
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource, VariablesResource
from confluence_pipeline.schedules import TRIGGER_TAG, sync_in_progress

log = logging.getLogger(__name__)

CHANGE_SENSOR_NAME = "confluence_change_sensor"
FAILURE_SENSOR_NAME = "confluence_sync_failure_sensor"
TIMEZONE_VARIABLE = "CONFLUENCE_TIMEZONE"
OVERLAP = timedelta(minutes=1)
MAX_ANCESTOR_QUERIES = 10
"""Descendants of at most 1000 subtree-label pages are watched; beyond that the schedule catches them."""
ROOTS_PAGE_SIZE = 200
# A tick must stay far below Dagster's 60 s sensor timeout: short timeouts, one retry.
SENSOR_RETRY = RetryPolicy(attempts=2, backoff_initial=0.5, backoff_max=2.0, retry_after_max=5.0)
SENSOR_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def confluence_timezone(environ: Mapping[str, str]) -> ZoneInfo:
    """The zone Confluence reads CQL date literals in (its server's zone; UTC on Cloud)."""
    name = (environ.get(TIMEZONE_VARIABLE) or "").strip() or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError({TIMEZONE_VARIABLE: f"{name!r} is not an IANA time zone name"}) from None


def format_cursor(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_cursor(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        moment = datetime.fromisoformat(cursor.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def window_start(since: datetime) -> datetime:
    """Start of the query window: the cursor's minute, one minute earlier."""
    return since.astimezone(UTC).replace(second=0, microsecond=0) - OVERLAP


def run_key_for(start: datetime) -> str:
    """Same cursor → same window → same key, so a re-evaluated tick cannot start a second run."""
    return f"{CHANGE_SENSOR_NAME}:{start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def find_changes(
    client: ConfluenceClient, settings: OnPremSettings | CloudSettings, since: datetime, tz: ZoneInfo
) -> str | None:
    """What changed at or after `since` (None for nothing): labelled content first, then unlabelled descendants."""
    single, everything = settings.labels.single, settings.labels.subtree
    platform = settings.platform
    if client.has_any(changed_since_cql(single, everything, platform, since, tz)):
        return "labelled content changed"
    roots: list[str] = []
    for results in client.search(discovery_cql(everything, everything, platform), expand=(), limit=ROOTS_PAGE_SIZE):
        roots.extend(str(item["id"]) for item in results if str(item.get("id", "")).isdigit())
        if len(roots) > ANCESTOR_BATCH * MAX_ANCESTOR_QUERIES:
            log.warning(
                "More than %d '%s' pages: their unlabelled descendants are not watched, the schedule syncs them",
                ANCESTOR_BATCH * MAX_ANCESTOR_QUERIES,
                everything,
            )
            return None
    literal = quote(cql_datetime(since, tz))
    for batch in batched(roots, ANCESTOR_BATCH):
        if client.has_any(f"{descendants_cql(batch)} AND lastmodified >= {literal}"):
            return f"a descendant of a '{everything}' page changed"
    return None


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
    """The change sensor of one instance: `job` and the instance's `resources`, every CHANGE_SENSOR_INTERVAL_SECONDS."""
    interval = location.change_sensor_interval_seconds

    def confluence_change_sensor(
        context: dg.SensorEvaluationContext,
        confluence: ConfluenceResource,
        unique: UniqueResource,
        sync_options: SyncOptionsResource,
    ) -> dg.RunRequest | dg.SkipReason:
        env = os.environ if environ is None else environ
        busy = sync_in_progress(context.instance, job.name)
        if busy:
            # The cursor stays put, so changes made meanwhile are still seen once that run is done.
            return dg.SkipReason(f"a {job.name} run is already queued or running ({', '.join(busy)})")
        now = clock()
        since = parse_cursor(context.cursor)
        if since is None:
            context.update_cursor(format_cursor(now))
            note = f" (unreadable cursor {context.cursor!r} replaced)" if context.cursor else ""
            return dg.SkipReason(f"first check{note}: watching for changes from {format_cursor(now)} on")
        problems: dict[str, str] = {}
        for resource in (confluence, unique, sync_options):
            problems.update(resource.problems)
        try:
            tz = confluence_timezone(env)
        except ConfigurationError as exc:
            problems.update(exc.problems)
        if problems:
            return dg.SkipReason(
                f"cannot check Confluence until the configuration is fixed. {ConfigurationError(problems)}"
            )
        start = window_start(since)
        try:
            client = open_sensor_client(confluence.settings)
        except TrustStoreError as exc:
            return dg.SkipReason(f"cannot check Confluence: {exc}")
        try:
            change = find_changes(client, confluence.settings, start, tz)
        except RemoteError as exc:
            return dg.SkipReason(f"Confluence check failed, retrying on the next tick: {exc}")
        finally:
            client.close()
        context.update_cursor(format_cursor(now))
        if change is None:
            return dg.SkipReason(f"no change since {cql_datetime(start, tz)} ({tz.key}, Confluence time)")
        return dg.RunRequest(
            run_key=run_key_for(start),
            tags={
                TRIGGER_TAG: name,
                "confluence_pipeline/changed_since": format_cursor(start),
                "confluence_pipeline/change": change,
            },
        )

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every {interval} s (CHANGE_SENSOR_INTERVAL_SECONDS): request a {job.name} run when labelled "
            "Confluence content (or a descendant of an INGEST_ALL_LABEL page) was modified since the last check."
        ),
    )
    def instance_change_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # A sensor binds no resources of its own, and each instance has its own: built for the length of a tick.
        with dg.build_resources(resources) as built:
            return confluence_change_sensor(context, built.confluence, built.unique, built.sync_options)

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
