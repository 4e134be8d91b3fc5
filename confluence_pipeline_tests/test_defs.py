"""The code location loads: every job, schedule, sensor and resource, and a bad schedule setting names its variable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

import confluence_pipeline.definitions as definitions_module
from confluence_pipeline.config.settings import LoadTimeConfigurationError
from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource

ScheduleConfigurationError = SensorConfigurationError = LoadTimeConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONNECTOR_VARIABLES = [
    name for resource in (ConfluenceResource, UniqueResource, SyncOptionsResource) for name in resource.variable_names()
]
LOAD_VARIABLES = ["CRON_SCHEDULE", "CRON_TIMEZONE", "CHANGE_SENSOR_INTERVAL_SECONDS"]
CONFIG_FILES = {
    "reset.yaml": "confluence_reset",
    "reset.dry-run.yaml": "confluence_reset",
    "delete-content.yaml": "confluence_delete_content",
    "sync.test-mode.yaml": "confluence_sync",
    "sync.spaces.yaml": "confluence_sync",
}
NOT_RUN_CONFIGS = {"instances.example.yaml"}  # an instances file: unit/test_instances.py loads it


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Re-import definitions.py under a given environment; the clean module is restored afterwards."""
    for name in [*CONNECTOR_VARIABLES, *LOAD_VARIABLES]:
        monkeypatch.delenv(name, raising=False)

    def _load(**env: str) -> dg.Definitions:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(definitions_module).defs

    yield _load
    monkeypatch.undo()
    importlib.reload(definitions_module)


def test_every_job_schedule_and_sensor_is_wired(load: object) -> None:
    defs = load()  # type: ignore[operator]
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} == {"confluence_sync", "confluence_reset", "confluence_delete_content"}
    for job in repo.get_all_jobs():
        assert job.tags[WRITER_TAG] == "true"  # the run queue limit and the in-job check both rely on it
        assert set(job.required_resource_keys) <= {"confluence", "unique", "sync_options", "io_manager"}
    schedule = repo.get_schedule_def("confluence_sync_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.cron_schedule == "0 1 * * *"
    change = repo.get_sensor_def("confluence_change_sensor")
    failure = repo.get_sensor_def("confluence_sync_failure_sensor")
    assert change.default_status == dg.DefaultSensorStatus.STOPPED
    assert failure.default_status == dg.DefaultSensorStatus.RUNNING


def test_schedule_settings_are_read_when_the_location_loads(load: object) -> None:
    defs = load(CRON_SCHEDULE="15 2 * * *", CRON_TIMEZONE="Europe/Zurich")  # type: ignore[operator]
    schedule = defs.get_repository_def().get_schedule_def("confluence_sync_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 2 * * *", "Europe/Zurich")


@pytest.mark.parametrize(
    ("env", "error", "variable"),
    [
        ({"CRON_SCHEDULE": "daily at one"}, ScheduleConfigurationError, "CRON_SCHEDULE"),
        ({"CRON_TIMEZONE": "Europe/Nowhere"}, ScheduleConfigurationError, "CRON_TIMEZONE"),
        ({"CHANGE_SENSOR_INTERVAL_SECONDS": "soon"}, SensorConfigurationError, "CHANGE_SENSOR_INTERVAL_SECONDS"),
    ],
)
def test_an_invalid_load_setting_fails_loading_naming_the_variable(
    load: object, env: dict[str, str], error: type[Exception], variable: str
) -> None:
    with pytest.raises(error, match=variable):
        load(**env)  # type: ignore[operator]


def test_the_stored_repository_snapshot_holds_variable_names_not_secrets(load: object) -> None:
    secret = "pat-Snapshot-Secret-4242"
    defs = load(CONFLUENCE_INSTANCE_TYPE="ONPREM", CONFLUENCE_URL="https://wiki.example", CONFLUENCE_PAT=secret)  # type: ignore[operator]
    repo = defs.get_repository_def()
    snapshot = serialize_value(RepositorySnap.from_def(repo))
    assert "CONFLUENCE_PAT" in snapshot
    assert secret not in snapshot


@pytest.mark.parametrize(("file_name", "job_name"), sorted(CONFIG_FILES.items()))
def test_example_run_configs_are_valid_for_their_job(load: object, file_name: str, job_name: str) -> None:
    job = load().get_job_def(job_name)  # type: ignore[operator]
    config = yaml.safe_load((REPO_ROOT / "config" / file_name).read_text())
    dg.validate_run_config(job, config)


def test_every_example_config_is_covered() -> None:
    examples = {p.name for p in (REPO_ROOT / "config").glob("*.yaml")} - NOT_RUN_CONFIGS
    assert sorted(examples) == sorted(CONFIG_FILES)


def test_the_cli_validates_the_code_location_with_no_connector_variables_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONNECTOR_VARIABLES and k not in LOAD_VARIABLES}
    env["DAGSTER_HOME"] = str(tmp_path)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-m",
            "confluence_pipeline.definitions",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
