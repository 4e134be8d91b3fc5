"""`ConfluenceResource`: Confluence's variables in, one validated client per run out."""

from __future__ import annotations

from typing import Any

from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.config.settings import CloudSettings, OnPremSettings, confluence_settings
from confluence_pipeline.resources.variables import ClientResource, secret_variable, variable


class ConfluenceResource(ClientResource):
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
    confluence_client_id: str | None = variable("OAuth 2.0 client id of a service account (instead of a user's token)")
    confluence_client_secret: str | None = secret_variable("OAuth 2.0 client secret of the service account")
    confluence_oauth_token_url: str | None = variable(
        "OAuth token endpoint (default DC <CONFLUENCE_URL>/rest/oauth2/latest/token, Cloud "
        "https://api.atlassian.com/oauth/token)"
    )
    confluence_oauth_scopes: str | None = variable("OAuth scopes to request (default DC READ, Cloud: as granted)")
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

    def validate(self) -> OnPremSettings | CloudSettings:
        return confluence_settings(self.variables())

    def _connect(self, settings: OnPremSettings | CloudSettings, verify: Any) -> ConfluenceClient:
        return build_confluence_client(settings, verify=verify)

    @property
    def settings(self) -> OnPremSettings | CloudSettings:
        return self._ready(self._settings)

    @property
    def client(self) -> ConfluenceClient:
        return self._ready(self._client)
