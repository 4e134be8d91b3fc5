"""A stand-in for the Dagster webserver's GraphQL endpoint, served through httpx.MockTransport."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from confluence_pipeline.http_api.webserver import DagsterWebserver

BASE_URL = "http://dagster.test:3000"
LOCATION = "confluence_pipeline"
REPOSITORY = "__repository__"
DEFAULT_JOBS = ("confluence_sync", "confluence_reset", "confluence_delete_content")


@dataclass
class FakeRun:
    run_id: str
    job_name: str
    status: str = "QUEUED"
    run_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    polls_until_done: int | None = None  # finish after this many reads; None = stay as is
    final_status: str = "SUCCESS"
    endless_log: bool = False  # an event log longer than the service reads


@dataclass
class FakeDagster:
    """Answers the queries the service sends; records every GraphQL request it got."""

    jobs: tuple[str, ...] = DEFAULT_JOBS
    load_error: str | None = None
    runs: dict[str, FakeRun] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    launch_delay: float = 0.0
    launch_refusal: dict[str, Any] | None = None
    finish_launched_after: int | None = None  # reads of a launched run before it finishes
    finish_launched_as: str = "SUCCESS"
    launched_events: list[dict[str, Any]] = field(default_factory=list)  # events a launched run reports
    unreachable: bool = False
    launch_times_out: bool = False  # the launch request gets no answer (the run may exist or not)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def webserver(self, timeout: float = 5.0) -> DagsterWebserver:
        return DagsterWebserver(
            BASE_URL, timeout_seconds=timeout, code_location=LOCATION, http_transport=httpx.MockTransport(self.handle)
        )

    def add_run(self, job_name: str, status: str, events: list[dict[str, Any]] | None = None) -> FakeRun:
        run = FakeRun(str(uuid.uuid4()), job_name, status, events=events or [])
        self.runs[run.run_id] = run
        return run

    def launches(self) -> list[dict[str, Any]]:
        return [r["variables"]["executionParams"] for r in self.requests if "launchPipelineExecution" in r["query"]]

    # -- GraphQL -----------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        body = json.loads(request.content)
        with self.lock:
            self.requests.append(body)
        query, variables = body["query"], body.get("variables") or {}
        if "launchPipelineExecution" in query:
            return self._launch(variables["executionParams"])
        if "ConfluenceHttpApiLocations" in query:
            return _data({"workspaceOrError": {"__typename": "Workspace", "locationEntries": [self._location()]}})
        if "ConfluenceHttpApiRuns" in query:
            return _data({"runsOrError": {"__typename": "Runs", "results": self._runs(variables["filter"])}})
        if "ConfluenceHttpApiRunEvents" in query:
            run = self.runs.get(variables["runId"])
            if run is None:
                return _data({"logsForRun": {"__typename": "RunNotFoundError", "message": "not found"}})
            # Pages of two events, so that reading a log takes several requests.
            start = int(variables.get("afterCursor") or 0)
            more = start + 2 < len(run.events) or run.endless_log
            page = {"cursor": str(start + 2), "hasMore": more, "events": run.events[start : start + 2]}
            return _data({"logsForRun": {"__typename": "EventConnection", **page}})
        if "ConfluenceHttpApiRun" in query:
            run = self.runs.get(variables["runId"])
            if run is None:
                return _data({"runOrError": {"__typename": "RunNotFoundError", "message": "not found"}})
            return _data({"runOrError": {"__typename": "Run", **self._read(run)}})
        if "ConfluenceHttpApiDaemon" in query:
            status = {"healthy": True, "required": True, "lastHeartbeatTime": 1_800_000_000.0}
            return _data({"instance": {"daemonHealth": {"daemonStatus": status}}})
        return httpx.Response(400, json={"errors": [{"message": f"unexpected query {query[:60]}"}]})

    def _location(self) -> dict[str, Any]:
        if self.load_error is not None:
            error = {"__typename": "PythonError", "message": self.load_error}
            return {"name": LOCATION, "loadStatus": "LOADED", "locationOrLoadError": error}
        repository = {"name": REPOSITORY, "jobs": [{"name": name} for name in self.jobs]}
        location = {"__typename": "RepositoryLocation", "repositories": [repository]}
        return {"name": LOCATION, "loadStatus": "LOADED", "locationOrLoadError": location}

    def _runs(self, run_filter: dict[str, Any]) -> list[dict[str, Any]]:
        statuses = run_filter.get("statuses")
        found = [
            run
            for run in reversed(list(self.runs.values()))
            if run.job_name == run_filter["pipelineName"] and (not statuses or run.status in statuses)
        ]
        return [self._state(run) for run in found]

    def _read(self, run: FakeRun) -> dict[str, Any]:
        if run.polls_until_done is not None:
            run.polls_until_done -= 1
            if run.polls_until_done <= 0:
                run.status, run.polls_until_done = run.final_status, None
        return self._state(run)

    @staticmethod
    def _state(run: FakeRun) -> dict[str, Any]:
        return {
            "runId": run.run_id,
            "jobName": run.job_name,
            "status": run.status,
            "creationTime": 1_800_000_000.0,
            "startTime": None,
            "endTime": None,
        }

    def _launch(self, params: dict[str, Any]) -> httpx.Response:
        if self.launch_times_out:
            raise httpx.ReadTimeout("timed out")
        if self.launch_delay:
            time.sleep(self.launch_delay)
        if self.launch_refusal is not None:
            return _data({"launchPipelineExecution": self.launch_refusal})
        selector = params["selector"]
        run = self.add_run(selector["pipelineName"], "QUEUED", events=list(self.launched_events))
        run.run_config = params.get("runConfigData") or {}
        run.tags = {t["key"]: t["value"] for t in params.get("executionMetadata", {}).get("tags", [])}
        run.polls_until_done = self.finish_launched_after
        run.final_status = self.finish_launched_as
        return _data({"launchPipelineExecution": {"__typename": "LaunchRunSuccess", "run": {"runId": run.run_id}}})


def _data(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": payload})


def int_entry(label: str, value: int) -> dict[str, Any]:
    return {"__typename": "IntMetadataEntry", "label": label, "intValue": value, "intRepr": str(value)}


def output_event(step_key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"__typename": "ExecutionStepOutputEvent", "stepKey": step_key, "metadataEntries": entries}


def failure_event(step_key: str, message: str, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "__typename": "ExecutionStepFailureEvent",
        "stepKey": step_key,
        "message": f'Execution of step "{step_key}" failed.',
        "error": {"message": message},
        "failureMetadata": {"metadataEntries": entries} if entries is not None else None,
    }
