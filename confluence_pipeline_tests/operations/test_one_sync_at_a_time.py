"""One Unique writer per instance at a time: the shipped run queue limit under the daemon, the job's own check under
`execute`; different instances write in parallel."""

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

from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline_tests.support import (
    CLOUD_MARK,
    DC_MARK,
    PAT,
    REPO_ROOT,
    ZITADEL_SECRET,
    Sandbox,
    TwoInstances,
    failure_text,
    fake_run,
    make_two_instances,
    stored_bytes,
)

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
        assert first.tags[WRITER_TAG] == "default"

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


def test_execute_waits_only_for_its_own_instance(onprem: Sandbox, home_instance: dg.DagsterInstance) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    fake_run(home_instance, dg.DagsterRunStatus.STARTED, "confluence_sync__emea", of_instance="emea")

    def run() -> dg.ExecuteInProcessResult:
        return confluence_sync.execute_in_process(
            resources=resources_from_env(onprem.env), instance=home_instance, raise_on_error=False
        )

    assert run().success  # another instance's sync owns other content
    assert set(onprem.stored()) == {onprem.key_of(page.id)}

    same = fake_run(home_instance, dg.DagsterRunStatus.STARTED)
    refused = run()
    assert not refused.success
    assert f"Another confluence_sync run is in progress ({same.run_id})" in failure_text(refused)
    assert "for the same instance (default)" in failure_text(refused)


@pytest.fixture
def two(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TwoInstances]:
    yield from make_two_instances(monkeypatch, tmp_path, shared_scope=True)


@pytest.mark.timeout(240)
def test_launched_syncs_of_two_instances_run_in_parallel_but_one_per_instance(
    two: TwoInstances, home_instance: dg.DagsterInstance
) -> None:
    two.dc.wiki.add_space("ENG", "Engineering", space_id=98305)
    two.dc.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"], page_id="100")
    two.cloud.wiki.add_space("ENG", "Engineering", space_id=2228225)
    two.cloud.wiki.add_page("ENG", "Guide", labels=["ai-ingest"], page_id="7000")
    instance = home_instance
    target = WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")])
    # The code server (a subprocess) inherits CONFLUENCE_INSTANCES_FILE and the secrets set by the fixture.
    with create_test_daemon_workspace_context(target, instance) as process_context:
        workspace = process_context.create_request_context()
        location = workspace.get_code_location("confluence_pipeline")
        repo = next(iter(location.get_repositories().values()))
        dc_job, cloud_job = (repo.get_full_job(f"confluence_sync__{n}") for n in ("wiki_dc", "wiki_cloud"))
        dc_first, dc_second, cloud = (
            _create_run(instance, location, repo, job, {}, None, None, None) for job in (dc_job, dc_job, cloud_job)
        )
        for run in (dc_first, dc_second, cloud):
            instance.submit_run(run.run_id, workspace)
        assert {instance.get_run_by_id(r.run_id).tags[WRITER_TAG] for r in (dc_first, cloud)} == {
            "wiki_dc",
            "wiki_cloud",
        }

        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        list(daemon.run_iteration(process_context))

        # One dequeue pass launches one run of each instance; the second DC run waits for the first.
        statuses = {r.run_id: instance.get_run_by_id(r.run_id).status for r in (dc_first, dc_second, cloud)}
        assert statuses[cloud.run_id] != dg.DagsterRunStatus.QUEUED, statuses
        assert sorted(statuses[r.run_id] == dg.DagsterRunStatus.QUEUED for r in (dc_first, dc_second)) == [False, True]
        waiting = dc_second if statuses[dc_second.run_id] == dg.DagsterRunStatus.QUEUED else dc_first
        launched = dc_first if waiting is dc_second else dc_second
        assert wait_until_finished(instance, launched.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert wait_until_finished(instance, cloud.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.QUEUED

        list(daemon.run_iteration(process_context))
        assert wait_until_finished(instance, waiting.run_id).status == dg.DagsterRunStatus.SUCCESS

    records = {r.run_id: instance.get_run_record_by_id(r.run_id) for r in (launched, waiting, cloud)}
    assert records[waiting.run_id].start_time >= records[launched.run_id].end_time
    assert two.marks() == {"98305_ENG/100": DC_MARK, "2228225_ENG/7000": CLOUD_MARK}
