"""What every op needs around its work: validated settings, clients, logs in the UI, one sync at a time."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster import DagsterRunStatus, RunRecord, RunsFilter

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.resources import (
    ConfluenceResource,
    SyncOptionsResource,
    UniqueResource,
    load_run_settings,
    open_confluence,
    open_unique,
)
from confluence_pipeline.settings import ConfigurationError, Settings

PACKAGE_LOGGER = "confluence_pipeline"
WRITER_TAG = "confluence_pipeline/unique-writer"
IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]  # what sensors and schedules treat as "a sync is already on its way"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _ScrubbingFilter(logging.Filter):
    """Last line of defence: no configured secret leaves through our handlers."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class _DagsterLogHandler(logging.Handler):
    """Forwards our module loggers to the op's `context.log`, so operators see them in the run view."""

    def __init__(self, context: dg.OpExecutionContext) -> None:
        super().__init__()
        self._context = context

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        log = self._context.log
        if record.levelno >= logging.ERROR:
            log.error(message)
        elif record.levelno >= logging.WARNING:
            log.warning(message)
        elif record.levelno >= logging.INFO:
            log.info(message)
        else:
            log.debug(message)


@dataclass
class OpRuntime:
    settings: Settings
    _confluence: ConfluenceClient | None = None
    _unique: UniqueClient | None = None

    @property
    def confluence(self) -> ConfluenceClient:
        if self._confluence is None:
            self._confluence = open_confluence(self.settings)
        return self._confluence

    @property
    def unique(self) -> UniqueClient:
        if self._unique is None:
            self._unique = open_unique(self.settings)
        return self._unique

    @property
    def labels(self) -> tuple[str, str]:
        return self.settings.confluence.single_label, self.settings.confluence.all_label

    def request_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self._confluence is not None:
            counts.update({f"confluence:{k}": v for k, v in self._confluence.api.counter.snapshot().items()})
        if self._unique is not None:
            counts.update({f"unique:{k}": v for k, v in self._unique.request_counts().items()})
        return counts

    def close(self) -> None:
        if self._confluence is not None:
            self._confluence.close()
        if self._unique is not None:
            self._unique.close()


@contextmanager
def op_runtime(
    context: dg.OpExecutionContext,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    options: SyncOptionsResource,
) -> Iterator[OpRuntime]:
    """Validate the configuration (before any request), route logs to the UI, close clients after."""
    try:
        settings = load_run_settings(confluence, unique, options)
    except ConfigurationError as exc:
        raise dg.Failure(description=str(exc), metadata={"bad_variables": sorted(exc.problems)}) from None
    secrets = settings.confluence.secrets + settings.unique.secrets
    package = logging.getLogger(PACKAGE_LOGGER)
    handlers: list[logging.Handler] = [_DagsterLogHandler(context)]
    if settings.sync.debug_mode:
        try:
            file_handler = logging.FileHandler(settings.sync.debug_log_file, encoding="utf-8")
        except OSError as exc:
            path = settings.sync.debug_log_file
            bad = ConfigurationError({"DEBUG_LOG_FILE": f"{path!r} cannot be opened for writing ({exc.strerror})"})
            raise dg.Failure(description=str(bad), metadata={"bad_variables": sorted(bad.problems)}) from None
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        handlers.append(file_handler)
    scrub = _ScrubbingFilter(secrets)
    for handler in handlers:
        handler.addFilter(scrub)
        package.addHandler(handler)
    previous_level = package.level
    # httpx logs full URLs (signed upload URLs included) at INFO: keep it quiet whatever the root level.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    package.setLevel(logging.DEBUG if settings.sync.debug_mode else logging.INFO)
    package.propagate = False
    runtime = OpRuntime(settings)
    try:
        yield runtime
    finally:
        runtime.close()
        for handler in handlers:
            package.removeHandler(handler)
            handler.close()
        package.setLevel(previous_level)
        package.propagate = True


# A run that `dagster job execute` has created but not started yet proceeds when it starts (it defers only to
# older runs), so it must count already; one that has not started within run monitoring's start timeout
# (dagster.yaml) never will, and must not block every later sync.
_ACTIVE = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
_NOT_STARTED_GRACE = timedelta(seconds=300)


WORKER_TAG = "confluence_pipeline/run-worker"  # "<host>:<pid>" of the process executing the run


def _worker_is_gone(run: dg.DagsterRun) -> bool:
    """Whether the run's worker process is known dead (only decidable for a process on this host).

    A run whose process was SIGKILLed stays STARTED forever; without this it would block every later
    writer. An unknown or remote worker counts as alive: the safe side.
    """
    owner = run.tags.get(WORKER_TAG, "")
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _active_records(context: dg.OpExecutionContext, filters: RunsFilter) -> list[RunRecord]:
    now = datetime.now(UTC)
    active: list[RunRecord] = []
    for record in context.instance.get_run_records(filters=filters):
        run = record.dagster_run
        if run.run_id == context.run_id:
            active.append(record)
            continue
        if run.status == DagsterRunStatus.NOT_STARTED and now - record.create_timestamp >= _NOT_STARTED_GRACE:
            continue
        if run.status == DagsterRunStatus.STARTED and _worker_is_gone(run):
            message = f"its worker process ({run.tags.get(WORKER_TAG)}) is gone; marked failed by run {context.run_id}"
            context.log.warning(f"Run {run.run_id} ({run.job_name}) was left STARTED but {message}")
            context.instance.report_run_failed(run, message=f"Run worker died: {message}")
            continue
        active.append(record)
    return active


def refuse_concurrent_sync(context: dg.OpExecutionContext, job_name: str) -> None:
    """The sync's start check: no other Unique writer (sync, reset, delete) may be starting or running."""
    refuse_concurrent_writer(context, f"a {job_name} run")


def refuse_concurrent_writer(context: dg.OpExecutionContext, what: str) -> None:
    """Refuse to start next to another run tagged `WRITER_TAG` of this instance.

    `dagster job execute` bypasses the run queue and its tag limit, so every writer checks here. Only runs
    that are created, starting or running count (queued ones wait behind us); of two that start together
    the older proceeds, so exactly one of them writes. Runs whose worker process died are marked failed.
    """
    context.instance.add_run_tags(context.run_id, {WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"})
    records = _active_records(context, RunsFilter(tags={WRITER_TAG: "true"}, statuses=_ACTIVE))
    mine = next((r for r in records if r.dagster_run.run_id == context.run_id), None)
    my_order = (mine.create_timestamp, context.run_id) if mine is not None else None
    older = [
        r.dagster_run
        for r in records
        if r.dagster_run.run_id != context.run_id
        and (my_order is None or (r.create_timestamp, r.dagster_run.run_id) < my_order)
    ]
    if older:
        ids = ", ".join(run.run_id for run in older[:3])
        raise dg.Failure(
            description=(
                f"Another {older[0].job_name} run is in progress ({ids}); refusing to start {what} next to it "
                "against the same Unique target. Nothing was written. Wait for it to finish or cancel it."
            ),
            allow_retries=False,
        )
