"""Parse and validate the connector's environment variables into typed settings, all problems at once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from confluence_pipeline.domain.models import Platform
from confluence_pipeline.domain.scopes import validate_scope_template

DEFAULT_CLOUD_API_URL = "https://api.atlassian.com"
DEFAULT_SCOPE_TEMPLATE = "/Confluence/{space_key}"

# Variables whose values must never be echoed in an error message.
SECRET_VARIABLES = frozenset(
    {"CONFLUENCE_PAT", "CONFLUENCE_PASSWORD", "CONFLUENCE_CLOUD_TOKEN", "ZITADEL_CLIENT_SECRET"}
)


class ConfigurationError(ValueError):
    """The configuration is invalid; `problems` maps each bad variable to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"  {name}: {reason}" for name, reason in self.problems.items()]
        noun = "variable" if len(lines) == 1 else "variables"
        super().__init__(f"Invalid configuration ({len(lines)} bad {noun}):\n" + "\n".join(lines))


class LoadTimeConfigurationError(ValueError):
    """A variable read when the code location loads (schedule, sensors) is invalid; names the variable."""


@dataclass(frozen=True)
class HttpSettings:
    """Patience towards both remote systems."""

    timeout_seconds: float = 60.0
    retry_after_max_seconds: float = 60.0


@dataclass(frozen=True)
class ConfluenceSettings:
    platform: Platform
    base_url: str
    pat: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cloud_user: str | None = None
    cloud_token: str | None = field(default=None, repr=False)
    cloud_id: str | None = None
    cloud_api_url: str = DEFAULT_CLOUD_API_URL
    tokens_per_minute: int | None = 250
    single_label: str = "ai-ingest"
    all_label: str = "ai-ingest-all"
    http: HttpSettings = field(default_factory=lambda: HttpSettings())

    @property
    def api_root(self) -> str:
        """Where v1 REST calls go (contract §0)."""
        if self.platform is Platform.ONPREM:
            return f"{self.base_url}/rest/api"
        if self.cloud_id:
            return f"{self.cloud_api_url}/ex/confluence/{self.cloud_id}/wiki/rest/api"
        return f"{self.base_url}/wiki/rest/api"

    @property
    def web_base(self) -> str:
        """Prefix of human-facing page links: never the API gateway."""
        return self.base_url if self.platform is Platform.ONPREM else f"{self.base_url}/wiki"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.pat, self.password, self.cloud_token) if s)


@dataclass(frozen=True)
class UniqueSettings:
    ingestion_url: str
    graphql_url: str
    auth_mode: str = "external"
    scope_id: str | None = None
    scope_path_template: str = DEFAULT_SCOPE_TEMPLATE
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    tokens_per_minute: int | None = 100
    concurrency: int = 4
    zitadel_token_url: str | None = None
    zitadel_client_id: str | None = None
    zitadel_client_secret: str | None = field(default=None, repr=False)
    zitadel_project_id: str | None = None
    zitadel_extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    http: HttpSettings = field(default_factory=lambda: HttpSettings())

    @property
    def ingestion_base(self) -> str:
        base = self.ingestion_url.rstrip("/")
        return base[: -len("/v1/content")] if base.endswith("/v1/content") else base

    @property
    def file_diff_url(self) -> str:
        return f"{self.ingestion_base}/v2/content/file-diff"

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [self.zitadel_client_secret or ""]
        # Header values can carry credentials (API keys); treat them all as secret.
        values += list(self.extra_headers.values()) + list(self.zitadel_extra_headers.values())
        return tuple(v for v in values if len(v) >= 6)


@dataclass(frozen=True)
class SyncSettings:
    test_mode: bool = False
    failure_tolerance: int = 0
    debug_mode: bool = False
    debug_log_file: str = "confluence_pipeline.log"


@dataclass(frozen=True)
class Settings:
    confluence: ConfluenceSettings
    unique: UniqueSettings
    sync: SyncSettings


class _Reader:
    """Reads raw values and collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str | None]) -> None:
        self.env = env
        self.problems: dict[str, str] = {}

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def bad(self, name: str, reason: str) -> None:
        self.problems.setdefault(name, reason)

    def shown(self, name: str, value: str) -> str:
        return "(hidden)" if name in SECRET_VARIABLES else repr(value)

    def required(self, name: str, why: str = "is required") -> str | None:
        value = self.raw(name)
        if value is None:
            self.bad(name, why)
        return value

    def url(self, name: str, *, required: bool = True, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.bad(name, "is required (a URL with http:// or https://)")
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.bad(name, f"{self.shown(name, value)} is not a URL with an http:// or https:// scheme and a host")
            return default
        if parts.query or parts.fragment:
            self.bad(name, f"{self.shown(name, value)} must not carry a query string or fragment")
            return default
        return value.rstrip("/")

    def integer(self, name: str, default: int, *, minimum: int, allow_unlimited: bool = False) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.bad(name, f"{self.shown(name, value)} is not a whole number")
            return default
        if allow_unlimited and number == 0:
            return 0
        if number < minimum:
            self.bad(name, f"{number} is below the minimum of {minimum}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        self.bad(name, f"{value!r} is not a boolean (use true or false)")
        return default

    def headers(self, name: str) -> dict[str, str]:
        value = self.raw(name)
        if value is None:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.bad(
                name, f'is not valid JSON ({exc.msg} at position {exc.pos}); expected an object like {{"x-h": "v"}}'
            )
            return {}
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k for k, v in parsed.items()
        ):
            self.bad(name, "must be a JSON object whose keys and values are strings")
            return {}
        return parsed

    def label(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        if any(ch.isspace() for ch in value) or any(ord(ch) < 32 for ch in value):
            self.bad(name, f"{value!r} is not a valid Confluence label (labels contain no white space)")
        return value.lower()


def _rate(reader: _Reader, name: str, default: int) -> int | None:
    per_minute = reader.integer(name, default, minimum=1, allow_unlimited=True)
    return None if per_minute == 0 else per_minute


def load_settings(env: Mapping[str, str | None]) -> Settings:
    """Validate the whole configuration; raise one ConfigurationError naming every bad variable."""
    r = _Reader(env)

    raw_type = r.required("CONFLUENCE_INSTANCE_TYPE", "is required (ONPREM or CLOUD)")
    platform: Platform | None = None
    if raw_type is not None:
        try:
            platform = Platform(raw_type.upper())
        except ValueError:
            r.bad("CONFLUENCE_INSTANCE_TYPE", f"{raw_type!r} is not one of ONPREM, CLOUD")
    base_url = r.url("CONFLUENCE_URL")
    pat, username, password = r.raw("CONFLUENCE_PAT"), r.raw("CONFLUENCE_USERNAME"), r.raw("CONFLUENCE_PASSWORD")
    cloud_user, cloud_token = r.raw("CONFLUENCE_CLOUD_USER"), r.raw("CONFLUENCE_CLOUD_TOKEN")
    cloud_id = r.raw("CONFLUENCE_CLOUD_ID")
    cloud_api_url = r.url("CONFLUENCE_CLOUD_API_URL", required=False, default=DEFAULT_CLOUD_API_URL)
    if platform is Platform.ONPREM and not pat and not (username and password):
        missing = [n for n, v in (("CONFLUENCE_USERNAME", username), ("CONFLUENCE_PASSWORD", password)) if not v]
        reason = "ONPREM needs CONFLUENCE_PAT or both CONFLUENCE_USERNAME and CONFLUENCE_PASSWORD"
        for name in ["CONFLUENCE_PAT", *missing]:
            r.bad(name, reason)
    if platform is Platform.CLOUD:
        for name, value in (("CONFLUENCE_CLOUD_USER", cloud_user), ("CONFLUENCE_CLOUD_TOKEN", cloud_token)):
            if not value:
                r.bad(name, "is required when CONFLUENCE_INSTANCE_TYPE is CLOUD")
        if cloud_id and not all(ch.isalnum() or ch == "-" for ch in cloud_id):
            r.bad("CONFLUENCE_CLOUD_ID", f"{cloud_id!r} is not a cloud id (letters, digits and dashes)")
    single_label = r.label("INGEST_SINGLE_LABEL", "ai-ingest")
    all_label = r.label("INGEST_ALL_LABEL", "ai-ingest-all")
    if single_label == all_label:
        r.bad("INGEST_ALL_LABEL", "must differ from INGEST_SINGLE_LABEL")
    confluence_rate = _rate(r, "CONFLUENCE_TOKENS_PER_MINUTE", 250)

    ingestion_url = r.url("UNIQUE_INGESTION_URL")
    graphql_url = r.url("UNIQUE_INGESTION_URL_GRAPHQL")
    auth_mode = (r.raw("UNIQUE_SERVICE_AUTH_MODE") or "external").lower()
    if auth_mode not in ("external", "cluster_local"):
        r.bad("UNIQUE_SERVICE_AUTH_MODE", f"{auth_mode!r} is not one of external, cluster_local")
    extra_headers = r.headers("UNIQUE_SERVICE_EXTRA_HEADERS")
    zitadel_headers = r.headers("ZITADEL_SERVICE_EXTRA_HEADERS")
    scope_template = r.raw("UNIQUE_SCOPE_PATH_TEMPLATE") or DEFAULT_SCOPE_TEMPLATE
    try:
        validate_scope_template(scope_template)
    except ValueError as exc:
        r.bad("UNIQUE_SCOPE_PATH_TEMPLATE", str(exc))
    zitadel_url = r.url("ZITADEL_OAUTH_TOKEN_URL", required=False)
    zitadel_id, zitadel_secret = r.raw("ZITADEL_CLIENT_ID"), r.raw("ZITADEL_CLIENT_SECRET")
    zitadel_project = r.raw("ZITADEL_PROJECT_ID")
    if auth_mode == "external":
        for name, value in (
            ("ZITADEL_OAUTH_TOKEN_URL", zitadel_url or r.raw("ZITADEL_OAUTH_TOKEN_URL")),
            ("ZITADEL_CLIENT_ID", zitadel_id),
            ("ZITADEL_CLIENT_SECRET", zitadel_secret),
            ("ZITADEL_PROJECT_ID", zitadel_project),
        ):
            if not value:
                r.bad(name, "is required when UNIQUE_SERVICE_AUTH_MODE is external")
    elif auth_mode == "cluster_local":
        lowered = {k.lower() for k in extra_headers}
        if "UNIQUE_SERVICE_EXTRA_HEADERS" not in r.problems and not {"x-company-id", "x-user-id"} <= lowered:
            r.bad(
                "UNIQUE_SERVICE_EXTRA_HEADERS",
                "cluster_local mode needs the x-company-id and x-user-id headers in this JSON object",
            )
    unique_rate = _rate(r, "UNIQUE_TOKENS_PER_MINUTE", 100)
    concurrency = r.integer("UNIQUE_CONCURRENCY", 4, minimum=1)
    if concurrency > 64:
        r.bad("UNIQUE_CONCURRENCY", f"{concurrency} is above the maximum of 64")

    sync = SyncSettings(
        test_mode=r.boolean("TEST_MODE", False),
        failure_tolerance=r.integer("SYNC_FAILURE_TOLERANCE", 0, minimum=0),
        debug_mode=r.boolean("DEBUG_MODE", False),
        debug_log_file=r.raw("DEBUG_LOG_FILE") or "confluence_pipeline.log",
    )

    http = HttpSettings(
        timeout_seconds=float(r.integer("HTTP_TIMEOUT_SECONDS", 60, minimum=1)),
        retry_after_max_seconds=float(r.integer("HTTP_RETRY_AFTER_MAX_SECONDS", 60, minimum=0)),
    )

    if r.problems:
        raise ConfigurationError(r.problems)
    assert platform is not None and base_url is not None and ingestion_url and graphql_url
    confluence = ConfluenceSettings(
        platform=platform,
        base_url=base_url,
        pat=pat if platform is Platform.ONPREM else None,
        username=username if platform is Platform.ONPREM and not pat else None,
        password=password if platform is Platform.ONPREM and not pat else None,
        cloud_user=cloud_user if platform is Platform.CLOUD else None,
        cloud_token=cloud_token if platform is Platform.CLOUD else None,
        cloud_id=cloud_id if platform is Platform.CLOUD else None,
        cloud_api_url=cloud_api_url or DEFAULT_CLOUD_API_URL,
        tokens_per_minute=confluence_rate,
        single_label=single_label,
        all_label=all_label,
        http=http,
    )
    unique = UniqueSettings(
        ingestion_url=ingestion_url,
        graphql_url=graphql_url,
        auth_mode=auth_mode,
        scope_id=r.raw("UNIQUE_SCOPE_ID"),
        scope_path_template=scope_template,
        extra_headers=extra_headers,
        tokens_per_minute=unique_rate,
        concurrency=concurrency,
        zitadel_token_url=zitadel_url,
        zitadel_client_id=zitadel_id,
        zitadel_client_secret=zitadel_secret,
        zitadel_project_id=zitadel_project,
        zitadel_extra_headers=zitadel_headers,
        http=http,
    )
    return Settings(confluence=confluence, unique=unique, sync=sync)
