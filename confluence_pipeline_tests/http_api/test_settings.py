"""The service's settings: defaults, every bad variable named at once, the token never shown."""

from __future__ import annotations

import pytest

from confluence_pipeline.http_api.settings import HttpApiSettings, HttpApiSettingsError

TOKEN = "settings-Test-Token-0123456789"


def test_defaults_with_a_token() -> None:
    settings = HttpApiSettings.from_env({"HTTP_API_TOKEN": TOKEN})

    assert (settings.host, settings.port) == ("0.0.0.0", 8083)
    assert settings.dagster_webserver_url == "http://127.0.0.1:3000"
    assert settings.code_location == "confluence_pipeline"
    assert settings.token is not None and settings.token.get_secret_value() == TOKEN
    assert settings.authenticated and not settings.allow_unauthenticated
    assert (settings.dagster_timeout_seconds, settings.dry_run_wait_seconds) == (30.0, 60.0)


def test_every_variable_is_read() -> None:
    settings = HttpApiSettings.from_env(
        {
            "PORT": "9000",
            "HTTP_API_HOST": "127.0.0.1",
            "HTTP_API_TOKEN": f"  {TOKEN}\n",  # as read from a file: the newline is not part of the token
            "DAGSTER_WEBSERVER_URL": "https://dagster.example.com/prefix/",
            "HTTP_API_CODE_LOCATION": "confluence-pipeline",
            "HTTP_API_DAGSTER_TIMEOUT_SECONDS": "12.5",
            "HTTP_API_DRY_RUN_WAIT_SECONDS": "0",
        }
    )

    assert (settings.host, settings.port) == ("127.0.0.1", 9000)
    assert settings.token is not None and settings.token.get_secret_value() == TOKEN
    assert settings.dagster_webserver_url == "https://dagster.example.com/prefix"
    assert settings.code_location == "confluence-pipeline"
    assert (settings.dagster_timeout_seconds, settings.dry_run_wait_seconds) == (12.5, 0.0)


def test_without_a_token_it_refuses_unless_explicitly_allowed() -> None:
    with pytest.raises(HttpApiSettingsError) as refused:
        HttpApiSettings.from_env({"HTTP_API_TOKEN": "   "})
    assert set(refused.value.problems) == {"HTTP_API_TOKEN"}
    assert "HTTP_API_ALLOW_UNAUTHENTICATED=true" in str(refused.value)

    with pytest.raises(HttpApiSettingsError):
        HttpApiSettings.from_env({"HTTP_API_ALLOW_UNAUTHENTICATED": "false"})

    for word in ("true", "TRUE", "yes", "1"):
        allowed = HttpApiSettings.from_env({"HTTP_API_ALLOW_UNAUTHENTICATED": word})
        assert allowed.token is None and not allowed.authenticated


def test_every_bad_variable_is_named_at_once_without_echoing_the_token() -> None:
    short = "short-secret"
    with pytest.raises(HttpApiSettingsError) as raised:
        HttpApiSettings.from_env(
            {
                "PORT": "http",
                "HTTP_API_HOST": "local host",
                "HTTP_API_TOKEN": short,
                "HTTP_API_ALLOW_UNAUTHENTICATED": "sometimes",
                "DAGSTER_WEBSERVER_URL": "dagster:3000",
                "HTTP_API_DAGSTER_TIMEOUT_SECONDS": "0",
                "HTTP_API_DRY_RUN_WAIT_SECONDS": "-1",
            }
        )

    error = raised.value
    assert set(error.problems) == {
        "PORT",
        "HTTP_API_HOST",
        "HTTP_API_TOKEN",
        "HTTP_API_ALLOW_UNAUTHENTICATED",
        "DAGSTER_WEBSERVER_URL",
        "HTTP_API_DAGSTER_TIMEOUT_SECONDS",
        "HTTP_API_DRY_RUN_WAIT_SECONDS",
    }
    assert str(error).startswith("Invalid HTTP API configuration (7 bad variables)")
    assert "shorter than 16 characters" in error.problems["HTTP_API_TOKEN"]
    assert short not in str(error)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PORT", "0", "greater than or equal to 1"),
        ("PORT", "70000", "less than or equal to 65535"),
        ("HTTP_API_TOKEN", "tab\tinside-the-token-0123", "white space"),
        ("DAGSTER_WEBSERVER_URL", "ftp://dagster", "http:// or https://"),
        ("DAGSTER_WEBSERVER_URL", "http://admin:pw@dagster:3000", "credentials"),
        ("DAGSTER_WEBSERVER_URL", "http://dagster:3000/?x=1", "query string"),
        ("HTTP_API_DAGSTER_TIMEOUT_SECONDS", "soon", "valid number"),
    ],
)
def test_bad_values(name: str, value: str, fragment: str) -> None:
    with pytest.raises(HttpApiSettingsError) as raised:
        HttpApiSettings.from_env({"HTTP_API_TOKEN": TOKEN, name: value})
    assert fragment in raised.value.problems[name]
    assert "pw@" not in str(raised.value)


def test_the_token_never_shows_in_repr() -> None:
    settings = HttpApiSettings.from_env({"HTTP_API_TOKEN": TOKEN})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings) and TOKEN not in settings.model_dump_json()
