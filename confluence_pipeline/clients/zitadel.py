"""Zitadel client-credentials tokens for Unique's external auth mode: fetched once per run, shared, refreshed early."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import httpx

from confluence_pipeline.clients.errors import UnexpectedResponse
from confluence_pipeline.clients.transport import HttpApi

ZITADEL_SCOPES = (
    "openid profile email urn:zitadel:iam:user:resourceowner urn:zitadel:iam:org:projects:roles "
    "urn:zitadel:iam:org:project:id:{project_id}:aud"
)
MAX_EARLY_REFRESH = 60.0


class ZitadelTokenProvider:
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
        self._api = api
        self._token_url = token_url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._scope = ZITADEL_SCOPES.format(project_id=project_id)
        self._headers = dict(extra_headers or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ZitadelTokenProvider(token_url={self._token_url!r})"

    @property
    def api(self) -> HttpApi:
        return self._api

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` after Unique refused it, unless another caller already replaced it."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> None:
        payload = self._api.json(
            "POST",
            self._token_url,
            route="POST zitadel token",
            data={"grant_type": "client_credentials", "scope": self._scope},
            headers=self._headers,
            auth=self._auth,
        )
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise UnexpectedResponse(
                system="zitadel",
                method="POST",
                route="POST zitadel token",
                status=200,
                detail="the token response has no access_token",
            )
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
            raise UnexpectedResponse(
                system="zitadel",
                method="POST",
                route="POST zitadel token",
                status=200,
                detail=f"the token response has an invalid expires_in ({expires_in!r})",
            )
        self._api.add_secret(token)
        self.fetches += 1
        # Refresh a minute early, or at 90 % of a short lifetime, so no request carries a token
        # that expires in flight.
        margin = min(MAX_EARLY_REFRESH, float(expires_in) * 0.1)
        self._token = token
        self._refresh_at = self._clock() + float(expires_in) - margin
