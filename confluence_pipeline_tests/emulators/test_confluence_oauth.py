"""OAuth 2.0 client credentials over real sockets: DC's and Cloud's token endpoints, where the bearer tokens work,
expiry, revocation, and secrets kept out of the request recording."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import PAT
from confluence_sandbox.confluence import ConfluenceEmulator

CLIENT_ID = "svc-sync-client"
CLIENT_SECRET = "client-Secret-0auth-7781"
FORM = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scope": "READ"}
CLOUD_JSON = {
    "grant_type": "client_credentials",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "audience": "api.atlassian.com",
}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: building a new one per call costs more than the call."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def dc() -> Iterator[ConfluenceEmulator]:
    with ConfluenceEmulator(
        "ONPREM", context_path="/confluence", oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET
    ) as emulator:
        yield emulator


@pytest.fixture
def cloud() -> Iterator[ConfluenceEmulator]:
    with ConfluenceEmulator("CLOUD", oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET) as emulator:
        yield emulator


@pytest.fixture(params=["ONPREM", "CLOUD"])
def either(request: pytest.FixtureRequest) -> Iterator[ConfluenceEmulator]:
    with ConfluenceEmulator(request.param, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET) as emulator:
        yield emulator


def dc_token_url(emu: ConfluenceEmulator) -> str:
    return f"{emu.base_url}/rest/oauth2/latest/token"


def cloud_token_url(emu: ConfluenceEmulator) -> str:
    return f"{emu.gateway_url}/oauth/token"


def get_token(http: httpx.Client, emu: ConfluenceEmulator) -> str:
    if emu.mode == "ONPREM":
        response = http.post(dc_token_url(emu), data=FORM)
    else:
        response = http.post(cloud_token_url(emu), json=CLOUD_JSON)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def api_url(emu: ConfluenceEmulator) -> str:
    """Where an OAuth token is meant to be used: DC's API root, or Cloud's gateway."""
    return f"{emu.api_root}/space" if emu.mode == "ONPREM" else f"{emu.gateway_api_root}/space"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- DC token endpoint ----------------------------------------------------------------------------------------------
def test_dc_token_endpoint_issues_a_bearer_token_for_the_api(http: httpx.Client, dc: ConfluenceEmulator) -> None:
    url = dc_token_url(dc)
    assert url.endswith("/confluence/rest/oauth2/latest/token")
    response = http.post(url, data=FORM)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 3600, "READ")
    token = bearer(body["access_token"])
    assert http.get(f"{dc.api_root}/space", headers=token).status_code == 200
    search = http.get(f"{dc.api_root}/content/search", params={"cql": "type = page"}, headers=token)
    assert search.status_code == 200
    assert http.get(f"{dc.api_root}/space", headers=bearer("not-issued")).status_code == 401
    assert dc.oauth_tokens_issued == 1
    # Outside the context path there is no token endpoint.
    assert http.post(f"{dc.url}/rest/oauth2/latest/token", data=FORM).status_code == 404


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (FORM | {"client_secret": "wrong"}, 401, "invalid_client"),
        (FORM | {"client_id": "someone-else"}, 401, "invalid_client"),
        ({k: v for k, v in FORM.items() if k != "client_secret"}, 401, "invalid_client"),
        ({k: v for k, v in FORM.items() if k != "grant_type"}, 400, "invalid_request"),
        (FORM | {"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
    ids=["wrong-secret", "wrong-client-id", "no-secret", "no-grant-type", "password-grant"],
)
def test_dc_token_endpoint_rejects_bad_requests(
    http: httpx.Client, dc: ConfluenceEmulator, form: dict[str, str], status: int, error: str
) -> None:
    response = http.post(dc_token_url(dc), data=form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert dc.oauth_tokens_issued == 0


def test_dc_token_endpoint_wants_a_form_post(http: httpx.Client, dc: ConfluenceEmulator) -> None:
    assert http.get(dc_token_url(dc)).status_code == 405
    assert http.post(dc_token_url(dc), json=FORM).status_code == 400  # JSON names no grant type for a form reader


def test_no_token_endpoints_without_a_configured_client(http: httpx.Client) -> None:
    with ConfluenceEmulator("ONPREM") as dc, ConfluenceEmulator("CLOUD") as cloud:
        assert http.post(dc_token_url(dc), data=FORM).status_code == 404
        assert http.post(cloud_token_url(cloud), json=CLOUD_JSON).status_code == 404


# -- Cloud token endpoint and the gateway ------------------------------------------------------------------------------
def test_cloud_token_endpoint_on_the_gateway(http: httpx.Client, cloud: ConfluenceEmulator) -> None:
    response = http.post(cloud_token_url(cloud), json=CLOUD_JSON)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"].lower() == "bearer" and body["expires_in"] == 3600
    without_audience = {k: v for k, v in CLOUD_JSON.items() if k != "audience"}
    assert http.post(cloud_token_url(cloud), json=without_audience).status_code == 200
    assert cloud.oauth_tokens_issued == 2


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        (CLOUD_JSON | {"client_secret": "wrong"}, 401, "invalid_client"),
        (CLOUD_JSON | {"client_id": "someone-else"}, 401, "invalid_client"),
        ({k: v for k, v in CLOUD_JSON.items() if k != "grant_type"}, 400, "invalid_request"),
        (CLOUD_JSON | {"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
    ],
    ids=["wrong-secret", "wrong-client-id", "no-grant-type", "code-grant"],
)
def test_cloud_token_endpoint_rejects_bad_requests(
    http: httpx.Client, cloud: ConfluenceEmulator, payload: dict[str, str], status: int, error: str
) -> None:
    response = http.post(cloud_token_url(cloud), json=payload)
    assert response.status_code == status and response.json()["error"] == error
    assert cloud.oauth_tokens_issued == 0


def test_cloud_token_endpoint_rejects_a_body_that_is_not_json(http: httpx.Client, cloud: ConfluenceEmulator) -> None:
    response = http.post(cloud_token_url(cloud), content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_cloud_oauth_tokens_work_only_through_the_gateway(http: httpx.Client, cloud: ConfluenceEmulator) -> None:
    cloud.wiki.add_space("OPS", "Operations")
    page = cloud.wiki.add_page("OPS", "Runbook")
    token = bearer(get_token(http, cloud))
    gateway = f"{cloud.url}/ex/confluence/{cloud.cloud_id}"
    for url in [
        f"{gateway}/wiki/rest/api/space",
        f"{gateway}/rest/api/space",
        f"{gateway}/wiki/rest/api/content/{page.id}",
        f"{gateway}/wiki/api/v2/pages/{page.id}",
        f"{gateway}/wiki/api/v2/spaces",
    ]:
        assert http.get(url, headers=token).status_code == 200, url
    for url in [f"{cloud.api_root}/space", f"{cloud.api_root}/content/{page.id}", f"{cloud.v2_root}/pages"]:
        refused = http.get(url, headers=token)
        assert refused.status_code == 401, url
        assert refused.json()["statusCode"] == 401


# -- expiry and revocation, both platforms ---------------------------------------------------------------------------
def test_tokens_expire_after_the_ttl(http: httpx.Client, either: ConfluenceEmulator) -> None:
    emu = either
    clock = [1000.0]
    emu.oauth.clock = lambda: clock[0]
    emu.oauth_token_ttl = 60
    if emu.mode == "ONPREM":
        response = http.post(dc_token_url(emu), data=FORM)
    else:
        response = http.post(cloud_token_url(emu), json=CLOUD_JSON)
    assert response.json()["expires_in"] == 60
    token = bearer(response.json()["access_token"])
    assert http.get(api_url(emu), headers=token).status_code == 200
    clock[0] += 59.9
    assert http.get(api_url(emu), headers=token).status_code == 200
    clock[0] += 0.1
    assert http.get(api_url(emu), headers=token).status_code == 401
    assert http.get(api_url(emu), headers=bearer(get_token(http, emu))).status_code == 200


def test_revoked_tokens_answer_401(http: httpx.Client, either: ConfluenceEmulator) -> None:
    emu = either
    first, second = bearer(get_token(http, emu)), bearer(get_token(http, emu))
    assert http.get(api_url(emu), headers=first).status_code == 200
    emu.revoke_oauth_tokens()
    assert http.get(api_url(emu), headers=first).status_code == 401
    assert http.get(api_url(emu), headers=second).status_code == 401
    third = bearer(get_token(http, emu))
    assert http.get(api_url(emu), headers=third).status_code == 200
    assert emu.oauth_tokens_issued == 3


def test_dc_os_authtype_basic_refuses_oauth_tokens_but_not_pats(http: httpx.Client, dc: ConfluenceEmulator) -> None:
    token = bearer(get_token(http, dc))
    assert http.get(f"{dc.api_root}/space", params={"os_authType": "basic"}, headers=token).status_code == 401
    assert http.get(f"{dc.api_root}/space", params={"os_authType": "basic"}, headers=PAT).status_code == 200
    assert http.get(f"{dc.api_root}/space", headers=token).status_code == 200


# -- recording keeps no secret ---------------------------------------------------------------------------------------
def test_recording_redacts_client_secrets_and_bearer_tokens(http: httpx.Client, either: ConfluenceEmulator) -> None:
    emu = either
    if emu.mode == "ONPREM":
        token = http.post(dc_token_url(emu), data=FORM).json()["access_token"]
        http.post(dc_token_url(emu), data=FORM | {"client_secret": "a-wrong-Secret-guess"})
    else:
        token = http.post(cloud_token_url(emu), json=CLOUD_JSON).json()["access_token"]
        http.post(cloud_token_url(emu), json=CLOUD_JSON | {"client_secret": "a-wrong-Secret-guess"})
        # A form body on Cloud is redacted too.
        http.post(cloud_token_url(emu), data=FORM)
    http.get(api_url(emu), headers=bearer(token))
    recorded = emu.requests
    everything = repr(recorded)
    for secret in (CLIENT_SECRET, "a-wrong-Secret-guess", token):
        assert secret not in everything
    token_requests = [r for r in recorded if r.method == "POST"]
    assert token_requests and all(b"<redacted>" in r.body for r in token_requests)
    for r in token_requests:
        # What is not secret stays readable for assertions.
        assert b"client_credentials" in r.body and CLIENT_ID.encode() in r.body
    if emu.mode == "CLOUD":
        assert json.loads(token_requests[0].body)["client_secret"] == "<redacted>"
    (api_call,) = [r for r in recorded if r.method == "GET"]
    assert api_call.headers["authorization"] == "<redacted>"


def test_recording_redacts_an_unreadable_token_body(http: httpx.Client, dc: ConfluenceEmulator) -> None:
    http.post(dc_token_url(dc), content=CLIENT_SECRET.encode())
    (recorded,) = dc.requests
    assert recorded.body == b"<redacted>"
