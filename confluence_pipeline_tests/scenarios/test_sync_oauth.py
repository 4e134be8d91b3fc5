"""Scenarios for a Confluence OAuth 2.0 service account (client credentials) on Data Center and Cloud.

Given a wiki and the emulator's token endpoint, after a sync Unique holds exactly the labelled pages; one token
serves the whole run, an expired or revoked token is replaced once, a wrong secret stops the run before any write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from confluence_pipeline.clients.confluence import build_confluence_client
from confluence_pipeline.config.settings import confluence_settings
from confluence_pipeline_tests.support import (
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    PAT,
    Sandbox,
    expected_state,
    failure_text,
    make_sandbox,
    mutations,
    oauth_env,
    output_metadata,
    prepare_pending_changes,
    unique_state,
)

TOKEN_PATHS = ("/rest/oauth2/latest/token", "/oauth/token")


@pytest.fixture(params=["ONPREM", "CLOUD"])
def box(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox whose connector authenticates as the emulator's OAuth service account."""
    for sandbox in make_sandbox(request.param, monkeypatch):
        sandbox.set_env(**oauth_env(sandbox.confluence))
        yield sandbox


def _wiki(box: Sandbox) -> None:
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OPS", "Operations")
    root = wiki.add_page("ENG", "Handbook", labels=["ai-ingest-all"])
    child = wiki.add_page("ENG", "Onboarding", parent_id=root.id)
    wiki.add_page("ENG", "Deep", parent_id=child.id)
    wiki.add_page("ENG", "Unlabelled")
    for n in range(3):
        wiki.add_page("OPS", f"Runbook {n}", labels=["ai-ingest"])


def _token_requests(box: Sandbox) -> list[Any]:
    return [r for r in box.confluence.requests if r.path.endswith(TOKEN_PATHS)]


# The instance's identity (its ownership mark) is read without credentials, by design.
IDENTITY_PATHS = ("/rest/applinks/1.0/manifest", "/_edge/tenant_info")


def _api_requests(box: Sandbox) -> list[Any]:
    return [r for r in box.confluence.requests if not r.path.endswith(TOKEN_PATHS + IDENTITY_PATHS)]


def _refused(box: Sandbox) -> list[Any]:
    return [r for r in _api_requests(box) if r.status == 401]


def _after_first_search_page(action: Callable[[], None]) -> Callable[[int], None]:
    """A `between_search_pages` hook that runs `action` once, after the first search page was answered."""

    def hook(served: int) -> None:
        if served == 1:
            action()

    return hook


def _summary(result: Any) -> dict[str, Any]:
    return output_metadata(result, "summarize_sync")


def test_a_full_sync_with_one_token_for_the_whole_run(box: Sandbox) -> None:
    _wiki(box)
    result = box.run_sync()

    assert unique_state(box) == expected_state(box) and len(unique_state(box)) == 6
    (token_request,) = _token_requests(box)
    assert box.confluence.oauth_tokens_issued == 1  # every step and worker thread shared one token
    assert token_request.method == "POST" and token_request.status == 200
    if box.confluence.mode == "ONPREM":
        form = parse_qs(token_request.body.decode())
        assert token_request.path == "/rest/oauth2/latest/token"
        assert form == {
            "grant_type": ["client_credentials"],
            "client_id": [OAUTH_CLIENT_ID],
            "client_secret": ["<redacted>"],  # the emulator's recording hides it; it was sent
            "scope": ["READ"],
        }
    else:
        assert token_request.headers["content-type"] == "application/json"
        assert json.loads(token_request.body) == {
            "grant_type": "client_credentials",
            "client_id": OAUTH_CLIENT_ID,
            "client_secret": "<redacted>",
        }
        # Cloud tokens are only good on the API gateway; the links stored in Unique still point at the site.
        gateway = f"/ex/confluence/{box.confluence.cloud_id}/wiki/rest/api/"
        assert all(r.path.startswith(gateway) for r in _api_requests(box))
        site = f"{box.confluence.url}/wiki/spaces/"
        assert all((c.url or "").startswith(site) for c in box.unique.store.contents.values())
    assert _refused(box) == []
    assert all(r.headers.get("authorization") == "<redacted>" for r in _api_requests(box))

    summary = _summary(result)
    assert summary["confluence_requests"] == len(box.confluence.requests)  # the token request counts too
    assert summary["confluence_requests_by_route"]["POST oauth token"] == 1


def test_scopes_from_the_environment_are_requested(box: Sandbox) -> None:
    box.set_env(CONFLUENCE_OAUTH_SCOPES="search:confluence, read:content-details:confluence")
    _wiki(box)
    box.run_sync()

    (token_request,) = _token_requests(box)
    body = token_request.body.decode()
    scope = parse_qs(body)["scope"][0] if box.confluence.mode == "ONPREM" else json.loads(body)["scope"]
    assert scope == "search:confluence read:content-details:confluence"


def test_a_token_expiring_mid_run_is_replaced_once_and_the_sync_converges(box: Sandbox) -> None:
    _wiki(box)
    skew = [0.0]
    box.confluence.oauth.clock = lambda: time.monotonic() + skew[0]

    def expire() -> None:
        skew[0] += 2 * box.confluence.oauth_token_ttl

    box.confluence.between_search_pages = _after_first_search_page(expire)
    box.run_sync()

    assert unique_state(box) == expected_state(box)
    assert box.confluence.oauth_tokens_issued == 2  # one extra token request
    assert [r.status for r in _token_requests(box)] == [200, 200]
    assert len(_refused(box)) == 1  # the one request that met the expired token was sent again, and only it


def test_a_token_refreshed_shortly_before_it_expires_is_never_refused(box: Sandbox) -> None:
    box.confluence.oauth_token_ttl = 2  # refreshed 0.2 s early, well before the emulator's 0.05 s latency matters
    box.confluence.faults.latency = 0.05
    box.unique.faults.latency = 0.05  # with one page at a time, the run outlives the first token
    wiki = box.confluence.wiki
    for space in ("A", "B", "C", "D", "E", "F"):
        wiki.add_space(space, f"Space {space}")
        for n in range(2):
            wiki.add_page(space, f"{space} {n}", labels=["ai-ingest"])
    box.set_env(UNIQUE_CONCURRENCY="1")
    started = time.monotonic()
    box.run_sync()

    assert time.monotonic() - started > 2  # otherwise nothing here needed a second token
    assert unique_state(box) == expected_state(box)
    assert box.confluence.oauth_tokens_issued >= 2
    assert _refused(box) == []


def test_a_revoked_token_gets_one_401_one_new_token_and_the_sync_converges(box: Sandbox) -> None:
    _wiki(box)
    box.confluence.between_search_pages = _after_first_search_page(box.confluence.revoke_oauth_tokens)
    result = box.run_sync()

    assert unique_state(box) == expected_state(box)
    assert box.confluence.oauth_tokens_issued == 2
    assert len(_refused(box)) == 1
    # The request sent again counts too, so the run's totals still match what Confluence saw.
    assert _summary(result)["confluence_requests"] == len(box.confluence.requests)


def test_a_wrong_secret_fails_before_any_write_with_a_clear_message(box: Sandbox) -> None:
    before = prepare_pending_changes(box)
    wrong = "wrong-Secret-Guess-4242"
    box.set_env(CONFLUENCE_CLIENT_SECRET=wrong)

    result = box.run_sync(expect_success=False)

    text = failure_text(result)
    assert "CONFLUENCE_CLIENT_ID and CONFLUENCE_CLIENT_SECRET" in text, text
    assert "POST oauth token" in text and "HTTP 401" in text, text
    assert wrong not in text and OAUTH_CLIENT_SECRET not in text
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == ["discover_labelled_pages"]
    sent = [r.status for r in box.confluence.requests if not r.path.endswith(IDENTITY_PATHS)]
    assert sent == [401]  # only the token request, never retried
    assert box.unique.requests == [] and mutations(box) == []
    assert unique_state(box) == before


def _two_methods(box: Sandbox) -> tuple[dict[str, str], set[str]]:
    if box.confluence.mode == "ONPREM":
        return {"CONFLUENCE_PAT": PAT}, {"CONFLUENCE_PAT", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"}
    return (
        {"CONFLUENCE_CLOUD_USER": "svc@example.com"},
        {"CONFLUENCE_CLOUD_USER", "CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_SECRET"},
    )


def test_two_auth_methods_fail_naming_the_variables_before_any_request(box: Sandbox) -> None:
    _wiki(box)
    extra, named = _two_methods(box)
    box.set_env(**extra)

    result = box.run_sync(expect_success=False)

    metadata = output_metadata(result, "discover_labelled_pages")
    assert set(metadata["bad_variables"]) == named
    text = failure_text(result)
    assert "more than one Confluence auth method" in text and "set exactly one" in text, text
    assert box.confluence.requests == [] and box.unique.requests == []


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ("CONFLUENCE_CLIENT_SECRET", "CONFLUENCE_CLIENT_SECRET"),
        ("CONFLUENCE_CLIENT_ID", "CONFLUENCE_CLIENT_ID"),
    ],
)
def test_half_of_the_client_credentials_fails_naming_the_missing_one(box: Sandbox, unset: str, named: str) -> None:
    box.set_env(**{unset: None})

    result = box.run_sync(expect_success=False)

    assert output_metadata(result, "discover_labelled_pages")["bad_variables"] == [named]
    assert box.confluence.requests == [] and box.unique.requests == []


def test_cloud_oauth_without_a_cloud_id_is_named_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for box in make_sandbox("CLOUD", monkeypatch):
        box.set_env(**oauth_env(box.confluence))
        box.set_env(CONFLUENCE_CLOUD_ID=None)

        result = box.run_sync(expect_success=False)

        assert output_metadata(result, "discover_labelled_pages")["bad_variables"] == ["CONFLUENCE_CLOUD_ID"]
        assert "API gateway" in failure_text(result)
        assert box.confluence.requests == [] and box.unique.requests == []


# -- the client alone, over sockets ----------------------------------------------------------------------
def test_a_cloud_download_follows_the_302_to_the_media_host_without_the_token(cloud: Sandbox) -> None:
    cloud.set_env(**oauth_env(cloud.confluence))
    wiki = cloud.confluence.wiki
    wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Runbook")
    data = b"%PDF-1.4 attachment bytes \x00\xff"
    attachment = wiki.add_attachment(page.id, "spec.pdf", data)
    media = cloud.confluence.media
    assert media is not None and cloud.confluence.media_rejects_credentials  # 400 if a token reached it
    client = build_confluence_client(confluence_settings(cloud.env))
    try:
        response = client.api.request(
            "GET",
            f"content/{page.id}/child/attachment/{attachment.id}/download",
            route="GET attachment download",
            expect="any",
        )
    finally:
        client.close()

    assert response.content == data
    (site,) = _api_requests(cloud)
    assert site.status == 302 and site.path.startswith(f"/ex/confluence/{cloud.confluence.cloud_id}/wiki/rest/api/")
    assert site.headers.get("authorization") == "<redacted>"  # the token went to Confluence
    (fetched,) = media.requests
    assert fetched.status == 200 and "authorization" not in fetched.headers and "cookie" not in fetched.headers


def test_dc_bearer_tokens_survive_a_url_with_os_authtype_basic(onprem: Sandbox) -> None:
    onprem.set_env(**oauth_env(onprem.confluence))
    onprem.confluence.wiki.add_space("OPS", "Operations")
    client = build_confluence_client(confluence_settings(onprem.env))
    try:
        payload = client.api.json("GET", "space/OPS", route="GET space/{key}", params={"os_authType": "basic"})
    finally:
        client.close()

    assert payload["key"] == "OPS"
    (call,) = _api_requests(onprem)
    assert call.status == 200 and "os_authType" not in call.query
