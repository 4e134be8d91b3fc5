"""HttpApi: retries and their waits, error mapping, counting, pacing, scrubbing, real sockets and proxies."""

from __future__ import annotations

import email.utils
import http.client
import logging
import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from confluence_pipeline.clients.errors import (
    RemoteAuthError,
    RemoteError,
    RemoteHttpError,
    RemoteNotFound,
    RemoteUnavailable,
    UnexpectedResponse,
)
from confluence_pipeline.clients.transport import HttpApi, RequestCounter, RetryPolicy, parse_retry_after
from confluence_pipeline.config.secrets import Scrubber
from confluence_sandbox.http import EmulatorServer, Fault, Request, Response

BASE = "https://wiki.example.test/rest/api"
ROUTE = "GET content/search"

Handler = Callable[[httpx.Request], httpx.Response]


def ok(payload: Any = None) -> httpx.Response:
    return httpx.Response(200, json={"results": []} if payload is None else payload)


def script(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler that plays the given answers in order (the last one repeats) and records every request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


class Harness:
    def __init__(self, handler: Handler, **kw: Any) -> None:
        self.waits: list[float] = []
        kw.setdefault("system", "confluence")
        kw.setdefault("base_url", BASE)
        self.api = HttpApi(transport=httpx.MockTransport(handler), sleep=self.waits.append, **kw)


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(handler: Handler, **kw: Any) -> Harness:
        made.append(Harness(handler, **kw))
        return made[-1]

    yield make
    for h in made:
        h.api.close()


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("9223372036854775807", 9223372036854775807.0),
        ("-5", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_is_relative_to_now() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(42.0)


def test_retry_after_seconds_is_honoured(harness: Callable[..., Harness]) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "Rate limit exceeded"})
    handler, seen = script(limited, limited, ok())
    h = harness(handler)
    assert h.api.json("GET", "content/search", route=ROUTE) == {"results": []}
    assert h.waits == [7.0, 7.0]
    assert len(seen) == 3


def test_retry_after_http_date_is_honoured(harness: Callable[..., Harness]) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    handler, _ = script(httpx.Response(429, headers={"Retry-After": date}), ok())
    h = harness(handler)
    h.api.json("GET", "content/search", route=ROUTE)
    assert len(h.waits) == 1
    assert 27.0 <= h.waits[0] <= 30.0  # the date has whole-second resolution


@pytest.mark.parametrize("value", ["9223372036854775807", "86400", "next week"])
def test_absurd_retry_after_is_clamped(harness: Callable[..., Harness], value: str) -> None:
    if value == "next week":
        value = email.utils.formatdate(time.time() + 7 * 86400, usegmt=True)
    handler, _ = script(httpx.Response(429, headers={"Retry-After": value, "X-RateLimit-Limit": "0"}), ok())
    h = harness(handler)
    h.api.json("GET", "content/search", route=ROUTE)
    assert h.waits == [60.0]

    handler, _ = script(httpx.Response(429, headers={"Retry-After": value}), ok())
    h = harness(handler, retry=RetryPolicy(retry_after_max=5.0))
    h.api.json("GET", "content/search", route=ROUTE)
    assert h.waits == [5.0]


def test_503_with_retry_after_is_honoured(harness: Callable[..., Harness]) -> None:
    handler, _ = script(httpx.Response(503, headers={"Retry-After": "2"}, text="maintenance"), ok())
    h = harness(handler)
    h.api.json("GET", "content/search", route=ROUTE)
    assert h.waits == [2.0]


def test_500s_then_success_back_off_exponentially_within_the_cap(harness: Callable[..., Harness]) -> None:
    failing = httpx.Response(500, json={"message": "boom"})
    handler, seen = script(failing, failing, failing, failing, ok({"id": "1"}))
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=5.0)
    h = harness(handler, retry=policy)
    assert h.api.json("GET", "content/1", route="GET content/{id}") == {"id": "1"}
    assert len(seen) == 5
    for attempt, wait in enumerate(h.waits, start=1):
        ceiling = min(5.0, 1.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert h.api.counter.retries == 4


def test_exhausted_retries_raise_remote_http_error_with_the_status(harness: Callable[..., Harness]) -> None:
    handler, seen = script(httpx.Response(502, json={"message": "bad gateway upstream"}))
    h = harness(handler)
    with pytest.raises(RemoteHttpError) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    error = info.value
    assert type(error) is RemoteHttpError
    assert (error.system, error.method, error.route, error.status) == ("confluence", "GET", ROUTE, 502)
    assert error.detail == "bad gateway upstream"
    assert str(error) == (
        "confluence GET content/search: the server answered with an error (HTTP 502) after 5 attempts: "
        "bad gateway upstream"
    )
    assert len(seen) == RetryPolicy().attempts == 5
    assert len(h.waits) == 4
    assert h.api.counter.snapshot() == {ROUTE: 5}
    assert h.api.counter.retries == 4


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(harness: Callable[..., Harness], status: int) -> None:
    handler, seen = script(httpx.Response(status, json={"message": "Basic auth with password is not allowed"}))
    h = harness(handler)
    with pytest.raises(RemoteAuthError) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    assert info.value.status == status
    assert "Basic auth with password is not allowed" in str(info.value)
    assert len(seen) == 1
    assert h.waits == []


def test_not_found_maps_to_remote_not_found(harness: Callable[..., Harness]) -> None:
    handler, seen = script(httpx.Response(404, json={"statusCode": 404, "message": "No content found with id 7"}))
    h = harness(handler)
    with pytest.raises(RemoteNotFound) as info:
        h.api.json("GET", "content/7", route="GET content/{id}")
    assert isinstance(info.value, RemoteHttpError)
    assert info.value.status == 404
    assert "No content found with id 7" in str(info.value)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_errors_are_retried(harness: Callable[..., Harness], failure: Exception) -> None:
    handler, seen = script(failure, failure, ok())
    h = harness(handler)
    assert h.api.json("GET", "content/search", route=ROUTE) == {"results": []}
    assert len(seen) == 3
    assert len(h.waits) == 2


def test_persistent_transport_errors_raise_remote_unavailable(harness: Callable[..., Harness]) -> None:
    handler, seen = script(httpx.ConnectTimeout("timed out"))
    h = harness(handler, retry=RetryPolicy(attempts=3))
    with pytest.raises(RemoteUnavailable) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    assert info.value.status is None
    assert "ConnectTimeout" in str(info.value)
    assert "after 3 attempts" in str(info.value)
    assert len(seen) == 3
    assert info.value.__cause__ is None  # the httpx exception (with its request and URL) is not attached


def test_html_login_page_is_called_out(harness: Callable[..., Harness]) -> None:
    page = httpx.Response(200, headers={"Content-Type": "text/html; charset=utf-8"}, text="<html>Log in</html>")
    handler, seen = script(page)
    h = harness(handler)
    with pytest.raises(UnexpectedResponse) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    assert "expected JSON but got text/html (an SSO login page?)" in str(info.value)
    assert info.value.status == 200
    assert len(seen) == 1


def test_any_content_is_accepted_when_not_expecting_json(harness: Callable[..., Harness]) -> None:
    handler, _ = script(httpx.Response(200, headers={"Content-Type": "application/pdf"}, content=b"%PDF-1.7"))
    h = harness(handler)
    assert h.api.request("GET", "download/1", route="GET download", expect="any").content == b"%PDF-1.7"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, headers={"Content-Type": "application/json"}, content=b'{"results": [1, 2'),
        httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"\xff\xfe\x00garbage"),
    ],
)
def test_malformed_json_is_unexpected(harness: Callable[..., Harness], answer: httpx.Response) -> None:
    handler, _ = script(answer)
    h = harness(handler)
    with pytest.raises(UnexpectedResponse, match="malformed JSON"):
        h.api.json("GET", "content/search", route=ROUTE)


def test_json_suffix_media_types_count_as_json(harness: Callable[..., Harness]) -> None:
    answer = httpx.Response(200, headers={"Content-Type": "application/problem+json"}, content=b'{"a": 1}')
    handler, _ = script(answer)
    assert harness(handler).api.json("GET", "x", route="GET x") == {"a": 1}


# -- options ----------------------------------------------------------------------------------


def test_retry_statuses_can_be_overridden_per_request(harness: Callable[..., Harness]) -> None:
    handler, seen = script(httpx.Response(500, json={"message": "boom"}))
    h = harness(handler)
    with pytest.raises(RemoteHttpError):
        h.api.json("POST", "graphql", route="POST graphql", json={}, retry_statuses=frozenset())
    assert len(seen) == 1

    handler, seen = script(httpx.Response(409, json={"message": "busy"}), ok())
    h = harness(handler)
    h.api.json("POST", "graphql", route="POST graphql", json={}, retry_statuses=frozenset({409}))
    assert len(seen) == 2


def test_on_status_sees_the_final_response_and_may_raise_its_own_error(harness: Callable[..., Harness]) -> None:
    class CqlError(Exception):
        pass

    def bad_cql(response: httpx.Response) -> None:
        raise CqlError(response.json()["message"])

    handler, _ = script(httpx.Response(400, json={"message": "Could not parse cql"}))
    h = harness(handler)
    with pytest.raises(CqlError, match="Could not parse cql"):
        h.api.json("GET", "content/search", route=ROUTE, on_status={400: bad_cql})

    seen_statuses: list[int] = []
    with pytest.raises(RemoteHttpError):  # a callback that returns leaves the default handling in place
        h.api.json("GET", "content/search", route=ROUTE, on_status={400: lambda r: seen_statuses.append(r.status_code)})
    assert seen_statuses == [400]


def test_auth_none_sends_no_credentials_and_default_sends_them(harness: Callable[..., Harness]) -> None:
    handler, seen = script(ok())
    h = harness(handler, auth=httpx.BasicAuth("bot@example.test", "api-token-value"))
    h.api.json("GET", "content/search", route=ROUTE)
    h.api.json("GET", "https://elsewhere.example.test/_edge/tenant_info", route="GET tenant_info", auth=None)
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert "authorization" not in seen[1].headers
    assert seen[0].url == httpx.URL(f"{BASE}/content/search")


def test_request_sends_bodies_params_and_headers(harness: Callable[..., Harness]) -> None:
    handler, seen = script(ok())
    h = harness(handler, headers={"X-Client": "pipeline"})
    h.api.request("PUT", "https://blob.example.test/up?sig=abc", route="PUT blob", content=b"<p>x</p>", expect="any")
    h.api.json("POST", "graphql", route="POST graphql", json={"query": "q"}, params={"a": "1"}, headers={"X-B": "2"})
    assert seen[0].content == b"<p>x</p>"
    assert seen[1].url.params["a"] == "1"
    assert seen[1].headers["x-b"] == "2"
    assert seen[1].headers["x-client"] == "pipeline"
    assert seen[1].content == b'{"query":"q"}'


def test_redirects_are_followed_without_carrying_credentials_to_another_host(
    harness: Callable[..., Harness],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "wiki.example.test":
            return httpx.Response(302, headers={"Location": "https://media.example.test/file/1?token=t"})
        return httpx.Response(200, content=b"attachment bytes")

    h = harness(handler, auth=httpx.BasicAuth("bot@example.test", "api-token-value"))
    response = h.api.request("GET", "content/1/child/attachment/2/download", route="GET download", expect="any")
    assert response.content == b"attachment bytes"
    assert [r.url.host for r in seen] == ["wiki.example.test", "media.example.test"]
    assert "authorization" in seen[0].headers
    assert "authorization" not in seen[1].headers
    assert h.api.counter.snapshot() == {"GET download": 1}


# -- counting and pacing ----------------------------------------------------------------------


def test_counter_counts_every_attempt_per_route_and_the_retries(harness: Callable[..., Harness]) -> None:
    answers = iter([httpx.Response(503), ok(), ok(), httpx.Response(429, headers={"Retry-After": "0"}), ok()])
    h = harness(lambda request: next(answers))
    h.api.json("GET", "content/search", route=ROUTE)
    h.api.json("GET", "content/1", route="GET content/{id}")
    h.api.json("GET", "content/search", route=ROUTE)
    assert h.api.counter.snapshot() == {ROUTE: 4, "GET content/{id}": 1}
    assert h.api.counter.total == 5
    assert h.api.counter.retries == 2


def test_counter_is_thread_safe() -> None:
    import threading

    counter = RequestCounter()

    def work() -> None:
        for _ in range(2000):
            counter.add("a")
            counter.add_retry()

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert counter.snapshot() == {"a": 8000}
    assert counter.retries == 8000


def test_the_limiter_is_consulted_before_every_attempt(harness: Callable[..., Harness]) -> None:
    events: list[str] = []

    class RecordingLimiter:
        per_minute = 60

        def acquire(self) -> float:
            events.append("acquire")
            return 0.0

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("send")
        return httpx.Response(500) if events.count("send") < 3 else ok()

    h = harness(handler, per_minute=60)
    assert h.api.limiter.per_minute == 60
    h.api.limiter = RecordingLimiter()  # type: ignore[assignment]
    h.api.json("GET", "content/search", route=ROUTE)
    assert events == ["acquire", "send"] * 3


def test_a_real_limiter_paces_attempts_including_retries() -> None:
    """per_minute=60 leaves one token per second: the retry must wait for the limiter, not only the backoff."""
    handler, seen = script(httpx.Response(429, headers={"Retry-After": "0"}), ok())
    api = HttpApi(system="confluence", base_url=BASE, transport=httpx.MockTransport(handler), per_minute=60)
    fake_now = [0.0]
    limiter_waits: list[float] = []

    def limiter_sleep(seconds: float) -> None:
        limiter_waits.append(seconds)
        fake_now[0] += seconds

    from confluence_pipeline.clients.ratelimit import RateLimiter

    api.limiter = RateLimiter(60, clock=lambda: fake_now[0], sleep=limiter_sleep)
    api.json("GET", "content/search", route=ROUTE)
    api.close()
    assert len(seen) == 2
    assert limiter_waits == [pytest.approx(1.0)]


# -- secrets ------------------------------------------------------------------------------------

BEARER = "pat-0123456789abcdef"
ISSUED = "zitadel-issued-token-XYZ"
CONFIGURED = "client-secret-!&?value"
PASSWORD = "basic-password-value"


def _echo_everything(request: httpx.Request) -> httpx.Response:
    """A server that helpfully repeats every credential it saw in its error message."""
    echoed = " ".join(f"{k}={v}" for k, v in request.headers.items())
    body = (
        f"denied {echoed} {ISSUED} encoded={CONFIGURED.replace('&', '%26').replace('!', '%21').replace('?', '%3F')} "
        f"upload https://blob.example.test/c/1?sig=SIGNATURE-PART&se=2030 done"
    )
    if request.url.path.endswith("/down"):
        raise httpx.ConnectError(f"proxy said no to {ISSUED} / {request.headers['authorization']}")
    return httpx.Response(500, json={"message": body})


@pytest.mark.parametrize("auth_kind", ["header", "auth"])
def test_secrets_never_reach_errors_or_logs(
    harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture, auth_kind: str
) -> None:
    caplog.set_level(logging.DEBUG)
    kw: dict[str, Any] = {"scrubber": Scrubber([CONFIGURED]), "retry": RetryPolicy(attempts=2)}
    if auth_kind == "header":
        kw["headers"] = {"Authorization": f"Bearer {BEARER}"}
    else:
        kw["auth"] = httpx.BasicAuth("bot@example.test", PASSWORD)
    h = harness(_echo_everything, **kw)
    h.api.add_secret(ISSUED)

    errors: list[RemoteError] = []
    for path in ("content/search", "content/down"):
        with pytest.raises(RemoteError) as info:
            h.api.json("GET", path, route=ROUTE, headers={"X-Api-Key": "per-request-key-123"})
        errors.append(info.value)

    assert isinstance(errors[0], RemoteHttpError)
    assert isinstance(errors[1], RemoteUnavailable)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [e.detail for e in errors] + [caplog.text]
    assert "WARNING" in caplog.text  # the retries were logged...
    assert "DEBUG" in caplog.text  # ...and so was every attempt
    leaks = [BEARER, ISSUED, CONFIGURED, PASSWORD, "per-request-key-123", "SIGNATURE-PART", "%21client-secret"]
    if auth_kind == "auth":
        leaks.append(httpx.BasicAuth("bot@example.test", PASSWORD)._auth_header.split()[1])
    for text in texts:
        for secret in leaks:
            assert secret not in text
    assert "denied" in str(errors[0])  # the server's words are still there, only the secrets are gone
    assert "https://blob.example.test/c/1?…" in str(errors[0])
    assert "***" in str(errors[0])


def test_detail_is_truncated_to_500_characters(harness: Callable[..., Harness]) -> None:
    handler, _ = script(httpx.Response(500, text="x" * 5000))
    h = harness(handler, retry=RetryPolicy(attempts=1))
    with pytest.raises(RemoteHttpError) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    assert len(info.value.detail) == 500
    assert len(str(info.value)) < 650


def test_html_error_pages_are_summarised_by_their_title(harness: Callable[..., Harness]) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>" + "junk " * 500 + "</body></html>"
    handler, _ = script(httpx.Response(502, headers={"Content-Type": "text/html"}, text=page))
    h = harness(handler, retry=RetryPolicy(attempts=1))
    with pytest.raises(RemoteHttpError) as info:
        h.api.json("GET", "content/search", route=ROUTE)
    assert info.value.detail == "an HTML page titled '502 Bad Gateway'"


def test_graphql_error_lists_become_the_detail(harness: Callable[..., Harness]) -> None:
    body = {"errors": [{"message": "Scope not found"}, {"message": "Forbidden path"}]}
    handler, _ = script(httpx.Response(400, json=body))
    h = harness(handler)
    with pytest.raises(RemoteHttpError) as info:
        h.api.json("POST", "graphql", route="POST graphql", json={})
    assert info.value.detail == "Scope not found; Forbidden path"


def test_errors_survive_pickling() -> None:
    error = RemoteNotFound(system="unique", method="POST", route="POST file-diff", status=404, detail="gone")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RemoteNotFound
    assert str(copy) == str(error) == "unique POST file-diff: not found (HTTP 404): gone"
    assert (copy.system, copy.method, copy.route, copy.status, copy.detail) == (
        "unique",
        "POST",
        "POST file-diff",
        404,
        "gone",
    )


def test_api_repr_and_context_manager_close_the_client() -> None:
    handler, _ = script(ok())
    with HttpApi(
        system="unique", base_url=BASE, transport=httpx.MockTransport(handler), scrubber=Scrubber([BEARER])
    ) as api:
        assert BEARER not in repr(api)
    with pytest.raises(RuntimeError):
        api._client.get("x")


# -- real sockets ---------------------------------------------------------------------------------


class JsonApp(EmulatorServer):
    name = "json-app"

    def handle(self, request: Request) -> Response:
        return Response.json({"path": request.path})


def test_a_dropped_connection_is_retried_over_a_real_socket() -> None:
    with JsonApp() as server:
        server.faults.add(r"^/x$", Fault(drop=True))
        waits: list[float] = []
        with HttpApi(system="confluence", base_url=server.url, sleep=waits.append) as api:
            assert api.json("GET", "/x", route="GET x") == {"path": "/x"}
            assert api.counter.snapshot() == {"GET x": 2}
        assert len(server.requests_to(r"^/x$")) == 2
        assert len(waits) == 1


class QuietJsonApp(JsonApp):
    """For timeouts: the late answer hits a closed socket, which is expected, not worth a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]


def test_a_read_timeout_is_retried_over_a_real_socket() -> None:
    with QuietJsonApp() as server:
        server.faults.add(r"^/slow$", Fault(delay=1.0))
        with HttpApi(system="unique", base_url=server.url, timeout=httpx.Timeout(0.3), sleep=lambda _: None) as api:
            assert api.json("GET", "/slow", route="GET slow") == {"path": "/slow"}
            # At least the slow attempt was retried; a loaded machine may time out a fast one too.
            assert api.counter.retries >= 1


class ForwardingProxy(EmulatorServer):
    """A plain-HTTP forward proxy: answers absolute-form requests by fetching the target itself."""

    name = "proxy"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle(self, request: Request) -> Response:
        self.seen.append(request.raw_target)
        target = urlsplit(request.raw_target)
        connection = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=5)
        try:
            connection.request(request.method, request.raw_target.split(target.netloc, 1)[1] or "/")
            answer = connection.getresponse()
            return Response(answer.status, answer.read(), {"Content-Type": answer.getheader("Content-Type", "")})
        finally:
            connection.close()


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.mark.parametrize(("no_proxy", "via_proxy"), [("", True), ("127.0.0.1", False), ("localhost,127.0.0.1", False)])
def test_http_proxy_and_no_proxy_from_the_environment_are_honoured(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, via_proxy: bool
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with JsonApp() as target, ForwardingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", no_proxy)
        with HttpApi(system="confluence", base_url=target.url, sleep=lambda _: None) as api:
            assert api.json("GET", f"{target.url}/x", route="GET x") == {"path": "/x"}
        assert proxy.seen == ([f"{target.url}/x"] if via_proxy else [])
        assert len(target.requests_to(r"^/x$")) == 1


def test_proxy_credentials_are_treated_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("https_proxy", raising=False)  # lower case would win over upper case
    monkeypatch.setenv("HTTPS_PROXY", "http://corp-user:proxy-pass-123@127.0.0.1:9")
    handler, _ = script(httpx.ConnectError("407 from http://corp-user:proxy-pass-123@127.0.0.1:9"))
    api = HttpApi(system="unique", base_url=BASE, transport=httpx.MockTransport(handler), sleep=lambda _: None)
    with pytest.raises(RemoteUnavailable) as info:
        api.json("GET", "x", route="GET x")
    api.close()
    assert "proxy-pass-123" not in str(info.value)
