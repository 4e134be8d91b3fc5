"""dagster.postgres.yaml: a sync runs against a real PostgreSQL instance storage, with the same run limits.

The server comes from CONFLUENCE_PIPELINE_TEST_PG_URL (postgresql://user:password@host:port/db) or is started
here from Debian's binaries (/usr/lib/postgresql/<version>/bin, package `postgresql`) in a temp directory,
as the `postgres` user when running as root. Skipped only when neither exists.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import psycopg2
import pytest
import yaml

from confluence_pipeline_tests.support import REPO_ROOT, Sandbox, failure_text, fake_run

pytestmark = pytest.mark.postgres
URL_VARIABLE = "CONFLUENCE_PIPELINE_TEST_PG_URL"


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def pg_params() -> Iterator[dict[str, str]]:
    """Connection values for an empty `dagster` database."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if url:
        parts = urlsplit(url)
        yield {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "user": parts.username or "postgres",
            "password": parts.password or "",
            "db": parts.path.lstrip("/") or "postgres",
        }
        return
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.skip(f"no PostgreSQL: {URL_VARIABLE} is unset and /usr/lib/postgresql/*/bin has no initdb")
    bin_dir = Path(binaries[-1]).parent
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
    data = Path(tempfile.mkdtemp(prefix="confluence-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 60}
    subprocess.run(
        _as_postgres_user([str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"]), **run
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start"]
        ),
        **run,
    )
    try:
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        ) as db:
            db.autocommit = True
            db.cursor().execute("CREATE DATABASE dagster")
        yield {"host": "127.0.0.1", "port": str(port), "user": "postgres", "password": "unused", "db": "dagster"}
    finally:
        subprocess.run(
            _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg_instance(
    pg_params: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """An instance from exactly the shipped dagster.postgres.yaml, its connection values from the environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    for name, key in (
        ("DAGSTER_PG_HOST", "host"),
        ("DAGSTER_PG_PORT", "port"),
        ("DAGSTER_PG_USERNAME", "user"),
        ("DAGSTER_PG_PASSWORD", "password"),
        ("DAGSTER_PG_DB", "db"),
    ):
        monkeypatch.setenv(name, pg_params[key])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
        instance.wipe()


def test_sync_runs_on_postgres_storage_and_the_writer_check_queries_it(
    onprem: Sandbox, pg_instance: dg.DagsterInstance
) -> None:
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(pg_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    onprem.instance = pg_instance
    running = fake_run(pg_instance, dg.DagsterRunStatus.STARTED)

    refused = onprem.run_sync(expect_success=False)
    assert "Another confluence_sync run is in progress" in failure_text(refused)
    assert onprem.unique_writes() == []

    pg_instance.delete_run(running.run_id)
    result = onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(page.id)}
    stored = pg_instance.get_run_by_id(result.run_id)
    assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
    assert any("Discovery: 1 labelled" in (e.user_message or "") for e in pg_instance.all_logs(result.run_id))


def test_both_instance_files_set_the_same_run_limits() -> None:
    sqlite = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    postgres = yaml.safe_load((REPO_ROOT / "dagster.postgres.yaml").read_text())
    assert postgres["concurrency"] == sqlite["concurrency"]
    assert postgres["run_monitoring"] == sqlite["run_monitoring"]
    assert "storage" not in sqlite  # SQLite under DAGSTER_HOME, Dagster's default
