"""The shared emulator HTTP base on its own: fault timing around the handler, and buffered versus streamed bodies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from confluence_sandbox.http import EmulatorServer, Fault, Request, Response


class CountingEmulator(EmulatorServer):
    """Counts handler runs (the "change" a fault may or may not let through) and echoes what it read."""

    name = "counting-emulator"

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0
        self._lock = threading.Lock()

    def streams_body(self, method: str, path: str) -> bool:
        return path.startswith("/stream")

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.changes += 1
        if request.path == "/stream":
            assert request.stream is not None and request.body == b""
            sizes = [len(piece) for piece in request.stream.chunks(1000)]
            return Response.json({"length": sum(sizes), "largest_read": max(sizes, default=0)})
        if request.path == "/stream-unread":
            return Response.json({"read": request.stream.bytes_read if request.stream else None}, status=413)
        return Response.json({"body": request.body.decode("latin-1")})


@pytest.fixture
def emu() -> Iterator[CountingEmulator]:
    with CountingEmulator() as emulator:
        yield emulator


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


# -- faults around the handler --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "changes", "status"),
    [
        (Fault(drop=True), 0, None),
        (Fault(drop=True, after_handler=True), 1, None),
        (Fault(500, {}, b"boom"), 0, 500),
        (Fault(500, {}, b"boom", after_handler=True), 1, 500),
        (Fault(after_handler=True), 1, 200),  # nothing scripted: the real answer goes out
    ],
    ids=["drop", "drop-after", "status", "status-after", "noop-after"],
)
def test_fault_runs_the_handler_only_when_asked(
    emu: CountingEmulator, fault: Fault, changes: int, status: int | None
) -> None:
    emu.faults.add(r"^/thing$", fault)
    try:
        response = httpx.post(f"{emu.url}/thing", content=b"payload", timeout=5)
    except httpx.TransportError:
        answered = None
    else:
        answered = response.status_code
        assert response.content == (b"boom" if status == 500 else b'{"body": "payload"}')
    assert answered == status
    assert emu.changes == changes
    (recorded,) = emu.requests
    assert (recorded.status, recorded.fault) == (status, fault)
    assert httpx.post(f"{emu.url}/thing", content=b"x", timeout=5).status_code == 200  # one request only


def test_delay_after_the_handler_times_the_client_out_with_the_change_made(emu: CountingEmulator) -> None:
    emu.faults.add(r"^/thing$", Fault(delay=0.6, after_handler=True))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{emu.url}/thing", content=b"x", timeout=0.3)
    assert emu.changes == 1


def test_delay_before_the_handler_times_the_client_out_first_and_changes_later(emu: CountingEmulator) -> None:
    emu.faults.add(r"^/thing$", Fault(delay=0.6))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{emu.url}/thing", content=b"x", timeout=0.3)
    assert emu.changes == 0
    wait_for(lambda: emu.changes == 1)  # the handler still runs once the delay is over


def test_delay_with_a_scripted_answer_after_the_handler(emu: CountingEmulator) -> None:
    emu.faults.add(r"^/thing$", Fault(502, {"Retry-After": "1"}, b"gateway", delay=0.2, after_handler=True))
    started = time.monotonic()
    response = httpx.post(f"{emu.url}/thing", content=b"x", timeout=5)
    assert (response.status_code, response.headers["retry-after"], response.content) == (502, "1", b"gateway")
    assert time.monotonic() - started >= 0.2
    assert emu.changes == 1


# -- bodies -------------------------------------------------------------------------------------
def test_buffered_route_reads_a_chunked_body_whole(emu: CountingEmulator) -> None:
    with httpx.Client(timeout=5) as client:
        response = client.post(f"{emu.url}/thing", content=iter([b"ab", b"\r\n0\r\n", b"cd"]))
        assert response.json() == {"body": "ab\r\n0\r\ncd"}
        assert client.post(f"{emu.url}/thing", content=b"next").json() == {"body": "next"}
    assert [r.body_length for r in emu.requests] == [9, 4]


@pytest.mark.parametrize("chunked", [False, True])
def test_streamed_route_reads_in_slices_of_the_asked_size(emu: CountingEmulator, chunked: bool) -> None:
    body = bytes(range(256)) * 40  # 10 240 bytes, sent as one chunk when chunked
    content = iter([body]) if chunked else body
    with httpx.Client(timeout=5) as client:
        response = client.put(f"{emu.url}/stream", content=content)
        assert response.json() == {"length": len(body), "largest_read": 1000}
        assert client.post(f"{emu.url}/thing", content=b"next").json() == {"body": "next"}
    (recorded, _) = emu.requests
    assert (recorded.body, recorded.body_length) == (b"", len(body))


@pytest.mark.parametrize("chunked", [False, True])
def test_a_streamed_body_left_unread_is_drained_before_the_next_request(emu: CountingEmulator, chunked: bool) -> None:
    body = b"x" * 300_000
    with httpx.Client(timeout=5) as client:
        response = client.put(f"{emu.url}/stream-unread", content=iter([body]) if chunked else body)
        assert response.status_code == 413
        assert response.json() == {"read": 0}
        assert client.post(f"{emu.url}/thing", content=b"next").json() == {"body": "next"}
    assert emu.requests[0].body_length == len(body)
