"""Dagster resources for Confluence, Unique and sync options: raw env values in, validated clients out.

Every field is the raw string of one environment variable, bound with `dagster.EnvVar` so the job
snapshot stores only variable names. Typing and cross-checks happen in `settings.load_settings`,
over all three resources at once, so one message names every bad variable before any request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.clients.tls import build_ssl_context
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.settings import Settings, load_settings


def _secret(description: str) -> Any:
    return Field(default=None, description=description, repr=False, json_schema_extra={"dagster__is_secret": True})


def _plain(description: str) -> Any:
    return Field(default=None, description=description)


class _EnvResource(dg.ConfigurableResource):
    """Fields map 1:1 to environment variables (ENV_VARS: field name -> variable name)."""

    ENV_VARS: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Any:
        """Bind every variable that is set; unset ones keep their default (EnvVar would fail on them)."""
        env = os.environ if environ is None else environ
        return cls(**{field: dg.EnvVar(var) for field, var in cls.ENV_VARS.items() if var in env})

    def raw_env(self) -> dict[str, str | None]:
        return {var: getattr(self, field) for field, var in self.ENV_VARS.items()}


class ConfluenceResource(_EnvResource):
    """Connection to Confluence Data Center/Server or Cloud."""

    ENV_VARS: ClassVar[dict[str, str]] = {
        "instance_type": "CONFLUENCE_INSTANCE_TYPE",
        "url": "CONFLUENCE_URL",
        "pat": "CONFLUENCE_PAT",
        "username": "CONFLUENCE_USERNAME",
        "password": "CONFLUENCE_PASSWORD",
        "cloud_user": "CONFLUENCE_CLOUD_USER",
        "cloud_token": "CONFLUENCE_CLOUD_TOKEN",
        "cloud_id": "CONFLUENCE_CLOUD_ID",
        "cloud_api_url": "CONFLUENCE_CLOUD_API_URL",
        "tokens_per_minute": "CONFLUENCE_TOKENS_PER_MINUTE",
        "single_label": "INGEST_SINGLE_LABEL",
        "all_label": "INGEST_ALL_LABEL",
    }
    instance_type: str | None = _plain("CONFLUENCE_INSTANCE_TYPE: ONPREM or CLOUD")
    url: str | None = _plain("CONFLUENCE_URL: base URL with scheme")
    pat: str | None = _secret("CONFLUENCE_PAT: OnPrem personal access token")
    username: str | None = _plain("CONFLUENCE_USERNAME: OnPrem basic auth user")
    password: str | None = _secret("CONFLUENCE_PASSWORD: OnPrem basic auth password")
    cloud_user: str | None = _plain("CONFLUENCE_CLOUD_USER: Cloud account email")
    cloud_token: str | None = _secret("CONFLUENCE_CLOUD_TOKEN: Cloud API token")
    cloud_id: str | None = _plain("CONFLUENCE_CLOUD_ID: route Cloud calls through the API gateway")
    cloud_api_url: str | None = _plain("CONFLUENCE_CLOUD_API_URL: Atlassian API gateway")
    tokens_per_minute: str | None = _plain("CONFLUENCE_TOKENS_PER_MINUTE: request cap per minute")
    single_label: str | None = _plain("INGEST_SINGLE_LABEL: label that syncs one page")
    all_label: str | None = _plain("INGEST_ALL_LABEL: label that syncs a page and its descendants")


class UniqueResource(_EnvResource):
    """Connection to Unique's ingestion service."""

    ENV_VARS: ClassVar[dict[str, str]] = {
        "ingestion_url": "UNIQUE_INGESTION_URL",
        "graphql_url": "UNIQUE_INGESTION_URL_GRAPHQL",
        "scope_id": "UNIQUE_SCOPE_ID",
        "scope_path_template": "UNIQUE_SCOPE_PATH_TEMPLATE",
        "auth_mode": "UNIQUE_SERVICE_AUTH_MODE",
        "extra_headers": "UNIQUE_SERVICE_EXTRA_HEADERS",
        "tokens_per_minute": "UNIQUE_TOKENS_PER_MINUTE",
        "concurrency": "UNIQUE_CONCURRENCY",
        "zitadel_token_url": "ZITADEL_OAUTH_TOKEN_URL",
        "zitadel_client_id": "ZITADEL_CLIENT_ID",
        "zitadel_client_secret": "ZITADEL_CLIENT_SECRET",
        "zitadel_project_id": "ZITADEL_PROJECT_ID",
        "zitadel_extra_headers": "ZITADEL_SERVICE_EXTRA_HEADERS",
    }
    ingestion_url: str | None = _plain("UNIQUE_INGESTION_URL: ingestion REST base (…/v1/content)")
    graphql_url: str | None = _plain("UNIQUE_INGESTION_URL_GRAPHQL: ingestion GraphQL endpoint")
    scope_id: str | None = _plain("UNIQUE_SCOPE_ID: target scope; empty = one scope per space")
    scope_path_template: str | None = _plain("UNIQUE_SCOPE_PATH_TEMPLATE: per-space scope path")
    auth_mode: str | None = _plain("UNIQUE_SERVICE_AUTH_MODE: external or cluster_local")
    extra_headers: str | None = _secret("UNIQUE_SERVICE_EXTRA_HEADERS: JSON headers for every Unique call")
    tokens_per_minute: str | None = _plain("UNIQUE_TOKENS_PER_MINUTE: request cap per minute")
    concurrency: str | None = _plain("UNIQUE_CONCURRENCY: pages ingested in parallel")
    zitadel_token_url: str | None = _plain("ZITADEL_OAUTH_TOKEN_URL")
    zitadel_client_id: str | None = _plain("ZITADEL_CLIENT_ID")
    zitadel_client_secret: str | None = _secret("ZITADEL_CLIENT_SECRET")
    zitadel_project_id: str | None = _plain("ZITADEL_PROJECT_ID")
    zitadel_extra_headers: str | None = _secret("ZITADEL_SERVICE_EXTRA_HEADERS: JSON headers for the token call")


class SyncOptionsResource(_EnvResource):
    """Run-wide switches: test mode, failure tolerance, debug logging."""

    ENV_VARS: ClassVar[dict[str, str]] = {
        "test_mode": "TEST_MODE",
        "failure_tolerance": "SYNC_FAILURE_TOLERANCE",
        "debug_mode": "DEBUG_MODE",
        "debug_log_file": "DEBUG_LOG_FILE",
        "http_timeout_seconds": "HTTP_TIMEOUT_SECONDS",
        "http_retry_after_max_seconds": "HTTP_RETRY_AFTER_MAX_SECONDS",
    }
    test_mode: str | None = _plain("TEST_MODE: discover and diff, write nothing")
    failure_tolerance: str | None = _plain("SYNC_FAILURE_TOLERANCE: page failures a run may have")
    debug_mode: str | None = _plain("DEBUG_MODE: debug logs, also to DEBUG_LOG_FILE")
    debug_log_file: str | None = _plain("DEBUG_LOG_FILE")
    http_timeout_seconds: str | None = _plain("HTTP_TIMEOUT_SECONDS: timeout of one request (default 60)")
    http_retry_after_max_seconds: str | None = _plain(
        "HTTP_RETRY_AFTER_MAX_SECONDS: longest Retry-After honoured (default 60)"
    )


def load_run_settings(confluence: ConfluenceResource, unique: UniqueResource, options: SyncOptionsResource) -> Settings:
    """Validate all three resources together (raises ConfigurationError naming every bad variable)."""
    return load_settings({**confluence.raw_env(), **unique.raw_env(), **options.raw_env()})


def open_confluence(settings: Settings) -> ConfluenceClient:
    return build_confluence_client(settings.confluence, verify=build_ssl_context(os.environ))


def open_unique(settings: Settings) -> UniqueClient:
    return UniqueClient(
        settings.unique,
        source_kind=settings.confluence.platform.source_kind,
        source_name=settings.confluence.base_url,
        verify=build_ssl_context(os.environ),
    )


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "confluence": ConfluenceResource.from_env(environ),
        "unique": UniqueResource.from_env(environ),
        "sync_options": SyncOptionsResource.from_env(environ),
    }
