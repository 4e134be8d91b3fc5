"""One Unique writer per instance at a time: a writer job refuses to start next to a running writer of its instance."""

from __future__ import annotations

import multiprocessing
import os
import socket
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster import DagsterRunStatus, RunRecord, RunsFilter

from confluence_pipeline.config.instances import DEFAULT_INSTANCE

WRITER_TAG = "confluence_pipeline/unique-writer"
"""Its value names the instance: the run queue holds one run per value, so instances write in parallel."""
INSTANCE_TAG = "confluence_pipeline/instance"
"""The instance a run belongs to: the Runs page filters by it, alerts name it."""
IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]  # what sensors and schedules treat as "a sync is already on its way"

# A run that `dagster job execute` has created but not started yet proceeds when it starts (it defers only to
# older runs), so it must count already; one that has not started within run monitoring's start timeout
# (dagster.yaml) never will, and must not block every later sync.
_ACTIVE = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
_NOT_STARTED_GRACE = timedelta(seconds=300)


WORKER_TAG = "confluence_pipeline/run-worker"  # "<host>:<pid>" of the process executing the run


def instance_tags(instance_name: str) -> dict[str, str]:
    """The tags of every job of one instance, and so of its runs."""
    return {WRITER_TAG: instance_name, INSTANCE_TAG: instance_name}


def instance_of(context: dg.OpExecutionContext) -> str:
    """The instance whose job this op runs in, from the job's definition (a launch cannot change it)."""
    return context.job_def.tags.get(INSTANCE_TAG, DEFAULT_INSTANCE)


def _worker_pid() -> int:
    """The process executing the run: a multiprocess executor's step runs in a short-lived child of it."""
    parent = multiprocessing.parent_process()
    return os.getpid() if parent is None or parent.pid is None else parent.pid


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
    """Refuse to start next to another run whose `WRITER_TAG` names the same instance.

    `dagster job execute` bypasses the run queue and its tag limit, so every writer checks here. Only runs
    that are created, starting or running count (queued ones wait behind us); of two that start together
    the older proceeds, so exactly one of them writes. Runs whose worker process died are marked failed.
    Writers of other instances own other content and are no reason to wait.
    """
    context.instance.add_run_tags(context.run_id, {WORKER_TAG: f"{socket.gethostname()}:{_worker_pid()}"})
    writer = context.job_def.tags.get(WRITER_TAG, DEFAULT_INSTANCE)
    records = _active_records(context, RunsFilter(tags={WRITER_TAG: writer}, statuses=_ACTIVE))
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
                f"for the same instance ({writer}). Nothing was written. Wait for it to finish or cancel it."
            ),
            allow_retries=False,
        )
