"""One Unique writer per instance at a time: a writer job refuses to start next to a running writer of its instance."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster import DagsterRunStatus, RunRecord, RunsFilter

from confluence_pipeline.config.instances import DEFAULT_INSTANCE

log = logging.getLogger(__name__)

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


WORKER_TAG = "confluence_pipeline/run-worker"
"""The process executing a writer run: `host=… boot=… pidns=… pid=… start=… id=…` (`<host>:<pid>` before)."""

INITIAL_PID_NAMESPACE = 0xEFFFFFFC  # the inode Linux gives the initial (host) PID namespace, always
_PROC = Path("/proc")


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


@dataclass(frozen=True)
class RunWorker:
    """A run's worker process, named well enough for another process to tell whether it is still there.

    A pid means something only in its PID namespace on one running kernel: containers with host networking
    share the host name but not their pids, and two machines may share a name. `boot` (the kernel's boot id)
    and `pid_namespace` say where `pid` applies, `start_ticks` (when the process started, in clock ticks since
    boot) tells a reused pid from the original, and `token`, random per process, recognises this very process.
    A tag written before these fields existed (`host:pid`) parses as `legacy`.
    """

    host: str
    pid: int
    boot: str | None = None
    pid_namespace: int | None = None
    start_ticks: int | None = None
    token: str | None = None
    legacy: bool = False

    def tag(self) -> str:
        fields = {
            "host": self.host,
            "boot": self.boot,
            "pidns": self.pid_namespace,
            "pid": self.pid,
            "start": self.start_ticks,
            "id": self.token,
        }
        return " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)

    @classmethod
    def from_tag(cls, value: str) -> RunWorker | None:
        """The worker a tag names; None when the tag is missing or malformed."""
        text = value.strip() if isinstance(value, str) else ""
        if "=" not in text:
            host, _, pid = text.rpartition(":")
            number = _count(pid)
            return cls(host=host, pid=number, legacy=True) if host and number else None
        fields: dict[str, str] = {}
        for part in text.split():
            name, _, field = part.partition("=")
            fields[name] = field
        host, pid = fields.get("host", ""), _count(fields.get("pid"))
        if not host or not pid:
            return None
        return cls(
            host=host,
            pid=pid,
            boot=fields.get("boot") or None,
            pid_namespace=_count(fields.get("pidns")),
            start_ticks=_count(fields.get("start")),
            token=fields.get("id") or None,
        )


@dataclass(frozen=True)
class Sighting:
    """What this process sees of a pid in its own PID namespace; `exists` is True when it cannot tell."""

    exists: bool
    start_ticks: int | None = None


def this_worker() -> RunWorker:
    """The run's worker process as a worker tag names it: this process, or the one whose step process this is."""
    pid = _worker_pid()
    return RunWorker(
        host=socket.gethostname(),
        pid=pid,
        boot=_boot_id(),
        pid_namespace=_pid_namespace(),
        start_ticks=_start_ticks(pid),
        token=_process_token(pid),
    )


def look_up_process(pid: int) -> Sighting:
    """Whether `pid` is a live process in this PID namespace, and when it started."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Sighting(exists=False)
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return Sighting(exists=True)
    state = _stat_fields(pid)
    if state is not None and state[0] == "Z":
        return Sighting(exists=False)  # exited, not yet reaped by its parent
    return Sighting(exists=True, start_ticks=_start_ticks(pid))


def worker_is_gone(tag: str, me: RunWorker, look: Callable[[int], Sighting] = look_up_process) -> bool:
    """Whether the worker a run's WORKER_TAG names is known to have exited; anything unknown counts as alive.

    A run whose process was SIGKILLed stays STARTED forever and would block every later writer, but failing a
    live run is worse: the run is judged only when its worker ran on this host, on this boot, in this PID
    namespace, and its pid is gone there or now belongs to a process that started at another time.
    """
    worker = RunWorker.from_tag(tag)
    if worker is None or worker.host != me.host:
        return False
    if worker.token is not None and worker.token == me.token:
        return False  # this very process
    if worker.legacy:
        # An old `host:pid` tag does not say where its pid applies. Seen from a container (a PID namespace of its
        # own) it may name another container's process, so it is never judged there. Seen from the host's initial
        # namespace it is judged as before, so that runs the previous version left behind are still freed there;
        # only a container sharing the host's name could be misjudged, as before, and such tags stop appearing
        # once every worker writes the full tag.
        if me.pid_namespace != INITIAL_PID_NAMESPACE:
            return False
    elif (
        worker.boot is None
        or worker.boot != me.boot
        or worker.pid_namespace is None
        or worker.pid_namespace != me.pid_namespace
    ):
        return False
    sighting = look(worker.pid)
    if not sighting.exists:
        return True
    if worker.start_ticks is None or sighting.start_ticks is None:
        return False
    return sighting.start_ticks != worker.start_ticks  # the pid now belongs to another process


def dagster_checks_run_workers(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's run monitoring checks run workers (and fails runs whose worker died) itself."""
    try:
        return bool(instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health)
    except Exception:  # a launcher that cannot be built in this process: fall back to our own careful check
        log.warning("Could not tell whether Dagster's run monitoring checks run workers", exc_info=True)
        return False


def _count(text: str | None) -> int | None:
    """A positive decimal number (ASCII digits only), else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if number > 0 else None


def _boot_id() -> str | None:
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return boot if boot and " " not in boot and "=" not in boot else None


def _pid_namespace() -> int | None:
    try:
        return os.stat(_PROC / "self/ns/pid").st_ino
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """`/proc/<pid>/stat` from field 3 (state) on; the command name before it may hold spaces and parentheses."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    return rest.split() or None


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return _count(fields[19])  # field 22, starttime


@functools.cache
def _process_token(pid: int) -> str:
    # Keyed by pid, so a forked child does not inherit its parent's token.
    return secrets.token_hex(8)


def _active_records(context: dg.OpExecutionContext, filters: RunsFilter) -> list[RunRecord]:
    now = datetime.now(UTC)
    # Where Dagster's run monitoring checks run workers, dead runs are its to fail, not ours.
    judge_workers = not dagster_checks_run_workers(context.instance)
    me = this_worker()
    active: list[RunRecord] = []
    for record in context.instance.get_run_records(filters=filters):
        run = record.dagster_run
        if run.run_id == context.run_id:
            active.append(record)
            continue
        if run.status == DagsterRunStatus.NOT_STARTED and now - record.create_timestamp >= _NOT_STARTED_GRACE:
            continue
        worker = run.tags.get(WORKER_TAG, "")
        if run.status == DagsterRunStatus.STARTED and judge_workers and worker_is_gone(worker, me):
            message = f"its worker process ({worker}) is gone; marked failed by run {context.run_id}"
            context.log.warning(f"Run {run.run_id} ({run.job_name}) was left STARTED but {message}")
            context.instance.report_run_failed(run, message=f"Run worker died: {message}")
            continue
        active.append(record)
    return active


def refuse_concurrent_writer(context: dg.OpExecutionContext) -> None:
    """Refuse to start this run's job next to another run whose `WRITER_TAG` names the same instance: the start
    check of every Unique writer (sync, reset, delete).

    `dagster job execute` bypasses the run queue and its tag limit, so every writer checks here. Only runs
    that are created, starting or running count (queued ones wait behind us); of two that start together
    the older proceeds, so exactly one of them writes. Runs whose worker process is known to have died are
    marked failed (`worker_is_gone`), unless Dagster's run monitoring checks run workers itself. Writers of
    other instances own other content and are no reason to wait.
    """
    context.instance.add_run_tags(context.run_id, {WORKER_TAG: this_worker().tag()})
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
                f"Another {older[0].job_name} run is in progress ({ids}); refusing to start a {context.job_name} run "
                f"next to it for the same instance ({writer}). Nothing was written. Wait for it to finish or cancel it."
            ),
            allow_retries=False,
        )
