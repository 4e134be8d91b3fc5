"""The Unique emulator's uploads and downloads: exact binary bytes, chunked and streamed bodies, hashes only."""

from __future__ import annotations

import hashlib
import socket
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLUSTER_HEADERS, CONTENT_UPSERT
from confluence_sandbox.unique import UniqueEmulator

KEY = "acme/98307_ENG/123456::att789"
ALL_BYTES = bytes(range(256)) * 4
# Bytes that look like chunked framing or a request line: a parser that scans the body would trip on them.
FRAMING_LOOKALIKE = b"0\r\n\r\nPUT / HTTP/1.1\r\n\r\n\x00\xff"
BLOB_HEADERS = {"x-ms-blob-type": "BlockBlob"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(headers=CLUSTER_HEADERS, timeout=30) as client:
        yield client


def variables(emu: UniqueEmulator, mime_type: str, byte_size: int | None, key: str = KEY) -> dict[str, Any]:
    scope = next(iter(emu.store.scopes.values()), None) or emu.store.add_scope("ENG")
    item: dict[str, Any] = {"key": key, "title": "file.bin", "mimeType": mime_type, "ownerType": "SCOPE"}
    if byte_size is not None:
        item["byteSize"] = byte_size
    return {
        "input": item,
        "scopeId": scope.id,
        "sourceOwnerType": "COMPANY",
        "sourceKind": "ATLASSIAN_CONFLUENCE_CLOUD",
        "sourceName": "https://acme.atlassian.net",
    }


def upsert(http: httpx.Client, emu: UniqueEmulator, values: dict[str, Any]) -> dict[str, Any]:
    body = http.post(emu.graphql_url, json={"query": CONTENT_UPSERT, "variables": values}).json()
    assert "errors" not in body, body
    return body["data"]["contentUpsert"]


def scoped_url(emu: UniqueEmulator, write_url: str) -> str:
    return f"{emu.url}/ingestion/scoped/upload?key={httpx.URL(write_url).params['key']}"


def put(http: httpx.Client, emu: UniqueEmulator, route: str, write_url: str, body: Any, mime: str) -> httpx.Response:
    if route == "blob":
        return http.put(write_url, content=body, headers={**BLOB_HEADERS, "Content-Type": mime})
    return http.put(scoped_url(emu, write_url), content=body, headers={"Content-Type": mime})


def ingest(
    http: httpx.Client, emu: UniqueEmulator, route: str, data: bytes, mime: str, body: Any = None
) -> dict[str, Any]:
    values = variables(emu, mime, len(data))
    registered = upsert(http, emu, values)
    response = put(http, emu, route, registered["writeUrl"], data if body is None else body, mime)
    assert response.status_code == 201, response.text
    upsert(http, emu, {**values, "fileUrl": registered["readUrl"]})
    return registered


# -- exact bytes ----------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["blob", "scoped"])
@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (ALL_BYTES, "application/octet-stream"),
        (b"\x89PNG\r\n\x1a\n" + ALL_BYTES, "image/png"),
        (FRAMING_LOOKALIKE, "application/pdf"),
        ("Grüße – ✓".encode(), "text/html"),
        (b"", "text/plain"),
    ],
    ids=["all-bytes", "png", "framing-lookalike", "utf8", "empty"],
)
def test_uploaded_bytes_are_stored_and_served_exactly(
    emu: UniqueEmulator, http: httpx.Client, route: str, data: bytes, mime: str
) -> None:
    registered = ingest(http, emu, route, data, mime)

    stored = emu.store.contents[registered["id"]]
    assert (stored.data, stored.byte_size, stored.mime_type) == (data, len(data), mime)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert emu.store.content_bytes(KEY) == data
    served = http.get(emu.content_file_url(registered["id"]))
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == mime


def test_chunked_upload_on_the_scoped_route_keeps_every_byte(emu: UniqueEmulator, http: httpx.Client) -> None:
    pieces = [ALL_BYTES, b"", FRAMING_LOOKALIKE, b"\r\n", ALL_BYTES[::-1]]  # httpx skips the empty one
    data = b"".join(pieces)
    registered = ingest(http, emu, "scoped", data, "application/octet-stream", body=iter(pieces))
    assert emu.store.content_bytes(KEY) == data
    (recorded,) = emu.requests_to(r"/scoped/upload$", "PUT")
    assert recorded.headers["transfer-encoding"] == "chunked"
    assert (recorded.body, recorded.body_length) == (b"", len(data))  # streamed: counted, not copied
    assert http.get(emu.content_file_url(registered["id"])).content == data


def raw_exchange(emu: UniqueEmulator, request_bytes: list[bytes | memoryview], requests: int = 1) -> list[bytes]:
    """Send raw bytes on one connection and return the status lines of `requests` answers."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=30) as sock:
        for piece in request_bytes:
            sock.sendall(piece)
        stream = sock.makefile("rb")
        statuses: list[bytes] = []
        for _ in range(requests):
            statuses.append(stream.readline().strip())
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            stream.read(length)
        return statuses


def test_chunk_extensions_trailers_and_keep_alive_on_a_raw_socket(emu: UniqueEmulator, http: httpx.Client) -> None:
    emu.scoped_upload_requires_auth = False
    values = variables(emu, "application/octet-stream", 11)
    registered = upsert(http, emu, values)
    target = scoped_url(emu, registered["writeUrl"]).removeprefix(emu.url)
    chunked = (
        f"PUT {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"5;name=value\r\nhello\r\n"  # a chunk extension must not end up in the body
        + b"6\r\n \x00\r\n0\n\r\n"  # bytes inside a chunk that look like framing
        + b"0\r\nX-Checksum: abc\r\n\r\n"  # a trailer after the last chunk
    )
    query = b'{"query": "{ __typename }"}'
    ping = b"POST /ingestion/graphql HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(query), query)
    statuses = raw_exchange(emu, [chunked, ping], requests=2)
    assert statuses[0] == b"HTTP/1.1 201 Created"
    assert statuses[1].startswith(b"HTTP/1.1 401")  # parsed as a request of its own: the upload was read exactly
    upsert(http, emu, {**values, "fileUrl": registered["readUrl"]})
    assert emu.store.content_bytes(values["input"]["key"]) == b"hello \x00\r\n0\n"


def test_a_body_cut_short_is_not_recorded_as_an_upload(emu: UniqueEmulator, http: httpx.Client) -> None:
    registered = upsert(http, emu, variables(emu, "text/plain", 10))
    target = httpx.URL(registered["writeUrl"])
    head = (
        f"PUT {target.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 10\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"12345")
        sock.shutdown(socket.SHUT_WR)  # the client gives up half-way through the body
        answer = sock.makefile("rb").readline()
    assert not answer.startswith(b"HTTP/1.1 2"), answer
    slot = emu.store.uploads[target.params["key"]]
    assert (slot.length, slot.data) == (None, None)
    assert emu.store.contents[registered["id"]].pending_upload is None


# -- downloads ------------------------------------------------------------------------------
def test_download_serves_the_finalized_version_only(emu: UniqueEmulator, http: httpx.Client) -> None:
    first = ingest(http, emu, "blob", b"version one", "text/plain")
    url = emu.content_file_url(first["id"])

    values = variables(emu, "text/plain", len(b"version two"))
    again = upsert(http, emu, values)
    assert put(http, emu, "blob", again["writeUrl"], b"version two", "text/plain").status_code == 201
    assert http.get(url).content == b"version one"  # uploaded, not finalized yet
    assert emu.store.content_bytes(KEY) == b"version one"
    upsert(http, emu, {**values, "fileUrl": again["readUrl"]})
    assert http.get(url).content == b"version two"


def test_download_refuses_unknown_unfinished_unauthorised_and_non_get(emu: UniqueEmulator, http: httpx.Client) -> None:
    registered = upsert(http, emu, variables(emu, "text/plain", 1))
    url = emu.content_file_url(registered["id"])
    assert http.get(url).status_code == 404  # registered only
    assert emu.store.content_bytes(KEY) is None
    assert http.get(emu.content_file_url("cont_missing")).status_code == 404
    assert emu.store.content_bytes("acme/none") is None
    put(http, emu, "blob", registered["writeUrl"], b"x", "text/plain")
    assert http.get(url).status_code == 404  # uploaded, never finalized
    assert emu.store.content_bytes(KEY) is None
    upsert(http, emu, {**variables(emu, "text/plain", 1), "fileUrl": registered["readUrl"]})
    assert httpx.get(url).status_code == 401
    assert http.put(url, content=b"x").status_code == 405
    assert http.get(url).status_code == 200


# -- bytes not kept -------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["blob", "scoped"])
def test_without_kept_bytes_only_length_and_hash_remain(emu: UniqueEmulator, http: httpx.Client, route: str) -> None:
    emu.keep_upload_bytes = False
    data = ALL_BYTES * 3
    values = variables(emu, "application/octet-stream", len(data))
    registered = upsert(http, emu, values)
    assert put(http, emu, route, registered["writeUrl"], data, "application/octet-stream").status_code == 201

    slot = emu.store.uploads[httpx.URL(registered["writeUrl"]).params["key"]]
    assert (slot.data, slot.length, slot.sha256) == (None, len(data), hashlib.sha256(data).hexdigest())
    assert emu.store.contents[registered["id"]].pending_upload is None

    finalized = upsert(http, emu, {**values, "fileUrl": registered["readUrl"]})
    assert finalized["byteSize"] == len(data)
    assert finalized["internallyStoredAt"] is not None
    stored = emu.store.contents[registered["id"]]
    assert (stored.data, stored.byte_size, stored.sha256) == (None, len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(ValueError, match="not kept"):
        emu.store.content_bytes(KEY)
    assert http.get(emu.content_file_url(registered["id"])).status_code == 501


@pytest.mark.parametrize("route", ["blob", "scoped"])
def test_a_large_upload_is_streamed_through_not_held_in_memory(
    emu: UniqueEmulator, http: httpx.Client, route: str
) -> None:
    emu.keep_upload_bytes = False
    emu.scoped_upload_requires_auth = False
    size = 64 * MIB
    block = bytes(range(256)) * (MIB // 256)  # one MiB, sent again and again without new allocations
    expected = hashlib.sha256()
    for _ in range(size // MIB):
        expected.update(block)
    registered = upsert(http, emu, variables(emu, "application/octet-stream", size))
    if route == "blob":
        target = httpx.URL(registered["writeUrl"]).raw_path.decode()
        head = f"PUT {target} HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: {size}\r\n\r\n"
        frames: list[bytes | memoryview] = [head.encode(), *[memoryview(block)] * (size // MIB)]
    else:
        target = scoped_url(emu, registered["writeUrl"]).removeprefix(emu.url)
        head = f"PUT {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size:x}\r\n"
        frames = [head.encode(), *[memoryview(block)] * (size // MIB), b"\r\n0\r\n\r\n"]  # one 64 MiB chunk

    tracemalloc.start()
    try:
        assert raw_exchange(emu, frames) == [b"HTTP/1.1 201 Created"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * MIB, f"the emulator held {peak / MIB:.1f} MiB while receiving a {size // MIB} MiB upload"
    slot = emu.store.uploads[httpx.URL(registered["writeUrl"]).params["key"]]
    assert (slot.length, slot.sha256, slot.data) == (size, expected.hexdigest(), None)
    upsert(http, emu, {**variables(emu, "application/octet-stream", size), "fileUrl": registered["readUrl"]})
    assert emu.store.contents[registered["id"]].byte_size == size
