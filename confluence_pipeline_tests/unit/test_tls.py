"""CA bundles from the environment, tried against a real TLS server on 127.0.0.1 with a private CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import trustme

from confluence_pipeline.clients.errors import RemoteUnavailable
from confluence_pipeline.clients.tls import build_ssl_context
from confluence_pipeline.clients.transport import HttpApi
from confluence_sandbox.http import EmulatorServer, Request, Response

CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "SSL_CERT_DIR")


class HelloApp(EmulatorServer):
    name = "tls-app"

    def handle(self, request: Request) -> Response:
        return Response.json({"hello": "tls"})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_pem(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _serve(ca: trustme.CA, directory: Path, *names: str) -> HelloApp:
    cert = ca.issue_cert(*names)
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    for index, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(certfile), append=index > 0)
    cert.private_key_pem.write_to_path(str(keyfile))
    server = HelloApp()
    server.wrap_tls(str(certfile), str(keyfile))
    server._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    return server.start()


@pytest.fixture(scope="module")
def server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelloApp]:
    app = _serve(ca, tmp_path_factory.mktemp("server"), "127.0.0.1")
    yield app
    app.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _hello(server: HelloApp) -> object:
    with HttpApi(system="confluence", base_url=server.url, sleep=lambda _: None) as api:
        return api.json("GET", "/hello", route="GET hello")


def test_default_trust_rejects_a_private_ca_clearly_and_without_retrying(server: HelloApp) -> None:
    with (
        HttpApi(system="confluence", base_url=server.url, sleep=lambda _: None) as api,
        pytest.raises(RemoteUnavailable) as info,
    ):
        api.json("GET", "/hello", route="GET hello")
    message = str(info.value)
    assert "TLS certificate verification failed" in message
    assert "NODE_EXTRA_CA_CERTS" in message
    assert api.counter.total == 1  # a certificate does not become valid by waiting


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_each_bundle_variable_makes_the_private_ca_trusted(
    monkeypatch: pytest.MonkeyPatch, server: HelloApp, ca_pem: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, str(ca_pem))
    assert _hello(server) == {"hello": "tls"}


def test_extra_certs_add_to_the_default_store_while_a_bundle_replaces_it(ca_pem: Path) -> None:
    defaults = len(build_ssl_context({}).get_ca_certs())
    assert defaults >= len(certifi.contents().split("END CERTIFICATE")) - 1 > 50
    assert len(build_ssl_context({"NODE_EXTRA_CA_CERTS": str(ca_pem)}).get_ca_certs()) == defaults + 1
    assert len(build_ssl_context({"SSL_CERT_FILE": str(ca_pem)}).get_ca_certs()) == 1
    assert len(build_ssl_context({"REQUESTS_CA_BUNDLE": str(ca_pem)}).get_ca_certs()) == 1


def test_the_system_store_is_part_of_the_default_trust(
    monkeypatch: pytest.MonkeyPatch, server: HelloApp, ca_pem: Path
) -> None:
    """OpenSSL finds "the system store" through SSL_CERT_FILE in the process environment; point it at our CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    context = build_ssl_context({})  # the variables the pipeline reads say: defaults only
    with HttpApi(system="confluence", base_url=server.url, verify=context, sleep=lambda _: None) as api:
        assert api.json("GET", "/hello", route="GET hello") == {"hello": "tls"}


def test_ssl_cert_file_wins_over_requests_ca_bundle(ca_pem: Path) -> None:
    context = build_ssl_context({"SSL_CERT_FILE": str(ca_pem), "REQUESTS_CA_BUNDLE": "/nonexistent/bundle.pem"})
    assert len(context.get_ca_certs()) == 1


def test_an_explicit_context_is_not_overridden_by_ssl_cert_file_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: HelloApp, ca_pem: Path
) -> None:
    context = build_ssl_context({"NODE_EXTRA_CA_CERTS": str(ca_pem)})
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # httpx would use this bundle if verify were True
    with HttpApi(system="unique", base_url=server.url, verify=context, sleep=lambda _: None) as api:
        assert api.json("GET", "/hello", route="GET hello") == {"hello": "tls"}


def test_hostname_verification_stays_on(ca: trustme.CA, ca_pem: Path, tmp_path: Path) -> None:
    wrong_name = _serve(ca, tmp_path, "wiki.example.test")
    try:
        context = build_ssl_context({"SSL_CERT_FILE": str(ca_pem)})
        with (
            HttpApi(system="confluence", base_url=wrong_name.url, verify=context, sleep=lambda _: None) as api,
            pytest.raises(RemoteUnavailable, match="certificate verification failed"),
        ):
            api.json("GET", "/hello", route="GET hello")
    finally:
        wrong_name.stop()


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_a_missing_bundle_fails_fast_naming_the_variable_and_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    missing = tmp_path / "corp-ca.pem"
    with pytest.raises(ValueError, match=rf"{variable} points to '{missing}', which does not exist"):
        build_ssl_context({variable: str(missing)})
    monkeypatch.setenv(variable, str(missing))
    with pytest.raises(ValueError, match=variable):
        HttpApi(system="confluence", base_url="https://wiki.example.test")


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"])
def test_a_bundle_that_is_not_pem_fails_fast(tmp_path: Path, variable: str) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=rf"{variable} points to .*cannot be read as a PEM CA bundle"):
        build_ssl_context({variable: str(junk)})


def test_verification_is_always_on(ca_pem: Path) -> None:
    for env in ({}, {"NODE_EXTRA_CA_CERTS": str(ca_pem)}, {"SSL_CERT_FILE": str(ca_pem)}):
        context = build_ssl_context(env)
        assert context.check_hostname is True
        assert context.verify_mode.name == "CERT_REQUIRED"
