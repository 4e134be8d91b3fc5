"""The HTTP transport every remote client shares: pacing, retries, timeouts, counting, proxies, TLS, scrubbing.

Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case; lower case wins) are
read once, when the `HttpApi` is built, and `proxies.ProxyRules` routes every request direct or through its
proxy. `NO_PROXY` takes `*`, `host`, `.domain` and `*.domain` (each: the domain and all its subdomains),
`host:port`, IPv4/IPv6 addresses and CIDR ranges; no implicit exemption for localhost; a malformed entry
fails with an error naming the variable. httpx's own proxy handling is off (`trust_env=False`): it ignores
entries such as `*.mydomain`. A caller-supplied `transport=` (tests) bypasses the proxies, as in httpx.

TLS: `verify` defaults to `tls.build_ssl_context()` (SSL_CERT_FILE / REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS);
httpx uses an `SSLContext` as given, so `trust_env` cannot swap in another bundle behind it.

Redirects are followed (Confluence Cloud answers attachment downloads with a 302 to its media host);
httpx drops the Authorization header when a redirect leaves the origin.

Retries depend on whether a request is safe to repeat (`idempotent=`, default True). Queries, the file
diff, GETs, blob PUTs (which overwrite) and upserts identified by a key are idempotent and retried after
429/5xx answers and transport failures. A mutation whose repetition can fail or act twice (a finalize, a
delete by id) is sent with `idempotent=False` and retried only when the server provably did not act:
- retried: no connection was made (`ConnectError`, `ConnectTimeout`, `PoolTimeout`, a proxy refusing the
  tunnel), HTTP 429 and HTTP 503 (the server says it did not take the request on);
- `OutcomeUnknown` at once: the request was sent and the answer failed (`ReadTimeout`, `WriteTimeout`,
  `ReadError`, `WriteError`, `RemoteProtocolError`, ...), or HTTP 500, 502, 504 or another 5xx except 501/505;
- as for every request: other statuses raise their usual error, a bad certificate or URL is never retried.
The caller resolves an `OutcomeUnknown` by reading the state back, never by sending the mutation again.

Streams (`HttpApi.stream`): files are moved without holding them. A streamed request is paced, counted and
retried like any other until its headers arrive; its body is then read chunk by chunk (`iter_body`), and a
failure there is a `RemoteUnavailable` the caller handles, since half a body cannot be retried in place. A
streamed request body (an iterator) cannot be replayed, so such requests are sent once (`attempts=1`).
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result, stop_after_attempt

from confluence_pipeline.clients.errors import (
    OutcomeUnknown,
    RemoteAuthError,
    RemoteHttpError,
    RemoteNotFound,
    RemoteUnavailable,
    UnexpectedResponse,
    request_label,
)
from confluence_pipeline.clients.proxies import ProxyRules
from confluence_pipeline.clients.ratelimit import RateLimiter
from confluence_pipeline.clients.tls import build_ssl_context
from confluence_pipeline.config.secrets import Scrubber, is_sensitive_header

if TYPE_CHECKING:
    from httpx._client import UseClientDefault  # httpx's own annotation for its USE_CLIENT_DEFAULT sentinel

USE_DEFAULT = httpx.USE_CLIENT_DEFAULT
"""Pass as `auth=` to use the client's auth (the default); `auth=None` sends the request without any."""

ROUTE_EXTENSION = "confluence_pipeline.route"
"""Request extension carrying the route label, so an auth flow that sends a request again can count it."""
NOT_TAKEN_ON_STATUSES = frozenset({429, 503})
"""Statuses that say the server did not act on the request, so even a request unsafe to repeat is retried."""
_DEFINITE_SERVER_ERRORS = frozenset({501, 505})  # "cannot do this at all": nothing was done

_RETRY_AFTER_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried."""

    attempts: int = 5  # total attempts including the first
    # Exponential with jitter, capped at backoff_max: about 4 s of patience without Retry-After,
    # so one broken page does not stall a sync; rate limits wait as long as the server asks.
    backoff_initial: float = 0.25
    backoff_max: float = 10.0
    retry_after_max: float = 60.0  # clamp for Retry-After: Atlassian has sent 9223372036854775807
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})


class RequestCounter:
    """Thread-safe count of attempts per route label, and of attempts that were retried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: Counter[str] = Counter()
        self._retries = 0

    def add(self, route: str) -> None:
        with self._lock:
            self._routes[route] += 1

    def add_retry(self) -> None:
        with self._lock:
            self._retries += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._routes)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._routes.values())

    @property
    def retries(self) -> int:
        with self._lock:
            return self._retries


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    match = _RETRY_AFTER_SECONDS.match(value)
    if match:
        return float(match.group(1))  # may be astronomically large; the caller clamps
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpApi:
    """One remote system's HTTP API: a pooled httpx client plus pacing, retries, counting and error mapping."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        per_minute: int | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: httpx.Timeout | float = httpx.Timeout(60.0, connect=15.0),  # noqa: B008 - immutable
        scrubber: Scrubber | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool | None = None,
        max_connections: int = 20,
        logger: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
        counter: RequestCounter | None = None,
    ) -> None:
        self.system = system
        self.retry = retry
        # Another API object of the same system (its token endpoint) may share the counter and the limiter.
        self.counter = counter if counter is not None else RequestCounter()
        # One limiter per API object: the resource that owns the client keeps it for the whole run, so every
        # step and worker thread of the run draws from the same bucket.
        self.limiter = limiter if limiter is not None else RateLimiter(per_minute)
        self._sleep = sleep
        self._log = logger or logging.getLogger(__name__)
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        for name, value in (headers or {}).items():
            self.scrubber.add_header(name, value)
        self._proxies = ProxyRules.from_environ()
        for secret in self._proxies.secrets:  # httpx sends proxy credentials itself, past our request hook
            self.scrubber.add(secret)
        self._injected_transport = transport
        if verify is None and transport is None:
            verify = build_ssl_context()
        self._client_options: dict[str, Any] = {
            "base_url": base_url,
            "headers": headers,
            "auth": auth,
            "timeout": timeout,
            "verify": True if verify is None else verify,
            "trust_env": False,  # every proxy decision is ProxyRules'; httpx must not read the environment itself
            "follow_redirects": True,
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            "event_hooks": {"request": [self._learn_request_secrets]},
        }
        # One httpx client (and so one connection pool) per calling thread: threads sharing one pool queue
        # on its lock for every request and response, which capped ingestion at ~150 pages/s however many
        # workers ran (benchmarks/sync_bench.py). Every client is closed with the HttpApi.
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._closed = False
        self._client_for_thread()

    def __repr__(self) -> str:
        return f"HttpApi(system={self.system!r})"

    # -- secrets -----------------------------------------------------------------------------
    def add_secret(self, value: str) -> None:
        """Scrub `value` (and its URL-encoded forms) from every error and log line from now on."""
        self.scrubber.add(value)

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced and URL query strings (signed upload URLs) cut off."""
        return self.scrubber.scrub(text)

    def count_resend(self, request: httpx.Request) -> None:
        """An auth flow sends `request` again (with a fresh token after a 401): pace it and count it as a retry."""
        self.limiter.acquire()
        self.counter.add(str(request.extensions.get(ROUTE_EXTENSION) or request.method))
        self.counter.add_retry()

    def _learn_request_secrets(self, request: httpx.Request) -> None:
        # Runs after httpx applied auth, so credentials from any httpx.Auth are learnt before they can echo back.
        for name, value in request.headers.items():
            self.scrubber.add_header(name, value)
        # Redirects carry credentials of their own in the URL (the signed token of Cloud's media host).
        for name, value in request.url.params.multi_items():
            if is_sensitive_header(name):
                self.scrubber.add(value)

    # -- requests ----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        route: str,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | UseClientDefault | None = USE_DEFAULT,
        expect: Literal["json", "any"] = "json",
        retry_statuses: frozenset[int] | None = None,
        on_status: Mapping[int, Callable[[httpx.Response], None]] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one logical request (several attempts if need be) and return the successful response.

        `url` is absolute or relative to base_url; `route` labels it in counters, logs and errors. Retries
        `retry_statuses` (default: the policy's) and transport failures, waiting the clamped Retry-After or
        an exponential backoff. `on_status[status]` is called with the final response when its status
        matches, before the default handling; it may raise its own error, and if it returns, the default
        handling (errors for non-2xx, the JSON check for `expect="json"`) goes on.

        `idempotent=False` marks a request that must not be repeated once the server may have acted on it:
        it is retried only when the server provably did not (see the module docstring), and a failure that
        leaves the outcome open raises `OutcomeUnknown`.
        """
        response, _ = self._send(
            method,
            url,
            route=route,
            params=params,
            json=json,
            content=content,
            data=data,
            headers=headers,
            auth=auth,
            expect=expect,
            retry_statuses=retry_statuses,
            on_status=on_status,
            idempotent=idempotent,
        )
        return response

    def json(self, method: str, url: str, *, route: str, **kw: Any) -> Any:
        """`request(...)` with `expect="json"`, returning the parsed body."""
        kw["expect"] = "json"
        _, payload = self._send(method, url, route=route, **kw)
        return payload

    def _send(
        self,
        method: str,
        url: str,
        *,
        route: str,
        expect: Literal["json", "any"] = "json",
        retry_statuses: frozenset[int] | None = None,
        on_status: Mapping[int, Callable[[httpx.Response], None]] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        **kw: Any,
    ) -> tuple[httpx.Response, Any]:
        method = method.upper()
        label = request_label(method, route)
        statuses = self.retry.retry_statuses if retry_statuses is None else retry_statuses
        retryable_exception = _is_retryable_exception
        if not idempotent:
            statuses = statuses & NOT_TAKEN_ON_STATUSES
            retryable_exception = _never_reached_the_server
        for name, value in (headers or {}).items():
            self.scrubber.add_header(name, value)

        def attempt() -> httpx.Response:
            self.limiter.acquire()
            self.counter.add(route)
            started = time.monotonic()
            try:
                response = self._client.request(method, url, headers=headers, extensions={ROUTE_EXTENSION: route}, **kw)
            except httpx.HTTPError as exc:
                self._log.debug("%s %s failed: %s", self.system, label, type(exc).__name__)
                raise
            elapsed_ms = (time.monotonic() - started) * 1000
            self._log.debug("%s %s -> %d in %.0f ms", self.system, label, response.status_code, elapsed_ms)
            return response

        retrying = self._retrying(label, statuses, self.retry.attempts, retryable_exception)
        error = {"system": self.system, "method": method, "route": route}
        try:
            response: httpx.Response = retrying(attempt)
        except httpx.TransportError as exc:
            attempts = retrying.statistics.get("attempt_number")
            detail = self._describe_exception(exc)
            if not idempotent and _may_have_reached_the_server(exc):
                raise OutcomeUnknown(**error, detail=detail, attempts=attempts) from None
            raise RemoteUnavailable(**error, detail=detail, attempts=attempts) from None
        except httpx.HTTPError as exc:  # too many redirects, undecodable content encoding
            raise UnexpectedResponse(**error, detail=self._describe_exception(exc)) from None
        attempts = retrying.statistics.get("attempt_number")
        status = response.status_code

        if on_status and status in on_status:
            on_status[status](response)
        if not idempotent and status >= 500 and status not in NOT_TAKEN_ON_STATUSES | _DEFINITE_SERVER_ERRORS:
            raise OutcomeUnknown(**error, status=status, detail=self._server_message(response), attempts=attempts)
        if not 200 <= status < 300:
            raise _status_error(error, status, self._server_message(response), attempts)
        if expect != "json":
            return response, None
        content_type = response.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            hint = " (an SSO login page?)" if media_type in ("text/html", "application/xhtml+xml") else ""
            detail = f"expected JSON but got {media_type or 'no content type'}{hint}"
            raise UnexpectedResponse(**error, status=status, detail=detail)
        try:
            return response, jsonlib.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            detail = f"malformed JSON ({len(response.content)} bytes): {exc}"
            raise UnexpectedResponse(**error, status=status, detail=detail) from None

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        route: str,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        content: Iterable[bytes] | None = None,
        auth: httpx.Auth | UseClientDefault | None = USE_DEFAULT,
        retry_statuses: frozenset[int] | None = None,
        attempts: int | None = None,
    ) -> Iterator[httpx.Response]:
        """Send one request and yield its successful response before its body is read; close it afterwards.

        Pacing, counting, redirects and retries (of the connection and of `retry_statuses`, up to `attempts`)
        work as in `request`, and a non-2xx answer raises the same errors. Read the body with `iter_body`.
        With `content` an iterator, pass `attempts=1` and a `Content-Length` header: an iterator is sent once,
        and without a length httpx would send it chunked.
        """
        method = method.upper()
        label = request_label(method, route)
        statuses = self.retry.retry_statuses if retry_statuses is None else retry_statuses
        for name, value in (headers or {}).items():
            self.scrubber.add_header(name, value)
        opened: list[httpx.Response] = []

        def attempt() -> httpx.Response:
            for stale in opened:  # a retried status: its body is not wanted
                stale.close()
            opened.clear()
            self.limiter.acquire()
            self.counter.add(route)
            started = time.monotonic()
            client = self._client
            request = client.build_request(method, url, params=params, headers=headers, content=content)
            try:
                response = client.send(request, auth=auth, stream=True)
            except httpx.HTTPError as exc:
                self._log.debug("%s %s failed: %s", self.system, label, type(exc).__name__)
                raise
            opened.append(response)
            elapsed_ms = (time.monotonic() - started) * 1000
            self._log.debug("%s %s -> %d in %.0f ms (streaming)", self.system, label, response.status_code, elapsed_ms)
            return response

        retrying = self._retrying(
            label, statuses, self.retry.attempts if attempts is None else attempts, _is_retryable_exception
        )
        error = {"system": self.system, "method": method, "route": route}
        try:
            response: httpx.Response = retrying(attempt)
        except httpx.TransportError as exc:
            attempts_made = retrying.statistics.get("attempt_number")
            raise RemoteUnavailable(**error, detail=self._describe_exception(exc), attempts=attempts_made) from None
        except httpx.HTTPError as exc:
            raise UnexpectedResponse(**error, detail=self._describe_exception(exc)) from None
        try:
            status = response.status_code
            if not 200 <= status < 300:
                with suppress(httpx.HTTPError):  # the status says enough; a cut error page adds no message
                    response.read()
                attempts_made = retrying.statistics.get("attempt_number")
                raise _status_error(error, status, self._server_message(response), attempts_made)
            yield response
        finally:
            response.close()

    def iter_body(self, response: httpx.Response, *, route: str, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """The body of a streamed response, chunk by chunk; a broken body raises `RemoteUnavailable`."""
        received = 0
        try:
            for chunk in response.iter_bytes(chunk_size):
                received += len(chunk)
                yield chunk
        except httpx.HTTPError as exc:
            detail = f"the body broke off after {received} bytes: {self._describe_exception(exc)}"
            raise RemoteUnavailable(
                system=self.system, method=response.request.method, route=route, detail=detail
            ) from None

    def _retrying(
        self,
        label: str,
        statuses: Collection[int],
        attempts: int,
        retryable: Callable[[BaseException], bool],
    ) -> Retrying:
        """Up to `attempts` tries while an exception is `retryable` or the status is in `statuses`; the last
        response is returned as is when the attempts run out."""
        return Retrying(
            stop=stop_after_attempt(max(1, attempts)),
            retry=retry_if_exception(retryable) | retry_if_result(lambda response: response.status_code in statuses),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._before_retry(state, label),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = parse_retry_after(outcome.result().headers.get("retry-after"))
            if retry_after is not None:
                return min(retry_after, self.retry.retry_after_max)
        base = min(self.retry.backoff_max, self.retry.backoff_initial * 2 ** (state.attempt_number - 1))
        return base / 2 + random.uniform(0, base / 2)

    def _before_retry(self, state: RetryCallState, label: str) -> None:
        self.counter.add_retry()
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            exc = outcome.exception()
            what = self._describe_exception(exc) if exc is not None else "failure"
        else:
            what = f"HTTP {outcome.result().status_code}"
        wait = state.next_action.sleep if state.next_action else 0.0
        self._log.warning(
            "%s %s attempt %d failed (%s); retrying in %.1f s",
            self.system,
            label,
            state.attempt_number,
            what,
            wait,
        )

    def _describe_exception(self, exc: BaseException) -> str:
        if _certificate_error(exc) is not None:
            return self.scrub(
                f"TLS certificate verification failed ({_certificate_error(exc)}); to trust a private CA set "
                "NODE_EXTRA_CA_CERTS (added to the defaults) or SSL_CERT_FILE (replaces them)"
            )
        message = str(exc)
        return self.scrub(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)

    def _server_message(self, response: httpx.Response) -> str:
        """The server's own words about an error, from common JSON shapes or the text; never headers."""
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            text = response.text[:20_000]  # bounded work for huge error pages; only 500 characters are kept
        except (UnicodeDecodeError, LookupError):
            return ""
        if media_type in ("text/html", "application/xhtml+xml"):
            title = _HTML_TITLE.search(text)
            return self.scrub(f"an HTML page{f' titled {title.group(1).strip()!r}' if title else ''}")
        message: Any = None
        try:
            payload = jsonlib.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            message = _message_from_json(payload)
        return self.scrub(str(message) if message else text.strip())[:500]

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        return client if client is not None else self._client_for_thread()

    def _client_for_thread(self) -> httpx.Client:
        with self._clients_lock:
            if self._closed:  # a closed API keeps refusing requests, as one closed httpx client would
                return self._clients[0]
            client = httpx.Client(**self._client_options, transport=self._transport_for_client())
            self._clients.append(client)
        self._local.client = client
        return client

    def _transport_for_client(self) -> httpx.BaseTransport:
        # Each client gets its own pools (see above), routed per request by the proxy rules.
        if self._injected_transport is not None:
            return self._injected_transport
        options = self._client_options
        return self._proxies.transport(verify=options["verify"], limits=options["limits"])

    def close(self) -> None:
        with self._clients_lock:
            self._closed = True
            clients = list(self._clients)
        for client in clients:
            client.close()

    def __enter__(self) -> HttpApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _message_from_json(payload: dict[str, Any]) -> Any:
    for key in ("message", "errorMessage", "error_description", "detail", "error"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
    errors = payload.get("errors")
    if isinstance(errors, list):  # GraphQL and Confluence both use a list of {"message": ...}
        messages = [e.get("message") for e in errors if isinstance(e, dict) and isinstance(e.get("message"), str)]
        if messages:
            return "; ".join(messages)
    data = payload.get("data")
    if isinstance(data, dict) and isinstance(data.get("errors"), list):  # Confluence 400 on bad CQL
        return _message_from_json({"errors": data["errors"]})
    return None


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status_error(error: Mapping[str, str], status: int, detail: str, attempts: int | None) -> RemoteHttpError:
    """The error of a non-2xx answer: refused credentials, not found, or any other status."""
    if status in (401, 403):
        return RemoteAuthError(**error, status=status, detail=detail)
    if status == 404:
        return RemoteNotFound(**error, status=status, detail=detail)
    return RemoteHttpError(**error, status=status, detail=detail, attempts=attempts)


def _is_retryable_exception(exc: BaseException) -> bool:
    # A bad certificate, a malformed URL or our own protocol error will not heal by waiting.
    if not isinstance(exc, httpx.TransportError):
        return False
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return False
    return _certificate_error(exc) is None


# Raised before any byte of the request left: no connection, no free pooled one, or a proxy that refused the
# CONNECT tunnel (httpx's only use of ProxyError).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def _never_reached_the_server(exc: BaseException) -> bool:
    """A failure worth retrying that happened before the request could reach the server."""
    return isinstance(exc, _NOT_SENT) and _is_retryable_exception(exc)


def _may_have_reached_the_server(exc: httpx.TransportError) -> bool:
    """Whether a transport failure leaves open if the server received (and acted on) the request."""
    # A malformed URL or our own protocol error is refused before sending, too.
    return not isinstance(exc, (*_NOT_SENT, httpx.UnsupportedProtocol, httpx.LocalProtocolError))
