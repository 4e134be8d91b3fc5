"""A sync against Confluence over HTTPS with a private CA: trusted through NODE_EXTRA_CA_CERTS or SSL_CERT_FILE only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import trustme

from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource
from confluence_pipeline_tests.support import (
    CLOUD_TOKEN,
    PASSWORD,
    PAT,
    ZITADEL_SECRET,
    Sandbox,
    base_env,
    failure_text,
)
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.unique import UniqueEmulator

CA_VARIABLES = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


@pytest.fixture
def tls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    """Confluence served over HTTPS with a certificate from a fresh private CA; returns the CA bundle path."""
    for resource in (ConfluenceResource, UniqueResource, SyncOptionsResource):
        for name in resource.variable_names():
            monkeypatch.delenv(name, raising=False)
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    ca = trustme.CA()
    server_pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    confluence = ConfluenceEmulator(mode="ONPREM", pat=PAT, password=PASSWORD, cloud_token=CLOUD_TOKEN)
    confluence.wrap_tls(str(server_pem), str(server_pem))
    with confluence, UniqueEmulator(client_secret=ZITADEL_SECRET) as unique:
        box = Sandbox(confluence, unique, monkeypatch, dg.DagsterInstance.ephemeral())
        box.set_env(**base_env(confluence, unique, unique.store.add_scope("KB").id))
        assert box.env["CONFLUENCE_URL"].startswith("https://127.0.0.1:")
        confluence.wiki.add_space("ENG", "Engineering")
        confluence.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
        yield box, ca_pem


@pytest.mark.parametrize("variable", ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"])
def test_a_sync_trusts_the_private_ca_from_the_environment(tls: tuple[Sandbox, Path], variable: str) -> None:
    box, ca_pem = tls
    box.set_env(**{variable: str(ca_pem)})

    box.run_sync()

    assert len(box.stored()) == 1


def test_without_the_ca_the_sync_fails_with_a_certificate_message_and_writes_nothing(
    tls: tuple[Sandbox, Path],
) -> None:
    box, _ = tls

    result = box.run_sync(expect_success=False)

    text = failure_text(result)
    assert "certificate verification failed" in text and "NODE_EXTRA_CA_CERTS" in text
    assert box.unique_writes() == []
    assert box.confluence.requests == []  # the handshake failed: no request reached the server
