"""What every op needs around its work: validated settings, clients, logs in the UI, one sync at a time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

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
        file_handler = logging.FileHandler(settings.sync.debug_log_file, encoding="utf-8")
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


def refuse_concurrent_sync(context: dg.OpExecutionContext, job_name: str) -> None:
    """`dagster job execute` bypasses the run queue: refuse to start next to another in-progress sync.

    Only runs that are starting or running count (queued ones wait behind us), and of two runs that
    start at the same moment the older one proceeds, so exactly one of them writes.
    """
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
    )
    mine = next((r for r in records if r.dagster_run.run_id == context.run_id), None)
    my_order = (mine.create_timestamp, context.run_id) if mine is not None else None
    older = [
        r.dagster_run.run_id
        for r in records
        if r.dagster_run.run_id != context.run_id
        and (my_order is None or (r.create_timestamp, r.dagster_run.run_id) < my_order)
    ]
    if older:
        raise dg.Failure(
            description=(
                f"Another {job_name} run is in progress ({', '.join(older[:3])}); refusing to start a second one "
                "against the same Unique target. Nothing was written. Wait for it to finish or cancel it."
            ),
            allow_retries=False,
        )


def refuse_concurrent_writer(context: dg.OpExecutionContext, what: str) -> None:
    """Like `refuse_concurrent_sync`, for any run tagged `WRITER_TAG` (sync, reset, delete) of this instance.

    `dagster job execute` bypasses the run queue and its tag limit, so reset and delete runs check here
    that no other Unique writer is starting or running; of two that start together the older proceeds.
    """
    records = context.instance.get_run_records(
        filters=RunsFilter(tags={WRITER_TAG: "true"}, statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
    )
    mine = next((r for r in records if r.dagster_run.run_id == context.run_id), None)
    my_order = (mine.create_timestamp, context.run_id) if mine is not None else None
    older = [
        f"{r.dagster_run.job_name} {r.dagster_run.run_id}"
        for r in records
        if r.dagster_run.run_id != context.run_id
        and (my_order is None or (r.create_timestamp, r.dagster_run.run_id) < my_order)
    ]
    if older:
        raise dg.Failure(
            description=(
                f"Another run that writes to Unique is in progress ({', '.join(older[:3])}); refusing to start {what} "
                "next to it. Nothing was deleted. Wait for it to finish or cancel it."
            ),
            allow_retries=False,
        )
