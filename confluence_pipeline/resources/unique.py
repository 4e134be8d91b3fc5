"""`UniqueResource`: Unique's variables in, one validated client (with its token) per run out."""

from __future__ import annotations

from typing import Any

from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.config.settings import ClusterLocalSettings, ExternalAuthSettings, unique_settings
from confluence_pipeline.resources.variables import ClientResource, secret_variable, variable


class UniqueResource(ClientResource):
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

    def validate(self) -> ExternalAuthSettings | ClusterLocalSettings:
        return unique_settings(self.variables())

    def _connect(self, settings: ExternalAuthSettings | ClusterLocalSettings, verify: Any) -> UniqueClient:
        return UniqueClient(settings, verify=verify)

    @property
    def settings(self) -> ExternalAuthSettings | ClusterLocalSettings:
        return self._ready(self._settings)

    @property
    def client(self) -> UniqueClient:
        return self._ready(self._client)
