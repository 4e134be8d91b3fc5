"""Configuration validation: typed settings from env, every problem named at once, secrets never echoed."""

from __future__ import annotations

import pytest

from confluence_pipeline.config.settings import (
    SECRET_VARIABLES,
    CloudSettings,
    ConfigurationError,
    OnPremSettings,
    known_variables,
    load_settings,
    scrubber_for_variables,
)
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


# -- OAuth client credentials ----------------------------------------------------------------------------
CLOUD = {
    **ONPREM,
    "CONFLUENCE_INSTANCE_TYPE": "CLOUD",
    "CONFLUENCE_URL": "https://acme.atlassian.net",
    "CONFLUENCE_PAT": "",
}
DC_OAUTH = {"CONFLUENCE_PAT": "", "CONFLUENCE_CLIENT_ID": "svc-client", "CONFLUENCE_CLIENT_SECRET": "oauth-secret-abc"}
BASIC_VARS = ("CONFLUENCE_USERNAME", "CONFLUENCE_PASSWORD")
CLOUD_OAUTH = {
    "CONFLUENCE_CLIENT_ID": "svc-client",
    "CONFLUENCE_CLIENT_SECRET": "oauth-secret-abc",
    "CONFLUENCE_CLOUD_ID": "0f1e-22",
}


def test_dc_oauth_defaults_to_its_own_token_endpoint_and_scope_read() -> None:
    settings = load_settings({**ONPREM, **DC_OAUTH}).confluence
    assert isinstance(settings, OnPremSettings) and settings.uses_oauth
    assert settings.token_url == "https://wiki.example.com/confluence/rest/oauth2/latest/token"
    assert settings.scopes == "READ"
    assert settings.pat is None and "oauth-secret-abc" not in repr(settings)
    assert [s.get_secret_value() for s in settings.secrets] == ["oauth-secret-abc"]


def test_cloud_oauth_calls_the_gateway_and_keeps_site_links() -> None:
    settings = load_settings({**CLOUD, **CLOUD_OAUTH}).confluence
    assert isinstance(settings, CloudSettings) and settings.uses_oauth
    assert settings.token_url == "https://api.atlassian.com/oauth/token"
    assert settings.scopes is None  # Cloud grants what the credentials were created with
    assert settings.api_root == "https://api.atlassian.com/ex/confluence/0f1e-22/wiki/rest/api"
    assert settings.web_base == "https://acme.atlassian.net/wiki"
    assert settings.cloud_user is None and settings.cloud_token is None


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("READ", "READ"),
        (" READ,WRITE ", "READ WRITE"),
        ("search:confluence  read:page:confluence", "search:confluence read:page:confluence"),
    ],
)
def test_oauth_scopes_are_sent_space_separated(value: str, sent: str) -> None:
    settings = load_settings({**ONPREM, **DC_OAUTH, "CONFLUENCE_OAUTH_SCOPES": value}).confluence
    assert settings.scopes == sent


def test_oauth_token_url_overrides_the_default() -> None:
    env = {**CLOUD, **CLOUD_OAUTH, "CONFLUENCE_OAUTH_TOKEN_URL": "https://auth.atlassian.com/oauth/token/"}
    assert load_settings(env).confluence.token_url == "https://auth.atlassian.com/oauth/token"


@pytest.mark.parametrize(
    ("base", "overrides", "bad"),
    [
        # two methods at once, each variable involved named
        (
            ONPREM,
            {"CONFLUENCE_CLIENT_ID": "c", "CONFLUENCE_CLIENT_SECRET": "s"},
            {"CONFLUENCE_PAT", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"},
        ),
        (ONPREM, {"CONFLUENCE_USERNAME": "u", "CONFLUENCE_PASSWORD": "p"}, {"CONFLUENCE_PAT", *BASIC_VARS}),
        (ONPREM, {"CONFLUENCE_USERNAME": "u"}, {"CONFLUENCE_PAT", "CONFLUENCE_USERNAME"}),
        (ONPREM, {"CONFLUENCE_CLIENT_SECRET": "s"}, {"CONFLUENCE_PAT", "CONFLUENCE_CLIENT_SECRET"}),
        (
            {**ONPREM, **DC_OAUTH},
            {"CONFLUENCE_USERNAME": "u", "CONFLUENCE_PASSWORD": "p"},
            {*BASIC_VARS, "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"},
        ),
        (
            CLOUD,
            {"CONFLUENCE_CLOUD_USER": "u", "CONFLUENCE_CLOUD_TOKEN": "t", **CLOUD_OAUTH},
            {"CONFLUENCE_CLOUD_USER", "CONFLUENCE_CLOUD_TOKEN", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"},
        ),
        (
            CLOUD,
            {"CONFLUENCE_CLOUD_TOKEN": "t", **CLOUD_OAUTH},
            {"CONFLUENCE_CLOUD_TOKEN", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"},
        ),
        # half of one method
        ({**ONPREM, **DC_OAUTH}, {"CONFLUENCE_CLIENT_SECRET": ""}, {"CONFLUENCE_CLIENT_SECRET"}),
        ({**ONPREM, **DC_OAUTH}, {"CONFLUENCE_CLIENT_ID": ""}, {"CONFLUENCE_CLIENT_ID"}),
        ({**CLOUD, **CLOUD_OAUTH}, {"CONFLUENCE_CLIENT_SECRET": ""}, {"CONFLUENCE_CLIENT_SECRET"}),
        (CLOUD, {"CONFLUENCE_CLOUD_USER": "u"}, {"CONFLUENCE_CLOUD_TOKEN"}),
        # Cloud OAuth only works through the gateway
        ({**CLOUD, **CLOUD_OAUTH}, {"CONFLUENCE_CLOUD_ID": ""}, {"CONFLUENCE_CLOUD_ID"}),
        # OAuth options without OAuth, and malformed ones
        (ONPREM, {"CONFLUENCE_OAUTH_TOKEN_URL": "https://id.example.com/token"}, {"CONFLUENCE_OAUTH_TOKEN_URL"}),
        (ONPREM, {"CONFLUENCE_OAUTH_SCOPES": "READ"}, {"CONFLUENCE_OAUTH_SCOPES"}),
        (
            {**ONPREM, **DC_OAUTH},
            {"CONFLUENCE_OAUTH_TOKEN_URL": "id.example.com/token"},
            {"CONFLUENCE_OAUTH_TOKEN_URL"},
        ),
        ({**ONPREM, **DC_OAUTH}, {"CONFLUENCE_OAUTH_SCOPES": 'READ "WRITE"'}, {"CONFLUENCE_OAUTH_SCOPES"}),
        ({**ONPREM, **DC_OAUTH}, {"CONFLUENCE_OAUTH_SCOPES": ", ,"}, {"CONFLUENCE_OAUTH_SCOPES"}),
    ],
)
def test_exactly_one_complete_auth_method(base: dict[str, str], overrides: dict[str, str], bad: set[str]) -> None:
    assert set(problems({**base, **overrides})) == bad


def test_auth_problems_say_what_to_do_and_never_show_secrets() -> None:
    env = {**ONPREM, **DC_OAUTH, "CONFLUENCE_PAT": "pat-value-123"}
    found = problems(env)
    assert set(found) == {"CONFLUENCE_PAT", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"}
    reason = found["CONFLUENCE_PAT"]
    assert "more than one Confluence auth method (a PAT and OAuth)" in reason and "set exactly one" in reason
    message = str(ConfigurationError(found))
    assert "pat-value-123" not in message and "oauth-secret-abc" not in message

    half = problems({**ONPREM, **DC_OAUTH, "CONFLUENCE_CLIENT_SECRET": ""})
    assert half == {"CONFLUENCE_CLIENT_SECRET": "is required with CONFLUENCE_CLIENT_ID (OAuth client credentials)"}
    nothing = problems({**CLOUD})
    assert nothing["CONFLUENCE_CLOUD_USER"].startswith("is required when CONFLUENCE_INSTANCE_TYPE is CLOUD, unless")
    assert "API gateway" in problems({**CLOUD, **CLOUD_OAUTH, "CONFLUENCE_CLOUD_ID": ""})["CONFLUENCE_CLOUD_ID"]


def test_the_client_secret_is_a_secret_variable() -> None:
    assert "CONFLUENCE_CLIENT_SECRET" in SECRET_VARIABLES
    assert {"CONFLUENCE_CLIENT_ID", "CONFLUENCE_OAUTH_TOKEN_URL", "CONFLUENCE_OAUTH_SCOPES"} <= known_variables()
    scrubber = scrubber_for_variables({"CONFLUENCE_CLIENT_SECRET": "a+b/c=d-secret"})
    assert scrubber.scrub("form: client_secret=a%2Bb%2Fc%3Dd-secret, raw a+b/c=d-secret") == (
        "form: client_secret=***, raw ***"
    )
