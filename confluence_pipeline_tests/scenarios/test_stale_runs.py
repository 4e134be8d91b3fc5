"""A sync whose worker process died (SIGKILL) must not block every later sync; a live one must."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import dagster as dg

from confluence_pipeline.jobs.writers import WORKER_TAG, WRITER_TAG, this_worker
from confluence_pipeline_tests.support import Sandbox, failure_text


def _worker_tag(pid: int) -> str:
    """A worker tag for `pid`, a process on this host, boot and PID namespace that is not this one."""
    return replace(this_worker(), pid=pid, start_ticks=None, token="other").tag()


def _started_sync(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    return instance.create_run_for_job(
        job_def=dg.GraphDefinition(name="confluence_sync", node_defs=[]).to_job(),
        status=dg.DagsterRunStatus.STARTED,
        tags={WRITER_TAG: "default", WORKER_TAG: _worker_tag(pid)},
    )


def test_a_run_left_started_by_a_dead_worker_is_marked_failed_and_the_sync_proceeds(onprem: Sandbox) -> None:
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    page = onprem.confluence.wiki.add_page("ENG", "Doc", labels=["ai-ingest"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = _started_sync(onprem.instance, int(dead.stdout))

    onprem.run_sync()

    assert onprem.key_of(page.id) in onprem.stored()
    run = onprem.instance.get_run_by_id(stale.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE


def test_a_run_with_a_live_worker_still_blocks(onprem: Sandbox) -> None:
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    onprem.confluence.wiki.add_page("ENG", "Doc", labels=["ai-ingest"])
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            running = _started_sync(onprem.instance, alive.pid)
            result = onprem.run_sync(expect_success=False)
        finally:
            alive.kill()
    assert not result.success
    assert f"Another confluence_sync run is in progress ({running.run_id})" in failure_text(result)
    assert onprem.unique.requests == []
