"""Scenarios for the auth modes of both systems (issue: sync job, item 10)."""

from __future__ import annotations

import json

from confluence_pipeline_tests.support import PASSWORD, Sandbox, failure_text


def _labelled_page(box: Sandbox) -> str:
    box.confluence.wiki.add_space("ENG", "Engineering")
    return box.confluence.wiki.add_page("ENG", "Doc", labels=["ai-ingest"]).id


def test_onprem_basic_auth(onprem: Sandbox) -> None:
    onprem.set_env(CONFLUENCE_PAT=None, CONFLUENCE_USERNAME="svc", CONFLUENCE_PASSWORD=PASSWORD)
    page_id = _labelled_page(onprem)
    onprem.run_sync()
    assert onprem.key_of(page_id) in onprem.stored()


def test_onprem_wrong_pat_fails_before_any_unique_request(onprem: Sandbox) -> None:
    onprem.set_env(CONFLUENCE_PAT="not-the-right-token")
    _labelled_page(onprem)
    result = onprem.run_sync(expect_success=False)
    assert not result.success
    text = failure_text(result)
    assert "401" in text and "not-the-right-token" not in text
    assert onprem.unique.requests == []


def test_cloud_through_site_and_gateway(cloud: Sandbox) -> None:
    page_id = _labelled_page(cloud)
    cloud.run_sync()
    assert all(r.path.startswith("/wiki/rest/api/") for r in cloud.confluence.requests if "/content/search" in r.path)
    assert cloud.key_of(page_id) in cloud.stored()

    cloud.unique.store.contents.clear()
    cloud.confluence.clear_requests()
    cloud.set_env(CONFLUENCE_CLOUD_ID=cloud.confluence.cloud_id, CONFLUENCE_CLOUD_API_URL=cloud.confluence.gateway_url)
    cloud.run_sync()
    searches = [r for r in cloud.confluence.requests if "/content/search" in r.path]
    assert searches and all(
        r.path.startswith(f"/ex/confluence/{cloud.confluence.cloud_id}/wiki/rest/api/") for r in searches
    )
    assert cloud.key_of(page_id) in cloud.stored()


def test_zitadel_token_fetched_once_reused_and_extra_headers_sent(onprem: Sandbox) -> None:
    onprem.set_env(
        UNIQUE_SERVICE_EXTRA_HEADERS=json.dumps({"x-tenant-hint": "acme-tenant"}),
        ZITADEL_SERVICE_EXTRA_HEADERS=json.dumps({"x-zitadel-instance-host": "id.example.test"}),
    )
    _labelled_page(onprem)
    onprem.run_sync()

    token_calls = onprem.unique.requests_to(r"/oauth/v2/token$")
    assert len(token_calls) == 1 and onprem.unique.tokens_issued == 1  # one token for every step of the run
    assert token_calls[0].headers.get("x-zitadel-instance-host") == "id.example.test"
    api_calls = [r for r in onprem.unique.requests if r.path.startswith("/ingestion/")]
    assert api_calls and all(r.headers.get("x-tenant-hint") == "acme-tenant" for r in api_calls)
    assert all(r.headers.get("authorization") == "<redacted>" for r in api_calls)


def test_zitadel_token_refreshed_before_expiry(onprem: Sandbox) -> None:
    onprem.unique.token_ttl = 1  # refreshed 0.1 s early
    onprem.unique.faults.latency = 0.05
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    for n in range(12):
        wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"])
    onprem.set_env(UNIQUE_CONCURRENCY="1")
    onprem.run_sync()
    assert onprem.unique.tokens_issued >= 2
    refused = [r for r in onprem.unique.requests if r.path.startswith("/ingestion/") and r.status == 401]
    assert refused == []
    assert len(onprem.stored()) == 12


def test_cluster_local_sends_headers_no_token_and_uses_scoped_upload(onprem: Sandbox) -> None:
    onprem.unique.auth_mode = "cluster_local"
    onprem.set_env(
        UNIQUE_SERVICE_AUTH_MODE="cluster_local",
        UNIQUE_SERVICE_EXTRA_HEADERS=json.dumps({"x-company-id": "company-1", "x-user-id": "service-user-1"}),
        ZITADEL_OAUTH_TOKEN_URL=None,
        ZITADEL_CLIENT_ID=None,
        ZITADEL_CLIENT_SECRET=None,
        ZITADEL_PROJECT_ID=None,
    )
    page_id = _labelled_page(onprem)
    onprem.run_sync()

    assert onprem.key_of(page_id) in onprem.stored()
    assert onprem.unique.tokens_issued == 0
    assert all("authorization" not in r.headers for r in onprem.unique.requests)
    api = [r for r in onprem.unique.requests if r.method == "POST"]
    assert api and all(r.headers.get("x-company-id") == "company-1" for r in api)
    puts = [r for r in onprem.unique.requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].path == "/ingestion/scoped/upload" and puts[0].query.get("key")
