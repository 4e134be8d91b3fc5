"""The Unique emulator's GraphQL side, driven with the exact documents from the ingestion contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLUSTER_HEADERS, CONTENT_UPSERT
from confluence_sandbox.unique import ScopeAccess, UniqueEmulator

# -- documents copied from /work/shared/contracts/unique-ingestion.md (ContentUpsert is in common.py) -----
PAGINATED_CONTENT = """query PaginatedContent($skip: Int!, $take: Int!, $where: ContentWhereInput) {
  paginatedContent(skip: $skip, take: $take, where: $where) {
    nodes { id fileAccess key ownerType ownerId metadata byteSize expiresAt ingestionState }
    totalCount } }"""
PAGINATED_CONTENT_IDS = """query PaginatedContent($skip: Int!, $take: Int!, $where: ContentWhereInput) {
  paginatedContent(skip: $skip, take: $take, where: $where) { nodes { id } totalCount } }"""
PAGINATED_CONTENT_COUNT = (
    "query PaginatedContentCount($where: ContentWhereInput) "
    "{ paginatedContent(where: $where, skip: 0, take: 0) { totalCount } }"
)
CONTENT_DELETE_BY_IDS = (
    "mutation ContentDeleteByContentIds($contentIds: [String!]!) "
    "{ contentDeleteByContentIds(contentIds: $contentIds) { id } }"
)
CONTENT_DELETE = "mutation ContentDelete($contentDeleteId: String!) { contentDelete(id: $contentDeleteId) }"
CONTENT_UPDATE_MOVE = """mutation ContentUpdate($contentId: String!, $ownerId: String, $input: ContentUpdateInput!) {
  contentUpdate(contentId: $contentId, ownerId: $ownerId, input: $input) { id ownerId ownerType } }"""
CONTENT_UPDATE_METADATA = """mutation ContentUpdate($contentId: String!, $expiresAt: DateTime, $metadata: JSON) {
  contentUpdate(contentId: $contentId, input: { expiresAt: $expiresAt, metadata: $metadata }) { id metadata ingestionState } }"""  # noqa: E501
USER = "query User { me { user { id } } }"
PAGINATED_SCOPE = """query PaginatedScope($skip: Int!, $take: Int!, $where: ScopeWhereInput!) {
  paginatedScope(skip: $skip, take: $take, where: $where) { totalCount nodes { id name parentId externalId } } }"""
GENERATE_SCOPES = """mutation GenerateScopesBasedOnPaths($paths: [String!]!, $inheritAccess: Boolean) {
  generateScopesBasedOnPaths(paths: $paths, inheritAccess: $inheritAccess) {
    id name parentId externalId  # + scopeAccess { entityId type entityType } when requested
  } }"""
GENERATE_SCOPES_WITH_ACCESS = """mutation GenerateScopesBasedOnPaths($paths: [String!]!, $inheritAccess: Boolean) {
  generateScopesBasedOnPaths(paths: $paths, inheritAccess: $inheritAccess) {
    id name parentId externalId scopeAccess { entityId type entityType }
  } }"""
CREATE_SCOPE_ACCESSES = """mutation CreateScopeAccesses($scopeAccesses: [ScopeAccessChangeDto!]!, $scopeId: String!,
  $applyToSubScopes: Boolean, $skipFileAccessPropagation: Boolean) {
  createScopeAccesses(scopeAccesses: $scopeAccesses, scopeId: $scopeId,
    applyToSubScopes: $applyToSubScopes, skipFileAccessPropagation: $skipFileAccessPropagation) }"""
DELETE_SCOPE_ACCESSES = """mutation DeleteScopeAccesses($scopeAccesses: [ScopeAccessChangeDto!]!, $scopeId: String!,
  $applyToSubScopes: Boolean, $skipFileAccessPropagation: Boolean) {
  deleteScopeAccesses(scopeAccesses: $scopeAccesses, scopeId: $scopeId,
    applyToSubScopes: $applyToSubScopes, skipFileAccessPropagation: $skipFileAccessPropagation) }"""
UPDATE_SCOPE = """mutation UpdateScope($id: String!, $input: ScopeUpdateInput!) {
  updateScope(id: $id, input: $input) { id name externalId parentId } }"""
DELETE_FOLDER = """mutation DeleteFolder($scopeId: String!, $recursive: Boolean!) {
  deleteFolder(scopeId: $scopeId, recursive: $recursive) {
    failedFolders { id name failReason path } successFolders { id name path } } }"""

PAGE_HTML = "<p>Hello <strong>Unique</strong> \u2013 ü</p>".encode()
BASE_URL = "https://acme.atlassian.net"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(headers=CLUSTER_HEADERS, timeout=5) as client:
        yield client


def gql(emu: UniqueEmulator, http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = http.post(emu.graphql_url, json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


def data(emu: UniqueEmulator, http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = gql(emu, http, query, variables)
    assert "errors" not in body, body
    return body["data"]


def single_error(body: dict[str, Any]) -> dict[str, Any]:
    """Assert the GraphQL error shape (message, extensions.code, response status) and return the one error."""
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["extensions"]["code"], str)
    response = error["extensions"]["response"]
    assert response["message"] == error["message"]
    assert isinstance(response["error"], str)
    return error


def page_variables(scope_id: str, key: str = "acme/98307_ENG/123456", **overrides: Any) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "input": {
            "key": key,
            "title": "Page title",
            "mimeType": "text/html",
            "ownerType": "SCOPE",
            "url": f"{BASE_URL}/wiki/spaces/ENG/pages/123456",
            "byteSize": len(PAGE_HTML),
            "metadata": {"confluenceLabels": ["faq", "howto"], "spaceKey": "ENG", "spaceName": "Engineering"},
            "ingestionConfig": {"htmlConfig": {"imageContentExtraction": {"enabled": True, "languageModel": "m"}}},
        },
        "scopeId": scope_id,
        "sourceOwnerType": "COMPANY",
        "sourceKind": "ATLASSIAN_CONFLUENCE_CLOUD",
        "sourceName": BASE_URL,
        "storeInternally": True,
        "baseUrl": BASE_URL,
    }
    variables["input"].update(overrides)
    return variables


def put_blob(http: httpx.Client, write_url: str, body: bytes) -> httpx.Response:
    return http.put(write_url, content=body, headers={"Content-Type": "text/html", "x-ms-blob-type": "BlockBlob"})


def ingest(emu: UniqueEmulator, http: httpx.Client, variables: dict[str, Any], body: bytes = PAGE_HTML) -> str:
    registered = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]
    assert put_blob(http, registered["writeUrl"], body).status_code == 201
    finalized = data(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": registered["readUrl"]})["contentUpsert"]
    assert finalized["id"] == registered["id"]
    return finalized["id"]


# -- transport ------------------------------------------------------------------------------
def test_health_ping_answers(emu: UniqueEmulator, http: httpx.Client) -> None:
    assert data(emu, http, "{ __typename }") == {"__typename": "Query"}


def test_me_query_returns_the_service_user(emu: UniqueEmulator, http: httpx.Client) -> None:
    assert data(emu, http, USER) == {"me": {"user": {"id": "service-user-1"}}}
    response = http.post(emu.scope_management_graphql_url, json={"query": USER})
    assert response.json() == {"data": {"me": {"user": {"id": "service-user-1"}}}}


def test_parse_and_validation_errors_use_the_contract_shape(emu: UniqueEmulator, http: httpx.Client) -> None:
    parse_error = single_error(gql(emu, http, "mutation {"))
    assert parse_error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert parse_error["extensions"]["response"]["statusCode"] == 400

    unknown_field = single_error(gql(emu, http, "{ nope }"))
    assert unknown_field["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    missing_variable = single_error(gql(emu, http, CONTENT_DELETE_BY_IDS, {}))
    assert missing_variable["extensions"]["response"]["statusCode"] == 400
    assert "contentIds" in missing_variable["message"]


def test_non_json_body_is_a_400(emu: UniqueEmulator, http: httpx.Client) -> None:
    response = http.post(emu.graphql_url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    single_error(response.json())


def test_operations_are_counted_by_name_or_first_field(emu: UniqueEmulator, http: httpx.Client) -> None:
    data(emu, http, USER)
    data(emu, http, USER)
    data(emu, http, "{ __typename }")
    data(emu, http, 'mutation { generateScopesBasedOnPaths(paths: ["/X"]) { id } }')
    http.post(emu.graphql_url, json={"query": USER, "operationName": "User"})
    assert emu.operations == {"User": 3, "__typename": 1, "generateScopesBasedOnPaths": 1}


# -- ContentUpsert --------------------------------------------------------------------------
def test_registration_creates_a_queued_row_and_hands_out_upload_urls(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    result = data(emu, http, CONTENT_UPSERT, page_variables(scope.id))["contentUpsert"]

    assert result["key"] == "acme/98307_ENG/123456"
    assert result["title"] == "Page title"
    assert result["byteSize"] == len(PAGE_HTML)
    assert result["mimeType"] == "text/html"
    assert result["ownerType"] == "SCOPE"
    assert result["ownerId"] == scope.id
    assert result["writeUrl"].startswith(f"{emu.url}/blob/upload?key=")
    assert httpx.URL(result["writeUrl"]).params["key"]
    assert result["readUrl"].startswith(f"unique://content/{result['id']}/")
    datetime.fromisoformat(result["createdAt"])
    assert result["internallyStoredAt"] is None
    assert result["source"] == {"kind": "ATLASSIAN_CONFLUENCE_CLOUD", "name": BASE_URL}

    stored = emu.store.contents[result["id"]]
    assert stored.finalized_at is None
    assert stored.data is None
    assert stored.ingestion_state == "QUEUED"
    assert emu.store.keys() == {"acme/98307_ENG/123456"}
    assert emu.store.finalized_keys() == set()


def test_register_upload_finalize_stores_the_page(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    content_id = ingest(emu, http, page_variables(scope.id))

    stored = emu.store.contents[content_id]
    assert stored.data == PAGE_HTML
    assert stored.pending_upload is None
    assert stored.finalized_at is not None
    assert stored.ingestion_state == "FINISHED"
    assert stored.owner_id == scope.id
    assert stored.url == f"{BASE_URL}/wiki/spaces/ENG/pages/123456"
    assert stored.metadata == {"confluenceLabels": '["faq","howto"]', "spaceKey": "ENG", "spaceName": "Engineering"}
    assert stored.source_kind == "ATLASSIAN_CONFLUENCE_CLOUD"
    assert stored.source_name == BASE_URL
    assert stored.source_owner_type == "COMPANY"
    assert stored.store_internally is True
    assert stored.byte_size == len(PAGE_HTML)
    assert emu.store.finalized_keys() == {"acme/98307_ENG/123456"}


def test_finalize_response_reports_internal_storage(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id)
    registered = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]
    put_blob(http, registered["writeUrl"], PAGE_HTML)
    finalized = data(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": registered["readUrl"]})["contentUpsert"]
    assert finalized["internallyStoredAt"] is not None


def test_registering_an_existing_key_keeps_the_old_content_until_finalize(
    emu: UniqueEmulator, http: httpx.Client
) -> None:
    scope = emu.store.add_scope("ENG")
    first_id = ingest(emu, http, page_variables(scope.id))
    first_finalized = emu.store.contents[first_id].finalized_at

    variables = page_variables(scope.id, title="New title", byteSize=len(b"<p>v2</p>"))
    again = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]
    assert again["id"] == first_id
    stored = emu.store.contents[first_id]
    assert (stored.title, stored.data, stored.finalized_at) == ("Page title", PAGE_HTML, first_finalized)

    assert put_blob(http, again["writeUrl"], b"<p>v2</p>").status_code == 201
    assert stored.pending_upload == b"<p>v2</p>"
    assert stored.data == PAGE_HTML  # an upload alone changes nothing visible

    data(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": again["readUrl"]})
    assert (stored.title, stored.data) == ("New title", b"<p>v2</p>")
    assert stored.finalized_at is not None and first_finalized is not None
    assert stored.finalized_at >= first_finalized
    assert len(emu.store.contents) == 1


def test_every_registration_gets_fresh_upload_urls(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    one = data(emu, http, CONTENT_UPSERT, page_variables(scope.id))["contentUpsert"]
    two = data(emu, http, CONTENT_UPSERT, page_variables(scope.id))["contentUpsert"]
    assert one["id"] == two["id"]
    assert one["writeUrl"] != two["writeUrl"]
    assert one["readUrl"] != two["readUrl"]


def test_finalize_without_a_completed_upload_is_a_400(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id)
    registered = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]

    error = single_error(gql(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": registered["readUrl"]}))
    assert error["path"] == ["contentUpsert"]
    assert error["extensions"]["response"]["statusCode"] == 400
    assert error["extensions"]["response"]["error"] == "Bad Request"
    assert emu.store.contents[registered["id"]].finalized_at is None


def test_finalize_with_a_read_url_never_handed_out_fails(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id)
    data(emu, http, CONTENT_UPSERT, variables)
    error = single_error(gql(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": "unique://content/x/y"}))
    assert error["extensions"]["response"]["statusCode"] == 400


def test_finalize_with_another_keys_read_url_fails(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    other = data(emu, http, CONTENT_UPSERT, page_variables(scope.id, key="acme/98307_ENG/1"))["contentUpsert"]
    put_blob(http, other["writeUrl"], PAGE_HTML)
    mine = page_variables(scope.id, key="acme/98307_ENG/2")
    data(emu, http, CONTENT_UPSERT, mine)
    error = single_error(gql(emu, http, CONTENT_UPSERT, {**mine, "fileUrl": other["readUrl"]}))
    assert error["extensions"]["response"]["statusCode"] == 400
    assert emu.store.finalized_keys() == set()


def test_byte_size_differing_from_the_upload_fails(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id, byteSize=len(PAGE_HTML) + 1)
    registered = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]
    put_blob(http, registered["writeUrl"], PAGE_HTML)
    error = single_error(gql(emu, http, CONTENT_UPSERT, {**variables, "fileUrl": registered["readUrl"]}))
    assert error["extensions"]["response"]["statusCode"] == 400
    assert "byteSize" in error["message"]


def test_unknown_scope_id_is_a_404(emu: UniqueEmulator, http: httpx.Client) -> None:
    error = single_error(gql(emu, http, CONTENT_UPSERT, page_variables("scope_missing")))
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["response"] == {
        "statusCode": 404,
        "message": error["message"],
        "error": "Not Found",
    }
    assert emu.store.contents == {}


def test_unknown_scope_id_on_finalize_is_a_404(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id)
    registered = data(emu, http, CONTENT_UPSERT, variables)["contentUpsert"]
    put_blob(http, registered["writeUrl"], PAGE_HTML)
    body = gql(emu, http, CONTENT_UPSERT, {**variables, "scopeId": "nope", "fileUrl": registered["readUrl"]})
    assert single_error(body)["extensions"]["response"]["statusCode"] == 404


def test_attachment_without_ingestion_config_or_labels(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    variables = page_variables(scope.id, key="acme/98307_ENG/123456::att789", mimeType="image/png", byteSize=len(png))
    del variables["input"]["ingestionConfig"]
    variables["input"]["metadata"] = {"spaceKey": "ENG", "spaceName": "Engineering"}
    content_id = ingest(emu, http, variables, png)
    stored = emu.store.contents[content_id]
    assert (stored.data, stored.mime_type, stored.ingestion_config) == (png, "image/png", None)


# -- content queries ------------------------------------------------------------------------
def test_paginated_content_filters(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng, ops = emu.store.add_scope("ENG"), emu.store.add_scope("OPS")
    a = emu.store.seed_content("acme/1_ENG/10", owner_id=eng.id, metadata={"spaceKey": "ENG", "n": 3})
    b = emu.store.seed_content("acme/1_ENG/11", owner_id=eng.id, metadata={"spaceKey": "ENG"})
    c = emu.store.seed_content("acme/2_OPS/20", owner_id=ops.id, metadata={"spaceKey": "OPS"})
    emu.store.seed_content("acme/1_ENGX/30", owner_id=ops.id)

    def ids(where: dict[str, Any] | None) -> list[str]:
        result = data(emu, http, PAGINATED_CONTENT, {"skip": 0, "take": 100, "where": where})["paginatedContent"]
        assert result["totalCount"] == len(result["nodes"])
        return [n["id"] for n in result["nodes"]]

    assert ids({"key": {"in": ["acme/1_ENG/10", "acme/2_OPS/20", "missing"]}}) == [a.id, c.id]
    assert ids({"key": {"startsWith": "acme/1_ENG/"}}) == [a.id, b.id]
    assert ids({"key": {"equals": "acme/1_ENG/11"}}) == [b.id]
    assert ids({"ownerId": {"equals": eng.id}, "ownerType": {"equals": "SCOPE"}}) == [a.id, b.id]
    assert ids(
        {
            "ownerId": {"equals": ops.id},
            "ownerType": {"equals": "SCOPE"},
            "metadata": {"path": ["spaceKey"], "equals": "OPS"},
        }
    ) == [c.id]
    assert ids({"metadata": {"path": ["n"], "equals": 3}}) == [a.id]
    assert len(ids(None)) == 4


def test_paginated_content_node_shape(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    seeded = emu.store.seed_content("acme/1_ENG/10", owner_id=eng.id, data=b"12345", metadata={"spaceKey": "ENG"})
    result = data(emu, http, PAGINATED_CONTENT, {"skip": 0, "take": 100, "where": {"key": {"in": [seeded.key]}}})
    assert result["paginatedContent"] == {
        "nodes": [
            {
                "id": seeded.id,
                "fileAccess": [],
                "key": "acme/1_ENG/10",
                "ownerType": "SCOPE",
                "ownerId": eng.id,
                "metadata": {"spaceKey": "ENG"},
                "byteSize": 5,
                "expiresAt": None,
                "ingestionState": "FINISHED",
            }
        ],
        "totalCount": 1,
    }


def test_paginated_content_pages_with_skip_and_take(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    seeded = [emu.store.seed_content(f"acme/1_ENG/{i}", owner_id=eng.id).id for i in range(7)]
    seen: list[str] = []
    skip = 0
    while True:
        where = {"key": {"startsWith": "acme/1_ENG/"}}
        page = data(emu, http, PAGINATED_CONTENT_IDS, {"skip": skip, "take": 3, "where": where})["paginatedContent"]
        assert page["totalCount"] == 7
        seen += [n["id"] for n in page["nodes"]]
        if len(page["nodes"]) < 3:
            break
        skip += 3
    assert seen == seeded


def test_count_only_returns_the_real_total(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    for i in range(5):
        emu.store.seed_content(f"acme/1_ENG/{i}", owner_id=eng.id)
    emu.store.seed_content("acme/2_OPS/1", owner_id=eng.id)
    where = {"key": {"startsWith": "acme/1_ENG/"}}
    assert data(emu, http, PAGINATED_CONTENT_COUNT, {"where": where}) == {"paginatedContent": {"totalCount": 5}}
    assert data(emu, http, PAGINATED_CONTENT_COUNT, {}) == {"paginatedContent": {"totalCount": 6}}
    take_zero = data(emu, http, PAGINATED_CONTENT_IDS, {"skip": 0, "take": 0, "where": where})["paginatedContent"]
    assert take_zero == {"nodes": [], "totalCount": 5}


# -- content mutations ----------------------------------------------------------------------
def test_delete_by_ids_returns_only_what_was_deleted(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    a = emu.store.seed_content("acme/1_ENG/1", owner_id=eng.id)
    b = emu.store.seed_content("acme/1_ENG/2", owner_id=eng.id)
    keep = emu.store.seed_content("acme/1_ENG/3", owner_id=eng.id)

    result = data(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": [a.id, "cont_unknown", b.id]})
    assert result == {"contentDeleteByContentIds": [{"id": a.id}, {"id": b.id}]}
    assert set(emu.store.contents) == {keep.id}

    again = data(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": [a.id]})
    assert again == {"contentDeleteByContentIds": []}


def test_deleting_registered_content_invalidates_its_upload(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    registered = data(emu, http, CONTENT_UPSERT, page_variables(scope.id))["contentUpsert"]
    data(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": [registered["id"]]})
    assert put_blob(http, registered["writeUrl"], PAGE_HTML).status_code == 404


def test_content_delete_is_boolean(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    a = emu.store.seed_content("acme/1_ENG/1", owner_id=eng.id)
    assert data(emu, http, CONTENT_DELETE, {"contentDeleteId": a.id}) == {"contentDelete": True}
    assert data(emu, http, CONTENT_DELETE, {"contentDeleteId": a.id}) == {"contentDelete": False}
    assert emu.store.contents == {}


def test_content_update_moves_and_rewrites_metadata(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng, ops = emu.store.add_scope("ENG"), emu.store.add_scope("OPS")
    a = emu.store.seed_content("acme/1_ENG/1", owner_id=eng.id)

    moved = data(emu, http, CONTENT_UPDATE_MOVE, {"contentId": a.id, "ownerId": ops.id, "input": {"url": "https://n"}})
    assert moved == {"contentUpdate": {"id": a.id, "ownerId": ops.id, "ownerType": "SCOPE"}}
    assert (a.owner_id, a.url) == (ops.id, "https://n")

    variables = {"contentId": a.id, "expiresAt": "2030-01-01T00:00:00.000Z", "metadata": {"k": 1}}
    updated = data(emu, http, CONTENT_UPDATE_METADATA, variables)
    assert updated == {"contentUpdate": {"id": a.id, "metadata": {"k": "1"}, "ingestionState": "FINISHED"}}
    assert a.expires_at is not None and a.expires_at.year == 2030

    missing = single_error(gql(emu, http, CONTENT_UPDATE_MOVE, {"contentId": "nope", "input": {}}))
    assert missing["extensions"]["response"]["statusCode"] == 404


# -- scopes ---------------------------------------------------------------------------------
def test_generate_scopes_returns_one_leaf_per_path_in_input_order(emu: UniqueEmulator, http: httpx.Client) -> None:
    existing = emu.store.add_scope("Company")
    kb = emu.store.add_scope("KB", existing.id, external_id="confc:cloud:abc")
    paths = ["/Company/KB/Confluence/OPS", "/Company/KB", "/Company/KB/Confluence/ENG", "/Company/KB/Confluence/OPS"]

    scopes = data(emu, http, GENERATE_SCOPES, {"paths": paths, "inheritAccess": True})["generateScopesBasedOnPaths"]

    assert [s["name"] for s in scopes] == ["OPS", "KB", "ENG", "OPS"]
    assert [emu.store.scope_path(s["id"]) for s in scopes] == paths
    assert scopes[1] == {"id": kb.id, "name": "KB", "parentId": existing.id, "externalId": "confc:cloud:abc"}
    assert scopes[0]["id"] == scopes[3]["id"]
    assert scopes[0]["externalId"] is None and scopes[2]["externalId"] is None
    assert scopes[0]["parentId"] == scopes[2]["parentId"]
    confluence = emu.store.scopes[scopes[0]["parentId"]]
    assert (confluence.name, confluence.parent_id) == ("Confluence", kb.id)
    assert len(emu.store.scopes) == 5

    again = data(emu, http, GENERATE_SCOPES, {"paths": paths[::-1]})["generateScopesBasedOnPaths"]
    assert [s["id"] for s in again] == [s["id"] for s in scopes[::-1]]
    assert len(emu.store.scopes) == 5


def test_generate_scopes_inherits_access_only_when_asked(emu: UniqueEmulator, http: httpx.Client) -> None:
    root = emu.store.add_scope("Root")
    grant = ScopeAccess("service-user-1", "USER", "READ")
    root.accesses.append(grant)
    inherited = data(emu, http, GENERATE_SCOPES_WITH_ACCESS, {"paths": ["/Root/A"], "inheritAccess": True})
    assert inherited["generateScopesBasedOnPaths"][0]["scopeAccess"] == [
        {"entityId": "service-user-1", "type": "READ", "entityType": "USER"}
    ]
    plain = data(emu, http, GENERATE_SCOPES_WITH_ACCESS, {"paths": ["/Root/B"], "inheritAccess": False})
    assert plain["generateScopesBasedOnPaths"][0]["scopeAccess"] == []


def test_generate_scopes_rejects_an_empty_path(emu: UniqueEmulator, http: httpx.Client) -> None:
    error = single_error(gql(emu, http, GENERATE_SCOPES, {"paths": ["/"]}))
    assert error["extensions"]["response"]["statusCode"] == 400
    assert emu.store.scopes == {}


def test_paginated_scope_lookups(emu: UniqueEmulator, http: httpx.Client) -> None:
    root = emu.store.add_scope("Root", external_id="confc:cloud:1")
    eng = emu.store.add_scope("ENG", root.id, external_id="confc:acme:98307:ENG")
    ops = emu.store.add_scope("OPS", root.id)
    other = emu.store.add_scope("Other")

    def lookup(where: dict[str, Any], take: int = 100, skip: int = 0) -> dict[str, Any]:
        return data(emu, http, PAGINATED_SCOPE, {"skip": skip, "take": take, "where": where})["paginatedScope"]

    assert lookup({"id": {"equals": eng.id}}, take=1) == {
        "totalCount": 1,
        "nodes": [{"id": eng.id, "name": "ENG", "parentId": root.id, "externalId": "confc:acme:98307:ENG"}],
    }
    assert [n["id"] for n in lookup({"parentId": {"equals": root.id}})["nodes"]] == [eng.id, ops.id]
    assert [n["id"] for n in lookup({"parentId": {"equals": root.id}}, take=1, skip=1)["nodes"]] == [ops.id]
    assert [n["id"] for n in lookup({"name": {"equals": "Other"}})["nodes"]] == [other.id]
    assert [n["id"] for n in lookup({"externalId": {"equals": "confc:cloud:1"}}, take=1)["nodes"]] == [root.id]
    by_in = lookup({"externalId": {"in": ["confc:cloud:1", "confc:acme:98307:ENG", "x"]}})
    assert by_in["totalCount"] == 2
    assert lookup({"id": {"equals": "missing"}}, take=1) == {"totalCount": 0, "nodes": []}


def test_paginated_scope_requires_where(emu: UniqueEmulator, http: httpx.Client) -> None:
    error = single_error(gql(emu, http, PAGINATED_SCOPE, {"skip": 0, "take": 1}))
    assert "where" in error["message"]


def test_create_and_delete_scope_accesses(emu: UniqueEmulator, http: httpx.Client) -> None:
    root = emu.store.add_scope("Root")
    child = emu.store.add_scope("Child", root.id)
    accesses = [
        {"accessType": kind, "entityId": "service-user-1", "entityType": "USER"} for kind in ("MANAGE", "READ", "WRITE")
    ]
    common = {"scopeId": root.id, "applyToSubScopes": False, "skipFileAccessPropagation": True}

    created = data(emu, http, CREATE_SCOPE_ACCESSES, {"scopeAccesses": accesses, **common})
    assert created == {"createScopeAccesses": True}
    data(emu, http, CREATE_SCOPE_ACCESSES, {"scopeAccesses": accesses, **common})  # granting twice is idempotent
    assert root.accesses == [
        ScopeAccess("service-user-1", "USER", "MANAGE"),
        ScopeAccess("service-user-1", "USER", "READ"),
        ScopeAccess("service-user-1", "USER", "WRITE"),
    ]
    assert child.accesses == []

    deleted = data(emu, http, DELETE_SCOPE_ACCESSES, {"scopeAccesses": accesses[:1], **common})
    assert deleted == {"deleteScopeAccesses": True}
    assert [a.access_type for a in root.accesses] == ["READ", "WRITE"]

    data(emu, http, CREATE_SCOPE_ACCESSES, {"scopeAccesses": accesses[:1], **common, "applyToSubScopes": True})
    assert child.accesses == [ScopeAccess("service-user-1", "USER", "MANAGE")]

    missing = single_error(gql(emu, http, CREATE_SCOPE_ACCESSES, {"scopeAccesses": accesses, **common, "scopeId": "x"}))
    assert missing["extensions"]["response"]["statusCode"] == 404


def test_update_scope_sets_clears_and_reparents(emu: UniqueEmulator, http: httpx.Client) -> None:
    old_root, new_root = emu.store.add_scope("Old"), emu.store.add_scope("New")
    space = emu.store.add_scope("ENG", old_root.id)

    result = data(emu, http, UPDATE_SCOPE, {"id": new_root.id, "input": {"externalId": "confc:cloud:abc"}})
    assert result == {
        "updateScope": {"id": new_root.id, "name": "New", "externalId": "confc:cloud:abc", "parentId": None}
    }

    moved = data(emu, http, UPDATE_SCOPE, {"id": space.id, "input": {"parrentScope": {"connect": {"id": new_root.id}}}})
    assert moved["updateScope"]["parentId"] == new_root.id
    assert emu.store.scope_path(space.id) == "/New/ENG"

    cleared = data(emu, http, UPDATE_SCOPE, {"id": new_root.id, "input": {"externalId": None}})
    assert cleared["updateScope"]["externalId"] is None
    assert new_root.external_id is None


def test_update_scope_rejects_an_external_id_taken_by_another_scope(emu: UniqueEmulator, http: httpx.Client) -> None:
    emu.store.add_scope("Old", external_id="confc:cloud:abc")
    new_root = emu.store.add_scope("New")

    error = single_error(gql(emu, http, UPDATE_SCOPE, {"id": new_root.id, "input": {"externalId": "confc:cloud:abc"}}))
    assert error["extensions"]["response"]["statusCode"] == 400
    assert new_root.external_id is None

    same_scope = data(emu, http, UPDATE_SCOPE, {"id": new_root.id, "input": {"externalId": "confc:cloud:new"}})
    assert same_scope["updateScope"]["externalId"] == "confc:cloud:new"
    again = data(emu, http, UPDATE_SCOPE, {"id": new_root.id, "input": {"externalId": "confc:cloud:new"}})
    assert again["updateScope"]["externalId"] == "confc:cloud:new"


def test_update_scope_rejects_unknown_ids_and_cycles(emu: UniqueEmulator, http: httpx.Client) -> None:
    root = emu.store.add_scope("Root")
    child = emu.store.add_scope("Child", root.id)
    unknown = single_error(gql(emu, http, UPDATE_SCOPE, {"id": "missing", "input": {"externalId": "x"}}))
    assert unknown["extensions"]["response"]["statusCode"] == 404
    bad_parent = {"id": child.id, "input": {"parrentScope": {"connect": {"id": "missing"}}}}
    assert single_error(gql(emu, http, UPDATE_SCOPE, bad_parent))["extensions"]["response"]["statusCode"] == 404
    cycle = {"id": root.id, "input": {"parrentScope": {"connect": {"id": child.id}}}}
    assert single_error(gql(emu, http, UPDATE_SCOPE, cycle))["extensions"]["response"]["statusCode"] == 400
    assert root.parent_id is None


def test_delete_folder_refuses_non_empty_folders_unless_recursive(emu: UniqueEmulator, http: httpx.Client) -> None:
    root = emu.store.add_scope("Root")
    with_content = emu.store.add_scope("ENG", root.id)
    with_child = emu.store.add_scope("OPS", root.id)
    grandchild = emu.store.add_scope("Sub", with_child.id)
    empty = emu.store.add_scope("Empty", root.id)
    kept = emu.store.seed_content("acme/1_ENG/1", owner_id=with_content.id)
    nested = emu.store.seed_content("acme/2_OPS/1", owner_id=grandchild.id)

    for scope in (with_content, with_child):
        result = data(emu, http, DELETE_FOLDER, {"scopeId": scope.id, "recursive": False})["deleteFolder"]
        assert result == {
            "failedFolders": [
                {
                    "id": scope.id,
                    "name": scope.name,
                    "failReason": "Cannot delete non-empty folder",
                    "path": f"/Root/{scope.name}",
                }
            ],
            "successFolders": [],
        }
    assert {with_content.id, with_child.id} <= set(emu.store.scopes)
    assert kept.id in emu.store.contents

    result = data(emu, http, DELETE_FOLDER, {"scopeId": empty.id, "recursive": False})["deleteFolder"]
    assert result == {"failedFolders": [], "successFolders": [{"id": empty.id, "name": "Empty", "path": "/Root/Empty"}]}
    assert empty.id not in emu.store.scopes

    result = data(emu, http, DELETE_FOLDER, {"scopeId": with_child.id, "recursive": True})["deleteFolder"]
    assert result["failedFolders"] == []
    assert [f["path"] for f in result["successFolders"]] == ["/Root/OPS/Sub", "/Root/OPS"]
    assert with_child.id not in emu.store.scopes and grandchild.id not in emu.store.scopes
    assert nested.id not in emu.store.contents
    assert kept.id in emu.store.contents

    missing = single_error(gql(emu, http, DELETE_FOLDER, {"scopeId": "missing", "recursive": False}))
    assert missing["extensions"]["response"]["statusCode"] == 404


def test_metadata_scalar_values_are_stored_as_strings(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id)
    variables["input"]["metadata"] = {"s": "x", "n": 7, "b": True, "o": {"a": [1, "ü"]}, "z": None}
    content_id = ingest(emu, http, variables)
    metadata = emu.store.contents[content_id].metadata
    assert metadata == {"s": "x", "n": "7", "b": "true", "o": '{"a":[1,"ü"]}', "z": "null"}
    assert json.loads(metadata["o"]) == {"a": [1, "ü"]}


# -- source, byte size, delete batches, metadata queries -----------------------------------
def test_source_of_the_last_write_is_recorded(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    key = "acme/98307_ENG/123456"
    content_id = ingest(emu, http, page_variables(scope.id))
    assert emu.store.contents[content_id].source == ("ATLASSIAN_CONFLUENCE_CLOUD", BASE_URL)

    onprem = {**page_variables(scope.id), "sourceKind": "ATLASSIAN_CONFLUENCE_ONPREM", "sourceName": "https://dc"}
    registered = data(emu, http, CONTENT_UPSERT, onprem)["contentUpsert"]
    assert emu.store.sources() == {key: ("ATLASSIAN_CONFLUENCE_CLOUD", BASE_URL)}  # a registration changes nothing
    put_blob(http, registered["writeUrl"], PAGE_HTML)
    finalized = data(emu, http, CONTENT_UPSERT, {**onprem, "fileUrl": registered["readUrl"]})["contentUpsert"]
    assert finalized["source"] == {"kind": "ATLASSIAN_CONFLUENCE_ONPREM", "name": "https://dc"}
    assert emu.store.sources() == {key: ("ATLASSIAN_CONFLUENCE_ONPREM", "https://dc")}


def test_byte_size_declared_at_registration_is_checked_too(emu: UniqueEmulator, http: httpx.Client) -> None:
    scope = emu.store.add_scope("ENG")
    registered = data(emu, http, CONTENT_UPSERT, page_variables(scope.id, byteSize=1))["contentUpsert"]
    put_blob(http, registered["writeUrl"], PAGE_HTML)
    honest_finalize = {**page_variables(scope.id), "fileUrl": registered["readUrl"]}  # byteSize right this time
    error = single_error(gql(emu, http, CONTENT_UPSERT, honest_finalize))
    assert error["extensions"]["response"]["statusCode"] == 400
    assert "byteSize 1" in error["message"]
    assert emu.store.finalized_keys() == set()


def test_byte_size_check_can_be_switched_off(emu: UniqueEmulator, http: httpx.Client) -> None:
    emu.check_byte_size = False
    scope = emu.store.add_scope("ENG")
    variables = page_variables(scope.id, byteSize=len(PAGE_HTML) + 100)
    content_id = ingest(emu, http, variables)
    assert emu.store.contents[content_id].byte_size == len(PAGE_HTML)  # what arrived, not what was declared
    assert UniqueEmulator(check_byte_size=False).check_byte_size is False
    assert UniqueEmulator().check_byte_size is True


def test_delete_batch_over_the_limit_is_refused_whole(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    ids = [emu.store.seed_content(f"acme/1_ENG/{i}", owner_id=eng.id).id for i in range(25)]
    emu.max_delete_ids = 20

    error = single_error(gql(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": ids[:21]}))
    assert error["path"] == ["contentDeleteByContentIds"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"]["response"]["statusCode"] == 400
    assert "20" in error["message"]
    assert set(emu.store.contents) == set(ids)

    deleted = data(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": ids[:20]})["contentDeleteByContentIds"]
    assert [d["id"] for d in deleted] == ids[:20]


def test_delete_batches_are_unlimited_by_default(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng = emu.store.add_scope("ENG")
    ids = [emu.store.seed_content(f"acme/1_ENG/{i}", owner_id=eng.id).id for i in range(150)]
    assert len(data(emu, http, CONTENT_DELETE_BY_IDS, {"contentIds": ids})["contentDeleteByContentIds"]) == 150
    assert emu.store.contents == {}


BY_SOURCE = {"path": ["confluenceSource"], "equals": "https://acme.atlassian.net"}


def test_content_queries_combine_metadata_with_key_owner_and_id(emu: UniqueEmulator, http: httpx.Client) -> None:
    eng, ops = emu.store.add_scope("ENG"), emu.store.add_scope("OPS")
    mine = {"confluenceSource": BASE_URL, "spaceKey": "ENG"}
    # Written the way the connector writes it: through ContentUpsert, so metadata is the stored flat-string map.
    a = emu.store.contents[ingest(emu, http, page_variables(eng.id, key="acme/1_ENG/1", metadata=mine))]
    b = emu.store.seed_content("acme/1_ENG/2", owner_id=eng.id, metadata={"confluenceSource": "https://other"})
    c = emu.store.seed_content("acme/1_ENG/3", owner_id=eng.id)  # no metadata at all
    d = emu.store.seed_content("acme/2_OPS/1", owner_id=ops.id, metadata=mine)
    e = emu.store.seed_content("legacy/1_ENG/4", owner_id=eng.id, metadata=mine)
    f = emu.store.seed_content("acme/1_ENG/5", owner_id=eng.id, metadata={"confluenceSource": json.dumps(BASE_URL)})
    assert a.metadata == {"confluenceSource": BASE_URL, "spaceKey": "ENG"}

    def ids(where: dict[str, Any]) -> list[str]:
        result = data(emu, http, PAGINATED_CONTENT, {"skip": 0, "take": 100, "where": where})["paginatedContent"]
        count = data(emu, http, PAGINATED_CONTENT_COUNT, {"where": where})["paginatedContent"]["totalCount"]
        assert result["totalCount"] == count == len(result["nodes"])
        return [n["id"] for n in result["nodes"]]

    assert ids({"key": {"startsWith": "acme/1_ENG/"}, "metadata": BY_SOURCE}) == [a.id]
    assert ids({"ownerId": {"equals": eng.id}, "metadata": BY_SOURCE}) == [a.id, e.id]
    assert ids({"ownerId": {"equals": ops.id}, "metadata": BY_SOURCE}) == [d.id]
    assert ids({"key": {"in": [a.key, d.key, c.key, "acme/1_ENG/missing"]}}) == [a.id, c.id, d.id]
    assert ids({"key": {"in": [a.key, b.key, f.key]}, "metadata": BY_SOURCE}) == [a.id]
    assert ids({"id": {"in": [a.id, b.id, d.id]}, "metadata": BY_SOURCE}) == [a.id, d.id]
    everything = {
        "key": {"startsWith": "acme/"},
        "ownerId": {"equals": eng.id},
        "id": {"in": [a.id, b.id, c.id, e.id]},
        "metadata": BY_SOURCE,
    }
    assert ids(everything) == [a.id]
    assert ids({"key": {"startsWith": "acme/1_ENG/"}, "metadata": {"path": ["confluenceSource"], "equals": "x"}}) == []
    assert ids({"key": {"startsWith": "acme/1_ENG/"}, "metadata": {"path": ["missing"], "equals": BASE_URL}}) == []
