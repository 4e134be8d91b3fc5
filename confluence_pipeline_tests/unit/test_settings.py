"""Configuration validation: typed settings from env, every problem named at once, secrets never echoed."""

from __future__ import annotations

import pytest

from confluence_pipeline.config.settings import CloudSettings, ConfigurationError, load_settings
from confluence_pipeline.domain.models import Platform

ONPREM = {
    "CONFLUENCE_INSTANCE_TYPE": "onprem",
    "CONFLUENCE_URL": "https://wiki.example.com/confluence/",
    "CONFLUENCE_PAT": "pat-value-123",
    "UNIQUE_INGESTION_URL": "https://gw.example.com/ingestion/v1/content",
    "UNIQUE_INGESTION_URL_GRAPHQL": "https://gw.example.com/ingestion/graphql",
    "ZITADEL_OAUTH_TOKEN_URL": "https://id.example.com/oauth/v2/token",
    "ZITADEL_CLIENT_ID": "client",
    "ZITADEL_CLIENT_SECRET": "zitadel-secret-xyz",
    "ZITADEL_PROJECT_ID": "42",
}


def problems(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigurationError) as info:
        load_settings(env)
    return info.value.problems


def test_valid_onprem_settings_and_derived_urls() -> None:
    settings = load_settings(ONPREM)
    assert settings.confluence.platform is Platform.ONPREM
    assert settings.confluence.base_url == "https://wiki.example.com/confluence"
    assert settings.confluence.api_root == "https://wiki.example.com/confluence/rest/api"
    assert settings.unique.ingestion_base == "https://gw.example.com/ingestion"
    assert settings.unique.file_diff_url == "https://gw.example.com/ingestion/v2/content/file-diff"
    assert settings.confluence.tokens_per_minute == 250 and settings.unique.tokens_per_minute == 100
    assert settings.unique.concurrency == 4 and settings.run.failure_tolerance == 0
    assert settings.unique.scope_id is None and settings.unique.scope_path_template == "/Confluence/{space_key}"
    assert "pat-value-123" not in repr(settings) and "zitadel-secret-xyz" not in repr(settings)


@pytest.mark.parametrize(
    ("cloud_id", "api_root"),
    [
        (None, "https://acme.atlassian.net/wiki/rest/api"),
        ("0f1e-22", "https://api.atlassian.com/ex/confluence/0f1e-22/wiki/rest/api"),
    ],
)
def test_cloud_api_root_site_or_gateway(cloud_id: str | None, api_root: str) -> None:
    env = {
        **ONPREM,
        "CONFLUENCE_INSTANCE_TYPE": "CLOUD",
        "CONFLUENCE_URL": "https://acme.atlassian.net",
        "CONFLUENCE_CLOUD_USER": "svc@acme.com",
        "CONFLUENCE_CLOUD_TOKEN": "tok",
    }
    if cloud_id:
        env["CONFLUENCE_CLOUD_ID"] = cloud_id
    settings = load_settings(env)
    assert settings.confluence.api_root == api_root
    assert settings.confluence.web_base == "https://acme.atlassian.net/wiki"
    assert isinstance(settings.confluence, CloudSettings)  # an OnPrem PAT left in the env is not used for Cloud
    assert "pat" not in type(settings.confluence).model_fields


@pytest.mark.parametrize(
    ("overrides", "bad"),
    [
        ({"CONFLUENCE_INSTANCE_TYPE": "SERVER"}, {"CONFLUENCE_INSTANCE_TYPE"}),
        ({"CONFLUENCE_INSTANCE_TYPE": ""}, {"CONFLUENCE_INSTANCE_TYPE"}),
        ({"CONFLUENCE_URL": "wiki.example.com"}, {"CONFLUENCE_URL"}),
        ({"CONFLUENCE_URL": "ftp://wiki"}, {"CONFLUENCE_URL"}),
        ({"CONFLUENCE_PAT": ""}, {"CONFLUENCE_PAT", "CONFLUENCE_USERNAME", "CONFLUENCE_PASSWORD"}),
        ({"CONFLUENCE_PAT": "", "CONFLUENCE_USERNAME": "u"}, {"CONFLUENCE_PAT", "CONFLUENCE_PASSWORD"}),
        ({"CONFLUENCE_INSTANCE_TYPE": "CLOUD"}, {"CONFLUENCE_CLOUD_USER", "CONFLUENCE_CLOUD_TOKEN"}),
        ({"CONFLUENCE_TOKENS_PER_MINUTE": "fast"}, {"CONFLUENCE_TOKENS_PER_MINUTE"}),
        ({"UNIQUE_TOKENS_PER_MINUTE": "-5"}, {"UNIQUE_TOKENS_PER_MINUTE"}),
        ({"UNIQUE_CONCURRENCY": "0"}, {"UNIQUE_CONCURRENCY"}),
        ({"UNIQUE_CONCURRENCY": "1000"}, {"UNIQUE_CONCURRENCY"}),
        ({"SYNC_FAILURE_TOLERANCE": "1.5"}, {"SYNC_FAILURE_TOLERANCE"}),
        ({"TEST_MODE": "maybe"}, {"TEST_MODE"}),
        ({"UNIQUE_SERVICE_AUTH_MODE": "oauth"}, {"UNIQUE_SERVICE_AUTH_MODE"}),
        ({"UNIQUE_SERVICE_EXTRA_HEADERS": "{not json"}, {"UNIQUE_SERVICE_EXTRA_HEADERS"}),
        ({"UNIQUE_SERVICE_EXTRA_HEADERS": '["a"]'}, {"UNIQUE_SERVICE_EXTRA_HEADERS"}),
        ({"ZITADEL_SERVICE_EXTRA_HEADERS": '{"a": 1}'}, {"ZITADEL_SERVICE_EXTRA_HEADERS"}),
        ({"ZITADEL_CLIENT_SECRET": "", "ZITADEL_PROJECT_ID": ""}, {"ZITADEL_CLIENT_SECRET", "ZITADEL_PROJECT_ID"}),
        ({"UNIQUE_SERVICE_AUTH_MODE": "cluster_local"}, {"UNIQUE_SERVICE_EXTRA_HEADERS"}),
        ({"UNIQUE_SCOPE_PATH_TEMPLATE": "Confluence/{space_key}"}, {"UNIQUE_SCOPE_PATH_TEMPLATE"}),
        ({"UNIQUE_SCOPE_PATH_TEMPLATE": "/Confluence/{nope}"}, {"UNIQUE_SCOPE_PATH_TEMPLATE"}),
        ({"INGEST_SINGLE_LABEL": "two words"}, {"INGEST_SINGLE_LABEL"}),
        ({"INGEST_ALL_LABEL": "ai-ingest"}, {"INGEST_ALL_LABEL"}),
        ({"HTTP_TIMEOUT_SECONDS": "0"}, {"HTTP_TIMEOUT_SECONDS"}),
    ],
)
def test_each_bad_value_is_named(overrides: dict[str, str], bad: set[str]) -> None:
    assert set(problems({**ONPREM, **overrides})) == bad


def test_all_problems_in_one_message_without_secret_values() -> None:
    env = {
        "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
        "CONFLUENCE_URL": "no-scheme.example.com",
        "CONFLUENCE_USERNAME": "svc",
        "UNIQUE_INGESTION_URL": "",
        "UNIQUE_SERVICE_EXTRA_HEADERS": '{"Authorization": "Bearer leaked-token-value"',
        "ZITADEL_CLIENT_SECRET": "zitadel-secret-xyz",
        "UNIQUE_CONCURRENCY": "many",
    }
    with pytest.raises(ConfigurationError) as info:
        load_settings(env)
    message = str(info.value)
    for name in (
        "CONFLUENCE_URL",
        "CONFLUENCE_PAT",
        "CONFLUENCE_PASSWORD",
        "UNIQUE_INGESTION_URL",
        "UNIQUE_INGESTION_URL_GRAPHQL",
        "UNIQUE_SERVICE_EXTRA_HEADERS",
        "ZITADEL_OAUTH_TOKEN_URL",
        "ZITADEL_PROJECT_ID",
        "UNIQUE_CONCURRENCY",
    ):
        assert name in message
    assert "leaked-token-value" not in message and "zitadel-secret-xyz" not in message
    assert message.startswith("Invalid configuration (")


def test_zero_rate_means_unlimited_and_cluster_local_needs_no_zitadel() -> None:
    env = {key: value for key, value in ONPREM.items() if not key.startswith("ZITADEL_")} | {
        "CONFLUENCE_TOKENS_PER_MINUTE": "0",
        "UNIQUE_SERVICE_AUTH_MODE": "CLUSTER_LOCAL",
        "UNIQUE_SERVICE_EXTRA_HEADERS": '{"x-company-id": "c", "x-user-id": "u"}',
    }
    settings = load_settings(env)
    assert settings.confluence.tokens_per_minute is None
    assert settings.unique.auth_mode == "cluster_local"
    assert settings.unique.ingestion_base == "https://gw.example.com/ingestion"
