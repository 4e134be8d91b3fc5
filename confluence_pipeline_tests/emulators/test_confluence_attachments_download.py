"""Attachment downloads over real sockets: DC bytes with auth and versions, Cloud's 302 to a separate media origin
that refuses forwarded credentials, streaming of large files, faults and mid-body cuts, and request recording."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLOUD_AUTH, PAT
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.confluence.attachments import Attachment, sample_pdf
from confluence_sandbox.http import REDACTED, Fault


def attach(emu: ConfluenceEmulator, filename: str = "spec.pdf", data: bytes | None = None, **kw: object) -> Attachment:
    wiki = emu.wiki
    if wiki.find_space("OPS") is None:
        wiki.add_space("OPS", "Operations")
    page_id = next(iter(wiki.ids_with_title("Runbook")), None) or wiki.add_page("OPS", "Runbook").id
    if data is None and "size" not in kw:
        data = sample_pdf()
    return wiki.add_attachment(page_id, filename, data, **kw)  # type: ignore[arg-type]


def download_link(emu: ConfluenceEmulator, att: Attachment, client: httpx.Client) -> str:
    """`_links.base` + `_links.download`, as a client joins them."""
    body = client.get(f"{emu.api_root}/content/{att.container.id}/child/attachment").json()
    item = next(r for r in body["results"] if r["title"] == att.title)
    return body["_links"]["base"] + item["_links"]["download"]


# -- DC -------------------------------------------------------------------------------------------------------
def test_dc_download_needs_auth_and_serves_the_bytes(dc: ConfluenceEmulator) -> None:
    att = attach(dc, "spec sheet.pdf")
    with httpx.Client(headers=PAT) as client:
        url = download_link(dc, att, client)
        assert url.startswith(f"{dc.url}/confluence/download/attachments/{att.container.id}/spec%20sheet.pdf?")
        head = client.head(url)
        response = client.get(url)  # on the same connection: a HEAD that sent a body would garble this one
    assert response.status_code == 200
    assert response.content == sample_pdf()
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(sample_pdf()))
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(sample_pdf()))
    assert httpx.get(url).status_code == 401
    basic = httpx.get(url, auth=("svc", "svc-password"))
    assert basic.status_code == 200 and basic.content == sample_pdf()
    assert httpx.get(url.replace("/confluence/", "/"), headers=PAT).status_code == 404  # the context path counts


@pytest.mark.parametrize("filename", ["Übersicht (v2)+final.pdf", "100% done.txt", "a&b=c?.png"])
def test_download_links_encode_any_filename(dc: ConfluenceEmulator, cloud: ConfluenceEmulator, filename: str) -> None:
    for emu, kw in ((dc, {"headers": PAT}), (cloud, {"auth": CLOUD_AUTH})):
        att = attach(emu, filename, b"bytes of " + filename.encode())
        with httpx.Client(follow_redirects=True, **kw) as client:  # type: ignore[arg-type]
            response = client.get(download_link(emu, att, client))
        assert response.status_code == 200 and response.content == att.data.read()


def test_dc_download_versions_and_missing_files(dc: ConfluenceEmulator) -> None:
    att = attach(dc, "notes.txt", b"first")
    dc.wiki.update_attachment(att.id, b"second version")
    base = f"{dc.base_url}/download/attachments/{att.container.id}/notes.txt"
    with httpx.Client(headers=PAT) as client:
        assert client.get(base).content == b"second version"
        assert client.get(base, params={"version": "2"}).content == b"second version"
        old = client.get(base, params={"version": "1", "modificationDate": "1", "api": "v2"})
        assert old.content == b"first" and old.headers["Content-Length"] == "5"
        assert client.get(base, params={"version": "3"}).status_code == 404
        assert client.get(f"{dc.base_url}/download/attachments/{att.container.id}/other.txt").status_code == 404
        dc.wiki.remove_attachment(att.id)
        assert client.get(base).status_code == 404
        dc.wiki.restore_attachment(att.id)
        dc.wiki.hide_page(att.container.id)
        assert client.get(base).status_code == 404


def test_dc_large_generated_download_streams_with_a_correct_length(dc: ConfluenceEmulator) -> None:
    size = 200 * 1024 * 1024 + 123
    att = attach(dc, "dump.bin", size=size, seed=42)
    expected = att.data.sha256()
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        with httpx.Client(headers=PAT, timeout=60) as client:
            url = f"{dc.base_url}/download/attachments/{att.container.id}/dump.bin"
            with client.stream("GET", url) as response:
                assert response.headers["Content-Length"] == str(size)
                assert response.headers["Content-Type"] == "application/octet-stream"
                for chunk in response.iter_raw():
                    digest.update(chunk)
                    received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size and digest.hexdigest() == expected
    assert peak < 16 * 1024 * 1024  # neither side held the file


# -- Cloud: 302 to the media host -----------------------------------------------------------------------------
def test_cloud_rest_download_redirects_to_a_separate_media_origin(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud)
    media = cloud.media
    assert media is not None and media.running and media.port != cloud.port
    route = f"{cloud.api_root}/content/{att.container.id}/child/attachment/{att.id}/download"
    with httpx.Client(auth=CLOUD_AUTH) as client:
        redirect = client.get(route)
        assert redirect.status_code == 302
        location = redirect.headers["Location"]
        split = urlsplit(location)
        assert f"{split.scheme}://{split.netloc}" == media.url != cloud.url
        assert split.path == f"/file/{att.current.file_id}/binary" and parse_qs(split.query)["token"]
        followed = client.get(route, follow_redirects=True)
    assert followed.status_code == 200 and followed.content == sample_pdf()
    assert followed.headers["Content-Type"] == "application/pdf"
    assert followed.headers["Content-Length"] == str(len(sample_pdf()))
    assert [r.status for r in media.requests] == [200] and media.credentialed_requests == []
    assert httpx.get(route).status_code == 401  # the REST route itself needs auth


def test_media_host_refuses_forwarded_credentials(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud)
    media = cloud.media
    assert media is not None
    route = f"{cloud.api_root}/content/{att.container.id}/child/attachment/{att.id}/download"
    with httpx.Client(auth=CLOUD_AUTH) as client:
        location = client.get(route).headers["Location"]
    leaky = httpx.get(location, auth=CLOUD_AUTH)  # a client that sends its credentials to every origin
    assert leaky.status_code == 400
    cookie = httpx.get(location, headers={"Cookie": "tenant.session.token=abc"})
    assert cookie.status_code == 400
    assert len(media.credentialed_requests) == 2
    assert media.credentialed_requests[0].headers["authorization"] == REDACTED
    assert media.credentialed_requests[1].headers["cookie"] == REDACTED
    cloud.media_rejects_credentials = False
    assert httpx.get(location, auth=CLOUD_AUTH).status_code == 200
    assert len(media.credentialed_requests) == 3  # recorded even when accepted


def test_media_tokens_are_signed_short_lived_and_per_file(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud, "a.pdf")
    other = attach(cloud, "b.pdf", b"other")
    route = f"{cloud.api_root}/content/{att.container.id}/child/attachment/{att.id}/download"
    with httpx.Client(auth=CLOUD_AUTH) as client:
        location = client.get(route).headers["Location"]
        cloud.media_token_ttl = -1
        expired = client.get(route).headers["Location"]
    assert httpx.get(location).status_code == 200
    assert httpx.get(expired).status_code == 401
    token = parse_qs(urlsplit(location).query)["token"][0]
    forged = location.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert httpx.get(forged).status_code == 401
    assert httpx.get(location.split("?")[0]).status_code == 401
    assert httpx.get(location.replace(att.current.file_id, other.current.file_id)).status_code == 403


def test_cloud_download_versions_gateway_and_missing(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud, "notes.txt", b"first")
    cloud.wiki.update_attachment(att.id, b"second")
    page_id = att.container.id
    gateway = f"{cloud.gateway_api_root}/content/{page_id}/child/attachment/{att.id}/download"
    with httpx.Client(auth=CLOUD_AUTH, follow_redirects=True) as client:
        assert client.get(gateway).content == b"second"
        assert client.get(gateway, params={"version": "1"}).content == b"first"
        assert client.get(gateway, params={"version": "9"}).status_code == 404
        site = f"{cloud.api_root}/content/{page_id}/child/attachment/{att.numeric_id}/download"
        assert client.get(site).content == b"second"  # the numeric form names the same attachment
        elsewhere = cloud.wiki.add_page("OPS", "Elsewhere")
        wrong_page = f"{cloud.api_root}/content/{elsewhere.id}/child/attachment/{att.id}/download"
        assert client.get(wrong_page).status_code == 404
        cloud.wiki.hide_page(page_id)
        assert client.get(gateway).status_code == 404


def test_dc_has_no_rest_download_route(dc: ConfluenceEmulator) -> None:
    att = attach(dc)
    response = httpx.get(f"{dc.api_root}/content/{att.container.id}/child/attachment/{att.id}/download", headers=PAT)
    assert response.status_code == 404 and dc.media is None


def test_cloud_links_download_works_with_basic_and_refuses_bearer(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud)
    with httpx.Client(auth=CLOUD_AUTH) as client:
        url = download_link(cloud, att, client)
        assert url.startswith(f"{cloud.url}/wiki/download/attachments/{att.container.id}/spec.pdf?version=1&")
        redirect = client.get(url)
        assert redirect.status_code == 302 and redirect.headers["Location"].startswith(cloud.media.url)  # type: ignore[union-attr]
        assert client.get(url, follow_redirects=True).content == sample_pdf()
        gateway = url.replace(f"{cloud.url}/wiki", f"{cloud.url}/ex/confluence/{cloud.cloud_id}/wiki")
        assert client.get(gateway, follow_redirects=True).content == sample_pdf()
    bearer = httpx.get(url, headers={"Authorization": "Bearer some-oauth-access-token"})
    assert bearer.status_code == 401 and "OAuth" in bearer.json()["message"]
    gateway_bearer = httpx.get(gateway, headers={"Authorization": "Bearer some-oauth-access-token"})
    assert gateway_bearer.status_code == 401 and "OAuth" in gateway_bearer.json()["message"]
    cloud.cloud_download_refuses_bearer = False
    assert "OAuth" not in httpx.get(url, headers={"Authorization": "Bearer x"}).json()["message"]


# -- faults, cuts, recording, lifecycle -------------------------------------------------------------------------
def test_fault_plan_applies_to_one_attachment_download(dc: ConfluenceEmulator) -> None:
    good = attach(dc, "good.pdf")
    bad = attach(dc, "bad.pdf")
    dc.faults.add(r"/download/attachments/.*/bad\.pdf$", Fault(500), times=1)
    with httpx.Client(headers=PAT) as client:
        prefix = f"{dc.base_url}/download/attachments/{good.container.id}"
        assert client.get(f"{prefix}/good.pdf").status_code == 200
        assert client.get(f"{prefix}/bad.pdf").status_code == 500
        assert client.get(f"{prefix}/bad.pdf").content == bad.data.read()
        dc.faults.add(r"/bad\.pdf$", Fault(drop=True))
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{prefix}/bad.pdf")


def test_dc_download_cut_mid_body(dc: ConfluenceEmulator) -> None:
    att = attach(dc, "big.bin", size=1_000_000, seed=3)
    dc.body_cuts.add(r"/big\.bin$")
    url = f"{dc.base_url}/download/attachments/{att.container.id}/big.bin"
    received = bytearray()
    with httpx.Client(headers=PAT) as client:
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as response:
            assert response.status_code == 200 and response.headers["Content-Length"] == "1000000"
            for chunk in response.iter_raw():
                received += chunk
        assert len(received) == 500_000  # headers and half the body, then the connection closed
        assert client.get(url).content == att.data.read()  # one cut only
    dc.body_cuts.add(r"/big\.bin$", after=10, times=None)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url, headers=PAT)


def test_media_host_faults_and_cuts(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud, "big.bin", size=300_000, seed=5)
    media = cloud.media
    assert media is not None
    route = f"{cloud.api_root}/content/{att.container.id}/child/attachment/{att.id}/download"
    media.faults.add(r"/binary$", Fault(503, {"Retry-After": "1"}))
    media.body_cuts.add(r"/binary$", after=1000)
    with httpx.Client(auth=CLOUD_AUTH, follow_redirects=True) as client:
        assert client.get(route).status_code == 503
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(route)
        assert hashlib.sha256(client.get(route).content).hexdigest() == att.data.sha256()
    assert [r.status for r in media.requests] == [503, 200, 200]


def test_downloads_and_media_requests_are_recorded_with_secrets_redacted(cloud: ConfluenceEmulator) -> None:
    att = attach(cloud)
    media = cloud.media
    assert media is not None
    with httpx.Client(auth=CLOUD_AUTH, follow_redirects=True) as client:
        client.get(f"{cloud.api_root}/content/{att.container.id}/child/attachment/{att.id}/download")
    (site,) = cloud.requests_to(r"/child/attachment/.*/download$")
    assert site.status == 302 and site.headers["authorization"] == REDACTED
    (binary,) = media.requests_to(r"/binary$", method="GET")
    assert binary.status == 200 and binary.query["token"] == [REDACTED]
    assert "authorization" not in binary.headers


def test_media_host_starts_and_stops_with_the_emulator() -> None:
    with ConfluenceEmulator("CLOUD") as emu:
        media = emu.media
        assert media is not None and media.running
        assert httpx.get(f"{media.url}/nothing").status_code == 404
    assert not media.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{media.url}/nothing", timeout=2)


def test_a_download_in_progress_does_not_block_the_api(dc: ConfluenceEmulator) -> None:
    att = attach(dc, "slow.bin", size=50 * 1024 * 1024, seed=9)
    url = f"{dc.base_url}/download/attachments/{att.container.id}/slow.bin"
    started, done = threading.Event(), threading.Event()

    def stalled_reader() -> None:
        # Reads one chunk, then stops reading: the server blocks writing into a full socket buffer.
        with httpx.Client(headers=PAT, timeout=60) as client, client.stream("GET", url) as response:
            next(response.iter_raw())
            started.set()
            done.wait(30)

    reader = threading.Thread(target=stalled_reader)
    reader.start()
    try:
        assert started.wait(10)
        response = httpx.get(f"{dc.api_root}/content/{att.container.id}/child/attachment", headers=PAT, timeout=3)
        assert response.status_code == 200  # the wiki lock is not held while bytes are sent
    finally:
        done.set()
        reader.join(30)
