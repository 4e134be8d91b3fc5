"""The sync process dying or doubling: SIGKILL mid-ingestion converges on rerun; two syncs at once write once.

Runs are real `dagster job execute` subprocesses against a persistent instance in a temporary DAGSTER_HOME;
the emulators run in this process on ports fixed for the test, and the child gets the connector's env.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from confluence_pipeline.jobs import writers as runtime
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline_tests.support import Sandbox, expected_state, failure_text, fake_run, unique_state
from confluence_sandbox.http import Fault, Request

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
COMMAND = [DAGSTER, "job", "execute", "-m", "confluence_pipeline.definitions", "-j", "confluence_sync"]
REFUSAL = "Another confluence_sync run is in progress"


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as home_instance:
        yield home_instance


def start_sync(box: Sandbox, dagster_home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "UNIQUE_", "ZITADEL_", "HTTP_"))}
    env.update(box.env)
    env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.Popen(
        COMMAND, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def _is_finalize(request: Request) -> bool:
    body = request.json() or {}
    return body.get("operationName") == "ContentUpsert" and "fileUrl" in (body.get("variables") or {})


def _registrations(box: Sandbox) -> list[str]:
    keys = []
    for request in box.unique.requests:
        body = json.loads(request.body) if request.path.endswith("/graphql") and request.body else {}
        variables = body.get("variables") or {}
        if body.get("operationName") == "ContentUpsert" and "fileUrl" not in variables:
            keys.append(variables["input"]["key"])
    return keys


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_mid_ingestion_then_a_rerun_converges_without_orphans(
    onprem: Sandbox, dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>body {n}</p>") for n in range(12)]
    onprem.set_env(UNIQUE_CONCURRENCY="2")
    # The fifth finalize, and every one after it, hangs until the process is gone: pages are left
    # registered and uploaded but never finalized, the state a crash in the middle of ingestion leaves.
    held = threading.Event()
    finalizes = iter(range(10**6))
    lock = threading.Lock()

    def hold(request: Request) -> bool:
        if not _is_finalize(request):
            return False
        with lock:
            if next(finalizes) < 4:
                return False
        held.set()
        return True

    onprem.unique.faults.add(r"/graphql$", Fault(delay=30, drop=True), times=None, when=hold)

    killed = start_sync(onprem, dagster_home)
    assert held.wait(timeout=120), "the sync never reached the fifth finalize"
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    onprem.unique.faults.clear()

    (dead_run,) = instance.get_runs()
    assert dead_run.status == dg.DagsterRunStatus.STARTED  # nobody told Dagster the process died
    state = unique_state(onprem)
    half_written = sorted(k for k, item in state.items() if not item.finalized)
    assert half_written and len(state) < len(pages)  # killed in the middle of ingestion

    # Meanwhile the wiki moved on: a half-written page lost its label, a finalized one changed, one is new.
    dropped = half_written[0].rsplit("/", 1)[1]
    wiki.remove_label(dropped, "ai-ingest")
    finalized_page = next(k for k, item in state.items() if item.finalized).rsplit("/", 1)[1]
    wiki.update_page(finalized_page, body="<p>changed after the crash</p>")
    wiki.add_page("ENG", "After the crash", labels=["ai-ingest"], body="<p>new</p>")

    code, output = finish(start_sync(onprem, dagster_home))

    assert code == 0, output[-3000:]
    # The rerun found the killed run's worker gone and marked it failed instead of refusing to start.
    assert instance.get_run_by_id(dead_run.run_id).status == dg.DagsterRunStatus.FAILURE
    final = unique_state(onprem)
    assert final == expected_state(onprem)  # every row finalized with the exact bytes, nothing else
    assert onprem.key_of(dropped) not in final
    keys = [c.key for c in onprem.unique.store.contents.values()]
    assert len(keys) == len(set(keys)) == len(pages)  # 12 - 1 dropped + 1 new, no duplicate keys


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_syncs_started_together_one_runs_the_other_refuses_without_writing(
    onprem: Sandbox, dagster_home: Path, instance: dg.DagsterInstance
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>{n}</p>") for n in range(6)]
    onprem.set_env(HTTP_TIMEOUT_SECONDS="120")  # the gate below holds the winner's first request
    # The winner's first Confluence request waits until the other process is done, so the two runs
    # overlap however the OS schedules them.
    reached, release = threading.Event(), threading.Event()

    def gate(request: Request) -> bool:
        reached.set()
        release.wait(timeout=150)
        return False

    onprem.confluence.faults.add(r"/content/search$", Fault(), times=None, when=gate)

    processes = [start_sync(onprem, dagster_home), start_sync(onprem, dagster_home)]
    try:
        assert reached.wait(timeout=120), "no sync reached Confluence"
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        release.set()
    results = [finish(p) for p in processes]

    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    refused_output = next(output for code, output in results if code != 0)
    assert REFUSAL in refused_output and "Nothing was written" in refused_output
    assert unique_state(onprem) == expected_state(onprem)
    assert sorted(_registrations(onprem)) == sorted(onprem.key_of(p.id) for p in pages)  # each page written once
    statuses = sorted(run.status.value for run in instance.get_runs())
    assert statuses == ["FAILURE", "SUCCESS"]


def test_a_sync_that_created_its_run_but_has_not_started_yet_is_not_overtaken(
    onprem: Sandbox, instance: dg.DagsterInstance
) -> None:
    """The interleaving the gate above cannot force: the older run is created, the newer one checks first.

    The older run only defers to runs older than itself, so when it starts it will proceed whatever the
    newer one does; the newer one must therefore already treat it as in progress.
    """
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    older = fake_run(instance, dg.DagsterRunStatus.NOT_STARTED)

    result = confluence_sync.execute_in_process(
        resources=resources_from_env(onprem.env), instance=instance, raise_on_error=False
    )

    assert not result.success
    text = failure_text(result)
    assert REFUSAL in text and older.run_id in text
    assert onprem.unique.requests == [] and onprem.confluence.requests == []


def test_a_run_that_never_started_stops_blocking_after_the_start_timeout(
    onprem: Sandbox, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    fake_run(instance, dg.DagsterRunStatus.NOT_STARTED)
    monkeypatch.setattr(runtime, "_NOT_STARTED_GRACE", timedelta(0))  # as if it was created long ago

    result = confluence_sync.execute_in_process(
        resources=resources_from_env(onprem.env), instance=instance, raise_on_error=False
    )

    assert result.success, failure_text(result)
    assert set(unique_state(onprem)) == {onprem.key_of(page.id)}
