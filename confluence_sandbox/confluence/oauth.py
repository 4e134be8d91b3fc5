"""OAuth 2.0 client-credentials tokens as DC's `/rest/oauth2/latest/token` and Cloud's `/oauth/token` issue them."""

from __future__ import annotations

import dataclasses
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from confluence_sandbox.http import REDACTED, Request, Response

Platform = Literal["ONPREM", "CLOUD"]

DC_TOKEN_PATH = "/rest/oauth2/latest/token"  # below the DC context path
CLOUD_TOKEN_PATH = "/oauth/token"  # on the gateway host (api.atlassian.com)
# What Cloud grants when the request names no scope: the scopes a read-only sync needs.
CLOUD_DEFAULT_SCOPE = "search:confluence read:attachment:confluence readonly:content.attachment:confluence"
DC_DEFAULT_SCOPE = "READ"
SECRET_FIELDS = frozenset({"client_secret"})
_TOKEN_FIELDS = frozenset({"grant_type", "client_id", "client_secret", "scope", "audience"})


class OAuthServer:
    """Issues bearer tokens to one configured client and says whether a presented token is still good.

    A token lives `ttl` seconds from its issue (by `clock`, which tests may replace to expire tokens without
    sleeping) until `revoke_all()`. Without a configured client id the token endpoints do not exist.
    """

    def __init__(self, client_id: str | None, client_secret: str | None) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.clock: Callable[[], float] = time.monotonic
        self._expiry: dict[str, float] = {}
        self._issued = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)

    @property
    def issued(self) -> int:
        """Tokens handed out so far, revoked and expired ones included."""
        with self._lock:
            return self._issued

    def token(self, request: Request, platform: Platform, ttl: float) -> Response:
        """Answer a client-credentials token request: DC reads a form body, Cloud a JSON (or form) body."""
        if request.method != "POST":
            return _error(405, "invalid_request", "The token endpoint only accepts POST")
        fields = _fields(request, platform)
        if fields is None:
            return _error(400, "invalid_request", "The request body could not be read")
        grant_type = fields.get("grant_type")
        if not grant_type:
            return _error(400, "invalid_request", "Missing grant_type")
        if grant_type != "client_credentials":
            return _error(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}")
        if not self._client_matches(fields.get("client_id", ""), fields.get("client_secret", "")):
            return _error(401, "invalid_client", "Client authentication failed")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[access_token] = self.clock() + ttl
            self._issued += 1
        scope = fields.get("scope") or (DC_DEFAULT_SCOPE if platform == "ONPREM" else CLOUD_DEFAULT_SCOPE)
        body = {
            "access_token": access_token,
            "token_type": "bearer" if platform == "ONPREM" else "Bearer",
            "expires_in": max(0, int(ttl)),
            "scope": scope,
        }
        return Response.json(body, headers={"Cache-Control": "no-store"})

    def is_valid(self, token: str) -> bool:
        """Issued here, not revoked and not yet expired."""
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and self.clock() < expiry

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry.clear()

    def _client_matches(self, client_id: str, client_secret: str) -> bool:
        if not self.client_id or self._client_secret is None:
            return False
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            client_secret, self._client_secret
        )


def is_token_path(path: str) -> bool:
    return path.endswith(DC_TOKEN_PATH) or path == CLOUD_TOKEN_PATH


def redact_token_request(request: Request) -> Request:
    """The request as it may be recorded: client secrets replaced in the body (form or JSON) and the query."""
    query = {k: ([REDACTED] * len(v) if k in SECRET_FIELDS else v) for k, v in request.query.items()}
    return dataclasses.replace(request, body=_redact_body(request.body), query=query)


def _redact_body(body: bytes) -> bytes:
    if not body:
        return body
    text = body.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            return REDACTED.encode()
        if not isinstance(payload, dict):
            return REDACTED.encode()
        return json.dumps({k: (REDACTED if k in SECRET_FIELDS else v) for k, v in payload.items()}).encode()
    pairs = parse_qsl(text, keep_blank_values=True)
    if not any(k in _TOKEN_FIELDS for k, _ in pairs):
        # Not a form we understand: it might be a secret in some other shape, so keep none of it.
        return REDACTED.encode()
    # `<>` stay literal so the recording reads `client_secret=<redacted>`, as the JSON form does.
    return urlencode([(k, REDACTED if k in SECRET_FIELDS else v) for k, v in pairs], safe="<>").encode()


def _fields(request: Request, platform: Platform) -> dict[str, str] | None:
    """The token request's parameters; None when the body cannot be read at all."""
    text = request.body.decode("utf-8", errors="replace")
    content_type = request.headers.get("content-type", "")
    if platform == "CLOUD" and ("json" in content_type or text.lstrip().startswith("{")):
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        return {k: v for k, v in payload.items() if isinstance(v, str)}
    # DC's provider reads the standard form encoding only; a JSON body there simply names no grant type.
    return dict(parse_qsl(text, keep_blank_values=True))


def _error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status, {"Cache-Control": "no-store"})
