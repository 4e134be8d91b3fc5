"""`UniqueResource`: Unique's variables in, one validated client (with its token) per run out."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from confluence_pipeline.clients.tls import TrustStoreError, build_ssl_context
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.config.secrets import LoggerScrubbing
from confluence_pipeline.config.settings import (
    ClusterLocalSettings,
    ConfigurationError,
    ExternalAuthSettings,
    unique_settings,
)
from confluence_pipeline.resources.variables import VariablesResource, secret_variable, variable


class UniqueResource(VariablesResource):
    """Connection to Unique's ingestion service; `client` is built once per run and fetches one token."""

    unique_ingestion_url: str | None = variable("Ingestion REST base (…/v1/content)")
    unique_ingestion_url_graphql: str | None = variable("Ingestion GraphQL endpoint")
    unique_scope_id: str | None = variable("Target scope; empty = one scope per space")
    unique_scope_path_template: str | None = variable("Per-space scope path (default /Confluence/{space_key})")
    unique_service_auth_mode: str | None = variable("external (Zitadel token) or cluster_local (service headers)")
    unique_service_extra_headers: str | None = secret_variable("JSON object of headers for every Unique call")
    unique_tokens_per_minute: str | None = variable("Requests per minute (0 = no cap)")
    unique_concurrency: str | None = variable("Pages ingested in parallel (1-64, default 4)")
    zitadel_oauth_token_url: str | None = variable("Zitadel token endpoint (external mode)")
    zitadel_client_id: str | None = variable("Zitadel client id (external mode)")
    zitadel_client_secret: str | None = secret_variable("Zitadel client secret (external mode)")
    zitadel_project_id: str | None = variable("Zitadel project id (external mode)")
    zitadel_service_extra_headers: str | None = secret_variable("JSON object of headers for the token call")
    http_timeout_seconds: str | None = variable("Timeout of one request (default 60)")
    http_retry_after_max_seconds: str | None = variable("Longest Retry-After honoured (default 60)")

    _settings: ExternalAuthSettings | ClusterLocalSettings | None = PrivateAttr(default=None)
    _client: UniqueClient | None = PrivateAttr(default=None)
    _scrubbing: LoggerScrubbing | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            self._settings = unique_settings(self.variables())
            verify = build_ssl_context()
        except ConfigurationError as exc:
            self._invalid(exc)
            return
        except TrustStoreError as exc:
            self._invalid(ConfigurationError({exc.variable: exc.reason}))
            return
        self._client = UniqueClient(self._settings, verify=verify)
        self._scrubbing = LoggerScrubbing(self._client.scrubber)
        self._scrubbing.install()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
        if self._scrubbing is not None:
            self._scrubbing.remove()

    @property
    def settings(self) -> ExternalAuthSettings | ClusterLocalSettings:
        if self._settings is None:
            raise ConfigurationError(self.problems or {"UNIQUE_INGESTION_URL": "the Unique resource was not set up"})
        return self._settings

    @property
    def client(self) -> UniqueClient:
        if self._client is None:
            raise ConfigurationError(self.problems or {"UNIQUE_INGESTION_URL": "the Unique resource was not set up"})
        return self._client

    def request_counts(self) -> dict[str, int]:
        """Requests made by this run's client so far, per route (token calls included)."""
        return {} if self._client is None else self._client.request_counts()
