"""Fixtures for operations tests: the scenario sandbox (both emulators + env) and helpers to read run results."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

from confluence_pipeline.jobs.runtime import WRITER_TAG
from confluence_pipeline.jobs.sync import JOB_NAME as SYNC_JOB_NAME
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline_tests.scenarios.conftest import Sandbox, cloud, failure_text, make_sandbox, onprem  # noqa: F401 - fixtures

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO_ROOT",
    "Sandbox",
    "failure_text",
    "fake_run",
    "mutations",
    "output_metadata",
    "run_job",
    "stored_bytes",
]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent instance in a temp dir (schedule and sensor contexts need an instance reference)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """A persistent instance with the shipped dagster.yaml: runs, event logs and compute logs are files here."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield dagster_home, instance


def run_job(box: Sandbox, job: dg.JobDefinition, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        run_config=run_config, resources=resources_from_env(box.env), instance=box.instance, raise_on_error=False
    )


def output_metadata(result: dg.ExecuteInProcessResult, step_key: str) -> dict[str, Any]:
    """The step's output metadata, or its failure metadata when it failed."""
    for event in result.all_events:
        if event.step_key != step_key:
            continue
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
        if event.is_step_failure and event.step_failure_data.user_failure_data is not None:
            return {k: v.value for k, v in event.step_failure_data.user_failure_data.metadata.items()}
    raise AssertionError(f"no output or failure metadata for {step_key}")


def mutations(box: Sandbox, operation: str | None = None) -> list[Any]:
    """GraphQL mutations (optionally of one operation) and PUT uploads Unique received."""
    writes = box.unique_writes()
    if operation is None:
        return writes
    return [w for w in writes if w.body and json.loads(w.body).get("operationName") == operation]


def stored_bytes(dagster_home: Path) -> bytes:
    """Everything an instance under `dagster_home` holds: raw files plus every SQLite value, decompressed.

    Dagster stores snapshots zlib-compressed in SQLite, so a raw byte scan alone would miss a secret there.
    """
    parts: list[bytes] = []
    for path in sorted(p for p in dagster_home.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        parts.append(raw)
        if not raw.startswith(b"SQLite format 3"):
            continue
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        parts.append(_plain_bytes(value))
    return b"\n".join(parts)


def _plain_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value)
        except zlib.error:
            return value
    return str(value).encode()


def fake_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, job_name: str = SYNC_JOB_NAME) -> dg.DagsterRun:
    """A run of `job_name` in `status`, as another process (a launched run, another CLI call) would leave it."""
    # Queued runs need an origin; a registered location name is the smallest one Dagster accepts.
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("confluence_pipeline"), "__repository__")
    return instance.create_run_for_job(
        job_def=dg.GraphDefinition(name=job_name, node_defs=[]).to_job(),
        status=status,
        tags={WRITER_TAG: "true"},
        remote_job_origin=origin.get_job_origin(job_name),
    )
