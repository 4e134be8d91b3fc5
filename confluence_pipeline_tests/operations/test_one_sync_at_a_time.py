"""One Unique writer at a time: the shipped run queue limit under the daemon, the job's own check under `execute`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._cli.job import _create_run  # the exact path `dagster job launch` takes to create a run
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline_tests.support import PAT, REPO_ROOT, ZITADEL_SECRET, Sandbox, fake_run, stored_bytes

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
DAGSTER = str(Path(sys.executable).with_name("dagster"))


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding exactly the shipped dagster.yaml (SQLite storage in that directory)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def home_instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


def wait_until_finished(instance: dg.DagsterInstance, run_id: str, timeout: float = 90.0) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.status in FINISHED:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout} s")


@pytest.mark.timeout(180)
def test_launched_syncs_are_dequeued_one_at_a_time(
    onprem: Sandbox, dagster_home: Path, home_instance: dg.DagsterInstance
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    instance = home_instance
    target = WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")])
    # The code server (a subprocess) inherits the sandbox environment set on os.environ by the fixture.
    with create_test_daemon_workspace_context(target, instance) as process_context:
        workspace = process_context.create_request_context()
        location = workspace.get_code_location("confluence_pipeline")
        repo = next(iter(location.get_repositories().values()))
        remote_job = repo.get_full_job("confluence_sync")
        runs = [
            _create_run(instance, location, repo, remote_job, {}, None, None, None),
            _create_run(instance, location, repo, remote_job, {}, None, None, None),
        ]
        for run in runs:
            instance.submit_run(run.run_id, workspace)
        first, second = (instance.get_run_by_id(r.run_id) for r in runs)
        assert first.status == second.status == dg.DagsterRunStatus.QUEUED
        assert first.tags[WRITER_TAG] == "true"

        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        list(daemon.run_iteration(process_context))

        statuses = [instance.get_run_by_id(r.run_id).status for r in runs]
        assert statuses.count(dg.DagsterRunStatus.QUEUED) == 1, statuses
        launched, waiting = (runs[0], runs[1]) if statuses[1] == dg.DagsterRunStatus.QUEUED else (runs[1], runs[0])
        done = wait_until_finished(instance, launched.run_id)
        assert done.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.QUEUED

        list(daemon.run_iteration(process_context))
        assert wait_until_finished(instance, waiting.run_id).status == dg.DagsterRunStatus.SUCCESS

    first_record, second_record = (instance.get_run_record_by_id(r.run_id) for r in (launched, waiting))
    assert second_record.start_time >= first_record.end_time
    assert set(onprem.stored()) == {onprem.key_of(page.id)}
    # Launched runs store the job snapshot (resources included): only variable names, never values.
    stored = stored_bytes(dagster_home)
    assert b"CONFLUENCE_PAT" in stored
    assert PAT.encode() not in stored and ZITADEL_SECRET.encode() not in stored


def test_execute_refuses_next_to_a_running_sync_and_writes_nothing(
    onprem: Sandbox, home_instance: dg.DagsterInstance
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    running = fake_run(home_instance, dg.DagsterRunStatus.STARTED)

    refused = subprocess.run(
        [DAGSTER, "job", "execute", "-m", "confluence_pipeline.definitions", "-j", "confluence_sync"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )

    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "Another confluence_sync run is in progress" in output and running.run_id in output
    assert onprem.unique.requests == [] and onprem.confluence.requests == []
    refused_run = next(r for r in home_instance.get_runs() if r.run_id != running.run_id)
    assert refused_run.status == dg.DagsterRunStatus.FAILURE
