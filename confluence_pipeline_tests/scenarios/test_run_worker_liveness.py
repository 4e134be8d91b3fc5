"""A run left STARTED is failed only when its worker is known dead: never across PID namespaces, never when the pid
was merely reused, and never when Dagster's run monitoring checks run workers itself."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

from confluence_pipeline.config.instances import DEFAULT_INSTANCE
from confluence_pipeline.jobs import writers
from confluence_pipeline.jobs.writers import WORKER_TAG, WRITER_TAG, RunWorker, look_up_process, this_worker
from confluence_pipeline_tests.support import INSTANCE_SETTINGS, Sandbox, failure_text

REFUSAL = "Another confluence_sync run is in progress"
LINUX = pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="needs Linux /proc")


class HealthCheckingLauncher(DefaultRunLauncher):
    """A launcher that checks its run workers (as the Kubernetes and ECS launchers do)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return CheckRunHealthResult(WorkerStatus.RUNNING)


def started_sync(instance: dg.DagsterInstance, worker_tag: str) -> dg.DagsterRun:
    return instance.create_run_for_job(
        job_def=dg.GraphDefinition(name="confluence_sync", node_defs=[]).to_job(),
        status=dg.DagsterRunStatus.STARTED,
        tags={WRITER_TAG: DEFAULT_INSTANCE, WORKER_TAG: worker_tag},
    )


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as process:
        try:
            yield process
        finally:
            process.kill()


def with_a_page(box: Sandbox) -> str:
    box.confluence.wiki.add_space("ENG", "Engineering")
    return box.confluence.wiki.add_page("ENG", "Doc", labels=["ai-ingest"]).id


def status_of(box: Sandbox, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    record = box.instance.get_run_by_id(run.run_id)
    assert record is not None
    return record.status


def assert_refused_next_to(box: Sandbox, run: dg.DagsterRun) -> None:
    result = box.run_sync(expect_success=False)
    assert not result.success
    assert f"{REFUSAL} ({run.run_id})" in failure_text(result)
    assert box.unique.requests == []
    assert status_of(box, run) == dg.DagsterRunStatus.STARTED


def assert_failed_and_synced(box: Sandbox, run: dg.DagsterRun, page_id: str) -> None:
    box.run_sync()
    assert box.key_of(page_id) in box.stored()
    assert status_of(box, run) == dg.DagsterRunStatus.FAILURE


# -- Dagster's run monitoring ------------------------------------------------------------------------------------
@pytest.fixture
def monitored(onprem: Sandbox) -> Iterator[Sandbox]:
    launcher = {"module": __name__, "class": HealthCheckingLauncher.__name__}
    overrides = {**INSTANCE_SETTINGS, "run_monitoring": {"enabled": True}, "run_launcher": launcher}
    with dg.instance_for_test(overrides=overrides) as instance:
        onprem.instance = instance
        yield onprem


def test_where_dagster_checks_run_workers_a_dead_looking_run_is_left_to_it(monitored: Sandbox) -> None:
    with_a_page(monitored)
    stale = started_sync(monitored.instance, f"{socket.gethostname()}:{dead_pid()}")

    assert_refused_next_to(monitored, stale)


def test_run_monitoring_with_a_launcher_that_cannot_check_workers_leaves_the_check_to_us(onprem: Sandbox) -> None:
    # The shipped dagster.yaml: run monitoring on, the default launcher (no worker health checks).
    with dg.instance_for_test(overrides={**INSTANCE_SETTINGS, "run_monitoring": {"enabled": True}}) as instance:
        onprem.instance = instance
        page = with_a_page(onprem)
        stale = started_sync(instance, f"{socket.gethostname()}:{dead_pid()}")

        assert_failed_and_synced(onprem, stale, page)


# -- PID namespaces, reused pids, this process ---------------------------------------------------------------------
def test_an_old_host_pid_tag_seen_from_a_container_is_never_judged(
    onprem: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a container of its own the pid of an old `host:pid` tag may be another container's, alive there.
    monkeypatch.setattr(writers, "_pid_namespace", lambda: 4026532190, raising=False)
    with_a_page(onprem)
    other_container = started_sync(onprem.instance, f"{socket.gethostname()}:{dead_pid()}")

    assert_refused_next_to(onprem, other_container)


@LINUX
def test_a_worker_in_another_pid_namespace_counts_as_alive_although_its_pid_is_gone_here(onprem: Sandbox) -> None:
    with_a_page(onprem)
    me = this_worker()
    assert me.pid_namespace is not None
    elsewhere = replace(me, pid=dead_pid(), pid_namespace=me.pid_namespace + 1, start_ticks=1, token="other")
    run = started_sync(onprem.instance, elsewhere.tag())

    assert_refused_next_to(onprem, run)


@LINUX
def test_a_pid_reused_by_another_process_is_recognised(onprem: Sandbox, sleeper: subprocess.Popen[bytes]) -> None:
    page = with_a_page(onprem)
    started = look_up_process(sleeper.pid).start_ticks
    assert started is not None
    # The tag names the sleeper's pid, but a process that started earlier: the worker is gone, its pid reused.
    earlier = replace(this_worker(), pid=sleeper.pid, start_ticks=started - 1, token="other")
    stale = started_sync(onprem.instance, earlier.tag())

    assert_failed_and_synced(onprem, stale, page)


@LINUX
def test_a_live_worker_with_its_start_time_blocks(onprem: Sandbox, sleeper: subprocess.Popen[bytes]) -> None:
    with_a_page(onprem)
    worker = replace(this_worker(), pid=sleeper.pid, start_ticks=look_up_process(sleeper.pid).start_ticks, token="x")
    running = started_sync(onprem.instance, worker.tag())

    assert_refused_next_to(onprem, running)


@LINUX
def test_a_dead_worker_of_this_namespace_is_failed(onprem: Sandbox) -> None:
    page = with_a_page(onprem)
    gone = replace(this_worker(), pid=dead_pid(), start_ticks=1, token="other")
    stale = started_sync(onprem.instance, gone.tag())

    assert_failed_and_synced(onprem, stale, page)


def test_a_sync_tags_its_run_with_this_process(onprem: Sandbox) -> None:
    with_a_page(onprem)

    result = onprem.run_sync()

    record = onprem.instance.get_run_by_id(result.run_id)
    assert record is not None
    assert RunWorker.from_tag(record.tags[WORKER_TAG]) == this_worker()
