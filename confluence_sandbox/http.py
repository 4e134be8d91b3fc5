"""Threaded HTTP server shared by the emulators: routing, request recording and fault injection."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
CHUNK_SIZE = 64 * 1024


class BodyStream:
    """A request body read from the socket piece by piece, so a large upload never sits in memory whole.

    Handles both `Content-Length` and chunked transfer encoding; a chunk the client sent in one piece
    is still read in slices of at most the requested size.
    """

    def __init__(self, rfile: BinaryIO, *, length: int, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._remaining = 0 if chunked else length  # bytes left in the current chunk, or in the whole body
        self._done = not chunked and length <= 0
        self.bytes_read = 0

    def read_some(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to `size` bytes; b"" once the body is complete. ConnectionError when the client hung up early."""
        if self._done:
            return b""
        if self._chunked and self._remaining == 0:
            self._remaining = self._next_chunk_size()
            if self._remaining == 0:
                self._skip_trailers()
                self._done = True
                return b""
        piece = self._rfile.read(min(size, self._remaining))
        if not piece:
            self._done = True
            raise ConnectionError(f"request body ended after {self.bytes_read} bytes")
        self._remaining -= len(piece)
        self.bytes_read += len(piece)
        if self._remaining == 0:
            if self._chunked:
                self._rfile.readline()  # the CRLF that closes every chunk
            else:
                self._done = True
        return piece

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while piece := self.read_some(size):
            yield piece

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def drain(self) -> None:
        """Discard the unread rest: left on the socket it would be parsed as the next keep-alive request."""
        for _ in self.chunks():
            pass

    def _next_chunk_size(self) -> int:
        line = self._rfile.readline()
        if not line:
            raise ConnectionError(f"request body ended after {self.bytes_read} bytes")
        return int(line.split(b";", 1)[0].strip() or b"0", 16)

    def _skip_trailers(self) -> None:
        while self._rfile.readline() not in (b"\r\n", b"\n", b""):
            pass


@dataclass(frozen=True)
class Request:
    """One request as the emulator saw it (headers lower-cased, secrets redacted in `recorded`).

    On a route the emulator streams (`EmulatorServer.streams_body`) `body` is empty and the handler
    reads `stream` instead.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_target: str
    time: float
    stream: BodyStream | None = field(default=None, repr=False, compare=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class RecordedRequest:
    """What tests inspect: no secret header value is ever kept."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes  # empty for a streamed body; `body_length` still counts it
    time: float
    status: int | None = None  # the response status; None while in flight or when the connection was dropped
    body_length: int = 0
    fault: Fault | None = None  # the scripted fault this request met, if any


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Sent instead of `body`, chunk by chunk, for bodies too large to hold; `headers` must carry the
    # Content-Length. A stream that ends short of it makes the server hang up mid-body, as a failing upstream does.
    stream: Iterable[bytes] | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        return cls(status, json.dumps(payload).encode("utf-8"), merged)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": f"{content_type}; charset=utf-8"})


@dataclass
class Fault:
    """A scripted misbehaviour for one matching request.

    By default the real handler never runs when the fault answers: `status`/`headers`/`body`
    replace the real response; `delay` sleeps before answering (and before the real handler runs
    when no status is given); `drop` closes the connection without any response.

    `after_handler=True` runs the real handler first, so its change takes effect, and only then
    misbehaves: `delay` sleeps between the handler and the answer (a client read timeout fires
    although the change was made), `drop` closes the connection instead of answering, and
    `status`/`headers`/`body` replace the handler's answer (say, an error body for a write that
    went through).
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False
    after_handler: bool = False


@dataclass
class _ScriptedFault:
    method: str | None
    pattern: re.Pattern[str]
    fault: Fault
    remaining: int | None  # None = forever
    predicate: Callable[[Request], bool] | None


class FaultPlan:
    """Per-route queues of faults plus a global latency, consulted before every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripted: deque[_ScriptedFault] = deque()
        self.latency: float = 0.0

    def add(
        self,
        path_regex: str,
        fault: Fault,
        *,
        method: str | None = None,
        times: int | None = 1,
        when: Callable[[Request], bool] | None = None,
    ) -> None:
        """Apply `fault` to the next `times` requests whose path matches (None = every one)."""
        with self._lock:
            self._scripted.append(
                _ScriptedFault(method.upper() if method else None, re.compile(path_regex), fault, times, when)
            )

    def rate_limited(
        self, path_regex: str, *, retry_after: str = "1", times: int = 1, method: str | None = None
    ) -> None:
        """A 429 with the Atlassian rate-limit headers."""
        headers = {
            "Retry-After": retry_after,
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Interval-Seconds": "60",
            "X-RateLimit-FillRate": "10",
            "X-RateLimit-NearLimit": "true",
            "Content-Type": "application/json",
        }
        body = json.dumps({"statusCode": 429, "message": "Rate limit exceeded", "reason": "Too Many Requests"})
        self.add(path_regex, Fault(429, headers, body.encode()), method=method, times=times)

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()
            self.latency = 0.0

    def take(self, request: Request) -> Fault | None:
        with self._lock:
            for scripted in self._scripted:
                if scripted.method and scripted.method != request.method:
                    continue
                if not scripted.pattern.search(request.path):
                    continue
                if scripted.predicate is not None and not scripted.predicate(request):
                    continue
                if scripted.remaining is not None:
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        self._scripted.remove(scripted)
                return scripted.fault
        return None


Handler = Callable[[Request], Response]


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up before a delayed answer is expected under fault injection.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """Runs an emulator app on 127.0.0.1 in a background thread.

    Subclasses implement `handle`. Use as a context manager in tests, or `serve_forever()` from
    the command line. Every request is recorded (secrets redacted) and passes the fault plan.
    """

    name = "emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = FaultPlan()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._server = _ThreadingServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None
        self.tls = False

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def wrap_tls(self, certfile: str, keyfile: str) -> None:
        """Serve HTTPS with the given certificate (call before `start`)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.tls = True

    def start(self) -> EmulatorServer:
        # A short poll interval keeps `stop()` (and so every test teardown) from waiting the default 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- recording -------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def requests_to(self, path_regex: str, method: str | None = None) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if pattern.search(r.path) and (method is None or r.method == method.upper())]

    def _record(self, request: Request) -> RecordedRequest:
        headers = {k: (REDACTED if k in SECRET_HEADERS else v) for k, v in request.headers.items()}
        recorded = RecordedRequest(
            request.method, request.path, request.query, headers, request.body, request.time, None, len(request.body)
        )
        with self._requests_lock:
            self._requests.append(recorded)
        return recorded

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:  # pragma: no cover - overridden
        raise NotImplementedError

    def streams_body(self, method: str, path: str) -> bool:
        """Whether the handler reads this request's body from `Request.stream` (large uploads) instead of `body`."""
        return False

    def _dispatch(self, request: Request) -> Response | None:
        """None means: drop the connection."""
        recorded = self._record(request)
        response = self._respond(request, recorded)
        if request.stream is not None:
            if response is not None:
                # A fault or an early refusal may answer unread; the rest would be parsed as the next request.
                request.stream.drain()
            recorded.body_length = request.stream.bytes_read
        recorded.status = None if response is None else response.status
        return response

    def _respond(self, request: Request, recorded: RecordedRequest) -> Response | None:
        if self.faults.latency:
            time.sleep(self.faults.latency)
        fault = self.faults.take(request)
        recorded.fault = fault
        if fault is not None and not fault.after_handler:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                return None
            if fault.status is not None:
                return Response(fault.status, fault.body, dict(fault.headers))
        response = self._handle_safely(request)
        if fault is not None and fault.after_handler:
            if request.stream is not None:
                request.stream.drain()  # the client must have sent everything before it waits for the answer
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                return None
            if fault.status is not None:
                return Response(fault.status, fault.body, dict(fault.headers))
        return response

    def _handle_safely(self, request: Request) -> Response:
        try:
            return self.handle(request)
        except Exception as exc:  # an emulator bug must surface as a 500, not a hung socket
            return Response.json({"statusCode": 500, "message": f"emulator error: {exc!r}"}, status=500)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes; Nagle would add ~40 ms each
            server_version = emulator.name

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

            def _serve(self) -> None:
                split = urlsplit(self.path)
                path = unquote(split.path)  # routes see the decoded path, as on a real server (`ÄRGER`)
                stream = BodyStream(
                    self.rfile,
                    length=int(self.headers.get("Content-Length") or 0),
                    chunked="chunked" in (self.headers.get("Transfer-Encoding") or "").lower(),
                )
                streamed = emulator.streams_body(self.command, path)
                request = Request(
                    method=self.command,
                    path=path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=b"" if streamed else stream.read(),
                    raw_target=self.path,
                    time=time.time(),
                    stream=stream if streamed else None,
                )
                response = emulator._dispatch(request)
                if response is None:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                if response.stream is not None:
                    self._send_stream(response.stream, int(response.headers["Content-Length"]))
                    return
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            def _send_stream(self, stream: Iterable[bytes], length: int) -> None:
                self.end_headers()
                if self.command == "HEAD":
                    return
                sent = 0
                for chunk in stream:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                if sent != length:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        return _Handler
