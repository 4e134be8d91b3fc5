"""Instances: today's environment as instance `default`, an instances file checked whole, secrets never in it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from confluence_pipeline.config.instances import (
    DEFAULT_INSTANCE,
    INSTANCES_FILE_VARIABLE,
    EnvRef,
    Instance,
    InstancesConfig,
    InstancesConfigurationError,
    InstanceStatus,
    instance_variables,
    load_instances,
    run_time_variables,
    secret_variables,
)
from confluence_pipeline.config.location import DEFAULT_FRESHNESS_HOURS
from confluence_pipeline.config.settings import LoadTimeConfigurationError, load_settings
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE = "instances.yaml"

UNIQUE = """\
defaults:
  UNIQUE_INGESTION_URL: https://gw.example.com/ingestion/v1/content
  UNIQUE_INGESTION_URL_GRAPHQL: https://gw.example.com/ingestion/graphql
  ZITADEL_OAUTH_TOKEN_URL: https://id.example.com/oauth/v2/token
  ZITADEL_CLIENT_ID: confluence@example.com
  ZITADEL_PROJECT_ID: 42
  ZITADEL_CLIENT_SECRET_ENV: ZITADEL_SECRET
"""
DC = """\
  - name: wiki_dc
    CONFLUENCE_INSTANCE_TYPE: ONPREM
    CONFLUENCE_URL: https://wiki.example.com
    CONFLUENCE_PAT_ENV: WIKI_DC_PAT
"""
CLOUD = """\
  - name: cloud
    CONFLUENCE_INSTANCE_TYPE: CLOUD
    CONFLUENCE_URL: https://acme.atlassian.net
    CONFLUENCE_CLOUD_USER: sync@acme.com
    CONFLUENCE_CLOUD_TOKEN_ENV: CLOUD_TOKEN
"""
SECRETS = {"ZITADEL_SECRET": "zitadel-Secret-0001", "WIKI_DC_PAT": "pat-Secret-0002", "CLOUD_TOKEN": "tok-Secret-0003"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages name the file as CONFLUENCE_INSTANCES_FILE gives it


def from_file(text: str, **environ: str) -> InstancesConfig:
    Path(FILE).write_text(text, encoding="utf-8")
    return load_instances({INSTANCES_FILE_VARIABLE: FILE, **SECRETS, **environ})


def problems(text: str, **environ: str) -> list[str]:
    with pytest.raises(InstancesConfigurationError) as info:
        from_file(text, **environ)
    return list(info.value.problems)


def instance_lines(*variables: str, name: str = "wiki_dc", head: str = UNIQUE) -> str:
    """A file with the shared Unique defaults and one DC instance with the given extra lines."""
    return head + "instances:\n" + DC.replace("wiki_dc", name) + "".join(f"    {line}\n" for line in variables)


# -- without a file: today's environment is the instance `default` -----------------------------------------
def test_the_environment_is_the_instance_default_bound_by_variable_name() -> None:
    environ = {
        "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
        "CONFLUENCE_URL": "https://wiki.example.com",
        "CONFLUENCE_PAT": "pat-Secret-0002",
        "UNIQUE_CONCURRENCY": "8",
        "HTTP_TIMEOUT_SECONDS": "30",
        "CRON_SCHEDULE": "15 2 * * *",
        "FRESHNESS_HOURS": "12.5",
        "CONFLUENCE_TIMEZONE": "Europe/Zurich",
        "ALERT_WEBHOOK_URL": "https://hooks.example.com/T0/secret-path",
        "HTTPS_PROXY": "http://proxy:3128",
        "HOME": "/root",
        INSTANCES_FILE_VARIABLE: "  ",  # blank counts as unset
    }

    config = load_instances(environ)

    assert config.file is None and config.ignored_variables == ()
    (instance,) = config.instances
    assert (instance.name, instance.status) == (DEFAULT_INSTANCE, InstanceStatus.ACTIVE)
    # Unset variables keep their defaults; load-time, process-wide and foreign variables are no bindings.
    bound = [
        "CONFLUENCE_INSTANCE_TYPE",
        "CONFLUENCE_URL",
        "CONFLUENCE_PAT",
        "UNIQUE_CONCURRENCY",
        "HTTP_TIMEOUT_SECONDS",
    ]
    assert dict(instance.bindings) == {name: EnvRef(name) for name in bound}
    assert instance.location is not None
    assert instance.location.cron_schedule == "15 2 * * *" and instance.location.schedule_running
    assert instance.location.freshness_hours == 12.5
    assert instance.location.confluence_timezone == "Europe/Zurich"
    assert instance.location.change_sensor_interval_seconds == 300
    assert config.alerts.alert_webhook_url is not None
    assert instance.variables(environ)["CONFLUENCE_PAT"] == "pat-Secret-0002"


def test_an_empty_environment_still_loads_as_today() -> None:
    (instance,) = load_instances({}).instances
    assert dict(instance.bindings) == {}
    assert instance.location is not None
    assert instance.location.cron_schedule is None and instance.location.freshness_hours == DEFAULT_FRESHNESS_HOURS


def test_bad_load_time_variables_of_the_environment_are_named_together() -> None:
    with pytest.raises(LoadTimeConfigurationError) as info:
        load_instances(
            {
                "CRON_SCHEDULE": "0 1 * *",
                "FRESHNESS_HOURS": "0",
                "CONFLUENCE_TIMEZONE": "Mars/Olympus",
                "ALERT_WEBHOOK_URL": "hooks.example.com/secret-path",
                "CONFLUENCE_URL": "not checked when the location loads",
            }
        )
    assert isinstance(info.value, InstancesConfigurationError)
    assert info.value.problems == (
        "ALERT_WEBHOOK_URL: is not a URL with an http:// or https:// scheme and a host",
        "CRON_SCHEDULE: '0 1 * *' is not a valid 5-field cron expression (e.g. '0 1 * * *' for 01:00 daily); "
        "leave it empty to keep the schedule stopped",
        "FRESHNESS_HOURS: '0' is not a positive number of hours (e.g. 36 or 1.5)",
        "CONFLUENCE_TIMEZONE: 'Mars/Olympus' is not an IANA time zone name (e.g. 'UTC', 'Europe/Zurich')",
    )
    assert "secret-path" not in str(info.value)


@pytest.mark.parametrize("hours", ["-1", "soon", "nan", "inf", "0.0"])
def test_freshness_is_a_positive_number_of_hours(hours: str) -> None:
    with pytest.raises(InstancesConfigurationError) as info:
        load_instances({"FRESHNESS_HOURS": hours})
    assert info.value.problems == (f"FRESHNESS_HOURS: {hours!r} is not a positive number of hours (e.g. 36 or 1.5)",)


# -- definition names -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "default",
            (
                "confluence_sync",
                "confluence_reset",
                "confluence_delete_content",
                "confluence_sync_schedule",
                "confluence_change_sensor",
            ),
        ),
        (
            "wiki_dc",
            (
                "confluence_sync__wiki_dc",
                "confluence_reset__wiki_dc",
                "confluence_delete_content__wiki_dc",
                "confluence_sync_schedule__wiki_dc",
                "confluence_change_sensor__wiki_dc",
            ),
        ),
    ],
)
def test_definition_names(name: str, expected: tuple[str, ...]) -> None:
    instance = Instance(name, InstanceStatus.ACTIVE, {}, None)
    names = (
        instance.sync_job_name,
        instance.reset_job_name,
        instance.delete_content_job_name,
        instance.sync_schedule_name,
        instance.change_sensor_name,
    )
    assert names == expected


# -- the file ---------------------------------------------------------------------------------------------
def test_the_shipped_example_file_loads() -> None:
    environ = {
        INSTANCES_FILE_VARIABLE: str(REPO_ROOT / "config" / "instances.example.yaml"),
        "ZITADEL_CLIENT_SECRET": "zitadel-Secret-0001",
        "WIKI_DC_PAT": "pat-Secret-0002",
        "CLOUD_API_TOKEN": "tok-Secret-0003",
    }

    config = load_instances(environ)

    assert [(i.name, i.status) for i in config.instances] == [
        ("wiki_dc", InstanceStatus.ACTIVE),
        ("cloud", InstanceStatus.ACTIVE),
    ]
    dc, cloud = config.instances
    assert dc.bindings["CONFLUENCE_PAT"] == EnvRef("WIKI_DC_PAT")
    assert cloud.bindings["CONFLUENCE_CLOUD_TOKEN"] == EnvRef("CLOUD_API_TOKEN")
    assert (
        dc.bindings["ZITADEL_CLIENT_SECRET"]
        == cloud.bindings["ZITADEL_CLIENT_SECRET"]
        == EnvRef("ZITADEL_CLIENT_SECRET")
    )
    assert dc.location is not None and cloud.location is not None
    assert (dc.location.cron, dc.location.cron_timezone, dc.location.confluence_timezone) == (
        "0 1 * * *",
        "Europe/Zurich",
        "Europe/Zurich",
    )
    assert (cloud.location.cron, cloud.location.change_sensor_interval_seconds) == ("30 */4 * * *", 600)
    # Every instance, as its runs will see it, passes the run-time validation too.
    for instance in config.instances:
        settings = load_settings(instance.variables(environ))
        assert settings.unique.ingestion_base == "https://gateway.example.com/ingestion"
    assert dc.sync_job_name == "confluence_sync__wiki_dc"


def test_an_instance_named_default_keeps_todays_names() -> None:
    config = from_file(instance_lines(name="default"))
    assert config.instances[0].sync_job_name == "confluence_sync"


def test_instance_over_defaults_over_built_in_defaults_never_the_environment() -> None:
    text = (
        UNIQUE
        + "  UNIQUE_CONCURRENCY: 8\n"
        + "  UNIQUE_SCOPE_ID: scope_shared\n"
        + "  CRON_SCHEDULE: '0 3 * * *'\n"
        + "instances:\n"
        + DC
        + "    UNIQUE_CONCURRENCY: 2\n"
        + '    UNIQUE_SCOPE_ID: ""\n'  # back to the built-in default: one scope per space
        + CLOUD
    )
    environ = {
        "TEST_MODE": "true",
        "UNIQUE_TOKENS_PER_MINUTE": "5",
        "CRON_TIMEZONE": "Europe/Zurich",
        "CONFLUENCE_URL": "https://other.example.com",
        "CONFLUENCE_PAT": "pat-Secret-9999",
    }

    config = from_file(text, **environ)

    dc, cloud = config.instances
    assert dc.bindings["UNIQUE_CONCURRENCY"] == "2" and cloud.bindings["UNIQUE_CONCURRENCY"] == "8"
    assert dc.bindings["UNIQUE_SCOPE_ID"] == "" and cloud.bindings["UNIQUE_SCOPE_ID"] == "scope_shared"
    assert dc.bindings["CONFLUENCE_URL"] == "https://wiki.example.com"
    for instance in (dc, cloud):
        assert "TEST_MODE" not in instance.bindings and "UNIQUE_TOKENS_PER_MINUTE" not in instance.bindings
        assert instance.location is not None
        assert (instance.location.cron_schedule, instance.location.cron_timezone) == ("0 3 * * *", "UTC")
    settings = load_settings(dc.variables({**SECRETS, **environ}))
    assert settings.unique.scope_id is None and settings.unique.tokens_per_minute == 100
    assert not settings.run.test_mode
    assert config.ignored_variables == (
        "CONFLUENCE_PAT",
        "CONFLUENCE_URL",
        "CRON_TIMEZONE",
        "TEST_MODE",
        "UNIQUE_TOKENS_PER_MINUTE",
    )


def test_a_variable_set_only_in_the_environment_is_missing_for_a_named_instance() -> None:
    text = (
        UNIQUE
        + "instances:\n  - name: wiki_dc\n    CONFLUENCE_INSTANCE_TYPE: ONPREM\n    CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n"
    )
    assert problems(text, CONFLUENCE_URL="https://wiki.example.com") == [
        "instances.yaml: instance 'wiki_dc': CONFLUENCE_URL: is required (a URL with http:// or https://)",
    ]


@pytest.mark.parametrize(
    ("written", "held"),
    [
        ("TEST_MODE: true", "true"),
        ("TEST_MODE: False", "false"),
        ("TEST_MODE: yes", "true"),
        ("TEST_MODE: 'yes'", "yes"),
        ("UNIQUE_CONCURRENCY: 8", "8"),
        ("CONFLUENCE_TOKENS_PER_MINUTE: 0", "0"),
        ("SYNC_FAILURE_TOLERANCE: 010", "010"),  # as written, not YAML 1.1's octal 8
        ("HTTP_TIMEOUT_SECONDS: 1_000", "1_000"),
        ("UNIQUE_SCOPE_ID: 2024-05-06", "2024-05-06"),  # not a date object
        ("UNIQUE_SCOPE_ID:", ""),
        ("UNIQUE_SCOPE_ID: ~", ""),
    ],
)
def test_scalars_become_the_text_an_environment_variable_would_hold(written: str, held: str) -> None:
    name = written.partition(":")[0]
    instance = from_file(instance_lines(written)).instances[0]
    assert instance.bindings[name] == held


def test_numbers_reach_the_load_time_values() -> None:
    text = instance_lines("FRESHNESS_HOURS: 1.5", "CHANGE_SENSOR_INTERVAL_SECONDS: 60", "CRON_SCHEDULE: '*/5 * * * *'")
    location = from_file(text).instances[0].location
    assert location is not None
    assert (location.freshness_hours, location.change_sensor_interval_seconds, location.cron) == (
        1.5,
        60,
        "*/5 * * * *",
    )


# -- one rule, one exact line -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "instances:\n  - name: a\n    CONFLUENCE_URL: [x\n",
            ["instances.yaml: line 4, column 1: invalid YAML: expected ',' or ']', but got '<stream end>'"],
        ),
        (
            "instances:\n  - name: a\n   CONFLUENCE_URL: x\n",
            ["instances.yaml: line 3, column 4: invalid YAML: expected <block end>, but found '<block mapping start>'"],
        ),
        ("", ["instances.yaml: is empty; it needs an instances: list (see config/instances.example.yaml)"]),
        ("- name: a\n", ["instances.yaml: must be a mapping with defaults: and instances:, not a list"]),
        ("defaults: {}\n", ["instances.yaml: instances: is required: a list of instances, each with a name"]),
        ("instances: []\n", ["instances.yaml: instances: lists no instance; add at least one"]),
        (
            "instances:\n  name: a\n",
            ["instances.yaml: instances: must be a list of instances (items starting with '- name:'), not a mapping"],
        ),
        (
            "defaults: [1]\ninstances: []\n",
            [
                "instances.yaml: defaults: must be a mapping of variables, not a list",
                "instances.yaml: instances: lists no instance; add at least one",
            ],
        ),
    ],
)
def test_the_shape_of_the_file(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_a_file_that_cannot_be_read_is_named_with_its_variable() -> None:
    with pytest.raises(InstancesConfigurationError) as info:
        load_instances({INSTANCES_FILE_VARIABLE: "missing.yaml"})
    assert info.value.problems == ("CONFLUENCE_INSTANCES_FILE: cannot read 'missing.yaml' (No such file or directory)",)


def test_unknown_top_level_keys_are_named_with_the_closest_one() -> None:
    text = instance_lines().replace("defaults:", "defualts:") + "CONFLUENCE_URL: https://x\nversion: 2\n"
    lines = problems(text)
    assert lines[:3] == [
        "instances.yaml: defualts: is not a top-level key (defaults, instances) (did you mean defaults?)",
        "instances.yaml: CONFLUENCE_URL: variables go under defaults: or under an instance in instances:",
        "instances.yaml: version: is not a top-level key (defaults, instances)",
    ]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("  - just a name\n", "instance #2: must be a mapping of variables with a name, not a single value"),
        ("  - status: deleted\n", "instance #2: name: is required (lower-case letters, digits and underscores)"),
        (
            "  - name: Wiki-DC\n    status: deleted\n",
            "instance #2: name: 'Wiki-DC' is not an instance name (lower-case letters, digits and underscores, "
            "e.g. wiki_dc)",
        ),
        (
            "  - name: [a]\n    status: deleted\n",
            "instance #2: name: a list is not an instance name (lower-case letters, digits and "
            "underscores, e.g. wiki_dc)",
        ),
        (
            "  - name: wiki_dc\n    status: deleted\n",
            "instance 'wiki_dc' (#2): name: 'wiki_dc' is already the name of instance #1",
        ),
    ],
)
def test_names_of_instances(item: str, expected: str) -> None:
    # A deleted second instance needs nothing beyond the shared Unique defaults: its name is the one problem.
    assert problems(instance_lines() + item) == [f"instances.yaml: {expected}"]


def test_an_invalid_status_is_named() -> None:
    assert problems(instance_lines("status: paused")) == [
        "instances.yaml: instance 'wiki_dc': status: 'paused' is not one of active, inactive, deleted",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("CONFLUENCE_ULR: https://x", "CONFLUENCE_ULR: is not a known variable (did you mean CONFLUENCE_URL?)"),
        ("confluence_url: https://x", "confluence_url: is not a known variable (did you mean CONFLUENCE_URL?)"),
        ("CONFLUENCE_PATT_ENV: X", "CONFLUENCE_PATT_ENV: is not a known variable (did you mean CONFLUENCE_PAT_ENV?)"),
        ("COLOUR: blue", "COLOUR: is not a known variable"),
        ("Status: active", "Status: is not a known variable (did you mean status?)"),
        (
            "CONFLUENCE_URL_ENV: WIKI_URL",
            "CONFLUENCE_URL_ENV: CONFLUENCE_URL is not a secret; write its value directly (CONFLUENCE_URL: ...)",
        ),
        (
            "CRON_SCHEDULE_ENV: CRON",
            "CRON_SCHEDULE_ENV: CRON_SCHEDULE is not a secret; write its value directly (CRON_SCHEDULE: ...)",
        ),
        (
            "ALERT_WEBHOOK_URL: https://hooks.example.com/x",
            "ALERT_WEBHOOK_URL: is shared by every instance; set it in the code location's environment",
        ),
        (
            "HTTPS_PROXY: http://proxy:3128",
            "HTTPS_PROXY: is shared by every instance; set it in the code location's environment",
        ),
        (
            "CONFLUENCE_INSTANCES_FILE: other.yaml",
            "CONFLUENCE_INSTANCES_FILE: is shared by every instance; set it in the code location's environment",
        ),
        (
            "UNIQUE_CONCURRENCY: [1, 2]",
            "UNIQUE_CONCURRENCY: must be a single value (text, a number or true/false), not a list",
        ),
        (
            "INGEST_SINGLE_LABEL: {a: b}",
            "INGEST_SINGLE_LABEL: must be a single value (text, a number or true/false), not a mapping",
        ),
        (
            "CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n    CONFLUENCE_PAT: pat-Secret-0002",
            "CONFLUENCE_PAT: is set together with CONFLUENCE_PAT_ENV; remove CONFLUENCE_PAT",
        ),
        (
            "CONFLUENCE_PASSWORD_ENV:",
            "CONFLUENCE_PASSWORD_ENV: is empty; give the name of the environment variable that holds "
            "CONFLUENCE_PASSWORD",
        ),
        (
            "CONFLUENCE_PASSWORD_ENV: lower_case",
            "CONFLUENCE_PASSWORD_ENV: is not an environment variable name (upper-case letters, digits and "
            "underscores); give the NAME of the variable that holds CONFLUENCE_PASSWORD, never its value",
        ),
        (
            "CONFLUENCE_PASSWORD_ENV: [A]",
            "CONFLUENCE_PASSWORD_ENV: is not an environment variable name (upper-case letters, digits and "
            "underscores); give the NAME of the variable that holds CONFLUENCE_PASSWORD, never its value",
        ),
        (
            "CONFLUENCE_USERNAME=svc: x",
            "CONFLUENCE_USERNAME=...: looks like a line of a .env file; write CONFLUENCE_USERNAME: <value> instead",
        ),
    ],
)
def test_keys_and_values_of_an_instance(line: str, expected: str) -> None:
    text = instance_lines(*line.split("\n    "))
    if line.startswith("CONFLUENCE_PAT_ENV"):
        text = text.replace("    CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n", "", 1)
    assert problems(text) == [f"instances.yaml: instance 'wiki_dc': {expected}"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("name: shared", "name: is set per instance, not in defaults"),
        ("status: inactive", "status: is set per instance, not in defaults"),
        (
            "ZITADEL_CLIENT_SECRT_ENV: X",
            "ZITADEL_CLIENT_SECRT_ENV: is not a known variable (did you mean ZITADEL_CLIENT_SECRET_ENV?)",
        ),
    ],
)
def test_keys_of_the_defaults(line: str, expected: str) -> None:
    text = instance_lines(head=UNIQUE + f"  {line}\n")
    assert problems(text) == [f"instances.yaml: defaults: {expected}"]


def test_a_key_written_twice_is_named_with_both_lines() -> None:
    text = instance_lines("CONFLUENCE_URL: https://wiki2.example.com")
    assert problems(text) == [
        "instances.yaml: line 13: CONFLUENCE_URL is set twice (first on line 11); remove one of them"
    ]


@pytest.mark.parametrize("name", sorted(secret_variables()))
def test_a_literal_secret_is_refused_by_name_without_its_value(name: str) -> None:
    secret = '{"x-api-key": "hdr-Secret-0004"}' if name.endswith("HEADERS") else "lit-Secret-0005"
    text = instance_lines(f"{name}: '{secret}'")
    if name == "CONFLUENCE_PAT":
        text = text.replace("    CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n", "")
    lines = problems(text)
    because = "its header values are secrets" if name.endswith("HEADERS") else "it is a secret"
    assert lines == [
        f"instances.yaml: instance 'wiki_dc': {name}: is never written in the file because {because}; "
        f"write {name}_ENV: <name of the environment variable that holds it>"
    ]
    assert "Secret-000" not in "\n".join(lines)


def test_headers_written_as_a_yaml_mapping_are_refused_too() -> None:
    text = instance_lines("UNIQUE_SERVICE_EXTRA_HEADERS:", "  x-company-id: hdr-Secret-0004")
    assert problems(text) == [
        "instances.yaml: instance 'wiki_dc': UNIQUE_SERVICE_EXTRA_HEADERS: is never written in the file because "
        "its header values are secrets; write UNIQUE_SERVICE_EXTRA_HEADERS_ENV: <name of the environment variable "
        "that holds it>"
    ]


def test_referenced_headers_are_read_at_run_time_only() -> None:
    text = instance_lines(
        "UNIQUE_SERVICE_AUTH_MODE: cluster_local",
        "UNIQUE_SERVICE_EXTRA_HEADERS_ENV: UNIQUE_HEADERS",
    )
    # Not JSON, and no x-company-id: only a run reads the value, so loading accepts it.
    instance = from_file(text, UNIQUE_HEADERS="not json").instances[0]
    assert instance.bindings["UNIQUE_SERVICE_EXTRA_HEADERS"] == EnvRef("UNIQUE_HEADERS")


def test_cluster_local_without_its_headers_names_the_key_to_add() -> None:
    assert problems(instance_lines("UNIQUE_SERVICE_AUTH_MODE: cluster_local")) == [
        "instances.yaml: instance 'wiki_dc': UNIQUE_SERVICE_EXTRA_HEADERS_ENV: cluster_local mode needs the "
        "x-company-id and x-user-id headers in this JSON object",
    ]


# -- references to the environment ------------------------------------------------------------------------
def test_a_reference_is_checked_for_presence_only() -> None:
    # Set but empty, or not what the variable needs: loading never looks at a secret's value.
    config = from_file(UNIQUE + "instances:\n" + DC + CLOUD, ZITADEL_SECRET="", CLOUD_TOKEN="{")
    assert [i.name for i in config.instances] == ["wiki_dc", "cloud"]


def test_only_references_of_the_variants_in_use_must_be_set() -> None:
    # cluster_local needs no Zitadel secret; a Cloud instance no PAT, even when the defaults name them.
    text = (
        UNIQUE.replace("ZITADEL_CLIENT_SECRET_ENV", "CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n  ZITADEL_CLIENT_SECRET_ENV")
        + "  UNIQUE_SERVICE_AUTH_MODE: cluster_local\n"
        + "  UNIQUE_SERVICE_EXTRA_HEADERS_ENV: UNIQUE_HEADERS\n"
        + "instances:\n"
        + CLOUD
    )
    Path(FILE).write_text(text, encoding="utf-8")
    environ = {INSTANCES_FILE_VARIABLE: FILE, "CLOUD_TOKEN": "x"}
    with pytest.raises(InstancesConfigurationError) as info:
        load_instances(environ)
    assert info.value.problems == (
        "instances.yaml: defaults: UNIQUE_SERVICE_EXTRA_HEADERS_ENV: UNIQUE_HEADERS is not set in the environment "
        "(for instance 'cloud')",
    )
    assert load_instances({**environ, "UNIQUE_HEADERS": "{}"}).instance("cloud").status is InstanceStatus.ACTIVE


def test_unset_references_are_named_once_per_source() -> None:
    text = UNIQUE + "instances:\n" + DC + CLOUD
    Path(FILE).write_text(text, encoding="utf-8")
    with pytest.raises(InstancesConfigurationError) as info:
        load_instances({INSTANCES_FILE_VARIABLE: FILE, "CLOUD_TOKEN": "tok-Secret-0003"})
    assert info.value.problems == (
        "instances.yaml: defaults: ZITADEL_CLIENT_SECRET_ENV: ZITADEL_SECRET is not set in the environment "
        "(for instance 'wiki_dc', instance 'cloud')",
        "instances.yaml: instance 'wiki_dc': CONFLUENCE_PAT_ENV: WIKI_DC_PAT is not set in the environment",
    )


# -- statuses -----------------------------------------------------------------------------------------------
def test_an_inactive_instance_is_checked_but_its_references_need_not_be_set() -> None:
    text = UNIQUE + "instances:\n" + DC + "    status: inactive\n"
    instance = from_file(text, WIKI_DC_PAT="").instances[0]
    assert instance.status is InstanceStatus.INACTIVE and instance.location is not None
    Path(FILE).write_text(text, encoding="utf-8")
    config = load_instances({INSTANCES_FILE_VARIABLE: FILE, "ZITADEL_SECRET": "x"})  # no WIKI_DC_PAT at all
    assert config.instances[0].status is InstanceStatus.INACTIVE

    bad = text.replace("https://wiki.example.com", "wiki.example.com")
    assert problems(bad) == [
        "instances.yaml: instance 'wiki_dc': CONFLUENCE_URL: 'wiki.example.com' is not a URL with an http:// or "
        "https:// scheme and a host",
    ]


def test_a_deleted_instance_needs_only_what_its_reset_job_needs() -> None:
    text = UNIQUE + "instances:\n  - name: old_wiki\n    status: deleted\n    CONFLUENCE_URL: not checked\n"
    Path(FILE).write_text(text, encoding="utf-8")

    config = load_instances({INSTANCES_FILE_VARIABLE: FILE, "ZITADEL_SECRET": "x"})

    (instance,) = config.instances
    assert (instance.status, instance.location) == (InstanceStatus.DELETED, None)
    assert instance.reset_job_name == "confluence_reset__old_wiki"
    assert instance.bindings["ZITADEL_CLIENT_SECRET"] == EnvRef("ZITADEL_SECRET")

    broken = text.replace("  ZITADEL_CLIENT_ID: confluence@example.com\n", "").replace(
        "https://gw.example.com/ingestion/graphql", "gw"
    )
    Path(FILE).write_text(broken, encoding="utf-8")
    with pytest.raises(InstancesConfigurationError) as info:
        load_instances({INSTANCES_FILE_VARIABLE: FILE})
    assert info.value.problems == (
        "instances.yaml: defaults: UNIQUE_INGESTION_URL_GRAPHQL: 'gw' is not a URL with an http:// or https:// "
        "scheme and a host (for instance 'old_wiki')",
        "instances.yaml: defaults: ZITADEL_CLIENT_SECRET_ENV: ZITADEL_SECRET is not set in the environment "
        "(for instance 'old_wiki')",
        "instances.yaml: instance 'old_wiki': ZITADEL_CLIENT_ID: is required when UNIQUE_SERVICE_AUTH_MODE is external",
    )


# -- instances side by side -----------------------------------------------------------------------------------
SAME_WIKI = """\
  - name: wiki_b
    CONFLUENCE_INSTANCE_TYPE: onprem
    CONFLUENCE_URL: HTTPS://Wiki.Example.com/
    CONFLUENCE_PAT_ENV: WIKI_DC_PAT
    INGEST_SINGLE_LABEL: other-label
    INGEST_ALL_LABEL: other-label-all
    UNIQUE_SCOPE_ID: scope_other
"""


def test_one_confluence_into_one_unique_twice_is_refused_whatever_the_labels() -> None:
    assert problems(UNIQUE + "instances:\n" + DC + SAME_WIKI) == [
        "instances.yaml: instance 'wiki_b': CONFLUENCE_URL: HTTPS://Wiki.Example.com is already synced into the "
        "same Unique (https://gw.example.com/ingestion) by instance 'wiki_dc'; their runs would delete each "
        "other's pages. Use one instance per Confluence and Unique (or set one inactive)",
    ]


def test_the_same_target_is_found_when_the_unique_headers_are_referenced() -> None:
    cluster_local = "  UNIQUE_SERVICE_AUTH_MODE: cluster_local\n  UNIQUE_SERVICE_EXTRA_HEADERS_ENV: UNIQUE_HEADERS\n"
    lines = problems(UNIQUE + cluster_local + "instances:\n" + DC + SAME_WIKI, UNIQUE_HEADERS="{}")
    assert [line.partition(": CONFLUENCE_URL: ")[0] for line in lines] == ["instances.yaml: instance 'wiki_b'"]


@pytest.mark.parametrize(
    "change",
    [
        ("    UNIQUE_SCOPE_ID: scope_other\n", "    UNIQUE_SCOPE_ID: scope_other\n    status: inactive\n"),
        ("    UNIQUE_SCOPE_ID: scope_other\n", "    UNIQUE_SCOPE_ID: scope_other\n    status: deleted\n"),
        (
            "    UNIQUE_SCOPE_ID: scope_other\n",
            "    UNIQUE_INGESTION_URL: https://other-gw.example.com/ingestion/v1/content\n"
            "    UNIQUE_INGESTION_URL_GRAPHQL: https://other-gw.example.com/ingestion/graphql\n",
        ),
        ("HTTPS://Wiki.Example.com/", "https://wiki.example.com/other-context"),
    ],
)
def test_the_same_confluence_may_share_a_unique_only_when_one_never_syncs(change: tuple[str, str]) -> None:
    config = from_file(UNIQUE + "instances:\n" + DC + SAME_WIKI.replace(*change))
    assert [i.name for i in config.instances] == ["wiki_dc", "wiki_b"]


# -- everything at once, and never a secret ------------------------------------------------------------------
def test_every_bad_field_of_every_instance_is_named_at_once() -> None:
    text = (
        UNIQUE.replace("https://gw.example.com/ingestion/v1/content", "gw/v1/content")
        + "instances:\n"
        + "  - name: wiki_dc\n"
        + "    CONFLUENCE_INSTANCE_TYPE: ONPREM\n"
        + "    CONFLUENCE_URL: x\n"
        + "    CONFLUENCE_PAT_ENV: WIKI_DC_PAT\n"
        + "    UNIQUE_CONCURRENCY: 100\n"
        + "    CRON_SCHEDULE: every night\n"
        + "  - name: cloud\n"
        + "    CONFLUENCE_INSTANCE_TYPE: CLOUD\n"
        + "    CONFLUENCE_URL: https://acme.atlassian.net\n"
        + "    CONFLUENCE_CLOUD_TOKEN_ENV: CLOUD_TOKEN\n"
        + "    INGEST_ALL_LABEL: ai-ingest\n"
        + "    CHANGE_SENSOR_INTERVAL_SECONDS: 5\n"
        + "    FRESHNESS_HOURS: -2\n"
        + "  - name: dc_two\n"
        + "    CONFLUENCE_INSTANCE_TYPE: SERVER\n"
        + "    CONFLUENCE_URL: https://wiki2.example.com\n"
        + "    CONFLUENCE_TIMEZONE: Europe/Atlantis\n"
    )
    assert problems(text) == [
        "instances.yaml: defaults: UNIQUE_INGESTION_URL: 'gw/v1/content' is not a URL with an http:// or https:// "
        "scheme and a host (for instance 'wiki_dc', instance 'cloud', instance 'dc_two')",
        "instances.yaml: instance 'wiki_dc': CONFLUENCE_URL: 'x' is not a URL with an http:// or https:// scheme "
        "and a host",
        "instances.yaml: instance 'wiki_dc': UNIQUE_CONCURRENCY: 100 is above the maximum of 64",
        "instances.yaml: instance 'wiki_dc': CRON_SCHEDULE: 'every night' is not a valid 5-field cron expression "
        "(e.g. '0 1 * * *' for 01:00 daily); leave it empty to keep the schedule stopped",
        "instances.yaml: instance 'cloud': CONFLUENCE_CLOUD_USER: is required when CONFLUENCE_INSTANCE_TYPE is "
        "CLOUD, unless CONFLUENCE_CLIENT_ID and CONFLUENCE_CLIENT_SECRET (OAuth) are set",
        "instances.yaml: instance 'cloud': INGEST_ALL_LABEL: must differ from INGEST_SINGLE_LABEL",
        "instances.yaml: instance 'cloud': CHANGE_SENSOR_INTERVAL_SECONDS: 5 is below the minimum of 30",
        "instances.yaml: instance 'cloud': FRESHNESS_HOURS: '-2' is not a positive number of hours (e.g. 36 or 1.5)",
        "instances.yaml: instance 'dc_two': CONFLUENCE_INSTANCE_TYPE: 'SERVER' is not one of ONPREM, CLOUD",
        "instances.yaml: instance 'dc_two': CONFLUENCE_TIMEZONE: 'Europe/Atlantis' is not an IANA time zone name "
        "(e.g. 'UTC', 'Europe/Zurich')",
    ]


def test_no_secret_value_reaches_an_error_message() -> None:
    pasted = "ghp_Paste-Secret-0006"  # a token written where a variable name belongs
    text = (
        UNIQUE
        + '  UNIQUE_SERVICE_EXTRA_HEADERS: \'{"authorization": "Bearer Hdr-Secret-0007"}\'\n'
        + "instances:\n"
        + "  - name: wiki_dc\n"
        + "    CONFLUENCE_INSTANCE_TYPE: ONPREM\n"
        + "    CONFLUENCE_URL: https://wiki.example.com\n"
        + "    CONFLUENCE_PAT: Lit-Secret-0008\n"
        + f"    CONFLUENCE_PASSWORD_ENV: {pasted}\n"
        + "    ZITADEL_CLIENT_SECRET_ENV: Zitadel-Secret-0009\n"
        + "    CONFLUENCE_PASSWORD=Dotenv-Secret-0010: x\n"
        + "    CONFLUENCE_CLOUD_TOKEN: [List-Secret-0011]\n"
    )
    environ = {"WIKI_DC_PAT": "Env-Secret-0012", "ZITADEL_SECRET": "Env-Secret-0013"}

    lines = problems(text, **environ)

    assert len(lines) == 6, lines  # each wrongly written secret is named, none of them shown
    assert "Secret-00" not in "\n".join(lines)


def test_no_secret_of_a_broken_line_reaches_a_yaml_error() -> None:
    lines = problems("instances:\n  - name: a\n    CONFLUENCE_PAT: Yaml-Secret-0014: more\n")
    assert lines == ["instances.yaml: line 3, column 37: invalid YAML: mapping values are not allowed here"]


# -- the error and the variables ------------------------------------------------------------------------------
def test_the_error_survives_pickling_with_its_lines() -> None:
    error = InstancesConfigurationError(["a.yaml: instance 'x': CONFLUENCE_URL: is required"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and str(copy) == str(error)
    assert str(error) == (
        "Invalid code location configuration (1 problem):\n  a.yaml: instance 'x': CONFLUENCE_URL: is required"
    )


def test_bindings_cover_exactly_the_variables_of_the_resources() -> None:
    # Derived from the settings model: a variable added there is accepted in the file without another list.
    resources = {n for r in (ConfluenceResource, UniqueResource, SyncOptionsResource) for n in r.variable_names()}
    assert run_time_variables() == resources
    assert secret_variables() <= run_time_variables()
    assert {"CRON_SCHEDULE", "CRON_TIMEZONE", "CHANGE_SENSOR_INTERVAL_SECONDS", "FRESHNESS_HOURS"} <= (
        instance_variables() - run_time_variables()
    )
    assert "ALERT_WEBHOOK_URL" not in instance_variables()
