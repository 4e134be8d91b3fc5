"""The Unique emulator's HTTP side: Zitadel tokens, both auth modes, uploads, file-diff, faults and the CLI."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLUSTER_HEADERS, CONTENT_UPSERT
from confluence_sandbox.http import Fault
from confluence_sandbox.unique import UniqueEmulator, graphql_error_fault

PROJECT_SCOPE = (
    "openid profile email urn:zitadel:iam:user:resourceowner urn:zitadel:iam:org:projects:roles "
    "urn:zitadel:iam:org:project:id:123456:aud"
)
PING = {"query": "{ __typename }"}
PARTIAL_KEY = "acme/98307_ENG"
ROOT = Path(__file__).resolve().parents[2]
HTTP = httpx.Client(timeout=10)  # one shared client: building an SSL context per call would cost ~25 ms each


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def request_token(emu: UniqueEmulator, *, scope: str = PROJECT_SCOPE, **kwargs: Any) -> httpx.Response:
    form = {"scope": scope, "grant_type": "client_credentials", **kwargs.pop("form", {})}
    return HTTP.post(emu.token_url, data=form, **kwargs)


def bearer(emu: UniqueEmulator) -> dict[str, str]:
    response = request_token(emu, headers=basic("connector", "zitadel-secret"))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register(emu: UniqueEmulator, headers: dict[str, str], key: str = f"{PARTIAL_KEY}/1") -> dict[str, Any]:
    scope = next(iter(emu.store.scopes.values()), None) or emu.store.add_scope("ENG")
    variables = {
        "input": {"key": key, "title": "T", "mimeType": "text/html", "ownerType": "SCOPE"},
        "scopeId": scope.id,
        "sourceKind": "ATLASSIAN_CONFLUENCE_CLOUD",
        "sourceName": "https://acme.atlassian.net",
    }
    response = HTTP.post(emu.graphql_url, json={"query": CONTENT_UPSERT, "variables": variables}, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    return {"variables": variables, **body["data"]["contentUpsert"]}


def finalize(emu: UniqueEmulator, headers: dict[str, str], registered: dict[str, Any]) -> dict[str, Any]:
    variables = {**registered["variables"], "fileUrl": registered["readUrl"]}
    return HTTP.post(emu.graphql_url, json={"query": CONTENT_UPSERT, "variables": variables}, headers=headers).json()


# -- Zitadel token --------------------------------------------------------------------------
def test_token_with_basic_credentials(emu: UniqueEmulator) -> None:
    response = request_token(emu, headers=basic("connector", "zitadel-secret"))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str) and len(body["access_token"]) > 20
    assert emu.tokens_issued == 1
    assert HTTP.post(emu.graphql_url, json=PING, headers={"Authorization": f"Bearer {body['access_token']}"}).is_success


def test_token_with_form_credentials(emu: UniqueEmulator) -> None:
    emu.token_ttl = 120
    response = request_token(emu, form={"client_id": "connector", "client_secret": "zitadel-secret"})
    assert response.status_code == 200
    assert response.json()["expires_in"] == 120
    second = request_token(emu, form={"client_id": "connector", "client_secret": "zitadel-secret"})
    assert second.json()["access_token"] != response.json()["access_token"]
    assert emu.tokens_issued == 2


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        (basic("connector", "wrong"), {}),
        (basic("someone-else", "zitadel-secret"), {}),
        ({}, {"client_id": "connector", "client_secret": "wrong"}),
        ({}, {}),
        ({"Authorization": "Basic !!!not-base64"}, {}),
    ],
)
def test_wrong_credentials_are_invalid_client(
    emu: UniqueEmulator, headers: dict[str, str], form: dict[str, str]
) -> None:
    response = request_token(emu, headers=headers, form=form)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert emu.tokens_issued == 0


@pytest.mark.parametrize(
    "scope",
    [
        "openid profile email",
        PROJECT_SCOPE.replace("123456", "999999"),
        "",
    ],
)
def test_missing_project_audience_is_rejected(emu: UniqueEmulator, scope: str) -> None:
    response = request_token(emu, scope=scope, headers=basic("connector", "zitadel-secret"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert emu.tokens_issued == 0


def test_wrong_grant_type_is_rejected(emu: UniqueEmulator) -> None:
    response = request_token(emu, form={"grant_type": "password"}, headers=basic("connector", "zitadel-secret"))
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_token_call_extra_headers_are_recorded_and_credentials_redacted(emu: UniqueEmulator) -> None:
    headers = {**basic("connector", "zitadel-secret"), "x-zitadel-instance-host": "id.example"}
    request_token(emu, headers=headers)
    (recorded,) = emu.requests_to("/oauth/v2/token", "POST")
    assert recorded.headers["x-zitadel-instance-host"] == "id.example"
    assert recorded.headers["authorization"] == "<redacted>"
    assert b"urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3A123456%3Aaud" in recorded.body


def test_token_expires_after_its_ttl(emu: UniqueEmulator) -> None:
    now = [1000.0]
    emu.clock = lambda: now[0]
    emu.token_ttl = 60
    headers = bearer(emu)
    now[0] += 59
    assert HTTP.post(emu.graphql_url, json=PING, headers=headers).status_code == 200
    now[0] += 1
    expired = HTTP.post(emu.graphql_url, json=PING, headers=headers)
    assert expired.status_code == 401
    assert expired.json()["statusCode"] == 401
    assert HTTP.post(emu.graphql_url, json=PING, headers=bearer(emu)).status_code == 200


def test_expire_tokens_revokes_every_issued_token(emu: UniqueEmulator) -> None:
    headers = bearer(emu)
    emu.expire_tokens()
    assert HTTP.post(emu.graphql_url, json=PING, headers=headers).status_code == 401


# -- auth modes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "credentials", "status"),
    [
        ("external", "bearer", 200),
        ("external", "headers", 401),
        ("external", "none", 401),
        ("external", "garbage-bearer", 401),
        ("cluster_local", "headers", 200),
        ("cluster_local", "bearer", 401),
        ("cluster_local", "none", 401),
        ("cluster_local", "wrong-company", 401),
        ("cluster_local", "missing-user", 401),
        ("any", "bearer", 200),
        ("any", "headers", 200),
        ("any", "none", 401),
        ("any", "garbage-bearer", 401),
    ],
)
@pytest.mark.parametrize("route", ["graphql", "file-diff", "scoped-upload"])
def test_auth_modes(emu: UniqueEmulator, mode: str, credentials: str, status: int, route: str) -> None:
    slot = register(emu, CLUSTER_HEADERS)
    emu.auth_mode = mode
    headers = {
        "bearer": bearer(emu),
        "headers": CLUSTER_HEADERS,
        "none": {},
        "garbage-bearer": {"Authorization": "Bearer not-a-token"},
        "wrong-company": {**CLUSTER_HEADERS, "x-company-id": "company-2"},
        "missing-user": {"x-company-id": "company-1"},
    }[credentials]
    if route == "graphql":
        response = HTTP.post(emu.graphql_url, json=PING, headers=headers)
    elif route == "file-diff":
        body = {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": []}
        response = HTTP.post(emu.file_diff_url, json=body, headers=headers)
    else:
        # Uploads carry no auth (contract §1.2): only a simulated stricter gateway applies the auth modes to them.
        emu.scoped_upload_requires_auth = True
        key = httpx.URL(slot["writeUrl"]).params["key"]
        response = HTTP.put(f"{emu.url}/ingestion/scoped/upload", params={"key": key}, content=b"x", headers=headers)
    assert (response.status_code // 100 * 100 if response.is_success else response.status_code) == status


def test_auth_mode_rejects_unknown_values(emu: UniqueEmulator) -> None:
    with pytest.raises(ValueError, match="auth_mode"):
        emu.auth_mode = "token"


# -- uploads --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/html", "x-ms-blob-type": "BlockBlob"},
        {"X-Ms-Blob-Content-Type": "text/html", "X-Ms-Blob-Type": "BlockBlob"},
    ],
)
def test_blob_put_accepts_both_header_forms_without_auth(emu: UniqueEmulator, headers: dict[str, str]) -> None:
    emu.auth_mode = "external"
    registered = register(emu, bearer(emu))
    assert registered["writeUrl"].startswith(f"{emu.url}/blob/upload?key=")
    response = HTTP.put(registered["writeUrl"], content=b"<p>body</p>", headers=headers)
    assert response.status_code == 201
    stored = emu.store.contents[registered["id"]]
    assert stored.pending_upload == b"<p>body</p>"
    assert stored.data is None
    assert emu.store.uploads[httpx.URL(registered["writeUrl"]).params["key"]].content_type == "text/html"


def test_blob_put_ignores_auth_headers(emu: UniqueEmulator) -> None:
    emu.auth_mode = "external"
    registered = register(emu, bearer(emu))
    headers = {"x-ms-blob-type": "BlockBlob", "Authorization": "Bearer expired-or-bogus", "x-company-id": "other"}
    assert HTTP.put(registered["writeUrl"], content=b"x", headers=headers).status_code == 201


def test_blob_put_needs_block_blob_type_and_a_known_key(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    missing_type = HTTP.put(registered["writeUrl"], content=b"x", headers={"Content-Type": "text/html"})
    assert missing_type.status_code == 400
    assert missing_type.headers["x-ms-error-code"] == "MissingRequiredHeader"
    unknown = HTTP.put(f"{emu.url}/blob/upload?key=nope", content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert unknown.status_code == 404
    assert emu.store.contents[registered["id"]].pending_upload is None


def test_blob_put_refuses_chunked_bodies(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    with httpx.Client() as client:
        response = client.put(
            registered["writeUrl"], content=iter([b"<p>", b"x</p>"]), headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert response.status_code == 411
        assert client.post(emu.graphql_url, json=PING, headers=CLUSTER_HEADERS).status_code == 200


def test_scoped_upload_then_finalize(emu: UniqueEmulator) -> None:
    emu.auth_mode = "cluster_local"
    registered = register(emu, CLUSTER_HEADERS)
    key = httpx.URL(registered["writeUrl"]).params["key"]
    with httpx.Client(headers=CLUSTER_HEADERS) as client:
        response = client.put(
            f"{emu.url}/ingestion/scoped/upload",
            params={"key": key},
            content=iter([b"<p>streamed ", b"page</p>"]),  # chunked: the scoped route accepts streams
            headers={"Content-Type": "text/html", "x-ms-blob-type": "BlockBlob"},
        )
        assert response.status_code == 201
        assert client.post(emu.graphql_url, json=PING).status_code == 200  # connection survived the stream
    body = finalize(emu, CLUSTER_HEADERS, registered)
    assert "errors" not in body, body
    assert emu.store.contents[registered["id"]].data == b"<p>streamed page</p>"


@pytest.mark.parametrize("mode", ["any", "external", "cluster_local"])
def test_scoped_upload_needs_no_auth_unless_a_stricter_gateway_is_simulated(emu: UniqueEmulator, mode: str) -> None:
    """Contract §1.2 and §10.13: uploads carry no auth headers, even in cluster_local mode."""
    keys = [httpx.URL(register(emu, CLUSTER_HEADERS, f"{PARTIAL_KEY}/{n}")["writeUrl"]).params["key"] for n in range(4)]
    emu.auth_mode = mode
    url = f"{emu.url}/ingestion/scoped/upload"
    for key, headers in zip(keys, ({}, {"Authorization": "Bearer not-a-token"}, CLUSTER_HEADERS), strict=False):
        response = HTTP.put(url, params={"key": key}, content=b"x", headers=headers)
        assert response.status_code == 201, (headers, response.text)
    emu.scoped_upload_requires_auth = True
    key = keys[-1]
    assert HTTP.put(url, params={"key": key}, content=b"x").status_code == 401
    if mode != "external":
        assert HTTP.put(url, params={"key": key}, content=b"x", headers=CLUSTER_HEADERS).status_code == 201


def test_finalize_without_upload_is_an_error_in_contract_shape(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    body = finalize(emu, CLUSTER_HEADERS, registered)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["path"] == ["contentUpsert"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"]["response"]["statusCode"] == 400


def test_write_url_follows_the_host_the_client_used(emu: UniqueEmulator) -> None:
    registered = register(emu, {**CLUSTER_HEADERS, "Host": f"unique.internal:{emu.port}"})
    assert registered["writeUrl"].startswith(f"http://unique.internal:{emu.port}/blob/upload?key=")


# -- file diff ------------------------------------------------------------------------------
def diff(emu: UniqueEmulator, files: list[dict[str, str]], partial_key: str = PARTIAL_KEY) -> dict[str, list[str]]:
    body = {
        "partialKey": partial_key,
        "sourceKind": "ATLASSIAN_CONFLUENCE_CLOUD",
        "sourceName": "https://acme.atlassian.net",
        "fileList": files,
    }
    response = HTTP.post(emu.file_diff_url, json=body, headers=CLUSTER_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def item(key: str, updated_at: str) -> dict[str, str]:
    return {"key": key, "url": f"https://acme.atlassian.net/wiki/{key}", "updatedAt": updated_at}


def test_file_diff_new_updated_deleted(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    finalized = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    for page in ("100", "101", "102", "103::att1"):
        emu.store.seed_content(f"{PARTIAL_KEY}/{page}", owner_id=scope.id, finalized_at=finalized)
    emu.store.seed_content(f"{PARTIAL_KEY}/104", owner_id=scope.id, finalized_at=finalized).finalized_at = None
    emu.store.seed_content("acme/555_OPS/100", owner_id=scope.id)  # another space is out of sight

    result = diff(
        emu,
        [
            item("100", "2026-05-01T10:00:00.000Z"),  # same instant: unchanged
            item("101", "2026-05-01T10:00:00.001Z"),  # newer: updated
            item("103::att1", ""),  # no time: unchanged
            item("104", "2020-01-01T00:00:00Z"),  # never finalized: updated even though older
            item("200", "2026-05-02T00:00:00+02:00"),  # new
        ],
    )
    assert result == {"newFiles": ["200"], "updatedFiles": ["101", "104"], "movedFiles": [], "deletedFiles": ["102"]}


def test_file_diff_older_submission_is_unchanged(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    emu.store.seed_content(f"{PARTIAL_KEY}/1", owner_id=scope.id, finalized_at=datetime(2026, 5, 1, tzinfo=UTC))
    assert diff(emu, [item("1", "2026-04-30T23:59:59+00:00")])["updatedFiles"] == []
    assert diff(emu, [item("1", "2026-05-01T02:00:01+02:00")])["updatedFiles"] == ["1"]  # compared as instants


def test_file_diff_registered_only_content_counts_as_updated(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS, key=f"{PARTIAL_KEY}/7")
    assert diff(emu, [item("7", "2000-01-01T00:00:00Z")])["updatedFiles"] == ["7"]
    HTTP.put(registered["writeUrl"], content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert "errors" not in finalize(emu, CLUSTER_HEADERS, registered)
    assert diff(emu, [item("7", "2000-01-01T00:00:00Z")]) == {
        "newFiles": [],
        "updatedFiles": [],
        "movedFiles": [],
        "deletedFiles": [],
    }


def test_file_diff_matches_by_contains_and_last_segment(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    emu.store.seed_content("acme/98307_ENG/1", owner_id=scope.id)
    emu.store.seed_content("legacy/98307_ENG/2", owner_id=scope.id)
    emu.store.seed_content("98307_ENG/3", owner_id=scope.id)
    emu.store.seed_content("acme/198307_ENG/4", owner_id=scope.id)  # another space whose key merely contains it
    emu.store.seed_content("acme/12_OPS/5", owner_id=scope.id)
    emu.store.seed_content("acme/98307_ENG/sub/6", owner_id=scope.id)  # only the last segment is compared

    result = diff(emu, [item("1", ""), item("6", ""), item("9", "")], partial_key="98307_ENG")
    assert result["newFiles"] == ["9"]
    assert sorted(result["deletedFiles"]) == ["2", "3", "4"]
    assert result["updatedFiles"] == []

    narrower = diff(emu, [item("1", "")], partial_key="acme/98307_ENG")
    assert narrower == {"newFiles": [], "updatedFiles": [], "movedFiles": [], "deletedFiles": ["6"]}


@pytest.mark.parametrize(
    "body",
    [
        {"sourceKind": "K", "sourceName": "N", "fileList": []},
        {"partialKey": "", "sourceKind": "K", "sourceName": "N", "fileList": []},
        {"partialKey": PARTIAL_KEY, "sourceName": "N", "fileList": []},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "fileList": []},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N"},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": [{"key": "1", "url": "u"}]},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": [{"url": "u", "updatedAt": ""}]},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": [item("a/b", "")]},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": [item("1", "yesterday")]},
        {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": [{"key": "1", "updatedAt": ""}]},
        [],
    ],
)
def test_file_diff_rejects_malformed_bodies(emu: UniqueEmulator, body: Any) -> None:
    response = HTTP.post(emu.file_diff_url, json=body, headers=CLUSTER_HEADERS)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_file_diff_rejects_non_json(emu: UniqueEmulator) -> None:
    response = HTTP.post(emu.file_diff_url, content=b"nope", headers=CLUSTER_HEADERS)
    assert response.status_code == 400


def url_of(key: str, title: str = "Page") -> str:
    return f"https://acme.atlassian.net/wiki/spaces/ENG/pages/{key}/{title}"


def located(key: str, updated_at: str, title: str = "Page") -> dict[str, str]:
    return {"key": key, "url": url_of(key, title), "updatedAt": updated_at}


def test_file_diff_reports_a_fresh_item_at_a_new_url_as_moved(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    finalized = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    for page in ("1", "2", "3", "4", "5"):
        emu.store.seed_content(f"{PARTIAL_KEY}/{page}", owner_id=scope.id, finalized_at=finalized, url=url_of(page))
    emu.store.seed_content(
        f"{PARTIAL_KEY}/6", owner_id=scope.id, finalized_at=finalized, url=url_of("6")
    ).finalized_at = None
    emu.store.seed_content(f"{PARTIAL_KEY}/7", owner_id=scope.id, finalized_at=finalized)  # stored without a url

    result = diff(
        emu,
        [
            located("1", "2026-05-01T10:00:00Z"),  # same url, not newer: unchanged
            located("2", "2026-05-01T09:00:00Z", title="Renamed"),  # new url, not newer: moved
            located("3", "", title="Renamed"),  # new url, no time: moved
            located("4", "2026-05-01T10:00:00.001Z", title="Renamed"),  # new url but newer: updated, not moved
            located("5", "2026-05-01T10:00:00.001Z"),  # same url, newer: updated
            located("6", "2020-01-01T00:00:00Z", title="Renamed"),  # never finalized: updated, not moved
            located("7", "2020-01-01T00:00:00Z", title="Renamed"),  # nothing stored to compare with: unchanged
        ],
    )
    assert result == {"newFiles": [], "updatedFiles": ["4", "5", "6"], "movedFiles": ["2", "3"], "deletedFiles": []}
    (report,) = emu.file_diffs
    assert report.moved == ("2", "3")
    assert report.partial_key == PARTIAL_KEY
    assert (report.source_kind, report.source_name) == ("ATLASSIAN_CONFLUENCE_CLOUD", "https://acme.atlassian.net")
    assert emu.moved_keys_reported == [f"{PARTIAL_KEY}/2", f"{PARTIAL_KEY}/3"]


def test_file_diff_move_names_every_stored_row_the_key_matched(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    emu.store.seed_content("acme/98307_ENG/1", owner_id=scope.id, url=url_of("1"))
    emu.store.seed_content("legacy/98307_ENG/1", owner_id=scope.id, url=url_of("1", "Old"))
    assert diff(emu, [located("1", "")], partial_key="98307_ENG")["movedFiles"] == ["1"]
    assert emu.moved_keys_reported == ["legacy/98307_ENG/1"]  # the row already at the submitted url did not move


def test_file_diff_stops_reporting_a_move_once_the_url_is_stored(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS, key=f"{PARTIAL_KEY}/9")
    HTTP.put(registered["writeUrl"], content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    registered["variables"]["input"]["url"] = url_of("9")
    assert "errors" not in finalize(emu, CLUSTER_HEADERS, registered)
    assert diff(emu, [located("9", "2000-01-01T00:00:00Z")])["movedFiles"] == []
    assert diff(emu, [located("9", "2000-01-01T00:00:00Z", title="New")])["movedFiles"] == ["9"]
    update = (
        "mutation ContentUpdate($contentId: String!, $input: ContentUpdateInput!) "
        "{ contentUpdate(contentId: $contentId, input: $input) { id } }"
    )
    variables = {"contentId": registered["id"], "input": {"url": url_of("9", "New")}}
    assert (
        "errors"
        not in HTTP.post(
            emu.graphql_url, json={"query": update, "variables": variables}, headers=CLUSTER_HEADERS
        ).json()
    )
    assert diff(emu, [located("9", "2000-01-01T00:00:00Z", title="New")])["movedFiles"] == []
    assert len(emu.file_diffs) == 3


def test_file_diff_moves_can_be_switched_off(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    emu.store.seed_content(f"{PARTIAL_KEY}/1", owner_id=scope.id, url=url_of("1"))
    emu.report_moves = False
    assert diff(emu, [located("1", "", title="Renamed")]) == {
        "newFiles": [],
        "updatedFiles": [],
        "movedFiles": [],
        "deletedFiles": [],
    }
    assert emu.moved_keys_reported == []
    assert UniqueEmulator().report_moves is True


def seed_two_sources(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    cloud = {"source_kind": "ATLASSIAN_CONFLUENCE_CLOUD", "source_name": "https://acme.atlassian.net"}
    other = {"source_kind": "MICROSOFT_365_SHAREPOINT", "source_name": "https://acme.sharepoint.com"}
    emu.store.seed_content(f"{PARTIAL_KEY}/1", owner_id=scope.id, **cloud)
    emu.store.seed_content(f"{PARTIAL_KEY}/2", owner_id=scope.id, **other)  # another connector's row
    emu.store.seed_content("legacy/98307_ENG/3", owner_id=scope.id, **other)
    emu.store.seed_content(
        f"{PARTIAL_KEY}/4",
        owner_id=scope.id,
        source_kind="ATLASSIAN_CONFLUENCE_CLOUD",
        source_name="https://other.atlassian.net",
    )  # same kind, another site


def test_file_diff_sees_every_source_by_default(emu: UniqueEmulator) -> None:
    seed_two_sources(emu)
    result = diff(emu, [item("1", ""), item("2", "")], partial_key="98307_ENG")
    assert result == {"newFiles": [], "updatedFiles": [], "movedFiles": [], "deletedFiles": ["3", "4"]}
    assert emu.store.sources()["legacy/98307_ENG/3"] == ("MICROSOFT_365_SHAREPOINT", "https://acme.sharepoint.com")


def test_file_diff_can_filter_the_stored_set_by_source(emu: UniqueEmulator) -> None:
    seed_two_sources(emu)
    emu.file_diff_filters_by_source = True
    result = diff(emu, [item("1", ""), item("2", "")], partial_key="98307_ENG")
    assert result == {"newFiles": ["2"], "updatedFiles": [], "movedFiles": [], "deletedFiles": []}
    assert UniqueEmulator().file_diff_filters_by_source is False


# -- faults ---------------------------------------------------------------------------------
def test_fault_429_with_retry_after_then_recovers(emu: UniqueEmulator) -> None:
    emu.faults.add(r"/file-diff$", Fault(429, {"Retry-After": "3"}, b'{"statusCode":429}'))
    body = {"partialKey": PARTIAL_KEY, "sourceKind": "K", "sourceName": "N", "fileList": []}
    first = HTTP.post(emu.file_diff_url, json=body, headers=CLUSTER_HEADERS)
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    assert HTTP.post(emu.file_diff_url, json=body, headers=CLUSTER_HEADERS).status_code == 200
    assert len(emu.requests_to(r"/file-diff$")) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_fault_server_errors_on_graphql(emu: UniqueEmulator, status: int) -> None:
    emu.faults.add(r"/ingestion/graphql$", Fault(status), times=2)
    assert HTTP.post(emu.graphql_url, json=PING, headers=CLUSTER_HEADERS).status_code == status
    assert HTTP.post(emu.graphql_url, json=PING, headers=CLUSTER_HEADERS).status_code == status
    assert HTTP.post(emu.graphql_url, json=PING, headers=CLUSTER_HEADERS).status_code == 200
    assert emu.operations == {"__typename": 1}  # faulted calls never reached the schema


def test_fault_delay_outlasts_a_short_client_timeout(emu: UniqueEmulator) -> None:
    emu.faults.add(r"/oauth/v2/token$", Fault(delay=0.5))
    with pytest.raises(httpx.ReadTimeout):
        request_token(emu, headers=basic("connector", "zitadel-secret"), timeout=0.1)
    assert request_token(emu, headers=basic("connector", "zitadel-secret")).status_code == 200


def test_fault_dropped_connection_on_blob_upload(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    emu.faults.add(r"^/blob/upload$", Fault(drop=True), method="PUT")
    with pytest.raises(httpx.TransportError):
        HTTP.put(registered["writeUrl"], content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert emu.store.contents[registered["id"]].pending_upload is None
    assert HTTP.put(registered["writeUrl"], content=b"x", headers={"x-ms-blob-type": "BlockBlob"}).status_code == 201


DELETE_BY_IDS = (
    "mutation ContentDeleteByContentIds($contentIds: [String!]!) "
    "{ contentDeleteByContentIds(contentIds: $contentIds) { id } }"
)


@pytest.mark.parametrize(("after_handler", "stored"), [(False, 0), (True, 1)])
def test_fault_drop_before_or_after_the_registration_is_applied(
    emu: UniqueEmulator, after_handler: bool, stored: int
) -> None:
    emu.store.add_scope("ENG")
    emu.faults.add(r"/ingestion/graphql$", Fault(drop=True, after_handler=after_handler))
    with pytest.raises(httpx.TransportError):
        register(emu, CLUSTER_HEADERS)
    assert len(emu.store.contents) == stored
    (recorded,) = emu.requests_to(r"/ingestion/graphql$")
    assert recorded.status is None
    assert recorded.fault is not None and recorded.fault.after_handler is after_handler


def test_fault_graphql_error_after_the_delete_went_through(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    doomed = emu.store.seed_content(f"{PARTIAL_KEY}/1", owner_id=scope.id)
    emu.faults.add(
        r"/ingestion/graphql$", graphql_error_fault("Internal server error", path=["contentDeleteByContentIds"])
    )
    response = HTTP.post(
        emu.graphql_url,
        json={"query": DELETE_BY_IDS, "variables": {"contentIds": [doomed.id]}},
        headers=CLUSTER_HEADERS,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert body["errors"][0]["extensions"]["response"]["statusCode"] == 500
    assert emu.store.contents == {}  # the client saw an error, yet the content is gone
    assert emu.operations == {"ContentDeleteByContentIds": 1}


def test_fault_scripted_status_before_the_handler_still_changes_nothing(emu: UniqueEmulator) -> None:
    scope = emu.store.add_scope("ENG")
    kept = emu.store.seed_content(f"{PARTIAL_KEY}/1", owner_id=scope.id)
    emu.faults.add(r"/ingestion/graphql$", graphql_error_fault(http_status=500, after_handler=False))
    response = HTTP.post(
        emu.graphql_url, json={"query": DELETE_BY_IDS, "variables": {"contentIds": [kept.id]}}, headers=CLUSTER_HEADERS
    )
    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["response"]["statusCode"] == 500
    assert list(emu.store.contents) == [kept.id]
    assert emu.operations == {}


def test_fault_delay_after_the_upload_is_stored_outlasts_the_client(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    slot = emu.store.uploads[httpx.URL(registered["writeUrl"]).params["key"]]
    emu.faults.add(r"^/blob/upload$", Fault(delay=0.5, after_handler=True), method="PUT")
    with pytest.raises(httpx.ReadTimeout):
        HTTP.put(registered["writeUrl"], content=b"late", headers={"x-ms-blob-type": "BlockBlob"}, timeout=0.2)
    assert slot.data == b"late"  # stored before the client gave up
    assert "errors" not in finalize(emu, CLUSTER_HEADERS, registered)


def test_fault_delay_before_the_handler_has_changed_nothing_when_the_client_gives_up(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    slot = emu.store.uploads[httpx.URL(registered["writeUrl"]).params["key"]]
    emu.faults.add(r"^/blob/upload$", Fault(delay=0.5), method="PUT")
    with pytest.raises(httpx.ReadTimeout):
        HTTP.put(registered["writeUrl"], content=b"late", headers={"x-ms-blob-type": "BlockBlob"}, timeout=0.2)
    assert slot.data is None


def test_fault_refusing_an_upload_unread_keeps_the_connection_usable(emu: UniqueEmulator) -> None:
    registered = register(emu, CLUSTER_HEADERS)
    emu.faults.add(r"^/blob/upload$", Fault(503, {}, b"busy"), method="PUT")
    body = bytes(range(256)) * 4096  # 1 MiB the fault answers without reading
    with httpx.Client(headers=CLUSTER_HEADERS) as client:
        refused = client.put(registered["writeUrl"], content=body, headers={"x-ms-blob-type": "BlockBlob"})
        assert refused.status_code == 503
        assert client.post(emu.graphql_url, json=PING).status_code == 200
        (recorded,) = emu.requests_to(r"^/blob/upload$")
        assert recorded.body_length == len(body)


# -- routing and CLI ------------------------------------------------------------------------
def test_unknown_routes_and_methods(emu: UniqueEmulator) -> None:
    assert HTTP.get(emu.graphql_url, headers=CLUSTER_HEADERS).status_code == 405
    assert HTTP.post(f"{emu.url}/ingestion/v1/content/file-diff", headers=CLUSTER_HEADERS).status_code == 404
    assert HTTP.get(emu.url).json()["graphql_url"] == emu.graphql_url


def test_urls(emu: UniqueEmulator) -> None:
    assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert emu.token_url == f"{emu.url}/oauth/v2/token"
    assert emu.graphql_url == f"{emu.url}/ingestion/graphql"
    assert emu.ingestion_url == f"{emu.url}/ingestion/v1/content"
    assert emu.file_diff_url == f"{emu.url}/ingestion/v2/content/file-diff"


def test_cli_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "confluence_sandbox.unique", "--port", "0", "--scope", "/Company/KB"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        for line in process.stdout:
            if "=" in line:
                name, _, value = line.strip().rpartition(" ")[2].partition("=")
                lines[name] = value
            if "UNIQUE_SCOPE_ID" in lines:
                break
        graphql_url = lines["UNIQUE_INGESTION_URL_GRAPHQL"]
        assert graphql_url.endswith("/ingestion/graphql")
        assert lines["UNIQUE_INGESTION_URL"].endswith("/ingestion/v1/content")
        assert "zitadel-secret" not in "".join(lines.values())
        query = {"query": '{ paginatedScope(where: {name: {equals: "KB"}}) { nodes { id } } }'}
        body = HTTP.post(graphql_url, json=query, headers=CLUSTER_HEADERS).json()
        assert body["data"]["paginatedScope"]["nodes"] == [{"id": lines["UNIQUE_SCOPE_ID"]}]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
