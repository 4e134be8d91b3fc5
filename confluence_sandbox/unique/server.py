"""HTTP face of the Unique emulator: Zitadel token, ingestion GraphQL, file-diff and the two upload routes."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from confluence_sandbox.http import EmulatorServer, Request, Response
from confluence_sandbox.unique.graphql_api import (
    GraphQLContext,
    error_entry,
    error_response,
    operation_label,
    parse_datetime,
    parse_document,
    run_document,
)
from confluence_sandbox.unique.store import UniqueStore

AUTH_MODES = ("external", "cluster_local", "any")
TOKEN_PATH = "/oauth/v2/token"
GRAPHQL_PATH = "/ingestion/graphql"
SCOPE_MANAGEMENT_GRAPHQL_PATH = "/scope-management/graphql"
FILE_DIFF_PATH = "/ingestion/v2/content/file-diff"
SCOPED_UPLOAD_PATH = "/ingestion/scoped/upload"
BLOB_UPLOAD_PATH = "/blob/upload"


def _nest_error(status: int, message: str, error: str) -> Response:
    """The NestJS error body Unique's REST routes answer with."""
    return Response.json({"statusCode": status, "message": message, "error": error}, status=status)


def _unauthorized() -> Response:
    response = _nest_error(401, "Unauthorized", "Unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="unique"'
    return response


class UniqueEmulator(EmulatorServer):
    """A fake of Unique's ingestion side (contract unique-ingestion.md), backed by a `UniqueStore`."""

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
    ) -> None:
        super().__init__(host, port)
        self.client_id = client_id
        self._client_secret = client_secret
        self.project_id = project_id
        self.company_id = company_id
        self.user_id = user_id
        self.token_ttl = token_ttl
        self.auth_mode = auth_mode
        # The contract says CC sends no auth on uploads; we demand it on the cluster-local route unless told not to.
        self.scoped_upload_requires_auth = True
        self.clock: Callable[[], float] = time.monotonic  # token expiry clock; tests may replace it
        self.store = UniqueStore()
        self.operations: Counter[str] = Counter()
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # token -> expiry on `clock`
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
        return f"{self.url}/ingestion/v1/content"

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
        return Response.json(self.store.file_diff(partial_key, submitted))

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
        if self.store.record_upload(write_key, request.body, content_type) is None:
            return _nest_error(404, "Unknown or expired upload key", "Not Found")
        return Response(201, b"", {"ETag": f'"0x{secrets.token_hex(8).upper()}"'})


def _azure_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(status, body.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code})


def _parse_file_diff(payload: Any) -> tuple[str | None, dict[str, Any], str]:
    """(problem, {relative key: updatedAt or None}, partialKey); a problem string means 400."""
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
    submitted: dict[str, Any] = {}
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
        submitted[key] = parsed if previous is None or (parsed is not None and parsed > previous) else previous
    return None, submitted, partial_key
