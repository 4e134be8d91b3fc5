"""The Dagster webserver's GraphQL API as the service uses it: check the code location, launch runs, read runs."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.httpx import HTTPXTransport

from confluence_pipeline.http_api.jobs import FINISHED_STATUSES

EVENTS_PER_PAGE = 1000
MAX_EVENT_PAGES = 200  # 200k events: far beyond any sync's event log, but a bound on a runaway read
MESSAGE_LIMIT = 2000
MAX_FAILURES = 20
RUN_QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"

LOCATIONS_QUERY = """
query ConfluenceHttpApiLocations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name jobs { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

RUNS_QUERY = """
query ConfluenceHttpApiRuns($filter: RunsFilter!, $limit: Int!) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
"""

RUN_QUERY = """
query ConfluenceHttpApiRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status creationTime startTime endTime }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query ConfluenceHttpApiRunEvents($runId: ID!, $afterCursor: String, $limit: Int!) {
  logsForRun(runId: $runId, afterCursor: $afterCursor, limit: $limit) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepOutputEvent { stepKey metadataEntries { ...Entry } }
        ... on ExecutionStepFailureEvent {
          stepKey
          message
          error { message }
          failureMetadata { metadataEntries { ...Entry } }
        }
        ... on RunFailureEvent { message }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}

fragment Entry on MetadataEntry {
  __typename
  label
  ... on IntMetadataEntry { intValue intRepr }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on JsonMetadataEntry { jsonString }
  ... on TextMetadataEntry { text }
}
"""

DAEMON_QUERY = """
query ConfluenceHttpApiDaemon($daemonType: String!) {
  instance { daemonHealth { daemonStatus(daemonType: $daemonType) { healthy required lastHeartbeatTime } } }
}
"""


class DagsterUnavailable(Exception):
    """The webserver could not be reached, timed out, or did not answer like a Dagster webserver."""


class DagsterRequestFailed(Exception):
    """The webserver answered but refused or failed the request (GraphQL error, launch rejected, server error)."""


@dataclass(frozen=True)
class CodeLocation:
    """One code location of the workspace as the webserver sees it."""

    name: str
    status: Literal["loaded", "loading", "failed", "missing"]
    error: str | None = None
    jobs: Mapping[str, str] = field(default_factory=dict)  # job name -> its repository
    known_locations: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunState:
    run_id: str
    job_name: str
    status: str  # Dagster's status name, e.g. QUEUED, STARTED, SUCCESS
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass(frozen=True)
class StepFailure:
    step_key: str | None  # None for a failure of the whole run (e.g. its process died)
    message: str


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run reported: one step's metadata (output or failure) and every failure message."""

    metadata: Mapping[str, Any]
    failures: tuple[StepFailure, ...]
    complete: bool = True  # False when the event log was longer than this service reads


@dataclass(frozen=True)
class DaemonState:
    healthy: bool | None
    last_heartbeat: datetime | None


class DagsterWebserver:
    """GraphQL client of one Dagster webserver; thread-safe (every call opens and closes its own connection).

    Runs are launched with `dagster_graphql.DagsterGraphQLClient`, so they enter the run queue exactly like a
    launch from the UI. The queries that client lacks go through the same kind of gql transport, built by one
    factory (`_transport`), so both share the URL, timeout, proxy and TLS behaviour and one error translation.
    Every value travels as a GraphQL variable; no query text is ever assembled from input.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        code_location: str,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.graphql_url = f"{self.base_url}/graphql"
        self.code_location_name = code_location
        self._timeout = timeout_seconds
        self._http_transport = http_transport  # tests pass an httpx.MockTransport here

    def run_url(self, run_id: str) -> str:
        return f"{self.base_url}/runs/{run_id}"

    # -- reads -----------------------------------------------------------------------------------
    def code_location(self) -> CodeLocation:
        """The configured code location: loaded (with its jobs), still loading, failed (with the error), or missing."""
        data = self._query(LOCATIONS_QUERY, {}, "reading the workspace")
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise DagsterRequestFailed(f"reading the workspace failed: {_clip(workspace.get('message'))}")
        entries = workspace["locationEntries"]
        names = tuple(entry["name"] for entry in entries)
        entry = next((e for e in entries if e["name"] == self.code_location_name), None)
        if entry is None:
            return CodeLocation(self.code_location_name, "missing", known_locations=names)
        loaded = entry.get("locationOrLoadError") or {}
        if loaded.get("__typename") == "PythonError":
            return CodeLocation(entry["name"], "failed", error=_clip(loaded.get("message")), known_locations=names)
        if loaded.get("__typename") != "RepositoryLocation":
            return CodeLocation(entry["name"], "loading", known_locations=names)
        jobs = {job["name"]: repo["name"] for repo in loaded["repositories"] for job in repo["jobs"]}
        return CodeLocation(entry["name"], "loaded", jobs=jobs, known_locations=names)

    def runs(self, job_name: str, *, statuses: tuple[str, ...] = (), limit: int = 10) -> list[RunState]:
        """The newest runs of `job_name` (optionally only in `statuses`), newest first."""
        run_filter: dict[str, Any] = {"pipelineName": job_name}
        if statuses:
            run_filter["statuses"] = list(statuses)
        data = self._query(RUNS_QUERY, {"filter": run_filter, "limit": limit}, f"listing runs of {job_name}")
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterRequestFailed(f"listing runs of {job_name} failed: {_clip(result.get('message'))}")
        return [_run_state(run) for run in result["results"]]

    def run(self, run_id: str) -> RunState | None:
        data = self._query(RUN_QUERY, {"runId": run_id}, f"reading run {run_id}")
        result = data["runOrError"]
        if result["__typename"] == "RunNotFoundError":
            return None
        if result["__typename"] != "Run":
            raise DagsterRequestFailed(f"reading run {run_id} failed: {_clip(result.get('message'))}")
        return _run_state(result)

    def run_outcome(self, run_id: str, step_key: str) -> RunOutcome:
        """`step_key`'s output metadata (or its failure metadata) and all failure messages of the run."""
        metadata: dict[str, Any] = {}
        failures: list[StepFailure] = []
        cursor: str | None = None
        complete = False
        for _ in range(MAX_EVENT_PAGES):
            variables = {"runId": run_id, "afterCursor": cursor, "limit": EVENTS_PER_PAGE}
            data = self._query(RUN_EVENTS_QUERY, variables, f"reading the events of run {run_id}")
            page = data["logsForRun"]
            if page["__typename"] != "EventConnection":
                raise DagsterRequestFailed(f"reading the events of run {run_id} failed: {_clip(page.get('message'))}")
            for event in page["events"]:
                kind = event["__typename"]
                if kind == "ExecutionStepOutputEvent" and event.get("stepKey") == step_key:
                    metadata.update(_metadata(event["metadataEntries"]))
                elif kind == "ExecutionStepFailureEvent":
                    if event.get("stepKey") == step_key and event.get("failureMetadata"):
                        metadata.update(_metadata(event["failureMetadata"]["metadataEntries"]))
                    error = event.get("error") or {}
                    failures.append(StepFailure(event.get("stepKey"), _clip(error.get("message") or event["message"])))
                elif kind == "RunFailureEvent" and not failures:
                    failures.append(StepFailure(None, _clip(event["message"])))
            cursor = page["cursor"]
            if not page["hasMore"]:
                complete = True
                break
        return RunOutcome(metadata, tuple(failures[:MAX_FAILURES]), complete)

    def run_queue_daemon(self) -> DaemonState:
        data = self._query(DAEMON_QUERY, {"daemonType": RUN_QUEUE_DAEMON}, "reading the daemon's health")
        status = data["instance"]["daemonHealth"]["daemonStatus"]
        return DaemonState(status.get("healthy"), _time(status.get("lastHeartbeatTime")))

    # -- launches --------------------------------------------------------------------------------
    def launch(
        self, location: CodeLocation, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """Submit a run of `job_name` to the run queue; returns its run id.

        The location and repository are passed explicitly: the client then skips its own job lookup, and a job
        of the same name in another code location can never be launched by mistake.
        """
        client = DagsterGraphQLClient(urlsplit(self.base_url).hostname or self.base_url, transport=self._transport())
        try:
            return client.submit_job_execution(
                job_name,
                repository_location_name=location.name,
                repository_name=location.jobs[job_name],
                run_config=dict(run_config),
                tags=dict(tags),
            )
        except DagsterGraphQLClientError as exc:
            cause = exc.__cause__
            if isinstance(cause, TransportError | httpx.HTTPError) and not isinstance(cause, TransportQueryError):
                # A launch whose answer was lost may still have created the run: say so.
                raise DagsterUnavailable(
                    f"the Dagster webserver at {self.base_url} did not answer the launch of {job_name} "
                    f"({_reason(cause)}); the run may or may not have been created, check the Dagster UI"
                ) from None
            kind = exc.args[0] if exc.args else type(exc).__name__
            detail = exc.args[1] if len(exc.args) > 1 else exc.body
            raise DagsterRequestFailed(f"Dagster refused to launch {job_name}: {kind}: {_clip(str(detail))}") from None

    # -- transport -------------------------------------------------------------------------------
    def _transport(self) -> HTTPXTransport:
        options: dict[str, Any] = {"timeout": httpx.Timeout(self._timeout)}
        if _is_loopback(self.base_url):
            # HTTP(S)_PROXY set for Confluence would otherwise route the call to the webserver next to us
            # through a proxy that cannot reach this machine's loopback.
            options["trust_env"] = False
        if self._http_transport is not None:
            options["transport"] = self._http_transport
        return HTTPXTransport(url=self.graphql_url, **options)

    def _query(self, query: str, variables: Mapping[str, Any], what: str) -> dict[str, Any]:
        try:
            with Client(transport=self._transport()) as session:
                return session.execute(GraphQLRequest(query, variable_values=dict(variables)))
        except TransportQueryError as exc:
            raise DagsterRequestFailed(f"{what} failed: {_clip(str(exc))}") from None
        except (TransportError, httpx.HTTPError) as exc:
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.base_url} cannot be reached ({_reason(exc)}) while {what}"
            ) from None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_state(run: Mapping[str, Any]) -> RunState:
    return RunState(
        run_id=run["runId"],
        job_name=run["jobName"],
        status=run["status"],
        created_at=_time(run.get("creationTime")),
        started_at=_time(run.get("startTime")),
        ended_at=_time(run.get("endTime")),
    )


def _metadata(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for entry in entries:
        kind = entry["__typename"]
        if kind == "IntMetadataEntry":
            # intValue is null beyond 32 bits; intRepr always holds the number.
            values[entry["label"]] = entry["intValue"] if entry.get("intValue") is not None else int(entry["intRepr"])
        elif kind == "FloatMetadataEntry":
            values[entry["label"]] = entry.get("floatValue")
        elif kind == "BoolMetadataEntry":
            values[entry["label"]] = entry.get("boolValue")
        elif kind == "JsonMetadataEntry":
            values[entry["label"]] = json.loads(entry["jsonString"])
        elif kind == "TextMetadataEntry":
            values[entry["label"]] = entry.get("text")
    return values


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {_clip(text, 300)}" if text else type(exc).__name__


def _clip(value: str | None, limit: int = MESSAGE_LIMIT) -> str:
    text = (value or "").strip()
    return text if len(text) <= limit else text[:limit] + "…"
