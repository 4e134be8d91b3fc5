"""OAuth client credentials for Confluence: the token's lifetime, the 401 flow, refusals and what gets counted."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from confluence_pipeline.clients.confluence import ConfluenceClient, build_confluence_client
from confluence_pipeline.clients.errors import RemoteAuthError, RemoteHttpError, UnexpectedResponse
from confluence_pipeline.clients.oauth import ClientCredentialsTokens, OAuthTokenRefused
from confluence_pipeline.clients.transport import HttpApi, RetryPolicy
from confluence_pipeline.config.settings import confluence_settings

SECRET = "client-Secret-For-Unit-Tests"
DC = {
    "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
    "CONFLUENCE_URL": "https://wiki.example.test/confluence",
    "CONFLUENCE_CLIENT_ID": "svc-client",
    "CONFLUENCE_CLIENT_SECRET": SECRET,
    "CONFLUENCE_TOKENS_PER_MINUTE": "0",
}
CLOUD = {
    "CONFLUENCE_INSTANCE_TYPE": "CLOUD",
    "CONFLUENCE_URL": "https://acme.atlassian.net",
    "CONFLUENCE_CLIENT_ID": "svc-client",
    "CONFLUENCE_CLIENT_SECRET": SECRET,
    "CONFLUENCE_CLOUD_ID": "0f1e-22",
    "CONFLUENCE_TOKENS_PER_MINUTE": "0",
}
DC_TOKEN_URL = "https://wiki.example.test/confluence/rest/oauth2/latest/token"
CLOUD_TOKEN_URL = "https://api.atlassian.com/oauth/token"


class FakeConfluence:
    """A token endpoint and an API that accepts only the tokens it issued and has not revoked."""

    def __init__(self, expires_in: Any = 3600) -> None:
        self.expires_in = expires_in
        self.valid: set[str] = set()
        self.issued: list[str] = []
        self.token_answer: httpx.Response | None = None  # replaces the token endpoint's answer when set
        self.refuse_all = False  # the API refuses every token, even fresh ones
        self.echo_credentials = False  # a 401 repeats the Authorization header it got
        self.media_status = 200
        self.seen: list[httpx.Request] = []
        self.sent_tokens: list[str] = []  # the bearer token of each API call as it arrived (requests are resent)
        self.lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append(request)
            if request.url.path.endswith("token"):
                if self.token_answer is not None:
                    return self.token_answer
                token = f"issued-token-{len(self.issued) + 1:04d}"
                self.issued.append(token)
                self.valid.add(token)
                body: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
                if self.expires_in is not None:
                    body["expires_in"] = self.expires_in
                return httpx.Response(200, json=body)
            if request.url.host == "media.example.test":
                if "authorization" in request.headers:
                    return httpx.Response(400, json={"error": "credentials sent to the media host"})
                if self.media_status != 200:
                    return httpx.Response(self.media_status, json={"error": {"title": "Token expired"}})
                return httpx.Response(200, content=b"attachment bytes")
            credentials = request.headers.get("authorization", "")
            self.sent_tokens.append(credentials.removeprefix("Bearer "))
            if self.refuse_all or credentials.removeprefix("Bearer ") not in self.valid:
                echoed = f": {credentials}" if self.echo_credentials else ""
                return httpx.Response(401, json={"message": f"Client must be authenticated{echoed}"})
            if request.url.path.endswith("/download"):
                return httpx.Response(302, headers={"Location": "https://media.example.test/file/1/binary?token=t"})
            return httpx.Response(200, json={"results": []})

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.seen if not r.url.path.endswith("token")]

    def token_calls(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.url.path.endswith("token")]


@pytest.fixture
def made() -> Iterator[list[ConfluenceClient]]:
    clients: list[ConfluenceClient] = []
    yield clients
    for client in clients:
        client.close()


def client_for(
    env: dict[str, str], fake: FakeConfluence, made: list[ConfluenceClient], **overrides: str
) -> ConfluenceClient:
    settings = confluence_settings({**env, **overrides})
    client = build_confluence_client(
        settings, transport=httpx.MockTransport(fake.handler), retry=RetryPolicy(attempts=2, backoff_initial=0)
    )
    made.append(client)
    return client


def search(client: ConfluenceClient) -> Any:
    return client.api.json("GET", "content/search", route="GET content/search", params={"cql": "type=page"})


# -- the token request, per platform -------------------------------------------------------------------
def test_dc_sends_a_form_with_scope_read_to_its_own_token_endpoint(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(DC, fake, made)
    search(client)
    search(client)

    (token_call,) = fake.token_calls()
    assert str(token_call.url) == DC_TOKEN_URL
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in token_call.headers
    assert parse_qs(token_call.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["svc-client"],
        "client_secret": [SECRET],
        "scope": ["READ"],
    }
    assert [r.headers["authorization"] for r in fake.api_calls()] == ["Bearer issued-token-0001"] * 2
    assert client.api.counter.snapshot() == {"POST oauth token": 1, "GET content/search": 2}


def test_cloud_sends_json_to_atlassian_and_calls_the_gateway(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(CLOUD, fake, made)
    search(client)

    (token_call,) = fake.token_calls()
    assert str(token_call.url) == CLOUD_TOKEN_URL
    assert json.loads(token_call.content) == {
        "grant_type": "client_credentials",
        "client_id": "svc-client",
        "client_secret": SECRET,
    }
    (api_call,) = fake.api_calls()
    assert str(api_call.url).startswith("https://api.atlassian.com/ex/confluence/0f1e-22/wiki/rest/api/content/search")
    assert client.web_url({"_links": {"webui": "/spaces/OPS/pages/1/X"}}, "1") == (
        "https://acme.atlassian.net/wiki/spaces/OPS/pages/1/X"
    )


@pytest.mark.parametrize(
    ("env", "overrides", "url", "scope"),
    [
        (DC, {"CONFLUENCE_OAUTH_SCOPES": "READ,WRITE"}, DC_TOKEN_URL, "READ WRITE"),
        (
            DC,
            {"CONFLUENCE_OAUTH_TOKEN_URL": "https://sso.example.test/token"},
            "https://sso.example.test/token",
            "READ",
        ),
        (CLOUD, {"CONFLUENCE_OAUTH_SCOPES": "search:confluence"}, CLOUD_TOKEN_URL, "search:confluence"),
    ],
)
def test_token_url_and_scopes_from_the_environment(
    made: list[ConfluenceClient], env: dict[str, str], overrides: dict[str, str], url: str, scope: str
) -> None:
    fake = FakeConfluence()
    search(client_for(env, fake, made, **overrides))

    (token_call,) = fake.token_calls()
    assert str(token_call.url) == url
    body = token_call.content.decode()
    sent = parse_qs(body)["scope"][0] if env is DC else json.loads(body)["scope"]
    assert sent == scope


# -- lifetime ----------------------------------------------------------------------------------------
def tokens_with_clock(fake: FakeConfluence, clock: list[float], api: HttpApi) -> ClientCredentialsTokens:
    return ClientCredentialsTokens(
        api,
        token_url=DC_TOKEN_URL,
        client_id="svc-client",
        client_secret=SECRET,
        scopes="READ",
        body="form",
        clock=lambda: clock[0],
    )


@pytest.fixture
def token_api() -> Callable[[FakeConfluence], HttpApi]:
    apis: list[HttpApi] = []

    def make(fake: FakeConfluence) -> HttpApi:
        apis.append(HttpApi(system="confluence", base_url=DC_TOKEN_URL, transport=httpx.MockTransport(fake.handler)))
        return apis[-1]

    yield make
    for api in apis:
        api.close()


@pytest.mark.parametrize(
    ("expires_in", "fresh_until"),
    [(3600, 3540.0), (3600.0, 3540.0), ("3600", 3540.0), (300, 270.0), (10, 9.0)],
)
def test_the_token_is_kept_until_shortly_before_it_expires(
    token_api: Callable[[FakeConfluence], HttpApi], expires_in: Any, fresh_until: float
) -> None:
    fake = FakeConfluence(expires_in)
    clock = [1000.0]
    tokens = tokens_with_clock(fake, clock, token_api(fake))
    first = tokens.token()
    clock[0] += fresh_until - 0.001
    assert tokens.token() == first and tokens.fetches == 1
    clock[0] += 0.001
    assert tokens.token() != first and tokens.fetches == 2


def test_a_token_without_a_lifetime_is_kept_until_refused(token_api: Callable[[FakeConfluence], HttpApi]) -> None:
    fake = FakeConfluence(expires_in=None)
    clock = [0.0]
    tokens = tokens_with_clock(fake, clock, token_api(fake))
    first = tokens.token()
    clock[0] += 10 * 86400
    assert tokens.token() == first
    tokens.invalidate("some-older-token")  # another thread's stale token does not drop the current one
    assert tokens.token() == first
    tokens.invalidate(first)
    assert tokens.token() != first and tokens.fetches == 2


@pytest.mark.parametrize("expires_in", [0, -5, "soon", True, [3600]])
def test_an_unreadable_lifetime_is_an_unexpected_response(
    token_api: Callable[[FakeConfluence], HttpApi], expires_in: Any
) -> None:
    fake = FakeConfluence(expires_in)
    tokens = tokens_with_clock(fake, [0.0], token_api(fake))
    with pytest.raises(UnexpectedResponse, match="expires_in"):
        tokens.token()


def test_a_token_response_without_a_token_is_an_unexpected_response(
    token_api: Callable[[FakeConfluence], HttpApi],
) -> None:
    fake = FakeConfluence()
    fake.token_answer = httpx.Response(200, json={"token_type": "bearer", "expires_in": 3600})
    tokens = tokens_with_clock(fake, [0.0], token_api(fake))
    with pytest.raises(UnexpectedResponse, match="no access_token"):
        tokens.token()


def test_threads_share_one_token_fetch(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(DC, fake, made)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                search(client)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake.issued == ["issued-token-0001"] and len(fake.api_calls()) == 40


# -- 401 inside the auth flow --------------------------------------------------------------------------
def test_a_refused_token_is_replaced_once_and_the_request_sent_again(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(DC, fake, made)
    search(client)
    fake.valid.clear()  # revoked on the server

    assert search(client) == {"results": []}

    assert fake.issued == ["issued-token-0001", "issued-token-0002"]
    assert fake.sent_tokens == ["issued-token-0001", "issued-token-0001", "issued-token-0002"]
    # The request sent again is paced and counted like any attempt, so run totals match the server's.
    assert client.api.counter.snapshot() == {"POST oauth token": 2, "GET content/search": 3}
    assert client.api.counter.retries == 1


def test_a_second_401_is_an_auth_error_without_a_third_try(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(DC, fake, made)
    fake.refuse_all = True

    with pytest.raises(RemoteAuthError) as raised:
        search(client)

    assert raised.value.status == 401 and raised.value.route == "GET content/search"
    assert len(fake.api_calls()) == 2 and len(fake.issued) == 2
    assert "issued-token" not in str(raised.value) and SECRET not in str(raised.value)


def test_a_cloud_download_follows_the_redirect_without_the_token(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(CLOUD, fake, made)
    response = client.api.request(
        "GET", "content/1/child/attachment/att2/download", route="GET attachment download", expect="any"
    )
    assert response.content == b"attachment bytes"
    site, media = fake.api_calls()
    assert site.headers["authorization"] == "Bearer issued-token-0001"
    assert media.url.host == "media.example.test" and "authorization" not in media.headers


def test_a_401_from_the_media_host_does_not_replace_the_confluence_token(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    fake.media_status = 401  # the media host's own signed token expired
    client = client_for(CLOUD, fake, made)

    with pytest.raises(RemoteAuthError):
        client.api.request("GET", "content/1/child/attachment/att2/download", route="GET download", expect="any")

    assert len(fake.issued) == 1 and len(fake.api_calls()) == 2  # no new Confluence token, no second try


def test_dc_drops_os_authtype_basic_which_would_make_it_ignore_the_token(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client = client_for(DC, fake, made)
    client.api.json("GET", "space", route="GET space", params={"os_authType": "basic", "limit": "5"})
    (call,) = fake.api_calls()
    assert dict(call.url.params) == {"limit": "5"}


# -- refusals name the variables -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "named"),
    [
        (401, {"error": "invalid_client", "error_description": "Client authentication failed"}, "CONFLUENCE_CLIENT_ID"),
        (400, {"error": "invalid_scope", "error_description": "Unknown scope"}, "CONFLUENCE_OAUTH_SCOPES"),
        (403, {"error": "access_denied"}, "CONFLUENCE_CLIENT_SECRET"),
        (404, {"message": "Not Found"}, "CONFLUENCE_OAUTH_TOKEN_URL"),
    ],
)
def test_a_refusing_token_endpoint_names_the_variables_to_check(
    made: list[ConfluenceClient], status: int, body: dict[str, str], named: str
) -> None:
    fake = FakeConfluence()
    fake.token_answer = httpx.Response(status, json={**body, "echo": SECRET})
    client = client_for(DC, fake, made)

    with pytest.raises(OAuthTokenRefused) as raised:
        search(client)

    message = str(raised.value)
    assert named in message and f"HTTP {status}" in message and "POST oauth token" in message, message
    assert SECRET not in message
    assert fake.api_calls() == [] and len(fake.token_calls()) == 1  # a refusal is not retried


def test_a_failing_token_endpoint_is_retried_and_then_reported_as_it_is(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    fake.token_answer = httpx.Response(503, json={"message": "maintenance"})
    client = client_for(DC, fake, made)

    with pytest.raises(RemoteHttpError) as raised:
        search(client)

    assert not isinstance(raised.value, OAuthTokenRefused)
    assert raised.value.status == 503 and len(fake.token_calls()) == 2


def test_the_issued_token_is_scrubbed_from_errors(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    fake.refuse_all = fake.echo_credentials = True
    client = client_for(DC, fake, made)

    with pytest.raises(RemoteAuthError) as raised:
        search(client)

    assert len(fake.issued) == 2
    assert "issued-token" not in str(raised.value) and str(raised.value).endswith(": ***"), str(raised.value)


def test_building_the_client_sends_nothing(made: list[ConfluenceClient]) -> None:
    fake = FakeConfluence()
    client_for(DC, fake, made)
    assert fake.seen == []  # the token is fetched on first use, after configuration was checked
