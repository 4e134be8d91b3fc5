"""Zitadel client-credentials tokens for Unique's external auth mode: fetched once per run, shared, refreshed early."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx

from confluence_pipeline.clients.tokens import CachedToken
from confluence_pipeline.clients.transport import HttpApi

TOKEN_ROUTE = "POST zitadel token"
ZITADEL_SCOPES = (
    "openid profile email urn:zitadel:iam:user:resourceowner urn:zitadel:iam:org:projects:roles "
    "urn:zitadel:iam:org:project:id:{project_id}:aud"
)


class ZitadelTokenProvider(CachedToken):
    """Hands out a valid bearer token; concurrent callers share one refresh.

    The client id and secret travel in HTTP Basic auth, the scope names the project audience.
    """

    def __init__(
        self,
        api: HttpApi,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        project_id: str,
        extra_headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api, token_url=token_url, clock=clock)
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._scope = ZITADEL_SCOPES.format(project_id=project_id)
        self._headers = dict(extra_headers or {})

    def _request(self) -> tuple[str, float | None]:
        payload = self._api.json(
            "POST",
            self._token_url,
            route=TOKEN_ROUTE,
            data={"grant_type": "client_credentials", "scope": self._scope},
            headers=self._headers,
            auth=self._auth,
        )
        token = self._access_token(payload, TOKEN_ROUTE)
        expires_in = payload.get("expires_in")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
            raise self._malformed(TOKEN_ROUTE, f"the token response has an invalid expires_in ({expires_in!r})")
        return token, float(expires_in)
