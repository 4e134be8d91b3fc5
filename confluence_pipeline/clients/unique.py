"""Unique ingestion client: GraphQL content and scope operations, file-diff, blob upload, auth modes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from confluence_pipeline.clients.errors import OutcomeUnknown, RemoteAuthError, RemoteError, UnexpectedResponse
from confluence_pipeline.clients.transport import HttpApi, RetryPolicy
from confluence_pipeline.clients.zitadel import ZitadelTokenProvider
from confluence_pipeline.config.secrets import Scrubber
from confluence_pipeline.config.settings import ClusterLocalSettings, ExternalAuthSettings
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.diff import FileDiff
from confluence_pipeline.domain.models import Source

UniqueSettings = ExternalAuthSettings | ClusterLocalSettings

log = logging.getLogger(__name__)

CONTENT_PAGE = 100
DELETE_BATCH = 20  # what the vendor's connector sends per ContentDeleteByContentIds
SCOPE_PATH_BATCH = 100
KEYS_PER_QUERY = 100

CONTENT_UPSERT = """
mutation ContentUpsert($input: ContentCreateInput!, $fileUrl: String, $chatId: String,
  $scopeId: String, $sourceOwnerType: String, $sourceName: String, $sourceKind: String,
  $storeInternally: Boolean, $baseUrl: String) {
  contentUpsert(input: $input, fileUrl: $fileUrl, chatId: $chatId, scopeId: $scopeId,
    sourceOwnerType: $sourceOwnerType, sourceName: $sourceName, sourceKind: $sourceKind,
    storeInternally: $storeInternally, baseUrl: $baseUrl) {
    id key title byteSize mimeType ownerType ownerId writeUrl readUrl createdAt
    internallyStoredAt source { kind name }
  }
}
"""
PAGINATED_CONTENT_KEYS = """
query PaginatedContent($skip: Int!, $take: Int!, $where: ContentWhereInput) {
  paginatedContent(skip: $skip, take: $take, where: $where) {
    nodes { id key ownerId metadata }
    totalCount } }
"""
PAGINATED_CONTENT_COUNT = """
query PaginatedContentCount($where: ContentWhereInput) {
  paginatedContent(where: $where, skip: 0, take: 0) { totalCount } }
"""
CONTENT_DELETE_BY_IDS = """
mutation ContentDeleteByContentIds($contentIds: [String!]!) {
  contentDeleteByContentIds(contentIds: $contentIds) { id } }
"""
PAGINATED_SCOPE = """
query PaginatedScope($skip: Int!, $take: Int!, $where: ScopeWhereInput!) {
  paginatedScope(skip: $skip, take: $take, where: $where) { totalCount nodes { id name parentId externalId } } }
"""
GENERATE_SCOPES = """
mutation GenerateScopesBasedOnPaths($paths: [String!]!, $inheritAccess: Boolean) {
  generateScopesBasedOnPaths(paths: $paths, inheritAccess: $inheritAccess) { id name parentId externalId } }
"""
UPDATE_SCOPE = """
mutation UpdateScope($id: String!, $input: ScopeUpdateInput!) {
  updateScope(id: $id, input: $input) { id name externalId parentId } }
"""


class UniqueGraphQLError(RemoteError):
    """A GraphQL response with `errors`; `status_code` is `errors[0].extensions.response.statusCode`."""

    def __init__(self, operation: str, message: str, status_code: int | None) -> None:
        self.operation = operation
        self.status_code = status_code
        super().__init__(
            system="unique",
            method="POST",
            route=f"graphql {operation}",
            status=status_code,
            detail=f"GraphQL error: {message}",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The base class rebuilds from keyword fields this __init__ does not take: keep it picklable.
        return (type(self), (self.operation, self.detail.removeprefix("GraphQL error: "), self.status_code))


UNSETTLED = (OutcomeUnknown, UniqueGraphQLError, UnexpectedResponse)
"""Failures of a mutation that leave open whether it was applied, so only reading back can settle them.

Unique answers a failing resolver with `errors`, also when the failure came after the write (the contract's
own example fails at `contentUpsert.writeUrl`), and a 2xx answer we cannot read says nothing either.
"""


@dataclass(frozen=True)
class ContentNode:
    id: str
    key: str
    owner_id: str | None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ScopeNode:
    id: str
    name: str
    parent_id: str | None
    external_id: str | None


@dataclass(frozen=True)
class ContentSpec:
    """What one page becomes in Unique (the body travels separately)."""

    key: str
    title: str
    url: str
    byte_size: int
    metadata: Mapping[str, str]
    scope_id: str
    source: Source
    updated_at: str  # the page's `version.when` in UTC ISO-8601, as the sync's file-diff list carries it
    mime_type: str = "text/html"


@dataclass(frozen=True)
class Registration:
    id: str
    write_url: str
    read_url: str


class UniqueClient:
    """Every call to Unique goes through here: one rate limit, one counter, one auth, one scrubber."""

    def __init__(
        self,
        settings: UniqueSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        verify: Any = None,
    ) -> None:
        self.settings = settings
        timeout = httpx.Timeout(settings.http.timeout_seconds, connect=min(15.0, settings.http.timeout_seconds))
        self.scrubber = Scrubber(secret.get_secret_value() for secret in settings.secrets)
        self.api = HttpApi(
            system="unique",
            base_url=settings.ingestion_base,
            per_minute=settings.tokens_per_minute,
            scrubber=self.scrubber,
            timeout=timeout,
            retry=RetryPolicy(retry_after_max=settings.http.retry_after_max_seconds),
            transport=transport,
            verify=verify,
            max_connections=max(8, settings.concurrency * 2),
            logger=logging.getLogger("confluence_pipeline.clients.unique.http"),
        )
        self.tokens: ZitadelTokenProvider | None = None
        if isinstance(settings, ExternalAuthSettings):
            # Token calls are not rate limited (Unique's connector does not limit them) but are counted and
            # retried; the token lives as long as this client, so one run fetches it once.
            token_api = HttpApi(
                system="zitadel",
                base_url=settings.zitadel_token_url,
                scrubber=self.scrubber,
                timeout=timeout,
                retry=RetryPolicy(retry_after_max=settings.http.retry_after_max_seconds),
                transport=transport,
                verify=verify,
                logger=logging.getLogger("confluence_pipeline.clients.zitadel.http"),
            )
            self.tokens = ZitadelTokenProvider(
                token_api,
                token_url=settings.zitadel_token_url,
                client_id=settings.zitadel_client_id,
                client_secret=settings.zitadel_client_secret.get_secret_value(),
                project_id=settings.zitadel_project_id,
                extra_headers={k: v.get_secret_value() for k, v in settings.zitadel_extra_headers.items()},
            )

    def __repr__(self) -> str:
        return f"UniqueClient(base={self.settings.ingestion_base!r}, mode={self.settings.auth_mode!r})"

    # -- transport ------------------------------------------------------------------------------
    def _headers(self) -> tuple[dict[str, str], str | None]:
        headers = self.settings.headers
        token = None
        if self.tokens is not None:
            token = self.tokens.token()
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers.setdefault("x-service-id", "confluence-connector")
        return headers, token

    def _call(self, method: str, url: str, *, route: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; a 401 in external mode drops the token and tries once more.

        A 401 means the server did not act, so the second try is safe even for a non-idempotent request.
        """
        headers, token = self._headers()
        try:
            return self.api.request(method, url, route=route, headers=headers, auth=None, **kwargs)
        except RemoteAuthError as exc:
            if self.tokens is None or token is None or exc.status != 401:
                raise
            log.warning("Unique refused the bearer token on %s; fetching a new one", route)
            self.tokens.invalidate(token)
            headers, _ = self._headers()
            return self.api.request(method, url, route=route, headers=headers, auth=None, **kwargs)

    def graphql(
        self, operation: str, query: str, variables: Mapping[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """`data` of one GraphQL call; `idempotent=False` for a mutation that must not be sent twice (see transport)."""
        response = self._call(
            "POST",
            self.settings.graphql_url,
            route=f"graphql {operation}",
            json={"query": query, "variables": dict(variables), "operationName": operation},
            idempotent=idempotent,
        )
        payload = response.json()
        if not isinstance(payload, dict):
            raise UnexpectedResponse(
                system="unique",
                method="POST",
                route=f"graphql {operation}",
                status=response.status_code,
                detail="the GraphQL response is not a JSON object",
            )
        errors = payload.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
            status = ((first.get("extensions") or {}).get("response") or {}).get("statusCode")
            # Servers echo request details (headers included) into error messages: scrub like any other error.
            message = self.api.scrub(str(first.get("message", "unknown error")))
            raise UniqueGraphQLError(operation, message, status if isinstance(status, int) else None)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise UnexpectedResponse(
                system="unique",
                method="POST",
                route=f"graphql {operation}",
                status=response.status_code,
                detail="the GraphQL response has no data",
            )
        return data

    # -- file diff ------------------------------------------------------------------------------
    def file_diff(self, partial_key: str, file_list: Sequence[Mapping[str, str]], source: Source) -> FileDiff:
        response = self._call(
            "POST",
            self.settings.file_diff_url,
            route="POST file-diff",
            json={
                "partialKey": partial_key,
                "sourceKind": source.kind,
                "sourceName": source.name,
                "fileList": list(file_list),
            },
        )
        try:
            return FileDiff.from_response(response.json())
        except (ValueError, TypeError, AttributeError) as exc:
            raise UnexpectedResponse(
                system="unique",
                method="POST",
                route="POST file-diff",
                status=response.status_code,
                detail=f"malformed file-diff response: {exc}",
            ) from exc

    # -- ingestion ------------------------------------------------------------------------------
    def _upsert_variables(self, spec: ContentSpec) -> dict[str, Any]:
        return {
            "input": {
                "key": spec.key,
                "title": spec.title,
                "mimeType": spec.mime_type,
                "ownerType": "SCOPE",
                "url": spec.url,
                "byteSize": spec.byte_size,
                "metadata": dict(spec.metadata),
            },
            "scopeId": spec.scope_id,
            "sourceOwnerType": "COMPANY",
            "sourceKind": spec.source.kind,
            "sourceName": spec.source.name,
            "storeInternally": True,
            "baseUrl": spec.source.name,
        }

    def register(self, spec: ContentSpec) -> Registration:
        data = self.graphql("ContentUpsert", CONTENT_UPSERT, self._upsert_variables(spec))
        node = data.get("contentUpsert") or {}
        content_id, write_url, read_url = node.get("id"), node.get("writeUrl"), node.get("readUrl")
        if not (isinstance(content_id, str) and isinstance(write_url, str) and isinstance(read_url, str)):
            raise UnexpectedResponse(
                system="unique",
                method="POST",
                route="graphql ContentUpsert",
                status=200,
                detail=f"registration of {spec.key} returned no id/writeUrl/readUrl",
            )
        return Registration(content_id, write_url, read_url)

    def upload_url(self, write_url: str) -> str:
        if self.settings.auth_mode != "cluster_local":
            return write_url
        keys = parse_qs(urlsplit(write_url).query).get("key")
        if not keys:
            raise UnexpectedResponse(
                system="unique",
                method="PUT",
                route="PUT upload",
                status=200,
                detail="the writeUrl carries no key parameter, so it cannot be rewritten for cluster_local",
            )
        return f"{self.settings.ingestion_base}/scoped/upload?key={quote(keys[0], safe='')}"

    def upload(self, registration: Registration, data: bytes, mime_type: str = "text/html") -> None:
        headers = {"Content-Type": mime_type, "x-ms-blob-type": "BlockBlob"}
        if self.settings.auth_mode == "cluster_local":
            # The scoped upload sits behind the same gateway as the API: send the service headers
            # (never a token) so either server behaviour accepts it.
            headers.update(self.settings.headers)
        self.api.request(
            "PUT",
            self.upload_url(registration.write_url),
            route="PUT upload",
            content=data,
            headers=headers,
            auth=None,
            expect="any",
        )

    def upload_stream(
        self, registration: Registration, chunks: Iterable[bytes], byte_size: int, mime_type: str
    ) -> None:
        """PUT a file of `byte_size` bytes from `chunks` without holding it: the length is declared up front
        (Azure Put Blob refuses chunked bodies with 411) and the body is sent once, never replayed."""
        headers = {
            "Content-Type": mime_type,
            "Content-Length": str(byte_size),
            "x-ms-blob-type": "BlockBlob",
        }
        if self.settings.auth_mode == "cluster_local":
            headers.update(self.settings.headers)
        url = self.upload_url(registration.write_url)
        with self.api.stream("PUT", url, route="PUT upload", content=chunks, headers=headers, auth=None, attempts=1):
            pass

    def finalize(self, spec: ContentSpec, registration: Registration) -> str:
        """Make the uploaded file the content's current version; returns the content id.

        Never sent twice: a server may refuse a second finalize of the same upload. When the answer leaves
        the outcome open (`UNSETTLED`), `is_current` decides; if it cannot, the original error is raised.
        """
        variables = self._upsert_variables(spec)
        variables["fileUrl"] = registration.read_url
        try:
            data = self.graphql("ContentUpsert", CONTENT_UPSERT, variables, idempotent=False)
            content_id = (data.get("contentUpsert") or {}).get("id")
            if not isinstance(content_id, str) or not content_id:
                raise UnexpectedResponse(
                    system="unique",
                    method="POST",
                    route="graphql ContentUpsert",
                    status=200,
                    detail=f"finalize of {spec.key} returned no id",
                )
            return content_id
        except UNSETTLED as exc:
            try:
                finalized = self.is_current(spec)
            except RemoteError as check_exc:
                log.warning("Finalize of %s: %s; reading back whether it was applied failed too", spec.key, check_exc)
                raise exc from None
            if not finalized:
                log.warning("Finalize of %s: %s; the read-back shows it was not applied", spec.key, exc)
                raise
            log.warning("Finalize of %s: %s; the read-back shows it was applied", spec.key, exc)
            return registration.id

    def is_current(self, spec: ContentSpec) -> bool:
        """Whether Unique holds `spec.key` finalized at `spec.updated_at`: what the next sync's file-diff would say.

        No content field says "finalized with this upload" (`ingestionState` is QUEUED after registration
        and after finalize alike), so a file-diff of this one item is asked: neither new nor updated means
        stored and up to date. Every other stored item of the prefix comes back as deleted; that is ignored.
        """
        prefix, _, relative_key = spec.key.rpartition("/")
        entry = {"key": relative_key, "url": spec.url, "updatedAt": spec.updated_at}
        diff = self.file_diff(prefix, [entry], spec.source)
        return relative_key not in diff.new and relative_key not in diff.updated

    # -- content queries and deletes ------------------------------------------------------------
    def count(self, where: Mapping[str, Any]) -> int:
        data = self.graphql("PaginatedContentCount", PAGINATED_CONTENT_COUNT, {"where": dict(where)})
        total = (data.get("paginatedContent") or {}).get("totalCount")
        if not isinstance(total, int):
            raise UnexpectedResponse(
                system="unique",
                method="POST",
                route="graphql PaginatedContentCount",
                status=200,
                detail="no totalCount in the count response",
            )
        return total

    def iter_content(self, where: Mapping[str, Any], *, page_size: int = CONTENT_PAGE) -> Iterator[ContentNode]:
        skip = 0
        while True:
            data = self.graphql(
                "PaginatedContent", PAGINATED_CONTENT_KEYS, {"skip": skip, "take": page_size, "where": dict(where)}
            )
            nodes = (data.get("paginatedContent") or {}).get("nodes") or []
            for node in nodes:
                yield ContentNode(
                    str(node["id"]), str(node.get("key") or ""), node.get("ownerId"), _metadata(node.get("metadata"))
                )
            if len(nodes) < page_size:
                return
            skip += page_size

    def ids_for_keys(self, keys: Sequence[str]) -> dict[str, str]:
        """Exact key → content id for the keys that exist."""
        return {key: node.id for key, node in self.nodes_for_keys(keys).items()}

    def nodes_for_keys(self, keys: Sequence[str]) -> dict[str, ContentNode]:
        """Exact key → content node (with its metadata) for the keys that exist."""
        found: dict[str, ContentNode] = {}
        for chunk in batched(list(keys), KEYS_PER_QUERY):
            wanted = set(chunk)
            for node in self.iter_content({"key": {"in": chunk}}):
                if node.key in wanted:
                    found[node.key] = node
        return found

    def existing_ids(self, content_ids: Sequence[str]) -> set[str]:
        """The ids among `content_ids` that exist in Unique."""
        return set(self.nodes_for_ids(content_ids))

    def nodes_for_ids(self, content_ids: Sequence[str]) -> dict[str, ContentNode]:
        """Content id → content node for the ids that exist."""
        found: dict[str, ContentNode] = {}
        for chunk in batched(list(content_ids), KEYS_PER_QUERY):
            wanted = set(chunk)
            found.update((node.id, node) for node in self.iter_content({"id": {"in": chunk}}) if node.id in wanted)
        return found

    def delete(self, content_ids: Sequence[str]) -> list[str]:
        """Delete by id in batches of DELETE_BATCH; returns the ids that are gone afterwards, in request order.

        Ids in the answer count as deleted. A batch whose outcome is open (`UNSETTLED`) or whose answer names
        fewer ids than were sent is settled by reading back (`_settle_deletion`); a batch whose every id
        the answer names costs nothing more. Raises RemoteError when a batch is refused outright (nothing of
        it was deleted) or a read-back fails.
        """
        gone: list[str] = []
        for chunk in batched(list(dict.fromkeys(content_ids)), DELETE_BATCH):
            try:
                confirmed = self._delete_batch(chunk)
            except UNSETTLED as exc:
                log.warning("Deleting %d items: %s; reading back which of them still exist", len(chunk), exc)
                confirmed = set()
            unconfirmed = [content_id for content_id in chunk if content_id not in confirmed]
            if unconfirmed:
                confirmed |= self._settle_deletion(unconfirmed)
            gone.extend(content_id for content_id in chunk if content_id in confirmed)
        return gone

    def _settle_deletion(self, content_ids: Sequence[str]) -> set[str]:
        """Which of `content_ids` are gone: missing on read-back, or still there and deleted once more.

        An id that still exists was provably not deleted, so sending it again cannot act twice. Whatever
        exists after that second try is left out (the caller reports it as not deleted).
        """
        remaining = self.existing_ids(content_ids)
        gone = {content_id for content_id in content_ids if content_id not in remaining}
        again = [content_id for content_id in content_ids if content_id in remaining]
        if not again:
            return gone
        try:
            confirmed = self._delete_batch(again)
        except UNSETTLED as exc:
            log.warning("Deleting %d items again: %s; reading back which of them still exist", len(again), exc)
            confirmed = set()
        except RemoteError as exc:  # refused outright: nothing of it was deleted, which is all we need to know
            log.warning("Deleting %d items again was refused: %s", len(again), exc)
            return gone
        unconfirmed = [content_id for content_id in again if content_id not in confirmed]
        if unconfirmed:
            still_there = self.existing_ids(unconfirmed)
            confirmed |= {content_id for content_id in unconfirmed if content_id not in still_there}
        return gone | confirmed

    def _delete_batch(self, content_ids: Sequence[str]) -> set[str]:
        """One ContentDeleteByContentIds call; the ids of `content_ids` its answer names as deleted."""
        data = self.graphql(
            "ContentDeleteByContentIds", CONTENT_DELETE_BY_IDS, {"contentIds": list(content_ids)}, idempotent=False
        )
        named = {
            str(node["id"])
            for node in data.get("contentDeleteByContentIds") or []
            if isinstance(node, dict) and node.get("id")
        }
        return named & set(content_ids)

    # -- scopes ---------------------------------------------------------------------------------
    def scopes_for_paths(self, paths: Sequence[str]) -> list[ScopeNode]:
        """One leaf scope per path, in input order, created when missing (the server answers in input order)."""
        scopes: list[ScopeNode] = []
        for chunk in batched(list(paths), SCOPE_PATH_BATCH):
            data = self.graphql("GenerateScopesBasedOnPaths", GENERATE_SCOPES, {"paths": chunk, "inheritAccess": True})
            nodes = data.get("generateScopesBasedOnPaths") or []
            if len(nodes) != len(chunk):
                raise UnexpectedResponse(
                    system="unique",
                    method="POST",
                    route="graphql GenerateScopesBasedOnPaths",
                    status=200,
                    detail=f"asked for {len(chunk)} scopes, got {len(nodes)}",
                )
            scopes.extend(_scope(node) for node in nodes)
        return scopes

    def find_scopes(self, where: Mapping[str, Any]) -> list[ScopeNode]:
        scopes: list[ScopeNode] = []
        skip = 0
        while True:
            data = self.graphql(
                "PaginatedScope", PAGINATED_SCOPE, {"skip": skip, "take": CONTENT_PAGE, "where": dict(where)}
            )
            nodes = (data.get("paginatedScope") or {}).get("nodes") or []
            scopes.extend(_scope(node) for node in nodes)
            if len(nodes) < CONTENT_PAGE:
                return scopes
            skip += CONTENT_PAGE

    def scope(self, scope_id: str) -> ScopeNode | None:
        found = self.find_scopes({"id": {"equals": scope_id}})
        return found[0] if found else None

    def set_scope_external_id(self, scope_id: str, external_id: str | None) -> None:
        self.graphql("UpdateScope", UPDATE_SCOPE, {"id": scope_id, "input": {"externalId": external_id}})

    # -- bookkeeping ----------------------------------------------------------------------------
    def request_counts(self) -> dict[str, int]:
        counts = dict(self.api.counter.snapshot())
        if self.tokens is not None:
            counts.update(self.tokens.api.counter.snapshot())
        return counts

    def close(self) -> None:
        self.api.close()
        if self.tokens is not None:
            self.tokens.api.close()


def _metadata(value: Any) -> Mapping[str, Any] | None:
    """Unique stores metadata as a flat map; some servers hand it back as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping) else None


def _scope(node: Mapping[str, Any]) -> ScopeNode:
    return ScopeNode(
        id=str(node["id"]),
        name=str(node.get("name") or ""),
        parent_id=node.get("parentId"),
        external_id=node.get("externalId"),
    )
