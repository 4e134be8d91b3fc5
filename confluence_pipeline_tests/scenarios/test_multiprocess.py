"""The sync under Dagster's multiprocess executor: every step in its own process, the same end state, the caps kept."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from confluence_pipeline.jobs.writers import WORKER_TAG, RunWorker
from confluence_pipeline_tests.support import REPO_ROOT, Sandbox, expected_state, unique_state
from confluence_sandbox.unique.server import TOKEN_PATH

DAGSTER = str(Path(sys.executable).with_name("dagster"))
PER_MINUTE = 600  # both caps; two concurrent steps get 300/min each
STEPS = 2
SUMMARY = "summarize_sync"


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.timeout(300)
def test_a_multiprocess_sync_reaches_the_same_end_state_within_the_caps(
    onprem: Sandbox, home: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    dagster_home, instance = home
    wiki = onprem.confluence.wiki
    for key in ("ENG", "OPS", "HR"):
        wiki.add_space(key, key.title())
        for n in range(12):
            wiki.add_page(key, f"{key} page {n}", labels=["ai-ingest"], body=f"<p>{key} {n} ü</p>")
    onprem.set_env(CONFLUENCE_TOKENS_PER_MINUTE=str(PER_MINUTE), UNIQUE_TOKENS_PER_MINUTE=str(PER_MINUTE))
    run_config = tmp_path / "multiprocess.yaml"
    run_config.write_text(yaml.safe_dump({"executor": "multiprocess", "max_concurrent_steps": STEPS}))

    done = subprocess.run(
        [
            DAGSTER,
            "job",
            "execute",
            "-m",
            "confluence_pipeline.definitions",
            "-j",
            "confluence_sync",
            "-c",
            str(run_config),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        cwd=REPO_ROOT,
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert unique_state(onprem) == expected_state(onprem)
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    entries = instance.all_logs(run.run_id)
    # Every step ran in a process of its own, apart from the run's; its outputs went through the filesystem.
    events = [e.dagster_event for e in entries if e.dagster_event is not None]
    step_pids = {event.pid for event in events if event.is_step_start}
    (run_pid,) = {event.pid for event in events if event.event_type == dg.DagsterEventType.RUN_START}

    assert len(step_pids) >= 7 and run_pid not in step_pids
    # The one-writer check records the run's worker, not the short-lived step process that ran the check.
    worker = RunWorker.from_tag(instance.get_run_by_id(run.run_id).tags[WORKER_TAG])
    assert worker is not None and (worker.host, worker.pid) == (socket.gethostname(), run_pid)
    assert any((dagster_home / "storage" / run.run_id).rglob("*")), "no step output was stored"
    # Each step paced its requests at its share of each cap, and the run as a whole stayed within them.
    messages = [e.user_message for e in entries]
    share = f"{PER_MINUTE // STEPS}/min for this step ({PER_MINUTE}/min shared by {STEPS} concurrent steps)"
    assert f"UNIQUE_TOKENS_PER_MINUTE: {share}" in messages and f"CONFLUENCE_TOKENS_PER_MINUTE: {share}" in messages
    # The limiter's promise for one step's grants; arrival at the emulator jitters by up to a request's latency.
    per_step_second = math.ceil(PER_MINUTE / STEPS / 60) + 1 + 1
    paced = [r.time for r in onprem.unique.requests if r.path != TOKEN_PATH]  # tokens: never paced
    assert busiest_second(paced) <= STEPS * per_step_second
    assert busiest_second([r.time for r in onprem.confluence.requests]) <= STEPS * per_step_second
    # The request totals are exact although every step had clients of its own.
    (summary,) = [e.step_output_data.metadata for e in events if e.is_successful_output and e.step_key == SUMMARY]
    assert summary["unique_requests"].value == len(onprem.unique.requests)
    assert summary["total_new"].value == 36
