"""A run's client-credentials bearer token: fetched on first use, shared by every thread, refreshed early."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from confluence_pipeline.clients.errors import UnexpectedResponse
from confluence_pipeline.clients.transport import HttpApi

MAX_EARLY_REFRESH = 60.0


class CachedToken(ABC):
    """One bearer token shared by every thread of a run; concurrent callers share one fetch.

    Subclasses say how a token is requested (`_request`); this class decides when: on first use, shortly
    before it expires (a minute early, or at 90 % of a short lifetime, so no request carries a token that
    expires in flight), and after the remote system refused it (`invalidate`).
    """

    def __init__(self, api: HttpApi, *, token_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._token_url = token_url
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self._token_url!r})"

    @property
    def api(self) -> HttpApi:
        return self._api

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                token, lifetime = self._request()
                self.fetches += 1
                self._token = token
                # Without a stated lifetime the token is used until it is refused (`invalidate`).
                self._refresh_at = (
                    math.inf if lifetime is None else self._clock() + lifetime - min(MAX_EARLY_REFRESH, lifetime * 0.1)
                )
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` after the remote system refused it, unless another thread already replaced it."""
        with self._lock:
            if self._token == token:
                self._token = None

    @abstractmethod
    def _request(self) -> tuple[str, float | None]:
        """A new token (already added to the api's secrets) and its lifetime in seconds (None: not stated)."""

    def _access_token(self, payload: Any, route: str) -> str:
        """The token response's `access_token`, scrubbed from then on, before anything could echo it."""
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise self._malformed(route, "the token response has no access_token")
        self._api.add_secret(token)
        return token

    def _malformed(self, route: str, detail: str) -> UnexpectedResponse:
        return UnexpectedResponse(system=self._api.system, method="POST", route=route, status=200, detail=detail)
