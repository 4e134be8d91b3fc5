"""OAuth 2.0 client-credentials tokens for a Confluence service account, sent by an httpx auth flow."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal

import httpx

from confluence_pipeline.clients.errors import RemoteAuthError, RemoteHttpError
from confluence_pipeline.clients.tokens import CachedToken
from confluence_pipeline.clients.transport import HttpApi

TOKEN_ROUTE = "POST oauth token"
CREDENTIALS = "CONFLUENCE_CLIENT_ID and CONFLUENCE_CLIENT_SECRET"

log = logging.getLogger(__name__)

TokenBody = Literal["form", "json"]
"""How the token endpoint reads its parameters: DC's wants a form, Cloud's JSON."""


class OAuthTokenRefused(RemoteAuthError):
    """The token endpoint refused to issue a token: wrong client id or secret, a revoked client, bad scopes."""

    summary = "the OAuth token endpoint refused the service account"


class ClientCredentialsTokens(CachedToken):
    """The run's bearer token: fetched on first use, shared by every thread, refreshed shortly before it expires.

    Token requests go through `api`, which shares the Confluence client's rate limiter, counter and scrubber,
    so they count against CONFLUENCE_TOKENS_PER_MINUTE and every issued token is scrubbed from then on.
    """

    def __init__(
        self,
        api: HttpApi,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: str | None,
        body: TokenBody,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api, token_url=token_url, clock=clock)
        self._params = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scopes:
            self._params["scope"] = scopes
        self._body = body

    def _request(self) -> tuple[str, float | None]:
        payload_kw: dict[str, Any] = {"data": self._params} if self._body == "form" else {"json": self._params}
        try:
            payload = self._api.json("POST", self._token_url, route=TOKEN_ROUTE, auth=None, **payload_kw)
        except RemoteHttpError as exc:
            hint = _refusal_hint(exc.status)
            if hint is None:
                raise
            detail = f"{exc.detail}; {hint}" if exc.detail else hint
            raise OAuthTokenRefused(
                system=exc.system, method=exc.method, route=exc.route, status=exc.status, detail=detail
            ) from None
        token = self._access_token(payload, TOKEN_ROUTE)
        lifetime = _lifetime(payload.get("expires_in"))
        if lifetime is not None and lifetime <= 0:
            raise self._malformed(TOKEN_ROUTE, "the token response has an invalid expires_in")
        log.debug("Fetched a Confluence OAuth token (lifetime %s s)", "unknown" if lifetime is None else lifetime)
        return token, lifetime


class ClientCredentialsAuth(httpx.Auth):
    """`Authorization: Bearer <run token>`; a 401 from Confluence gets one fresh token and one more try.

    Confluence Cloud answers attachment downloads with a 302 to its media host: httpx follows it inside this
    flow and drops the Authorization header when the redirect leaves the origin, so the media host never sees
    the token, and a 401 from the media host is not Confluence refusing the token.
    """

    def __init__(self, tokens: ClientCredentialsTokens) -> None:
        self.tokens = tokens

    def __repr__(self) -> str:
        return "ClientCredentialsAuth(<redacted>)"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # DC ignores a Bearer header on a URL with os_authType=basic and answers 401: the parameter must go.
        if request.url.params.get("os_authType", "").lower() == "basic":
            request.url = request.url.copy_remove_param("os_authType")
        token = self.tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 or not _same_origin(response.request.url, request.url):
            return
        response.read()  # hand its connection back before waiting for a token
        log.warning("Confluence refused the OAuth token (HTTP 401); fetching a new one and trying once more")
        self.tokens.invalidate(token)
        request.headers["Authorization"] = f"Bearer {self.tokens.token()}"
        self.tokens.api.count_resend(request)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise NotImplementedError("the Confluence client is synchronous")
        yield request  # pragma: no cover - makes this an async generator, as httpx expects


def _refusal_hint(status: int | None) -> str | None:
    """What the operator should check when the token endpoint answers `status`; None: not a refusal."""
    if status == 401:
        return f"check {CREDENTIALS} (the service account's client credentials)"
    if status in (400, 403):
        return f"check {CREDENTIALS} and CONFLUENCE_OAUTH_SCOPES"
    if status == 404:
        return (
            "there is no token endpoint at this URL (Data Center serves one from 10.1 on); "
            "check CONFLUENCE_URL or CONFLUENCE_OAUTH_TOKEN_URL"
        )
    return None


def _lifetime(value: object) -> float | None:
    """`expires_in` in seconds; None when absent; 0 when unreadable (so the caller reports it)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else 0.0
    if isinstance(value, str) and value.strip().isdigit():  # some servers send the number as a string
        return float(value.strip())
    return 0.0


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)
