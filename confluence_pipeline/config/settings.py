"""The connector's configuration as one typed model, validated from variables with every problem named at once.

Values arrive as a flat mapping of variable names to strings (the environment, or an instances file), exactly
as operators write them. Each section (Confluence, Unique, run options) is a pydantic model whose fields carry
the variable name as alias; the Confluence section is a discriminated union on `CONFLUENCE_INSTANCE_TYPE`
and the Unique section one on `UNIQUE_SERVICE_AUTH_MODE`. Rules that combine variables (exactly one auth method,
labels that differ) are checked on the raw values, so a message lists field and combination problems alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from confluence_pipeline.config.secrets import Scrubber, Secret
from confluence_pipeline.domain.attachments import (
    DEFAULT_INLINE_IMAGE_MAX_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MIME_TYPES,
    AttachmentPolicy,
    parse_byte_size,
    parse_media_types,
)
from confluence_pipeline.domain.models import Platform, Source, SyncLabels
from confluence_pipeline.domain.scopes import validate_scope_template

DEFAULT_CLOUD_API_URL = "https://api.atlassian.com"
DEFAULT_CLOUD_TOKEN_URL = "https://api.atlassian.com/oauth/token"
DC_TOKEN_PATH = "/rest/oauth2/latest/token"
DEFAULT_DC_SCOPES = "READ"
DEFAULT_SCOPE_TEMPLATE = "/Confluence/{space_key}"
DEFAULT_SINGLE_LABEL = "ai-ingest"
DEFAULT_SUBTREE_LABEL = "ai-ingest-all"
MAX_CONCURRENCY = 64

SECRET_VARIABLES = frozenset(
    {
        "CONFLUENCE_PAT",
        "CONFLUENCE_PASSWORD",
        "CONFLUENCE_CLOUD_TOKEN",
        "CONFLUENCE_CLIENT_SECRET",
        "ZITADEL_CLIENT_SECRET",
    }
)
"""Variables whose values are secrets; never echoed, stored in run storage or shown in the UI."""
HEADER_VARIABLES = frozenset({"UNIQUE_SERVICE_EXTRA_HEADERS", "ZITADEL_SERVICE_EXTRA_HEADERS"})
"""JSON header objects; their values may be credentials and are treated as secrets."""
MIN_HEADER_SECRET_LENGTH = 6  # shorter header values ("c", "true") are identifiers, not credentials
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 scope-token: visible ASCII except '"' and backslash

T = TypeVar("T")


class ConfigurationError(ValueError):
    """The configuration is invalid; `problems` maps each bad variable to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        lines = [f"  {name}: {reason}" for name, reason in self.problems.items()]
        noun = "variable" if len(lines) == 1 else "variables"
        super().__init__(f"Invalid configuration ({len(lines)} bad {noun}):\n" + "\n".join(lines))

    def __reduce__(self) -> tuple[type[ConfigurationError], tuple[dict[str, str]]]:
        return (type(self), (self.problems,))


class LoadTimeConfigurationError(ValueError):
    """A variable read when the code location loads (schedules, sensors, instances) is invalid; names it."""


# -- value types: each parses one variable's text and says in words what is wrong ------------------------
def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _url(value: object) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{_shown(text)} is not a URL with an http:// or https:// scheme and a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{_shown(text)} must not carry a query string or fragment")
    return text.rstrip("/")


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a whole number")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"{_shown(value)} is not a whole number") from None
        if number < minimum:
            raise ValueError(f"{number} is below the minimum of {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"{number} is above the maximum of {maximum}")
        return number

    return parse


def _per_minute(value: object) -> int | None:
    """A requests-per-minute cap; 0 means no cap (None)."""
    if value is None:
        return None
    number = whole_number(0)(value)
    return number or None


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{_shown(value)} is not a boolean (use true or false)")


def _label(value: object) -> str:
    text = str(value).strip()
    if any(ch.isspace() for ch in text) or any(ord(ch) < 32 for ch in text):
        raise ValueError(f"{text!r} is not a valid Confluence label (labels contain no white space)")
    return text.lower()


def _headers(value: object) -> dict[str, Secret]:
    """A JSON object of header names to values; never echoes the text, which may hold credentials."""
    if isinstance(value, Mapping):
        parsed: Any = dict(value)
    else:
        try:
            parsed = json.loads(str(value))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'is not valid JSON ({exc.msg} at position {exc.pos}); expected an object like {{"x-h": "v"}}'
            ) from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str | Secret) for k, v in parsed.items()
    ):
        raise ValueError("must be a JSON object whose keys and values are strings")
    return {k: v if isinstance(v, Secret) else Secret(v) for k, v in parsed.items()}


def _scope_template(value: object) -> str:
    template = str(value).strip()
    validate_scope_template(template)
    return template


def _cloud_id(value: object) -> str:
    text = str(value).strip()
    if not text or not all(ch.isalnum() or ch == "-" for ch in text):
        raise ValueError(f"{text!r} is not a cloud id (letters, digits and dashes)")
    return text


def _scopes(value: object) -> str:
    """OAuth scopes, separated by spaces or commas; sent space-separated, as OAuth 2.0 defines."""
    parts = str(value).replace(",", " ").split()
    if not parts or not all(_SCOPE_TOKEN.fullmatch(part) for part in parts):
        raise ValueError("is not a list of OAuth scopes separated by spaces or commas (e.g. READ)")
    return " ".join(parts)


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _media_types(value: object) -> frozenset[str]:
    if isinstance(value, frozenset | set | list | tuple):
        return parse_media_types([str(v) for v in value])
    return parse_media_types(str(value))


def _byte_size(value: object) -> int:
    return parse_byte_size(value if isinstance(value, int) else str(value))


Url = Annotated[str, BeforeValidator(_url)]
PerMinute = Annotated[int | None, BeforeValidator(_per_minute)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Label = Annotated[str, BeforeValidator(_label)]
Headers = Annotated[dict[str, Secret], BeforeValidator(_headers)]
NonNegative = Annotated[int, BeforeValidator(whole_number(0))]
Seconds = Annotated[int, BeforeValidator(whole_number(1))]
Concurrency = Annotated[int, BeforeValidator(whole_number(1, MAX_CONCURRENCY))]
ScopeTemplate = Annotated[str, BeforeValidator(_scope_template)]
CloudId = Annotated[str, BeforeValidator(_cloud_id)]
Scopes = Annotated[str, BeforeValidator(_scopes)]
MediaTypes = Annotated[frozenset[str], BeforeValidator(_media_types)]
ByteSize = Annotated[int, BeforeValidator(_byte_size)]


# -- sections ---------------------------------------------------------------------------------------------
class Section(BaseModel):
    """A group of variables; blank values count as unset, unknown variables are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned: dict[str, Any] = {}
        for name, value in data.items():
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            if value is not None:
                cleaned[name] = value
        return cleaned


class HttpSettings(Section):
    """Patience towards a remote system."""

    timeout_seconds: Seconds = Field(60, alias="HTTP_TIMEOUT_SECONDS")
    retry_after_max_seconds: NonNegative = Field(60, alias="HTTP_RETRY_AFTER_MAX_SECONDS")


class _RemoteSection(Section):
    """A remote system's section: its HTTP patience comes from the same flat variables."""

    http: HttpSettings = Field(default_factory=HttpSettings)

    @model_validator(mode="before")
    @classmethod
    def _nest_http(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "http" not in data:
            return {**data, "http": dict(data)}
        return data


def _platform(value: object) -> object:
    upper = _upper(value)
    return Platform(upper) if upper in (Platform.ONPREM.value, Platform.CLOUD.value) else value


class _ConfluenceCommon(_RemoteSection):
    platform: Annotated[Platform, BeforeValidator(_platform)] = Field(alias="CONFLUENCE_INSTANCE_TYPE")
    base_url: Url = Field(alias="CONFLUENCE_URL")
    tokens_per_minute: PerMinute = Field(250, alias="CONFLUENCE_TOKENS_PER_MINUTE")
    single_label: Label = Field(DEFAULT_SINGLE_LABEL, alias="INGEST_SINGLE_LABEL")
    subtree_label: Label = Field(DEFAULT_SUBTREE_LABEL, alias="INGEST_ALL_LABEL")
    client_id: str | None = Field(None, alias="CONFLUENCE_CLIENT_ID")
    client_secret: Secret | None = Field(None, alias="CONFLUENCE_CLIENT_SECRET", repr=False)
    oauth_token_url: Url | None = Field(None, alias="CONFLUENCE_OAUTH_TOKEN_URL")
    oauth_scopes: Scopes | None = Field(None, alias="CONFLUENCE_OAUTH_SCOPES")
    # What is read besides page bodies: attachments (off until an operator opts in) and inlined images.
    attachments: Flag = Field(False, alias="CONFLUENCE_ATTACHMENTS")
    attachment_mime_types: MediaTypes = Field(
        default_factory=lambda: parse_media_types(DEFAULT_MIME_TYPES), alias="ATTACHMENT_MIME_TYPES"
    )
    attachment_max_bytes: ByteSize = Field(DEFAULT_MAX_BYTES, alias="ATTACHMENT_MAX_BYTES")
    inline_images: Flag = Field(False, alias="INLINE_IMAGES")
    inline_image_max_bytes: ByteSize = Field(DEFAULT_INLINE_IMAGE_MAX_BYTES, alias="INLINE_IMAGE_MAX_BYTES")

    @property
    def uses_oauth(self) -> bool:
        """Whether a service account's client credentials (OAuth 2.0) authenticate, rather than a user's token."""
        return self.client_id is not None and self.client_secret is not None

    @property
    def labels(self) -> SyncLabels:
        return SyncLabels(self.single_label, self.subtree_label)

    @property
    def attachment_policy(self) -> AttachmentPolicy:
        return AttachmentPolicy(self.attachments, self.attachment_mime_types, self.attachment_max_bytes)

    @property
    def lists_attachments(self) -> bool:
        """Whether pages are read with their attachments: for syncing them, or for the images bodies inline."""
        return self.attachments or self.inline_images

    @property
    def source(self) -> Source:
        return Source(kind=self.platform.source_kind, name=self.base_url)


class OnPremSettings(_ConfluenceCommon):
    """Confluence Data Center / Server: a personal access token, basic auth, or OAuth client credentials."""

    platform: Annotated[Literal[Platform.ONPREM], BeforeValidator(_platform)] = Field(alias="CONFLUENCE_INSTANCE_TYPE")
    pat: Secret | None = Field(None, alias="CONFLUENCE_PAT", repr=False)
    username: str | None = Field(None, alias="CONFLUENCE_USERNAME")
    password: Secret | None = Field(None, alias="CONFLUENCE_PASSWORD", repr=False)

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/rest/api"

    @property
    def web_base(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        """Where client credentials are exchanged for a bearer token (DC 10.1+ serves it below the base URL)."""
        return self.oauth_token_url or f"{self.base_url}{DC_TOKEN_PATH}"

    @property
    def scopes(self) -> str:
        return self.oauth_scopes or DEFAULT_DC_SCOPES

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.pat, self.password, self.client_secret) if s is not None)


class CloudSettings(_ConfluenceCommon):
    """Confluence Cloud: an account email and API token (site or gateway), or OAuth client credentials (gateway)."""

    platform: Annotated[Literal[Platform.CLOUD], BeforeValidator(_platform)] = Field(alias="CONFLUENCE_INSTANCE_TYPE")
    cloud_user: str | None = Field(None, alias="CONFLUENCE_CLOUD_USER")
    cloud_token: Secret | None = Field(None, alias="CONFLUENCE_CLOUD_TOKEN", repr=False)
    cloud_id: CloudId | None = Field(None, alias="CONFLUENCE_CLOUD_ID")
    cloud_api_url: Url = Field(DEFAULT_CLOUD_API_URL, alias="CONFLUENCE_CLOUD_API_URL")

    @property
    def api_root(self) -> str:
        if self.cloud_id:
            return f"{self.cloud_api_url}/ex/confluence/{self.cloud_id}/wiki/rest/api"
        return f"{self.base_url}/wiki/rest/api"

    @property
    def web_base(self) -> str:
        """Prefix of human-facing page links: the site, never the API gateway."""
        return f"{self.base_url}/wiki"

    @property
    def token_url(self) -> str:
        return self.oauth_token_url or DEFAULT_CLOUD_TOKEN_URL

    @property
    def scopes(self) -> str | None:
        """None: Cloud grants the scopes chosen when the service account's credentials were created."""
        return self.oauth_scopes

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.cloud_token, self.client_secret) if s is not None)


def _platform_tag(data: Any) -> str | None:
    raw = data.get("CONFLUENCE_INSTANCE_TYPE") if isinstance(data, Mapping) else getattr(data, "platform", None)
    tag = _upper(raw)
    return tag if tag in (Platform.ONPREM.value, Platform.CLOUD.value) else None


ConfluenceSettings = Annotated[
    Annotated[OnPremSettings, Tag(Platform.ONPREM.value)] | Annotated[CloudSettings, Tag(Platform.CLOUD.value)],
    Discriminator(
        _platform_tag,
        custom_error_type="instance_type",
        custom_error_message="CONFLUENCE_INSTANCE_TYPE is not one of ONPREM, CLOUD",
    ),
]
"""OnPrem or Cloud, chosen by `CONFLUENCE_INSTANCE_TYPE` (case-insensitive)."""


class _UniqueCommon(_RemoteSection):
    ingestion_url: Url = Field(alias="UNIQUE_INGESTION_URL")
    graphql_url: Url = Field(alias="UNIQUE_INGESTION_URL_GRAPHQL")
    scope_id: str | None = Field(None, alias="UNIQUE_SCOPE_ID")
    scope_path_template: ScopeTemplate = Field(DEFAULT_SCOPE_TEMPLATE, alias="UNIQUE_SCOPE_PATH_TEMPLATE")
    extra_headers: Headers = Field(default_factory=dict, alias="UNIQUE_SERVICE_EXTRA_HEADERS", repr=False)
    tokens_per_minute: PerMinute = Field(100, alias="UNIQUE_TOKENS_PER_MINUTE")
    concurrency: Concurrency = Field(4, alias="UNIQUE_CONCURRENCY")

    @property
    def ingestion_base(self) -> str:
        """The ingestion URL without a trailing `/v1/content`: where file-diff and scoped uploads live."""
        base = self.ingestion_url.rstrip("/")
        return base[: -len("/v1/content")] if base.endswith("/v1/content") else base

    @property
    def file_diff_url(self) -> str:
        return f"{self.ingestion_base}/v2/content/file-diff"

    @property
    def headers(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.extra_headers.items()}


class ExternalAuthSettings(_UniqueCommon):
    """Unique behind its gateway: a Zitadel client-credentials token on every call."""

    auth_mode: Annotated[Literal["external"], BeforeValidator(_lower)] = Field(
        "external", alias="UNIQUE_SERVICE_AUTH_MODE"
    )
    zitadel_token_url: Url = Field(alias="ZITADEL_OAUTH_TOKEN_URL")
    zitadel_client_id: str = Field(alias="ZITADEL_CLIENT_ID")
    zitadel_client_secret: Secret = Field(alias="ZITADEL_CLIENT_SECRET", repr=False)
    zitadel_project_id: str = Field(alias="ZITADEL_PROJECT_ID")
    zitadel_extra_headers: Headers = Field(default_factory=dict, alias="ZITADEL_SERVICE_EXTRA_HEADERS", repr=False)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return (self.zitadel_client_secret, *_header_secrets(self.extra_headers, self.zitadel_extra_headers))


class ClusterLocalSettings(_UniqueCommon):
    """Unique inside the cluster: service headers instead of a token; uploads go to `<base>/scoped/upload`."""

    auth_mode: Annotated[Literal["cluster_local"], BeforeValidator(_lower)] = Field(alias="UNIQUE_SERVICE_AUTH_MODE")

    @model_validator(mode="after")
    def _service_headers(self) -> Self:
        present = {name.lower() for name in self.extra_headers}
        if not {"x-company-id", "x-user-id"} <= present:
            raise ValueError(
                "UNIQUE_SERVICE_EXTRA_HEADERS: cluster_local mode needs the x-company-id and x-user-id headers "
                "in this JSON object"
            )
        return self

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return _header_secrets(self.extra_headers)


def _header_secrets(*groups: Mapping[str, Secret]) -> tuple[Secret, ...]:
    return tuple(v for group in groups for v in group.values() if len(v.get_secret_value()) >= MIN_HEADER_SECRET_LENGTH)


def _auth_mode_tag(data: Any) -> str | None:
    if isinstance(data, Mapping):
        raw = data.get("UNIQUE_SERVICE_AUTH_MODE") or "external"
    else:
        raw = getattr(data, "auth_mode", None)
    tag = _lower(raw)
    return tag if tag in ("external", "cluster_local") else None


UniqueSettings = Annotated[
    Annotated[ExternalAuthSettings, Tag("external")] | Annotated[ClusterLocalSettings, Tag("cluster_local")],
    Discriminator(
        _auth_mode_tag,
        custom_error_type="auth_mode",
        custom_error_message="UNIQUE_SERVICE_AUTH_MODE is not one of external, cluster_local",
    ),
]
"""External (Zitadel token) or cluster_local (service headers), chosen by `UNIQUE_SERVICE_AUTH_MODE`."""


class RunSettings(Section):
    """Run-wide switches."""

    test_mode: Flag = Field(False, alias="TEST_MODE")
    failure_tolerance: NonNegative = Field(0, alias="SYNC_FAILURE_TOLERANCE")
    debug_mode: Flag = Field(False, alias="DEBUG_MODE")
    debug_log_file: str = Field("confluence_pipeline.log", alias="DEBUG_LOG_FILE")


class ConnectorSettings(Section):
    """The whole configuration of one Confluence instance's connector."""

    confluence: ConfluenceSettings
    unique: UniqueSettings
    run: RunSettings = Field(default_factory=RunSettings)

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not {"confluence", "unique"} & set(data):
            return {"confluence": data, "unique": data, "run": data}
        return data

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return (*self.confluence.secrets, *self.unique.secrets)


# -- validation -------------------------------------------------------------------------------------------
_REQUIRED_BECAUSE = {
    "CONFLUENCE_INSTANCE_TYPE": "is required (ONPREM or CLOUD)",
    "CONFLUENCE_URL": "is required (a URL with http:// or https://)",
    "UNIQUE_INGESTION_URL": "is required (a URL with http:// or https://)",
    "UNIQUE_INGESTION_URL_GRAPHQL": "is required (a URL with http:// or https://)",
    "ZITADEL_OAUTH_TOKEN_URL": "is required when UNIQUE_SERVICE_AUTH_MODE is external",
    "ZITADEL_CLIENT_ID": "is required when UNIQUE_SERVICE_AUTH_MODE is external",
    "ZITADEL_CLIENT_SECRET": "is required when UNIQUE_SERVICE_AUTH_MODE is external",
    "ZITADEL_PROJECT_ID": "is required when UNIQUE_SERVICE_AUTH_MODE is external",
}
_UNION_TAGS = {
    "instance_type": ("CONFLUENCE_INSTANCE_TYPE", "ONPREM, CLOUD"),
    "auth_mode": ("UNIQUE_SERVICE_AUTH_MODE", "external, cluster_local"),
}


_PAT = ("CONFLUENCE_PAT",)
_BASIC = ("CONFLUENCE_USERNAME", "CONFLUENCE_PASSWORD")
_CLOUD_TOKEN = ("CONFLUENCE_CLOUD_USER", "CONFLUENCE_CLOUD_TOKEN")
_OAUTH = ("CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET")
_OAUTH_OPTIONS = ("CONFLUENCE_OAUTH_TOKEN_URL", "CONFLUENCE_OAUTH_SCOPES")
_AUTH_METHODS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    Platform.ONPREM.value: (("a PAT", _PAT), ("basic auth", _BASIC), ("OAuth", _OAUTH)),
    Platform.CLOUD.value: (("an API token", _CLOUD_TOKEN), ("OAuth", _OAUTH)),
}
_AUTH_CHOICES = {
    Platform.ONPREM.value: "CONFLUENCE_PAT, CONFLUENCE_USERNAME with CONFLUENCE_PASSWORD, "
    "or CONFLUENCE_CLIENT_ID with CONFLUENCE_CLIENT_SECRET",
    Platform.CLOUD.value: "CONFLUENCE_CLOUD_USER with CONFLUENCE_CLOUD_TOKEN, "
    "or CONFLUENCE_CLIENT_ID with CONFLUENCE_CLIENT_SECRET",
}


def _auth_problems(platform: str, present: set[str]) -> dict[str, str]:
    """Exactly one complete Confluence auth method of the platform; each problem names the variables involved."""
    choices = _AUTH_CHOICES[platform]
    touched = [(what, names) for what, names in _AUTH_METHODS[platform] if present & set(names)]
    if len(touched) > 1:
        involved = [name for _, names in touched for name in names if name in present]
        reason = (
            f"{', '.join(involved)} configure more than one Confluence auth method "
            f"({' and '.join(what for what, _ in touched)}); set exactly one: {choices}"
        )
        return dict.fromkeys(involved, reason)
    if touched == [("OAuth", _OAUTH)]:
        missing = [name for name in _OAUTH if name not in present]
        if missing:
            given = next(name for name in _OAUTH if name in present)
            return dict.fromkeys(missing, f"is required with {given} (OAuth client credentials)")
        if platform == Platform.CLOUD.value and "CONFLUENCE_CLOUD_ID" not in present:
            return {
                "CONFLUENCE_CLOUD_ID": "is required with CONFLUENCE_CLIENT_ID on CLOUD: "
                "OAuth tokens work only through the API gateway"
            }
        return {}
    if touched and all(name in present for name in touched[0][1]):
        return {}
    # Nothing usable, or half of a user's credentials: name what the user-token methods still lack.
    if platform == Platform.ONPREM.value:
        return dict.fromkeys(
            [*_PAT, *(name for name in _BASIC if name not in present)], f"ONPREM needs one auth method: {choices}"
        )
    reason = (
        "is required when CONFLUENCE_INSTANCE_TYPE is CLOUD, "
        "unless CONFLUENCE_CLIENT_ID and CONFLUENCE_CLIENT_SECRET (OAuth) are set"
    )
    return dict.fromkeys((name for name in _CLOUD_TOKEN if name not in present), reason)


def combination_problems(variables: Mapping[str, Any]) -> dict[str, str]:
    """Problems that involve more than one variable, read from the raw values (blank counts as unset)."""
    raw = {k: v.strip() if isinstance(v, str) else v for k, v in variables.items()}
    present = {k for k, v in raw.items() if v not in (None, "")}
    problems: dict[str, str] = {}
    platform = _upper(raw.get("CONFLUENCE_INSTANCE_TYPE"))
    if platform in _AUTH_METHODS:
        problems.update(_auth_problems(str(platform), present))
        if not set(_OAUTH) & present:
            for name in _OAUTH_OPTIONS:
                if name in present:
                    problems[name] = "is only used with CONFLUENCE_CLIENT_ID and CONFLUENCE_CLIENT_SECRET (OAuth)"
    single = _lower(raw.get("INGEST_SINGLE_LABEL") or DEFAULT_SINGLE_LABEL)
    subtree = _lower(raw.get("INGEST_ALL_LABEL") or DEFAULT_SUBTREE_LABEL)
    if {"INGEST_SINGLE_LABEL", "INGEST_ALL_LABEL"} & present and single == subtree:
        problems["INGEST_ALL_LABEL"] = "must differ from INGEST_SINGLE_LABEL"
    return problems


def _variable_of(error: Mapping[str, Any], known: set[str]) -> str | None:
    for part in reversed(error.get("loc") or ()):
        if isinstance(part, str) and part in known:
            return part
    return None


def _problems(exc: ValidationError, variables: Mapping[str, Any], *, fields_only: bool = False) -> dict[str, str]:
    known = set(known_variables())
    problems: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        kind = error.get("type", "")
        if fields_only and _variable_of(error, known) is None:
            continue  # a rule of the whole variant (e.g. cluster_local's headers), not a malformed value
        if kind in _UNION_TAGS:
            name, allowed = _UNION_TAGS[kind]
            raw = variables.get(name)
            shown = raw.strip() if isinstance(raw, str) else raw
            reason = (
                f"is required ({' or '.join(allowed.split(', '))})"
                if not shown
                else f"{shown!r} is not one of {allowed}"
            )
            problems.setdefault(name, reason)
            continue
        message = str(error.get("msg", "is invalid"))
        name = _variable_of(error, known)
        if name is None and ": " in message:  # a model-level rule names its variable first
            candidate, _, rest = message.removeprefix("Value error, ").partition(": ")
            if candidate in known:
                name, message = candidate, rest
        if name is None:
            continue
        if kind == "missing":
            message = _REQUIRED_BECAUSE.get(name, "is required")
        elif kind == "literal_error":
            message = f"is not valid here ({message})"
        problems.setdefault(name, message.removeprefix("Value error, "))
    return problems


def known_variables() -> frozenset[str]:
    """Every variable name some section reads."""
    names: set[str] = set()
    pending: list[type[Section]] = [Section]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        names.update(field.alias for field in model.model_fields.values() if field.alias)
    return frozenset(names)


def validate_variables(
    adapter: TypeAdapter[T],
    variables: Mapping[str, Any],
    combined: Callable[[Mapping[str, Any]], dict[str, str]] = lambda _: {},
    unions: Collection[str] = (),
) -> T:
    problems: dict[str, str] = {}
    result: T | None = None
    try:
        result = adapter.validate_python(dict(variables))
    except ValidationError as exc:
        problems.update(_problems(exc, variables))
    for name, reason in {**_variant_problems(variables, unions), **combined(variables)}.items():
        problems.setdefault(name, reason)
    if problems or result is None:
        raise ConfigurationError(problems or {"configuration": "is invalid"})
    return result


_VARIANTS: dict[str, tuple[str, tuple[tuple[type[Section], str], ...]]] = {
    "instance_type": (
        "CONFLUENCE_INSTANCE_TYPE",
        ((OnPremSettings, Platform.ONPREM.value), (CloudSettings, Platform.CLOUD.value)),
    ),
    "auth_mode": (
        "UNIQUE_SERVICE_AUTH_MODE",
        ((ExternalAuthSettings, "external"), (ClusterLocalSettings, "cluster_local")),
    ),
}


def _variant_problems(variables: Mapping[str, Any], unions: Collection[str]) -> dict[str, str]:
    """Malformed values of every variant, whichever the platform and auth mode are (or whether they are valid).

    A value set for the other platform is unused but still wrong, and saying so now spares the operator a
    second round when they switch. Only set, malformed values count: what is *required* depends on the variant.
    """
    problems: dict[str, str] = {}
    present = {name for name, value in variables.items() if value not in (None, "")}
    for union in unions:
        tag_variable, variants = _VARIANTS[union]
        if not present & {f.alias for model, _ in variants for f in model.model_fields.values()} - {tag_variable}:
            continue
        for model, tag in variants:
            try:
                model.model_validate({**variables, tag_variable: tag})
            except ValidationError as inner:
                for name, reason in _problems(inner, variables, fields_only=True).items():
                    if name != tag_variable and not reason.startswith("is required"):
                        problems.setdefault(name, reason)
    return problems


_CONFLUENCE = TypeAdapter(ConfluenceSettings)
_UNIQUE = TypeAdapter(UniqueSettings)


def confluence_settings(variables: Mapping[str, Any]) -> OnPremSettings | CloudSettings:
    """The Confluence section alone (what `ConfluenceResource` validates)."""
    return validate_variables(_CONFLUENCE, variables, combination_problems, ("instance_type",))


def unique_settings(variables: Mapping[str, Any]) -> ExternalAuthSettings | ClusterLocalSettings:
    """The Unique section alone (what `UniqueResource` validates)."""
    return validate_variables(_UNIQUE, variables, unions=("auth_mode",))


def run_settings(variables: Mapping[str, Any]) -> RunSettings:
    return validate_variables(TypeAdapter(RunSettings), variables)


def load_settings(variables: Mapping[str, Any]) -> ConnectorSettings:
    """Validate the whole configuration; raise one ConfigurationError naming every bad variable."""
    return validate_variables(
        TypeAdapter(ConnectorSettings), variables, combination_problems, ("instance_type", "auth_mode")
    )


def scrubber_for_variables(variables: Mapping[str, Any]) -> Scrubber:
    """A scrubber for every configured secret among raw variables (credentials and header values).

    Reads leniently: a broken header JSON still scrubs nothing wrongly, and never fails.
    """
    scrubber = Scrubber()
    for name in SECRET_VARIABLES:
        value = variables.get(name)
        if isinstance(value, str) and len(value.strip()) >= MIN_HEADER_SECRET_LENGTH:
            scrubber.add(value.strip())
    for name in HEADER_VARIABLES:
        try:
            headers = _headers(variables.get(name) or "{}")
        except ValueError:
            continue
        for value in headers.values():
            if len(value.get_secret_value()) >= MIN_HEADER_SECRET_LENGTH:
                scrubber.add(value)
    return scrubber
