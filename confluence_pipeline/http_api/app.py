"""The Starlette app: the original connector's endpoints, each answered by launching or reading a Dagster run."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confluence_pipeline.http_api import inputs
from confluence_pipeline.http_api.inputs import InvalidInput
from confluence_pipeline.http_api.jobs import (
    CLIENT_TAG,
    DRY_RUN_FIELDS,
    IN_PROGRESS_STATUSES,
    RESULT_STEPS,
    TRIGGER,
    TRIGGER_TAG,
    JobKind,
    delete_content_config,
    job_name,
    kind_of,
    reset_config,
)
from confluence_pipeline.http_api.settings import HttpApiSettings
from confluence_pipeline.http_api.webserver import (
    CodeLocation,
    DagsterRequestFailed,
    DagsterUnavailable,
    DagsterWebserver,
    RunState,
)

LOGGER_NAME = "confluence_pipeline.http_api"
PUBLIC_PATHS = frozenset({"/health"})
REALM = "confluence_pipeline"
POLL_SECONDS = 0.5
_PROGRESS = {"QUEUED": "queued", "NOT_STARTED": "starting", "STARTING": "starting", "STARTED": "running"}

log = logging.getLogger(LOGGER_NAME)


class ApiError(Exception):
    """An answer other than success: status, a message for the caller, and extra JSON fields."""

    def __init__(self, http_status: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.fields = fields


def create_app(settings: HttpApiSettings, webserver: DagsterWebserver | None = None) -> Starlette:
    """The service as an ASGI app; `webserver` defaults to the one `settings` points at."""
    dagster = webserver or DagsterWebserver(
        settings.dagster_webserver_url,
        timeout_seconds=settings.dagster_timeout_seconds,
        code_location=settings.code_location,
    )
    endpoints = Endpoints(settings, dagster)
    routes = [
        Route("/sync", endpoints.sync, methods=["GET"]),
        Route("/content/{content_id}", endpoints.delete_content, methods=["DELETE"]),
        Route("/reset/{scope_id}", endpoints.reset, methods=["DELETE"]),
        Route("/runs/{run_id}", endpoints.run, methods=["GET"]),
        Route("/health", endpoints.health, methods=["GET"]),
    ]
    token = settings.token.get_secret_value().encode() if settings.token is not None else None
    return Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog), Middleware(BearerTokenAuth, token=token)],
        exception_handlers={
            ApiError: _api_error,
            InvalidInput: _invalid_input,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


class Endpoints:
    """One method per route; blocking GraphQL calls run in the thread pool."""

    def __init__(self, settings: HttpApiSettings, webserver: DagsterWebserver) -> None:
        self.settings = settings
        self.webserver = webserver
        # Two /sync calls racing through check-then-launch would both see "nothing running" and both launch.
        self._sync_lock = asyncio.Lock()

    async def sync(self, request: Request) -> Response:
        if request.method == "HEAD":
            # Starlette answers HEAD wherever GET is routed; a probe must never start a sync.
            raise HTTPException(405, headers={"Allow": "GET"})
        params = inputs.query_parameters(request.query_params.multi_items(), {"instance"})
        job = job_name(JobKind.SYNC, inputs.instance_name(params.get("instance")))
        location = await self._location_with(job)
        async with self._sync_lock:
            busy = await _blocking(self.webserver.runs, job, statuses=IN_PROGRESS_STATUSES, limit=1)
            if busy:
                run = busy[0]
                raise ApiError(
                    409,
                    f"a {job} run is already {_PROGRESS.get(run.status, run.status.lower())}: {run.run_id}; "
                    "nothing was launched",
                    run_id=run.run_id,
                    status=run.status,
                    url=self.webserver.run_url(run.run_id),
                )
            run_id = await self._launch(request, location, job, {})
        return self._launched(run_id)

    async def delete_content(self, request: Request) -> Response:
        params = inputs.query_parameters(request.query_params.multi_items(), {"instance", "dry_run"})
        content_id = inputs.identifier("content id", request.path_params["content_id"])
        dry_run = inputs.flag("dry_run", params.get("dry_run"))
        job = job_name(JobKind.DELETE_CONTENT, inputs.instance_name(params.get("instance")))
        location = await self._location_with(job)
        run_id = await self._launch(request, location, job, delete_content_config(content_id, dry_run=dry_run))
        return self._launched(run_id)

    async def reset(self, request: Request) -> Response:
        params = inputs.query_parameters(request.query_params.multi_items(), {"instance", "dry_run"})
        scope_id = inputs.identifier("scope id", request.path_params["scope_id"])
        dry_run = inputs.flag("dry_run", params.get("dry_run"))
        job = job_name(JobKind.RESET, inputs.instance_name(params.get("instance")))
        body = inputs.reset_body(await _limited_body(request))
        location = await self._location_with(job)
        run_config = reset_config(scope_id, body.partial_key, dry_run=dry_run)
        run_id = await self._launch(request, location, job, run_config)
        if not dry_run:
            return self._launched(run_id)
        return await self._dry_run_report(run_id, scope_id, body.partial_key)

    async def run(self, request: Request) -> Response:
        inputs.query_parameters(request.query_params.multi_items(), ())
        run_id = inputs.run_id(request.path_params["run_id"])
        run = await _blocking(self.webserver.run, run_id)
        kind = kind_of(run.job_name) if run is not None else None
        if run is None or kind is None:
            # Runs of other jobs in the same Dagster are none of this service's business.
            raise ApiError(404, f"run {run_id} not found")
        answer: dict[str, Any] = {
            "run_id": run.run_id,
            "status": run.status,
            "job": run.job_name,
            "url": self.webserver.run_url(run.run_id),
            **_times(run),
        }
        if run.finished:
            step = RESULT_STEPS[kind]
            outcome = await _blocking(self.webserver.run_outcome, run.run_id, step.step_key)
            answer["summary"] = {name: outcome.metadata[name] for name in step.fields if name in outcome.metadata}
            if not outcome.complete:
                answer["note"] = "the run's event log is too long to read in full here; see the run in the Dagster UI"
            if outcome.failures:
                answer["failures"] = [{"step": f.step_key, "message": f.message} for f in outcome.failures]
        return JSONResponse(answer)

    async def health(self, request: Request) -> Response:
        params = inputs.query_parameters(request.query_params.multi_items(), {"instance"})
        job = job_name(JobKind.SYNC, inputs.instance_name(params.get("instance")))
        try:
            location = await _blocking(self.webserver.code_location)
        except ApiError as exc:
            return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
        if location.status != "loaded":
            return JSONResponse(
                {"status": "unavailable", "error": _location_problem(location), "code_location": _location(location)},
                status_code=503,
            )
        try:
            runs = await _blocking(self.webserver.runs, job, limit=1)
            daemon = await _blocking(self.webserver.run_queue_daemon)
        except ApiError as exc:
            return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
        last = runs[0] if runs else None
        return JSONResponse(
            {
                # Runs launched while the daemon is down wait in the queue: worth a look, not a restart.
                "status": "ok" if daemon.healthy else "degraded",
                "code_location": _location(location),
                "job": job,
                "last_sync": {"run_id": last.run_id, "status": last.status, **_times(last)} if last else None,
                "run_queue": {"daemon_healthy": daemon.healthy, "last_heartbeat": _iso(daemon.last_heartbeat)},
            }
        )

    # -- shared steps ------------------------------------------------------------------------------
    async def _location_with(self, job: str) -> CodeLocation:
        location = await _blocking(self.webserver.code_location)
        if location.status != "loaded":
            raise ApiError(503, _location_problem(location), code_location=_location(location))
        if job not in location.jobs:
            raise ApiError(404, f"no job {job} in code location {location.name}: unknown instance", job=job)
        return location

    async def _launch(self, request: Request, location: CodeLocation, job: str, run_config: dict[str, Any]) -> str:
        client = _client_address(request)
        tags = {TRIGGER_TAG: TRIGGER, CLIENT_TAG: client}
        run_id = await _blocking(self.webserver.launch, location, job, run_config, tags)
        log.info("Launched %s run %s for %s with run config %r", job, run_id, client, run_config)
        return run_id

    def _launched(self, run_id: str) -> Response:
        return JSONResponse({"run_id": run_id, "url": self.webserver.run_url(run_id)}, status_code=202)

    async def _dry_run_report(self, run_id: str, scope_id: str, partial_key: str | None) -> Response:
        """Wait (bounded) for a reset dry run and answer what it matched; 202 when it takes longer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.dry_run_wait_seconds
        url = self.webserver.run_url(run_id)
        while True:
            try:
                run: RunState | None = await _blocking(self.webserver.run, run_id)
            except ApiError as exc:
                # The run exists by now: whatever went wrong, the caller needs its id to follow it up.
                raise ApiError(exc.http_status, exc.message, run_id=run_id, url=url) from None
            if run is not None and run.finished:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                status = run.status if run is not None else "UNKNOWN"
                return JSONResponse(
                    {
                        "run_id": run_id,
                        "url": url,
                        "status": status,
                        "message": f"the dry run is still {status.lower()}; poll GET /runs/{run_id} for its result",
                    },
                    status_code=202,
                )
            await asyncio.sleep(min(POLL_SECONDS, remaining))
        outcome = await _blocking(self.webserver.run_outcome, run_id, RESULT_STEPS[JobKind.RESET].step_key)
        if run.status != "SUCCESS":
            failures = [{"step": f.step_key, "message": f.message} for f in outcome.failures]
            reason = failures[0]["message"] if failures else "no failure message"
            raise ApiError(
                502,
                f"the dry run {run_id} ended {run.status}: {reason}",
                run_id=run_id,
                url=url,
                status=run.status,
                failures=failures,
            )
        report = {name: outcome.metadata.get(name) for name in DRY_RUN_FIELDS}
        return JSONResponse(
            {
                "run_id": run_id,
                "url": url,
                "status": run.status,
                "dry_run": True,
                "scope_id": scope_id,
                "partial_key": partial_key,
                **report,
            }
        )


class BearerTokenAuth:
    """Requires `Authorization: Bearer <token>` on every path but /health (when a token is configured)."""

    def __init__(self, app: ASGIApp, token: bytes | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        presented = _bearer_token(scope)
        # compare_digest takes as long for a near miss as for a wild guess.
        if presented is not None and hmac.compare_digest(presented, self.token):
            await self.app(scope, receive, send)
            return
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if presented is not None else "")
        message = "missing bearer token" if presented is None else "invalid bearer token"
        response = JSONResponse(
            {"error": f"{message}: send 'Authorization: Bearer <HTTP_API_TOKEN>'"},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
        await response(scope, receive, send)


class AccessLog:
    """One log line per request: method, path, query, caller, status, duration (never a header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            log.info(
                "%s %r from %s -> %s (%.0f ms)",
                scope["method"],
                target,
                _address(scope),
                status,
                (time.monotonic() - started) * 1000,
            )


async def _blocking(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking GraphQL call in the thread pool, turning Dagster errors into answers."""
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except DagsterUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    except DagsterRequestFailed as exc:
        raise ApiError(502, str(exc)) from None


async def _limited_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > inputs.BODY_MAX_BYTES:
            raise ApiError(413, f"the body is larger than {inputs.BODY_MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer_token(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
            return b""  # present but not a bearer token: "invalid", not "missing"
    return None


def _client_address(request: Request) -> str:
    return _address(request.scope)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def _location(location: CodeLocation) -> dict[str, Any]:
    answer: dict[str, Any] = {"name": location.name, "status": location.status}
    if location.error:
        answer["error"] = location.error
    return answer


def _location_problem(location: CodeLocation) -> str:
    if location.status == "failed":
        return f"code location {location.name} failed to load: {location.error}"
    if location.status == "loading":
        return f"code location {location.name} is still loading; try again shortly"
    known = ", ".join(location.known_locations) or "none"
    return (
        f"code location {location.name} is not in the Dagster workspace (locations: {known}); "
        "set HTTP_API_CODE_LOCATION to its name"
    )


def _times(run: RunState) -> dict[str, str | None]:
    return {"created_at": _iso(run.created_at), "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at)}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment is not None else None


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.http_status >= 500:
        log.warning("%s %s from %s: %s", request.method, request.url.path, _client_address(request), exc.message)
    return JSONResponse({"error": exc.message, **exc.fields}, status_code=exc.http_status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "no such endpoint", 405: f"method {request.method} is not allowed here"}
    return JSONResponse(
        {"error": messages.get(exc.status_code, exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid_input(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("Unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error; see the service's log"}, status_code=500)
