"""`ConfluenceResource`: Confluence's variables in, one validated client per run out."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.clients.tls import TrustStoreError, build_ssl_context
from confluence_pipeline.config.secrets import LoggerScrubbing
from confluence_pipeline.config.settings import (
    CloudSettings,
    ConfigurationError,
    OnPremSettings,
    confluence_settings,
)
from confluence_pipeline.resources.variables import VariablesResource, secret_variable, variable


class ConfluenceResource(VariablesResource):
    """Connection to Confluence Data Center/Server or Cloud; `client` is built once per run."""

    confluence_instance_type: str | None = variable("ONPREM or CLOUD")
    confluence_url: str | None = variable(
        "Base URL with scheme (https://host[/context]; Cloud https://site.atlassian.net)"
    )
    confluence_pat: str | None = secret_variable("OnPrem personal access token")
    confluence_username: str | None = variable("OnPrem basic auth user")
    confluence_password: str | None = secret_variable("OnPrem basic auth password")
    confluence_cloud_user: str | None = variable("Cloud account email")
    confluence_cloud_token: str | None = secret_variable("Cloud API token")
    confluence_cloud_id: str | None = variable("Route Cloud calls through the API gateway (scoped tokens)")
    confluence_cloud_api_url: str | None = variable("Atlassian API gateway (default https://api.atlassian.com)")
    confluence_tokens_per_minute: str | None = variable("Requests per minute, retries included (0 = no cap)")
    ingest_single_label: str | None = variable("Label that syncs one page (default ai-ingest)")
    ingest_all_label: str | None = variable("Label that syncs a page and all below it (default ai-ingest-all)")
    confluence_attachments: str | None = variable("true: sync the attachments of synced pages (default false)")
    attachment_mime_types: str | None = variable("Comma-separated media types or names (pdf, docx, png, …) synced")
    attachment_max_bytes: str | None = variable("Largest attachment synced: bytes or KB/MB/GB (default 200 MB)")
    inline_images: str | None = variable("true: replace images in bodies by data: URIs (default false)")
    inline_image_max_bytes: str | None = variable("Largest image inlined: bytes or KB/MB/GB (default 5 MB)")
    http_timeout_seconds: str | None = variable("Timeout of one request (default 60)")
    http_retry_after_max_seconds: str | None = variable("Longest Retry-After honoured (default 60)")

    _settings: OnPremSettings | CloudSettings | None = PrivateAttr(default=None)
    _client: ConfluenceClient | None = PrivateAttr(default=None)
    _scrubbing: LoggerScrubbing | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            self._settings = confluence_settings(self.variables())
            verify = build_ssl_context()
        except ConfigurationError as exc:
            self._invalid(exc)
            return
        except TrustStoreError as exc:
            self._invalid(ConfigurationError({exc.variable: exc.reason}))
            return
        self._client = build_confluence_client(self._settings, verify=verify)
        self._scrubbing = LoggerScrubbing(self._client.api.scrubber)
        self._scrubbing.install()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
        if self._scrubbing is not None:
            self._scrubbing.remove()

    @property
    def settings(self) -> OnPremSettings | CloudSettings:
        if self._settings is None:
            raise ConfigurationError(self.problems or {"CONFLUENCE_URL": "the Confluence resource was not set up"})
        return self._settings

    @property
    def client(self) -> ConfluenceClient:
        if self._client is None:
            raise ConfigurationError(self.problems or {"CONFLUENCE_URL": "the Confluence resource was not set up"})
        return self._client

    def request_counts(self) -> dict[str, int]:
        """Requests made by this run's client so far, per route (retries included)."""
        return {} if self._client is None else self._client.api.counter.snapshot()
