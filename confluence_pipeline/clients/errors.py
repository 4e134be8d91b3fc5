"""One exception type per way a call to a remote system can fail, each naming the request but no secret."""

from __future__ import annotations

from typing import Any

DETAIL_MAX_CHARS = 500


def request_label(method: str, route: str) -> str:
    """How a request is named in messages: the route label, prefixed with the method unless it already is."""
    return route if route.upper().startswith(f"{method.upper()} ") else f"{method} {route}"


def _truncate(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RemoteError(Exception):
    """Base of all remote-call failures.

    The message names the system, method, route label, status and the server's message. `detail` must
    already be scrubbed of secrets (HttpApi does that for the errors it raises; clients raising their own
    should pass `api.scrub(...)` output). It is truncated here to 500 characters. No header and no URL is
    ever part of the message: a route is a label such as "GET content/search", not a URL.
    """

    summary = "request failed"

    def __init__(
        self,
        *,
        system: str,
        method: str,
        route: str,
        status: int | None = None,
        detail: str = "",
        attempts: int | None = None,
    ) -> None:
        self.system = system
        self.method = method
        self.route = route
        self.status = status
        self.detail = _truncate(detail)
        self.attempts = attempts
        super().__init__(self._message())

    def _message(self) -> str:
        label = request_label(self.method, self.route)
        text = f"{self.system} {label}: {self.summary}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.attempts is not None and self.attempts > 1:
            text += f" after {self.attempts} attempts"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ would break the default pickling that Dagster's multiprocess executor relies on.
        return (_rebuild, (type(self), self.system, self.method, self.route, self.status, self.detail, self.attempts))


def _rebuild(
    cls: type[RemoteError],
    system: str,
    method: str,
    route: str,
    status: int | None,
    detail: str,
    attempts: int | None,
) -> RemoteError:
    return cls(system=system, method=method, route=route, status=status, detail=detail, attempts=attempts)


class RemoteHttpError(RemoteError):
    """The server answered with a non-2xx status (after any retries)."""

    summary = "the server answered with an error"


class RemoteAuthError(RemoteHttpError):
    """401 or 403: credentials missing, wrong, expired or lacking permission; never retried."""

    summary = "authentication or permission failure"


class RemoteNotFound(RemoteHttpError):
    """404."""

    summary = "not found"


class RemoteUnavailable(RemoteError):
    """No HTTP answer at all: connection refused or dropped, timeout, TLS failure (after any retries)."""

    summary = "no answer"


class OutcomeUnknown(RemoteError):
    """A request that is not safe to repeat failed in a way that leaves open whether the server applied it.

    Raised instead of retrying: the connection broke or timed out after the request was sent, or a server
    or gateway error (a 5xx other than 501, 503, 505) answered it. The caller resolves it by reading back.
    """

    summary = "outcome unknown, the server may have applied it"


class UnexpectedResponse(RemoteError):
    """A 2xx answer that is not what the caller expected: not JSON (e.g. an SSO login page), bad JSON, wrong shape."""

    summary = "unexpected response"
