"""HTTP face of the Unique emulator: Zitadel token, ingestion GraphQL, file-diff, uploads and content downloads."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from confluence_sandbox.http import EmulatorServer, Fault, Request, Response
from confluence_sandbox.unique.graphql_api import (
    GraphQLContext,
    error_entry,
    error_response,
    operation_label,
    parse_datetime,
    parse_document,
    run_document,
)
from confluence_sandbox.unique.store import FileDiffReport, SubmittedFile, UniqueStore

AUTH_MODES = ("external", "cluster_local", "any")
TOKEN_PATH = "/oauth/v2/token"
GRAPHQL_PATH = "/ingestion/graphql"
SCOPE_MANAGEMENT_GRAPHQL_PATH = "/scope-management/graphql"
FILE_DIFF_PATH = "/ingestion/v2/content/file-diff"
SCOPED_UPLOAD_PATH = "/ingestion/scoped/upload"
BLOB_UPLOAD_PATH = "/blob/upload"
CONTENT_PATH = "/ingestion/v1/content"
CONTENT_FILE_PATH = re.compile(r"^/ingestion/v1/content/([^/]+)/file$")


def _nest_error(status: int, message: str, error: str) -> Response:
    """The NestJS error body Unique's REST routes answer with."""
    return Response.json({"statusCode": status, "message": message, "error": error}, status=status)


def _unauthorized() -> Response:
    response = _nest_error(401, "Unauthorized", "Unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="unique"'
    return response


def graphql_error_fault(
    message: str = "Internal server error",
    *,
    status_code: int = 500,
    code: str = "INTERNAL_SERVER_ERROR",
    path: list[str | int] | None = None,
    http_status: int = 200,
    after_handler: bool = True,
) -> Fault:
    """A fault whose answer is a GraphQL error in the contract's shape; by default the mutation still happens."""
    body = error_response([error_entry(message, status_code, code, path)])
    return Fault(
        status=http_status,
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode("utf-8"),
        after_handler=after_handler,
    )


class UniqueEmulator(EmulatorServer):
    """A fake of Unique's ingestion side (GraphQL, file-diff, uploads, Zitadel), backed by a `UniqueStore`.

    Knobs (constructor keywords, also plain attributes a test may change while the server runs):

    - `report_moves` (True): file-diff lists a submitted key in `movedFiles` when a stored row
      matches it, is not stale, and was stored with a different `url`. Off, such keys are unchanged.
    - `file_diff_filters_by_source` (False): file-diff only considers stored rows written with the
      request's `sourceKind`/`sourceName`. Off, every stored key containing `partialKey` counts, so a
      diff may name rows another connector wrote.
    - `max_delete_ids` (None): `contentDeleteByContentIds` with more ids is a 400 GraphQL error and
      deletes nothing.
    - `keep_upload_bytes` (True): off, uploads keep only their length and SHA-256 (`UploadSlot`,
      `StoredContent.byte_size`/`sha256`), so large-file tests do not hold the file in memory.
    - `check_byte_size` (True): a finalize whose upload length differs from the byteSize declared
      at registration or finalize is a 400. On by default because the emulator always checked it.
    - `scoped_upload_requires_auth` (False): on, the cluster-local upload route demands the auth headers
      of `auth_mode`, as a stricter gateway might. Off, it takes uploads without auth, as the contract says
      (unique-ingestion.md §1.2, §10.13: blob uploads carry no auth headers in either mode).

    What tests read: `store`, `requests`, `operations` (GraphQL operations by name), `file_diffs`
    (every file-diff answer) and `moved_keys_reported`.
    """

    name = "unique-emulator"

    def __init__(
        self,
        *,
        client_id: str = "connector",
        client_secret: str = "zitadel-secret",
        project_id: str = "123456",
        company_id: str = "company-1",
        user_id: str = "service-user-1",
        token_ttl: int = 3600,
        auth_mode: str = "any",
        host: str = "127.0.0.1",
        port: int = 0,
        report_moves: bool = True,
        file_diff_filters_by_source: bool = False,
        max_delete_ids: int | None = None,
        keep_upload_bytes: bool = True,
        check_byte_size: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.client_id = client_id
        self._client_secret = client_secret
        self.project_id = project_id
        self.company_id = company_id
        self.user_id = user_id
        self.token_ttl = token_ttl
        self.auth_mode = auth_mode
        # Unique's connector sends no auth on uploads (contract §1.2, §10.13), so by default none is demanded.
        self.scoped_upload_requires_auth = False
        self.report_moves = report_moves
        self.file_diff_filters_by_source = file_diff_filters_by_source
        self.max_delete_ids = max_delete_ids
        self.keep_upload_bytes = keep_upload_bytes
        self.check_byte_size = check_byte_size
        self.clock: Callable[[], float] = time.monotonic  # token expiry clock; tests may replace it
        self.store = UniqueStore()
        self.operations: Counter[str] = Counter()
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # token -> expiry on `clock`
        self._file_diffs: list[FileDiffReport] = []
        self._state_lock = threading.Lock()

    def __enter__(self) -> UniqueEmulator:
        self.start()
        return self

    # -- configuration ---------------------------------------------------------------------
    @property
    def auth_mode(self) -> str:
        return self._auth_mode

    @auth_mode.setter
    def auth_mode(self, value: str) -> None:
        if value not in AUTH_MODES:
            raise ValueError(f"auth_mode must be one of {AUTH_MODES}, got {value!r}")
        self._auth_mode = value

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}{GRAPHQL_PATH}"

    @property
    def ingestion_url(self) -> str:
        return f"{self.url}{CONTENT_PATH}"

    def content_file_url(self, content_id: str) -> str:
        """Where a finalized content's bytes are served (GET, with the same auth as GraphQL)."""
        return f"{self.url}{CONTENT_PATH}/{content_id}/file"

    @property
    def file_diff_url(self) -> str:
        return f"{self.url}{FILE_DIFF_PATH}"

    @property
    def scope_management_graphql_url(self) -> str:
        return f"{self.url}{SCOPE_MANAGEMENT_GRAPHQL_PATH}"

    @property
    def scope_audience(self) -> str:
        return f"urn:zitadel:iam:org:project:id:{self.project_id}:aud"

    def expire_tokens(self) -> None:
        """Invalidate every token handed out so far (as if they all ran out)."""
        with self._state_lock:
            self._tokens.clear()

    def reset_operations(self) -> None:
        with self._state_lock:
            self.operations.clear()

    @property
    def file_diffs(self) -> list[FileDiffReport]:
        """Every file-diff answered so far, oldest first."""
        with self._state_lock:
            return list(self._file_diffs)

    @property
    def moved_keys_reported(self) -> list[str]:
        """Full stored keys of the rows any file-diff so far reported as moved, in order (repeats kept)."""
        return [key for report in self.file_diffs for key in report.moved_stored_keys]

    def streams_body(self, method: str, path: str) -> bool:
        return method == "PUT" and path in (SCOPED_UPLOAD_PATH, BLOB_UPLOAD_PATH)

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        routes: dict[str, tuple[str, Callable[[Request], Response]]] = {
            TOKEN_PATH: ("POST", self._token),
            GRAPHQL_PATH: ("POST", self._graphql),
            SCOPE_MANAGEMENT_GRAPHQL_PATH: ("POST", self._graphql),
            FILE_DIFF_PATH: ("POST", self._file_diff),
            SCOPED_UPLOAD_PATH: ("PUT", self._scoped_upload),
            BLOB_UPLOAD_PATH: ("PUT", self._blob_upload),
        }
        if request.path == "/" and request.method == "GET":
            return Response.json(self.describe())
        content_file = CONTENT_FILE_PATH.match(request.path)
        if content_file is not None:
            if request.method != "GET":
                return _nest_error(405, f"Cannot {request.method} {request.path}", "Method Not Allowed")
            return self._content_file(request, content_file.group(1))
        route = routes.get(request.path)
        if route is None:
            return _nest_error(404, f"Cannot {request.method} {request.path}", "Not Found")
        method, handler = route
        if request.method != method:
            return _nest_error(405, f"Cannot {request.method} {request.path}", "Method Not Allowed")
        return handler(request)

    def describe(self) -> dict[str, str]:
        return {
            "token_url": self.token_url,
            "graphql_url": self.graphql_url,
            "ingestion_url": self.ingestion_url,
            "file_diff_url": self.file_diff_url,
            "scope_management_graphql_url": self.scope_management_graphql_url,
            "auth_mode": self.auth_mode,
        }

    # -- auth ------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type"}, status=400)
        client_id, client_secret = self._client_credentials(request, form)
        if not (
            client_id is not None
            and client_secret is not None
            and secrets.compare_digest(client_id.encode(), self.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), self._client_secret.encode())
        ):
            return Response.json({"error": "invalid_client"}, status=401)
        if self.scope_audience not in form.get("scope", "").split():
            return Response.json(
                {"error": "invalid_scope", "error_description": "project audience scope missing"}, status=400
            )
        token = secrets.token_urlsafe(32)
        with self._state_lock:
            self._tokens[token] = self.clock() + self.token_ttl
            self.tokens_issued += 1
        return Response.json(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl},
            headers={"Cache-Control": "no-store"},
        )

    @staticmethod
    def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            user, sep, password = decoded.partition(":")
            return (unquote(user), unquote(password)) if sep else (None, None)
        return form.get("client_id"), form.get("client_secret")

    def _bearer_valid(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._state_lock:
            expiry = self._tokens.get(token.strip())
            return expiry is not None and self.clock() < expiry

    def _service_headers_valid(self, request: Request) -> bool:
        return (
            request.headers.get("x-company-id") == self.company_id and request.headers.get("x-user-id") == self.user_id
        )

    def _authorized(self, request: Request) -> bool:
        if self.auth_mode == "external":
            return self._bearer_valid(request)
        if self.auth_mode == "cluster_local":
            return self._service_headers_valid(request)
        return self._bearer_valid(request) or self._service_headers_valid(request)

    # -- GraphQL ---------------------------------------------------------------------------
    def _graphql(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        try:
            payload = request.json()
        except (ValueError, UnicodeDecodeError):
            return Response.json(error_response([error_entry("Body is not valid JSON", 400, "BAD_REQUEST")]), 400)
        query = payload.get("query") if isinstance(payload, dict) else None
        variables = payload.get("variables") if isinstance(payload, dict) else None
        operation_name = payload.get("operationName") if isinstance(payload, dict) else None
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(operation_name, str | None)
        ):
            message = "Body must be {query: string, variables?: object, operationName?: string}"
            return Response.json(error_response([error_entry(message, 400, "BAD_REQUEST")]), 400)
        document = parse_document(query)
        if isinstance(document, dict):
            return Response.json(document)
        with self._state_lock:
            self.operations[operation_label(document, operation_name)] += 1
        context = GraphQLContext(
            store=self.store,
            blob_upload_url=f"{self._public_base(request)}{BLOB_UPLOAD_PATH}",
            user_id=self.user_id,
            company_id=self.company_id,
            check_byte_size=self.check_byte_size,
            max_delete_ids=self.max_delete_ids,
        )
        return Response.json(run_document(document, variables, operation_name, context))

    def _public_base(self, request: Request) -> str:
        """The writeUrl must work from wherever the client reached us (e.g. a container via 0.0.0.0)."""
        host = request.headers.get("host")
        return f"{'https' if self.tls else 'http'}://{host}" if host else self.url

    # -- file diff -------------------------------------------------------------------------
    def _file_diff(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        try:
            payload = request.json()
        except (ValueError, UnicodeDecodeError):
            return _nest_error(400, "Body is not valid JSON", "Bad Request")
        problem, submitted, partial_key = _parse_file_diff(payload)
        if problem:
            return _nest_error(400, problem, "Bad Request")
        report = self.store.file_diff(
            partial_key,
            submitted,
            source_kind=payload["sourceKind"],
            source_name=payload["sourceName"],
            report_moves=self.report_moves,
            filter_by_source=self.file_diff_filters_by_source,
        )
        with self._state_lock:
            self._file_diffs.append(report)
        return Response.json(report.response())

    # -- uploads ---------------------------------------------------------------------------
    def _blob_upload(self, request: Request) -> Response:
        """Azure Put Blob on a pre-signed URL: auth headers are neither needed nor looked at."""
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            return _azure_error(411, "MissingContentLengthHeader", "Content-Length is required")
        if request.headers.get("x-ms-blob-type", "").lower() != "blockblob":
            return _azure_error(400, "MissingRequiredHeader", "x-ms-blob-type: BlockBlob is required")
        return self._store_upload(request)

    def _scoped_upload(self, request: Request) -> Response:
        if self.scoped_upload_requires_auth and not self._authorized(request):
            return _unauthorized()
        return self._store_upload(request)

    def _store_upload(self, request: Request) -> Response:
        write_key = request.param("key")
        if not write_key:
            return _nest_error(400, "Query parameter key is required", "Bad Request")
        content_type = request.headers.get("x-ms-blob-content-type") or request.headers.get("content-type")
        # Hash while reading so that, with keep_upload_bytes off, a large upload never sits in memory.
        digest = hashlib.sha256()
        kept: list[bytes] | None = [] if self.keep_upload_bytes else None
        length = 0
        for piece in request.stream.chunks() if request.stream is not None else [request.body]:
            digest.update(piece)
            length += len(piece)
            if kept is not None:
                kept.append(piece)
        slot = self.store.record_upload(
            write_key,
            b"".join(kept) if kept is not None else None,
            content_type,
            length=length,
            sha256=digest.hexdigest(),
        )
        if slot is None:
            return _nest_error(404, "Unknown or expired upload key", "Not Found")
        return Response(201, b"", {"ETag": f'"0x{secrets.token_hex(8).upper()}"'})

    # -- downloads -------------------------------------------------------------------------
    def _content_file(self, request: Request, content_id: str) -> Response:
        """The finalized bytes of one content, with its mime type (what Unique's `/content/{id}/file` serves)."""
        if not self._authorized(request):
            return _unauthorized()
        with self.store.lock:
            content = self.store.contents.get(content_id)
            finalized = content is not None and content.finalized_at is not None
            data = content.data if content is not None else None
            mime_type = content.mime_type if content is not None else ""
        if not finalized:
            return _nest_error(404, f"Content {content_id} not found or not ingested yet", "Not Found")
        if data is None:
            return _nest_error(
                501, "The emulator kept no bytes for this content (keep_upload_bytes is off)", "Not Implemented"
            )
        return Response(200, data, {"Content-Type": mime_type})


def _azure_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(status, body.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code})


def _parse_file_diff(payload: Any) -> tuple[str | None, dict[str, SubmittedFile], str]:
    """(problem, {relative key: submitted file}, partialKey); a problem string means 400."""
    if not isinstance(payload, dict):
        return "Body must be a JSON object", {}, ""
    partial_key = payload.get("partialKey")
    if not isinstance(partial_key, str) or not partial_key:
        return "partialKey must be a non-empty string", {}, ""
    for name in ("sourceKind", "sourceName"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            return f"{name} must be a non-empty string", {}, ""
    file_list = payload.get("fileList")
    if not isinstance(file_list, list):
        return "fileList must be an array", {}, ""
    submitted: dict[str, SubmittedFile] = {}
    for index, item in enumerate(file_list):
        if not isinstance(item, dict):
            return f"fileList[{index}] must be an object", {}, ""
        key, url, updated_at = item.get("key"), item.get("url"), item.get("updatedAt")
        if not isinstance(key, str) or not key or "/" in key:
            return f"fileList[{index}].key must be a non-empty string without '/'", {}, ""
        if not isinstance(url, str):
            return f"fileList[{index}].url must be a string", {}, ""
        if not isinstance(updated_at, str):
            return f"fileList[{index}].updatedAt must be a string", {}, ""
        try:
            parsed = parse_datetime(updated_at) if updated_at else None
        except ValueError:
            return f"fileList[{index}].updatedAt is not ISO-8601: {json.dumps(updated_at)}", {}, ""
        previous = submitted.get(key)
        if previous is None or _newer(parsed, previous.updated_at):
            submitted[key] = SubmittedFile(parsed, url)
    return None, submitted, partial_key


def _newer(candidate: datetime | None, current: datetime | None) -> bool:
    """A repeated key keeps its newest entry; an entry without a time gives way to any other."""
    return current is None or (candidate is not None and candidate > current)
