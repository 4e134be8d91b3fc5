"""HttpApi streams: retried until the headers arrive, bodies read chunk by chunk, iterator bodies sent once with
their length, and errors mapped as for every request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from confluence_pipeline.clients.errors import RemoteAuthError, RemoteHttpError, RemoteNotFound, RemoteUnavailable
from confluence_pipeline.clients.transport import HttpApi
from confluence_sandbox.http import EmulatorServer, Request, Response

BASE = "https://wiki.example.test/rest/api"


def api_for(handler: Any, waits: list[float] | None = None, **kw: Any) -> HttpApi:
    sleep = (waits if waits is not None else []).append
    return HttpApi(system="confluence", base_url=BASE, transport=httpx.MockTransport(handler), sleep=sleep, **kw)


def test_a_stream_is_retried_until_its_headers_arrive_and_read_in_chunks() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "2"}), httpx.Response(200, content=b"x" * 300_000)])
    waits: list[float] = []
    with api_for(lambda request: next(answers), waits) as api, api.stream("GET", "f", route="GET f") as response:
        chunks = list(api.iter_body(response, route="GET f", chunk_size=100_000))
    assert [len(c) for c in chunks] == [100_000, 100_000, 100_000]
    assert waits == [2.0] and api.counter.snapshot() == {"GET f": 2} and api.counter.retries == 1


@pytest.mark.parametrize(
    ("status", "error"), [(401, RemoteAuthError), (404, RemoteNotFound), (500, RemoteHttpError), (410, RemoteHttpError)]
)
def test_stream_errors_are_mapped_with_the_servers_words(status: int, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": f"nope {status}"})

    with api_for(handler) as api, pytest.raises(error, match=f"nope {status}"), api.stream("GET", "f", route="GET f"):
        pass


def test_connection_failures_are_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    waits: list[float] = []
    with (
        api_for(handler, waits) as api,
        pytest.raises(RemoteUnavailable, match="after 5 attempts"),
        api.stream("GET", "f", route="GET f"),
    ):
        pass
    assert len(waits) == 4


def test_cross_origin_redirects_drop_the_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "wiki.example.test":
            return httpx.Response(302, headers={"Location": "https://media.example.test/file/1?token=t"})
        return httpx.Response(200, content=b"bytes")

    with (
        api_for(handler, auth=httpx.BasicAuth("bot", "api-token-value")) as api,
        api.stream("GET", "download", route="GET download") as response,
    ):
        assert b"".join(api.iter_body(response, route="GET download")) == b"bytes"
    assert "authorization" in seen[0].headers and "authorization" not in seen[1].headers
    assert api.counter.snapshot() == {"GET download": 1}


def test_an_iterator_body_goes_once_with_its_length_and_not_chunked() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(500 if len(seen) == 1 else 201)

    def body() -> Iterator[bytes]:
        yield b"abc"
        yield b"de"

    headers = {"Content-Length": "5", "Content-Type": "application/pdf"}
    with (
        api_for(handler) as api,
        pytest.raises(RemoteHttpError),
        api.stream("PUT", "u", route="PUT u", content=body(), headers=headers, attempts=1),
    ):
        pass
    assert len(seen) == 1  # a 500 is not retried: the iterator cannot be replayed
    assert seen[0].headers["content-length"] == "5" and "transfer-encoding" not in seen[0].headers
    assert seen[0].content == b"abcde"


def test_an_exception_in_the_body_iterator_reaches_the_caller_unchanged() -> None:
    class Broken(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"a"
        raise Broken("the source broke")

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(201)

    with (
        api_for(handler) as api,
        pytest.raises(Broken),
        api.stream("PUT", "u", route="PUT u", content=body(), headers={"Content-Length": "2"}, attempts=1),
    ):
        pass


class CutServer(EmulatorServer):
    """Announces a megabyte and sends half of it."""

    name = "cut"

    def handle(self, request: Request) -> Response:
        def half() -> Iterator[bytes]:
            yield b"z" * 500_000

        return Response(200, b"", {"Content-Length": "1000000"}, stream=half())


def test_a_body_cut_short_raises_remote_unavailable() -> None:
    with CutServer() as server, HttpApi(system="confluence", base_url=server.url) as api:
        received = 0
        with (
            pytest.raises(RemoteUnavailable, match=r"broke off after \d+ bytes.*received 500000 bytes") as info,
            api.stream("GET", "/f", route="GET attachment download") as response,
        ):
            for chunk in api.iter_body(response, route="GET attachment download"):
                received += len(chunk)
        assert 0 < received <= 500_000  # whole chunks were handed on before the cut; none after it
        assert "confluence GET attachment download" in str(info.value)


def test_the_limiter_is_consulted_before_every_streamed_attempt() -> None:
    events: list[str] = []

    class RecordingLimiter:
        per_minute = 60

        def acquire(self) -> float:
            events.append("acquire")
            return 0.0

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("send")
        return httpx.Response(503) if events.count("send") < 2 else httpx.Response(200, content=b"file")

    with api_for(handler, per_minute=60) as api:
        api.limiter = RecordingLimiter()  # type: ignore[assignment]
        with api.stream("GET", "download", route="GET attachment download") as response:
            assert b"".join(api.iter_body(response, route="GET attachment download")) == b"file"
    assert events == ["acquire", "send"] * 2
