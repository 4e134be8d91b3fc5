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
from confluence_pipeline.config.instances import INSTANCES_FILE_VARIABLE
from confluence_pipeline.config.settings import LoadTimeConfigurationError
from confluence_pipeline.jobs.writers import INSTANCE_TAG, WRITER_TAG
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource

ScheduleConfigurationError = SensorConfigurationError = LoadTimeConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
CONNECTOR_VARIABLES = [
    name for resource in (ConfluenceResource, UniqueResource, SyncOptionsResource) for name in resource.variable_names()
]
LOAD_VARIABLES = [
    "CRON_SCHEDULE",
    "CRON_TIMEZONE",
    "CHANGE_SENSOR_INTERVAL_SECONDS",
    "FRESHNESS_HOURS",
    "CONFLUENCE_TIMEZONE",
    INSTANCES_FILE_VARIABLE,
]
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


def our_jobs(defs: dg.Definitions) -> dict[str, dg.JobDefinition]:
    """The connector's jobs (not Dagster's implicit asset job, which runs the freshness checks on request)."""
    return {j.name: j for j in defs.get_repository_def().get_all_jobs() if not j.name.startswith("__")}


def test_every_job_schedule_and_sensor_is_wired(load: object) -> None:
    defs = load()  # type: ignore[operator]
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    jobs = our_jobs(defs)
    assert set(jobs) == {"confluence_sync", "confluence_reset", "confluence_delete_content"}
    for job in jobs.values():
        # The run queue's per-value limit and the in-job check both rely on the writer tag naming the instance.
        assert (job.tags[WRITER_TAG], job.tags[INSTANCE_TAG]) == ("default", "default")
        assert set(job.required_resource_keys) <= {"confluence", "unique", "sync_options", "io_manager"}
        assert set(job.resource_defs) >= {"confluence", "unique", "sync_options"}  # bound on the job itself
    schedule = repo.get_schedule_def("confluence_sync_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.cron_schedule == "0 1 * * *"
    change = repo.get_sensor_def("confluence_change_sensor")
    failure = repo.get_sensor_def("confluence_sync_failure_sensor")
    freshness = repo.get_sensor_def("confluence_freshness_sensor")
    assert change.default_status == dg.DefaultSensorStatus.STOPPED
    assert failure.default_status == freshness.default_status == dg.DefaultSensorStatus.RUNNING
    asset = dg.AssetKey(["unique", "confluence", "default"])
    assert [spec.key for spec in defs.assets or []] == [asset]  # type: ignore[union-attr]
    assert repo.asset_graph.get_check_keys_for_assets({asset}) == {dg.AssetCheckKey(asset, "freshness_check")}


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


# -- several instances ----------------------------------------------------------------------------------------
INSTANCES = """\
defaults:
  UNIQUE_INGESTION_URL: https://gw.example.com/ingestion/v1/content
  UNIQUE_INGESTION_URL_GRAPHQL: https://gw.example.com/ingestion/graphql
  ZITADEL_OAUTH_TOKEN_URL: https://id.example.com/oauth/v2/token
  ZITADEL_CLIENT_ID: confluence@example.com
  ZITADEL_PROJECT_ID: 42
  ZITADEL_CLIENT_SECRET_ENV: ZITADEL_SECRET
instances:
  - name: wiki_dc
    CONFLUENCE_INSTANCE_TYPE: ONPREM
    CONFLUENCE_URL: https://wiki.example.com
    CONFLUENCE_PAT_ENV: WIKI_DC_PAT
    CRON_SCHEDULE: "0 2 * * *"
    CRON_TIMEZONE: Europe/Zurich
    FRESHNESS_HOURS: 12
  - name: cloud
    CONFLUENCE_INSTANCE_TYPE: CLOUD
    CONFLUENCE_URL: https://acme.atlassian.net
    CONFLUENCE_CLOUD_USER: sync@acme.com
    CONFLUENCE_CLOUD_TOKEN_ENV: CLOUD_TOKEN
    CHANGE_SENSOR_INTERVAL_SECONDS: 600
  - name: old_dc
    status: inactive
    CONFLUENCE_INSTANCE_TYPE: ONPREM
    CONFLUENCE_URL: https://old-wiki.example.com
    CONFLUENCE_PAT_ENV: OLD_PAT
  - name: gone
    status: deleted
"""
JOB_BASES = ("confluence_sync", "confluence_reset", "confluence_delete_content")
SECRETS = {
    "ZITADEL_SECRET": "zitadel-Defs-Secret-01",
    "WIKI_DC_PAT": "pat-Defs-Secret-02",
    "CLOUD_TOKEN": "tok-Defs-03",
}


def test_an_instances_file_defines_each_instance_by_its_status(load: object, tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(INSTANCES, encoding="utf-8")

    defs = load(**{INSTANCES_FILE_VARIABLE: str(path), **SECRETS})  # type: ignore[operator]

    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    jobs = our_jobs(defs)
    assert set(jobs) == {
        *(f"{base}__{name}" for name in ("wiki_dc", "cloud") for base in JOB_BASES),
        "confluence_reset__gone",  # a deleted instance keeps only the job that removes its content
    }
    for name, job in jobs.items():
        instance = name.rpartition("__")[2]
        assert (job.tags[WRITER_TAG], job.tags[INSTANCE_TAG]) == (instance, instance)
    assert {s.name for s in repo.schedule_defs} == {
        "confluence_sync_schedule__wiki_dc",
        "confluence_sync_schedule__cloud",
    }
    dc_schedule = repo.get_schedule_def("confluence_sync_schedule__wiki_dc")
    assert dc_schedule.job_name == "confluence_sync__wiki_dc"
    assert (dc_schedule.cron_schedule, dc_schedule.execution_timezone) == ("0 2 * * *", "Europe/Zurich")
    assert dc_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert repo.get_schedule_def("confluence_sync_schedule__cloud").default_status == dg.DefaultScheduleStatus.STOPPED
    assert {s.name for s in repo.sensor_defs} == {
        "confluence_change_sensor__wiki_dc",
        "confluence_change_sensor__cloud",
        "confluence_sync_failure_sensor",
        "confluence_freshness_sensor",
    }
    assert repo.get_sensor_def("confluence_change_sensor__cloud").minimum_interval_seconds == 600
    assert repo.get_sensor_def("confluence_change_sensor__cloud").job_name == "confluence_sync__cloud"
    # Inactive instances keep their asset (its history stays visible) but are not held to a freshness window.
    keys = {spec.key.path[-1] for spec in defs.assets or []}  # type: ignore[union-attr]
    assert keys == {"wiki_dc", "cloud", "old_dc"}
    checks = {key.asset_key.path[-1] for key in repo.asset_graph.asset_check_keys}
    assert checks == {"wiki_dc", "cloud"}


def test_each_instance_binds_its_own_variables_by_name(load: object, tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(INSTANCES, encoding="utf-8")
    defs = load(**{INSTANCES_FILE_VARIABLE: str(path), **SECRETS})  # type: ignore[operator]

    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    dc = defs.get_job_def("confluence_sync__wiki_dc").resource_defs["confluence"]
    cloud = defs.get_job_def("confluence_sync__cloud").resource_defs["confluence"]

    assert "https://wiki.example.com" in str(dc.config_schema.as_field().default_value)
    assert "https://acme.atlassian.net" in str(cloud.config_schema.as_field().default_value)
    assert "WIKI_DC_PAT" in snapshot and "CLOUD_TOKEN" in snapshot
    assert not any(secret in snapshot for secret in SECRETS.values())


def _validate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CONNECTOR_VARIABLES and k not in LOAD_VARIABLES}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-m",
            "confluence_pipeline.definitions",
        ],
        capture_output=True,
        text=True,
        env={**clean, "DAGSTER_HOME": str(tmp_path), **env},
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def test_the_cli_validates_the_code_location_with_the_example_instances_file(tmp_path: Path) -> None:
    placeholders = {"ZITADEL_CLIENT_SECRET": "placeholder", "WIKI_DC_PAT": "placeholder", "CLOUD_API_TOKEN": "x"}
    result = _validate(tmp_path, **{INSTANCES_FILE_VARIABLE: "config/instances.example.yaml", **placeholders})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_instances_file_fails_loading_naming_file_instance_and_field(tmp_path: Path) -> None:
    path = tmp_path / "instances.yaml"
    path.write_text(
        INSTANCES.replace('CRON_SCHEDULE: "0 2 * * *"', "CRON_SCHEDULE: nightly").replace(
            "https://acme.atlassian.net", "acme.atlassian.net"
        ),
        encoding="utf-8",
    )
    result = _validate(tmp_path, **{INSTANCES_FILE_VARIABLE: str(path), **SECRETS})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{path}: instance 'wiki_dc': CRON_SCHEDULE: 'nightly' is not a valid 5-field cron expression" in output
    assert f"{path}: instance 'cloud': CONFLUENCE_URL: 'acme.atlassian.net' is not a URL" in output
