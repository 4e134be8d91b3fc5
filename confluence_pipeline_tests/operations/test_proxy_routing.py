"""Proxies over real sockets: with NO_PROXY="localhost,*.mydomain" those names go direct, others through the proxy."""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from confluence_pipeline.alerts import post_alert
from confluence_pipeline.clients.confluence import build_confluence_client
from confluence_pipeline.clients.errors import RemoteError, RemoteHttpError, RemoteUnavailable
from confluence_pipeline.clients.tls import build_ssl_context
from confluence_pipeline.clients.transport import HttpApi, RetryPolicy
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.clients.zitadel import ZitadelTokenProvider
from confluence_pipeline.config.settings import confluence_settings, unique_settings
from confluence_pipeline_tests.support import PAT, ZITADEL_SECRET, Sandbox
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.http import EmulatorServer, Request, Response
from confluence_sandbox.unique import UniqueEmulator

TEST_DOMAINS = ("mydomain", "example.test")
NO_PROXY = "localhost,*.mydomain"
PROXY_PASSWORD = "Proxy-Pass-4711"
CLEARED_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class ForwardProxy(EmulatorServer):
    """A forward proxy: relays absolute-form HTTP requests, tunnels CONNECT, records what it was asked for.

    With `credentials` it answers 407 to requests without them, echoing what it got (as some proxies do).
    """

    name = "forward-proxy"

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.credentials = credentials
        self._seen: list[str] = []
        self._seen_lock = threading.Lock()
        self.proxy_authorizations: list[str | None] = []

    @property
    def seen(self) -> list[str]:
        """`GET http://host:port/path` for relayed requests, `CONNECT host:port` for tunnels, in order."""
        with self._seen_lock:
            return list(self._seen)

    def hosts(self) -> set[str]:
        """The host names the proxy was asked to reach."""
        targets = [what.split(" ", 1)[1] for what in self.seen]
        return {urlsplit(target if "://" in target else f"//{target}").hostname or "" for target in targets}

    def _note(self, what: str, authorization: str | None) -> bool:
        with self._seen_lock:
            self._seen.append(what)
            self.proxy_authorizations.append(authorization)
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return authorization == f"Basic {expected}"

    def _refusal(self, authorization: str | None) -> bytes:
        _, _, encoded = (authorization or "").partition(" ")
        try:
            decoded = base64.b64decode(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        return f"bad proxy credentials {authorization} ({decoded})".encode()

    # -- absolute-form HTTP ------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        authorization = request.headers.get("proxy-authorization")
        if not self._note(f"{request.method} {request.raw_target}", authorization):
            return Response(407, self._refusal(authorization), {"Proxy-Authenticate": 'Basic realm="corp"'})
        target = urlsplit(request.raw_target)
        if not target.hostname:
            return Response.text("not an absolute-form request", status=400)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        try:
            connection.request(request.method, path or "/", body=request.body, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            return Response(answer.status, body, {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP})
        finally:
            connection.close()

    # -- CONNECT -----------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        base: Any = super()._handler_class()

        class _Handler(base):  # type: ignore[misc]
            def do_CONNECT(self) -> None:
                proxy._tunnel(self)

        return _Handler

    def _tunnel(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        authorization = handler.headers.get("Proxy-Authorization")
        if not self._note(f"CONNECT {handler.path}", authorization):
            body = self._refusal(authorization)
            handler.send_response(407)
            handler.send_header("Proxy-Authenticate", 'Basic realm="corp"')
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        host, _, port = handler.path.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            handler.send_error(502)
            return
        handler.send_response(200, "Connection established")
        handler.end_headers()
        client = handler.connection
        with upstream:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 5)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)


def renamed(url: str, host: str) -> str:
    """`url` of an emulator on 127.0.0.1, addressed by a test name instead."""
    return url.replace("//127.0.0.1:", f"//{host}:", 1)


@pytest.fixture
def names_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """`*.mydomain` and `*.example.test` resolve to 127.0.0.1 in this process, for the clients and the proxy alike;
    any other name fails to resolve, so no test connects anywhere but 127.0.0.1."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
        if name in ("127.0.0.1", "localhost") or any(name == d or name.endswith(f".{d}") for d in TEST_DOMAINS):
            return real("127.0.0.1", port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"{name} is not a test name")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch, names_on_loopback: None) -> Iterator[ForwardProxy]:
    """The forward proxy, named in HTTPS_PROXY and HTTP_PROXY, with NO_PROXY="localhost,*.mydomain"."""
    for name in CLEARED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with ForwardProxy() as server:
        monkeypatch.setenv("HTTPS_PROXY", server.url)
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("NO_PROXY", NO_PROXY)
        yield server  # type: ignore[misc]


def onprem_settings(base_url: str) -> Any:
    return confluence_settings(
        {
            "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
            "CONFLUENCE_URL": base_url,
            "CONFLUENCE_PAT": PAT,
            "CONFLUENCE_TOKENS_PER_MINUTE": "0",
        }
    )


def expected_seen(via_proxy: bool, *requests: str) -> list[str]:
    return list(requests) if via_proxy else []


# -- the four call paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "via_proxy"), [("confluence.mydomain", False), ("mydomain", False), ("wiki.example.test", True)]
)
def test_a_confluence_request(proxy: ForwardProxy, host: str, via_proxy: bool) -> None:
    with ConfluenceEmulator(mode="ONPREM", pat=PAT) as confluence:
        confluence.wiki.add_space("ENG", "Engineering")
        base_url = renamed(confluence.base_url, host)
        settings = onprem_settings(base_url)
        client = build_confluence_client(settings)
        try:
            assert client.space_visible("ENG")
        finally:
            client.close()

        assert proxy.seen == expected_seen(via_proxy, f"GET {base_url}/rest/api/space/ENG")
        assert len(confluence.requests_to(r"/rest/api/space/ENG$")) == 1


@pytest.mark.parametrize(("host", "via_proxy"), [("unique.mydomain", False), ("unique.example.test", True)])
def test_a_unique_graphql_request(proxy: ForwardProxy, host: str, via_proxy: bool) -> None:
    with UniqueEmulator(client_secret=ZITADEL_SECRET) as unique:
        scope_id = unique.store.add_scope("KB").id
        settings = unique_settings(
            {
                "UNIQUE_INGESTION_URL": renamed(unique.ingestion_url, host),
                "UNIQUE_INGESTION_URL_GRAPHQL": renamed(unique.graphql_url, host),
                "UNIQUE_SERVICE_AUTH_MODE": "cluster_local",
                "UNIQUE_SERVICE_EXTRA_HEADERS": json.dumps(
                    {"x-company-id": unique.company_id, "x-user-id": unique.user_id}
                ),
                "UNIQUE_TOKENS_PER_MINUTE": "0",
            }
        )
        client = UniqueClient(settings)
        try:
            scope = client.scope(scope_id)
        finally:
            client.close()

        assert scope is not None and scope.id == scope_id
        assert proxy.seen == expected_seen(via_proxy, f"POST {settings.graphql_url}")
        assert len(unique.requests_to(r"/graphql$", method="POST")) == 1


@pytest.fixture
def tls_unique(tmp_path: Path) -> Iterator[tuple[UniqueEmulator, Path]]:
    """The Unique emulator's Zitadel endpoint over HTTPS, with a certificate from a private CA for the test names."""
    ca = trustme.CA()
    server_pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("zitadel.mydomain", "login.example.test").private_key_and_cert_chain_pem.write_to_path(
        str(server_pem)
    )
    ca.cert_pem.write_to_path(str(ca_pem))
    unique = UniqueEmulator(client_secret=ZITADEL_SECRET)
    unique.wrap_tls(str(server_pem), str(server_pem))
    with unique:
        yield unique, ca_pem


def fetch_token(token_url: str, ca_pem: Path | None) -> str:
    env = {"NODE_EXTRA_CA_CERTS": str(ca_pem)} if ca_pem else {}
    api = HttpApi(system="zitadel", base_url=token_url, verify=build_ssl_context(env))
    provider = ZitadelTokenProvider(
        api, token_url=token_url, client_id="connector", client_secret=ZITADEL_SECRET, project_id="123456"
    )
    try:
        return provider.token()
    finally:
        provider.api.close()


@pytest.mark.parametrize(("host", "via_proxy"), [("zitadel.mydomain", False), ("login.example.test", True)])
def test_a_zitadel_token_request_over_https(
    proxy: ForwardProxy, tls_unique: tuple[UniqueEmulator, Path], host: str, via_proxy: bool
) -> None:
    unique, ca_pem = tls_unique
    token_url = renamed(unique.token_url, host)

    assert fetch_token(token_url, ca_pem)

    assert proxy.seen == expected_seen(via_proxy, f"CONNECT {host}:{unique.port}")  # a tunnel, never the path
    assert unique.tokens_issued == 1


def test_tls_is_verified_inside_the_tunnel(proxy: ForwardProxy, tls_unique: tuple[UniqueEmulator, Path]) -> None:
    unique, _ = tls_unique

    with pytest.raises(RemoteUnavailable) as info:
        fetch_token(renamed(unique.token_url, "login.example.test"), ca_pem=None)

    assert "TLS certificate verification failed" in str(info.value)
    assert proxy.seen == [f"CONNECT login.example.test:{unique.port}"]  # not retried: waiting will not help
    assert unique.tokens_issued == 0


class HookReceiver(EmulatorServer):
    name = "hook"

    def handle(self, request: Request) -> Response:
        return Response.json({"ok": True})


@pytest.mark.parametrize(("host", "via_proxy"), [("hooks.mydomain", False), ("hooks.example.test", True)])
def test_the_alert_webhook(proxy: ForwardProxy, host: str, via_proxy: bool) -> None:
    with HookReceiver() as hook:
        url = renamed(f"{hook.url}/alert", host)

        assert post_alert(url, {"text": "sync failed"}) == 200

        assert proxy.seen == expected_seen(via_proxy, f"POST {url}")
        assert [json.loads(r.body) for r in hook.requests] == [{"text": "sync failed"}]


def test_the_alert_webhook_reads_the_environment_it_is_given(proxy: ForwardProxy) -> None:
    with HookReceiver() as hook:
        url = renamed(f"{hook.url}/alert", "hooks.mydomain")
        env = {**os.environ, "NO_PROXY": "localhost"}  # here *.mydomain is not exempt

        assert post_alert(url, {"text": "sync failed"}, env) == 200

        assert proxy.seen == [f"POST {url}"]


# -- a whole sync ----------------------------------------------------------------------------------------


def test_a_sync_reaches_confluence_direct_and_unique_through_the_proxy(proxy: ForwardProxy, onprem: Sandbox) -> None:
    box = onprem
    unique_host = "unique.example.test"
    box.set_env(
        CONFLUENCE_URL=renamed(box.confluence.base_url, "confluence.mydomain"),
        UNIQUE_INGESTION_URL=renamed(box.unique.ingestion_url, unique_host),
        UNIQUE_INGESTION_URL_GRAPHQL=renamed(box.unique.graphql_url, unique_host),
        ZITADEL_OAUTH_TOKEN_URL=renamed(box.unique.token_url, unique_host),
    )
    box.confluence.wiki.add_space("ENG", "Engineering")
    box.confluence.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])

    box.run_sync()

    assert len(box.stored()) == 1
    assert box.confluence.requests  # Confluence was asked, never through the proxy
    assert proxy.hosts() == {unique_host}
    routes = {f"{seen.split()[0]} {urlsplit(seen.split()[1]).path}" for seen in proxy.seen}
    assert routes == {
        "POST /oauth/v2/token",
        "POST /ingestion/graphql",
        "POST /ingestion/v2/content/file-diff",
        "PUT /blob/upload",
    }


# -- proxy credentials -----------------------------------------------------------------------------------


@pytest.fixture
def guarded_proxy(monkeypatch: pytest.MonkeyPatch, names_on_loopback: None) -> Iterator[ForwardProxy]:
    for name in CLEARED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with ForwardProxy(credentials=("corp-user", PROXY_PASSWORD)) as server:
        yield server  # type: ignore[misc]


def test_proxy_credentials_from_the_url_reach_the_proxy(
    guarded_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://corp-user:{PROXY_PASSWORD}@127.0.0.1:{guarded_proxy.port}")
    with ConfluenceEmulator(mode="ONPREM", pat=PAT) as confluence:
        confluence.wiki.add_space("ENG", "Engineering")
        base_url = renamed(confluence.base_url, "wiki.example.test")
        settings = onprem_settings(base_url)
        client = build_confluence_client(settings)
        try:
            assert client.space_visible("ENG")
        finally:
            client.close()

    expected = base64.b64encode(f"corp-user:{PROXY_PASSWORD}".encode()).decode()
    assert guarded_proxy.proxy_authorizations == [f"Basic {expected}"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refusing_proxy_never_gets_its_password_into_the_error(
    guarded_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, scheme: str
) -> None:
    wrong = "Wrong-Pass-0815"
    monkeypatch.setenv(f"{scheme}_proxy", f"http://corp-user:{wrong}@127.0.0.1:{guarded_proxy.port}")
    settings = onprem_settings(f"{scheme}://wiki.example.test:9")
    client = build_confluence_client(settings, retry=RetryPolicy(attempts=1))
    caplog.set_level("DEBUG")
    try:
        with pytest.raises(RemoteError) as info:
            client.space_visible("ENG")
    finally:
        client.close()

    assert guarded_proxy.seen == [
        "GET http://wiki.example.test:9/rest/api/space/ENG" if scheme == "http" else "CONNECT wiki.example.test:9"
    ]
    if scheme == "http":  # the proxy's 407 page, which echoes the credentials, becomes the error detail
        assert isinstance(info.value, RemoteHttpError) and info.value.status == 407
        assert "bad proxy credentials Basic ***" in str(info.value)
    else:  # httpx reports a refused tunnel as a transport failure
        assert isinstance(info.value, RemoteUnavailable) and "ProxyError" in str(info.value)
    text = f"{info.value} {info.value!r} {caplog.text}"
    for secret in (wrong, base64.b64encode(f"corp-user:{wrong}".encode()).decode()):
        assert secret not in text
