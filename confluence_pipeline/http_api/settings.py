"""The HTTP API's settings, read from the environment and validated at start with every bad variable named at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_PORT = 8083
DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
DEFAULT_CODE_LOCATION = "confluence_pipeline"  # the location name in workspace.yaml and pyproject's [tool.dagster]
MIN_TOKEN_LENGTH = 16
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})  # the same words the connector's own settings accept
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

TOKEN_VARIABLE = "HTTP_API_TOKEN"
ALLOW_UNAUTHENTICATED_VARIABLE = "HTTP_API_ALLOW_UNAUTHENTICATED"


class HttpApiSettingsError(ValueError):
    """The service's environment is invalid; `problems` maps each bad variable to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        noun = "variable" if len(self.problems) == 1 else "variables"
        lines = [f"  {name}: {reason}" for name, reason in sorted(self.problems.items())]
        super().__init__(f"Invalid HTTP API configuration ({len(lines)} bad {noun}):\n" + "\n".join(lines))


class HttpApiSettings(BaseModel):
    """Where the service listens, how callers authenticate, and which Dagster webserver launches the runs."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, validation_alias="PORT")
    host: str = Field(default="0.0.0.0", min_length=1, validation_alias="HTTP_API_HOST")
    token: SecretStr | None = Field(default=None, validation_alias=TOKEN_VARIABLE)
    allow_unauthenticated: bool = Field(default=False, validation_alias=ALLOW_UNAUTHENTICATED_VARIABLE)
    dagster_webserver_url: str = Field(default=DEFAULT_WEBSERVER_URL, validation_alias="DAGSTER_WEBSERVER_URL")
    code_location: str = Field(default=DEFAULT_CODE_LOCATION, min_length=1, validation_alias="HTTP_API_CODE_LOCATION")
    dagster_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, validation_alias="HTTP_API_DAGSTER_TIMEOUT_SECONDS"
    )
    dry_run_wait_seconds: float = Field(default=60.0, ge=0, le=3600, validation_alias="HTTP_API_DRY_RUN_WAIT_SECONDS")

    @field_validator("host", "code_location")
    @classmethod
    def _no_white_space(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("must not contain white space")
        return value

    @field_validator("token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Messages here never quote the value: pydantic would otherwise carry it into the error text.
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ValueError(f"is shorter than {MIN_TOKEN_LENGTH} characters; use a long random value")
        if any(ch.isspace() or not ch.isprintable() for ch in secret):
            raise ValueError("contains white space or control characters, which cannot travel in a header")
        return value

    @field_validator("allow_unauthenticated", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in TRUE_WORDS:
                return True
            if lowered in FALSE_WORDS:
                return False
            raise ValueError(f"{value!r} is not a boolean (use true or false)")
        return value

    @field_validator("dagster_webserver_url")
    @classmethod
    def _webserver_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not a URL with an http:// or https:// scheme and a host")
        if parts.username or parts.password:
            # The URL is echoed in every launch answer (`url`); credentials would leak to callers.
            raise ValueError("must not contain credentials (user:password@)")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not carry a query string or fragment")
        return value.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str | None]) -> HttpApiSettings:
        """Validate every variable; raise one HttpApiSettingsError naming all bad ones."""
        aliases = [field.validation_alias for field in cls.model_fields.values()]
        raw: dict[str, str] = {}
        for name in aliases:
            assert isinstance(name, str)
            value = env.get(name)
            # An empty variable (e.g. `HTTP_API_TOKEN=` in an env file) counts as unset; a token read from a
            # file often ends in a newline, which is never part of the secret.
            if value is not None and value.strip():
                raw[name] = value.strip()
        problems: dict[str, str] = {}
        settings: HttpApiSettings | None = None
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                name = str(error["loc"][0]) if error["loc"] else "environment"
                problems.setdefault(name, str(error["msg"]).removeprefix("Value error, "))
        if TOKEN_VARIABLE not in raw and not _is_true(raw.get(ALLOW_UNAUTHENTICATED_VARIABLE)):
            problems.setdefault(
                TOKEN_VARIABLE,
                "is required: callers must send 'Authorization: Bearer <token>'. To run without authentication "
                f"on a port only trusted callers can reach, set {ALLOW_UNAUTHENTICATED_VARIABLE}=true explicitly",
            )
        if problems or settings is None:
            raise HttpApiSettingsError(problems)
        return settings

    @property
    def authenticated(self) -> bool:
        return self.token is not None


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in TRUE_WORDS
