"""Attachments in the Confluence emulator: the wiki model, v1 and v2 listings, CQL and `children.attachment`,
all as an httpx client sees them over real sockets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLOUD_AUTH, dc_client
from confluence_sandbox.confluence import ConfluenceEmulator, Wiki
from confluence_sandbox.confluence.attachments import BLOCK_SIZE, FileData, sample_pdf, sample_png


def cloud_client() -> httpx.Client:
    return httpx.Client(auth=CLOUD_AUTH)


def page_with_files(wiki: Wiki, count: int, *, space: str = "OPS", title: str = "Runbook") -> tuple[str, list[str]]:
    if wiki.find_space(space) is None:
        wiki.add_space(space, f"Space {space}")
    page = wiki.add_page(space, title, labels=["ai-ingest"])
    ids = [wiki.add_attachment(page.id, f"file-{i:03}.txt", f"content {i}".encode()).id for i in range(count)]
    return page.id, ids


# -- the wiki model ------------------------------------------------------------------------------------------
def test_ids_share_the_content_sequence_and_versions_keep_their_bytes() -> None:
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Runbook")
    att = wiki.add_attachment(page.id, "spec.pdf", b"v1 bytes", comment="first")
    later_page = wiki.add_page("OPS", "Later")
    assert re.fullmatch(r"att\d+", att.id)
    assert int(page.id) < int(att.numeric_id) < int(later_page.id)
    assert (att.media_type, att.size, att.version, att.comment) == ("application/pdf", 8, 1, "first")
    first_when = att.when

    updated = wiki.update_attachment(att.id, b"version two", comment="second")
    assert updated is att and att.version == 2 and att.size == 11 and att.when > first_when
    assert att.at_version(1) is not None and att.at_version(1).data.read() == b"v1 bytes"  # type: ignore[union-attr]
    assert att.data.read() == b"version two"
    assert wiki.update_attachment(f"{att.numeric_id}", comment="only a comment").data.read() == b"version two"
    assert att.version == 3

    with pytest.raises(ValueError, match="already has an attachment"):
        wiki.add_attachment(page.id, "spec.pdf", b"again")
    with pytest.raises(ValueError, match="either data or size"):
        wiki.add_attachment(page.id, "nothing.bin")
    assert wiki.add_attachment(page.id, "diagram.png", sample_png()).media_type == "image/png"
    assert wiki.add_attachment(page.id, "notes.unknownext", b"x").media_type == "application/octet-stream"


def test_remove_trashes_purge_deletes_and_attachments_follow_a_moved_page() -> None:
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    wiki.add_space("DEV", "Development")
    page = wiki.add_page("OPS", "Runbook")
    keep = wiki.add_attachment(page.id, "keep.txt", b"k")
    trash = wiki.add_attachment(page.id, "trash.txt", b"t")
    purge = wiki.add_attachment(page.id, "purge.txt", b"p")
    wiki.remove_attachment(trash.id)
    wiki.remove_attachment(purge.id, purge=True)
    assert [a.title for a in wiki.attachments_of(page.id)] == ["keep.txt"]
    assert [a.title for a in wiki.attachments_of(page.id, statuses=("trashed",))] == ["trash.txt"]
    with pytest.raises(KeyError):
        wiki.attachment(purge.id)
    wiki.move_page(page.id, "DEV")
    assert keep.space_key == "DEV"
    wiki.trash_page(page.id)
    assert not wiki.attachment_visible(keep)


def test_generated_bytes_are_deterministic_blockwise_and_cost_no_memory() -> None:
    size = 3 * BLOCK_SIZE + 17
    data = FileData.generated(size, seed=7)
    chunks = list(data.chunks())
    assert [len(c) for c in chunks] == [BLOCK_SIZE, BLOCK_SIZE, BLOCK_SIZE, 17]
    assert chunks[1][:8] == (1).to_bytes(8, "big") and chunks[0][8:] == chunks[1][8:]  # blocks differ by index
    assert data.sha256() == FileData.generated(size, seed=7).sha256() != FileData.generated(size, seed=8).sha256()
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Big")
    big = wiki.add_attachment(page.id, "dump.bin", size=200 * 1024 * 1024, seed=1)
    assert big.size == 200 * 1024 * 1024 and big.data.literal is None
    bumped = wiki.update_attachment(big.id, size=10)
    assert bumped.at_version(1).size == 200 * 1024 * 1024 and bumped.size == 10  # type: ignore[union-attr]


def test_sample_files_are_real_files() -> None:
    png, pdf = sample_png(), sample_pdf("Runbook")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
    assert pdf.startswith(b"%PDF-1.4") and b"(Runbook) Tj" in pdf and pdf.rstrip().endswith(b"%%EOF")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref")


# -- v1 listing ------------------------------------------------------------------------------------------------
def test_dc_child_attachment_objects(dc: ConfluenceEmulator) -> None:
    wiki = dc.wiki
    wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Runbook")
    when = datetime(2024, 5, 1, 8, 2, 3, 456789, tzinfo=UTC)
    att = wiki.add_attachment(page.id, "spec sheet.pdf", sample_pdf(), comment="the spec", when=when)
    wiki.add_attachment(page.id, "diagram.png", sample_png())
    with dc_client(dc) as client:
        body = client.get(f"/content/{page.id}/child/attachment", params={"expand": "version,container"}).json()
    assert body["size"] == 2 and body["limit"] == 50 and body["start"] == 0
    assert body["_links"]["base"] == f"{dc.url}/confluence" and body["_links"]["context"] == "/confluence"
    first = body["results"][0]
    assert first["id"] == att.id and first["type"] == "attachment" and first["status"] == "current"
    assert first["title"] == "spec sheet.pdf"
    assert first["metadata"]["mediaType"] == "application/pdf"  # expanded without being asked
    assert first["extensions"] == {"mediaType": "application/pdf", "fileSize": att.size, "comment": "the spec"}
    assert first["version"]["number"] == 1 and first["version"]["when"] == "2024-05-01T10:02:03.456+02:00"
    assert first["container"]["id"] == page.id and first["container"]["type"] == "page"
    download = first["_links"]["download"]
    assert (
        download == f"/download/attachments/{page.id}/spec%20sheet.pdf?version=1&modificationDate=1714550523456&api=v2"
    )
    numeric = att.numeric_id
    assert first["_links"]["webui"] == (
        f"/pages/viewpageattachments.action?pageId={page.id}&preview=%2F{page.id}%2F{numeric}%2Fspec%20sheet.pdf"
    )
    assert "thumbnail" in body["results"][1]["_links"] and "thumbnail" not in first["_links"]
    dc.dc_attachment_ids = "numeric"
    with dc_client(dc) as client:
        body = client.get(f"/content/{page.id}/child/attachment").json()
    assert body["results"][0]["id"] == numeric and "container" not in body["results"][0]


def test_child_attachment_filters_trash_and_hidden_pages(dc: ConfluenceEmulator) -> None:
    wiki = dc.wiki
    page_id, _ = page_with_files(wiki, 0)
    wiki.add_attachment(page_id, "a.pdf", b"a")
    wiki.add_attachment(page_id, "b.png", b"b")
    gone = wiki.add_attachment(page_id, "c.pdf", b"c")
    wiki.remove_attachment(gone.id)
    with dc_client(dc) as client:

        def titles(**params: str) -> list[str]:
            response = client.get(f"/content/{page_id}/child/attachment", params=params)
            assert response.status_code == 200, response.text
            return [r["title"] for r in response.json()["results"]]

        assert titles() == ["a.pdf", "b.png"]
        assert titles(filename="b.png") == ["b.png"]
        assert titles(mediaType="application/pdf") == ["a.pdf"]
        wiki.hide_page(page_id)
        assert client.get(f"/content/{page_id}/child/attachment").status_code == 404


def test_dc_child_attachment_paging_quirks(dc: ConfluenceEmulator) -> None:
    dc.cap_expand = 4
    page_id, ids = page_with_files(dc.wiki, 10)
    path = f"/content/{page_id}/child/attachment"
    with dc_client(dc) as client:
        first = client.get(path, params={"limit": "6"}).json()
        assert (first["limit"], first["size"]) == (4, 4)  # metadata is always expanded, so the expansion cap applies
        next_query = parse_qs(urlsplit(first["_links"]["next"]).query)
        assert first["_links"]["next"].startswith(f"/rest/api/content/{page_id}/child/attachment?")
        assert next_query["start"] == ["6"] and next_query["limit"] == ["6"]  # DC's miscount
        blind = [r["id"] for r in first["results"]]
        url = first["_links"]["base"] + first["_links"]["next"]
        while True:
            body = client.get(url).json()
            if not body["results"]:
                break
            blind += [r["id"] for r in body["results"]]
            if "next" not in body["_links"]:
                break
            url = body["_links"]["base"] + body["_links"]["next"]
        assert blind == ids[:4] + ids[6:10]
        dc.trailing_empty_next = True
        last = client.get(path, params={"start": "8", "limit": "4"}).json()
        assert last["size"] == 2 and "next" in last["_links"]
        empty = client.get(last["_links"]["base"] + last["_links"]["next"]).json()
        assert empty["results"] == [] and empty["size"] == 0


def test_cloud_child_attachment_first_page_works_continuation_is_gone(cloud: ConfluenceEmulator) -> None:
    page_id, ids = page_with_files(cloud.wiki, 30)
    with cloud_client() as client:
        first = client.get(f"{cloud.api_root}/content/{page_id}/child/attachment").json()
        assert [r["id"] for r in first["results"]] == ids[:25] and first["limit"] == 25
        assert first["results"][0]["extensions"]["fileId"] == cloud.wiki.attachment(ids[0]).current.file_id
        follow = client.get(f"{cloud.url}/wiki{first['_links']['next']}")
        assert follow.status_code == 410
        gateway = client.get(f"{cloud.gateway_api_root}/content/{page_id}/child/attachment", params={"start": "25"})
        assert gateway.status_code == 410
        cloud.cloud_attachment_pagination_gone = False
        rest = client.get(f"{cloud.url}/wiki{first['_links']['next']}").json()
        assert [r["id"] for r in rest["results"]] == ids[25:]


# -- children.attachment ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["content", "search"])
def test_children_attachment_inlines_25_with_a_next_link(dc: ConfluenceEmulator, route: str) -> None:
    page_id, ids = page_with_files(dc.wiki, 30)
    small_id, small_ids = page_with_files(dc.wiki, 2, title="Small")
    expand = "children.attachment.version"  # a nested expansion implies its parents
    with dc_client(dc) as client:
        if route == "content":
            pages = [client.get(f"/content/{pid}", params={"expand": expand}).json() for pid in (page_id, small_id)]
        else:
            cql = f"id in ({page_id}, {small_id}) and type != attachment"
            pages = client.get("/content/search", params={"cql": cql, "expand": expand}).json()["results"]
        big, small = pages
        inline = big["children"]["attachment"]
        assert (inline["size"], inline["limit"], inline["start"]) == (25, 25, 0)
        assert [r["id"] for r in inline["results"]] == ids[:25]
        assert inline["results"][0]["version"]["number"] == 1 and "mediaType" in inline["results"][0]["metadata"]
        assert inline["_links"]["next"] == f"/rest/api/content/{page_id}/child/attachment?limit=25&start=25"
        rest = client.get(f"{dc.base_url}{inline['_links']['next']}").json()
        assert [r["id"] for r in rest["results"]] == ids[25:]
        assert [r["id"] for r in small["children"]["attachment"]["results"]] == small_ids
        assert "next" not in small["children"]["attachment"]["_links"]


def test_cloud_children_attachment_continuation_answers_410(cloud: ConfluenceEmulator) -> None:
    page_id, _ = page_with_files(cloud.wiki, 26)
    with cloud_client() as client:
        cql = f"id = {page_id}"
        params = {"cql": cql, "expand": "children.attachment"}
        page = client.get(f"{cloud.api_root}/content/search", params=params).json()["results"][0]
        inline = page["children"]["attachment"]
        assert inline["size"] == 25 and "next" in inline["_links"]
        assert client.get(f"{cloud.url}/wiki{inline['_links']['next']}").status_code == 410


# -- CQL --------------------------------------------------------------------------------------------------------
def test_cql_container_and_type_attachment(dc: ConfluenceEmulator) -> None:
    wiki = dc.wiki
    one, one_ids = page_with_files(wiki, 2, title="One")
    two, two_ids = page_with_files(wiki, 1, title="Two")
    hidden, _ = page_with_files(wiki, 1, title="Hidden")
    labelled = wiki.add_attachment(two, "tagged.pdf", b"t", labels=["ai-ingest"])
    wiki.hide_page(hidden)
    expand = "version,container,metadata.mediaType,extensions"
    with dc_client(dc) as client:

        def ids(cql: str, **params: str) -> list[str]:
            response = client.get("/content/search", params={"cql": cql, **params})
            assert response.status_code == 200, response.text
            return [r["id"] for r in response.json()["results"]]

        found = client.get(
            "/content/search",
            params={"cql": f"type = attachment AND container IN ({one},{two},{hidden})", "expand": expand},
        ).json()
        assert [r["id"] for r in found["results"]] == [*one_ids, *two_ids, labelled.id]
        first = found["results"][0]
        assert first["container"]["id"] == one and first["version"]["number"] == 1
        assert first["metadata"]["mediaType"] == "text/plain" and first["extensions"]["fileSize"] == 9
        assert ids(f"container = {two}") == [*two_ids, labelled.id]
        assert ids(f"container = {hidden}") == []  # permissions filter silently
        # attachments are content: a label query finds them unless `type != attachment` is added
        assert ids('label = "ai-ingest"') == [one, two, labelled.id]
        assert ids('label = "ai-ingest" and type != attachment') == [one, two]
        assert ids(f"ancestor = {one}") == one_ids
        assert ids(f"id = {labelled.numeric_id}") == [labelled.id]
        assert ids('title = "tagged.pdf"') == [labelled.id]
        ordered = ids("space = OPS and type = attachment order by title desc")
        assert ordered == [labelled.id, one_ids[1], one_ids[0], two_ids[0]]
        wiki.remove_attachment(two_ids[0])
        wiki.update_attachment(labelled.id, b"new")
        assert ids(f"container = {two}") == [labelled.id]
        wiki.add_space("DEV", "Development")
        wiki.move_page(one, "DEV")
        assert ids("space = DEV and type = attachment") == one_ids
        assert ids("space = OPS and type = attachment") == [labelled.id]


def test_cql_attachment_search_uses_the_dc_expansion_cap(dc: ConfluenceEmulator) -> None:
    dc.cap_expand = 3
    page_id, ids = page_with_files(dc.wiki, 5)
    with dc_client(dc) as client:
        body = client.get(
            "/content/search",
            params={"cql": f"type = attachment and container = {page_id}", "expand": "version", "limit": "100"},
        ).json()
    assert body["limit"] == 3 and [r["id"] for r in body["results"]] == ids[:3]
    assert parse_qs(urlsplit(body["_links"]["next"]).query)["start"] == ["100"]


def test_cloud_cql_attachments_have_cloud_shapes(cloud: ConfluenceEmulator) -> None:
    page_id, ids = page_with_files(cloud.wiki, 1)
    with cloud_client() as client:
        body = client.get(
            f"{cloud.gateway_api_root}/content/search",
            params={"cql": f"type = attachment and container in ({page_id})", "expand": "version"},
        ).json()
    (item,) = body["results"]
    assert item["id"] == ids[0] and item["version"]["when"].endswith("Z")
    assert item["_links"]["download"].startswith(f"/download/attachments/{page_id}/file-000.txt?version=1&")
    assert item["extensions"]["mediaTypeDescription"] == "Text File"


# -- v2 -----------------------------------------------------------------------------------------------------------
def test_v2_attachments_items_cursor_and_link_header(cloud: ConfluenceEmulator) -> None:
    page_id, ids = page_with_files(cloud.wiki, 60)
    with cloud_client() as client:
        first = client.get(f"{cloud.v2_root}/pages/{page_id}/attachments")
        assert first.status_code == 200
        body = first.json()
        assert [r["id"] for r in body["results"]] == ids[:50]  # default limit 50
        next_link = body["_links"]["next"]
        assert next_link.startswith(f"/wiki/api/v2/pages/{page_id}/attachments?") and "cursor=" in next_link
        assert first.headers["Link"] == f'<{next_link}>; rel="next", <{cloud.url}/wiki>; rel="base"'
        assert body["_links"]["base"] == f"{cloud.url}/wiki"
        second = client.get(f"{cloud.url}{next_link}").json()
        assert [r["id"] for r in second["results"]] == ids[50:] and "next" not in second["_links"]
        gateway = f"{cloud.url}/ex/confluence/{cloud.cloud_id}"
        paged = client.get(f"{gateway}/wiki/api/v2/pages/{page_id}/attachments", params={"limit": "25"}).json()
        assert len(paged["results"]) == 25 and paged["_links"]["next"].startswith("/wiki/api/v2/")
        third = client.get(gateway + paged["_links"]["next"]).json()
        assert [r["id"] for r in third["results"]] == ids[25:50]
        assert client.get(f"{cloud.v2_root}/pages/{page_id}/attachments", params={"limit": "251"}).status_code == 400
    item = body["results"][0]
    att = cloud.wiki.attachment(ids[0])
    download = (
        f"/download/attachments/{page_id}/file-000.txt?version=1&modificationDate={int(att.when.timestamp() * 1000)}"
    )
    assert item == {
        "id": att.id,
        "status": "current",
        "title": "file-000.txt",
        "createdAt": item["createdAt"],
        "pageId": page_id,
        "mediaType": "text/plain",
        "mediaTypeDescription": "Text File",
        "comment": "",
        "fileId": att.current.file_id,
        "fileSize": 9,
        "webuiLink": item["_links"]["webui"],
        "downloadLink": f"{download}&cacheVersion=1&api=v2",
        "version": {
            "createdAt": item["createdAt"],
            "message": "",
            "number": 1,
            "minorEdit": False,
            "authorId": item["version"]["authorId"],
        },
        "_links": {"webui": item["webuiLink"], "download": f"{download}&cacheVersion=1&api=v2"},
    }
    assert item["createdAt"].endswith("Z")


def test_v2_attachment_filters_blogposts_and_hidden_pages(cloud: ConfluenceEmulator) -> None:
    wiki = cloud.wiki
    page_id, _ = page_with_files(wiki, 0)
    wiki.add_attachment(page_id, "a.pdf", b"a")
    wiki.add_attachment(page_id, "b.png", b"b")
    trashed = wiki.add_attachment(page_id, "c.pdf", b"c")
    wiki.remove_attachment(trashed.id)
    blog = wiki.add_page("OPS", "News", type="blogpost")
    on_blog = wiki.add_attachment(blog.id, "news.pdf", b"n")
    url = f"{cloud.v2_root}/pages/{page_id}/attachments"
    with cloud_client() as client:

        def titles(**params: str) -> list[str]:
            response = client.get(url, params=params)
            assert response.status_code == 200, response.text
            return [r["title"] for r in response.json()["results"]]

        assert titles() == ["a.pdf", "b.png"]
        assert titles(mediaType="application/pdf") == ["a.pdf"]
        assert titles(filename="b.png") == ["b.png"]
        assert titles(status="trashed") == ["c.pdf"]
        assert titles(status="current,trashed", sort="-created-date") == ["c.pdf", "b.png", "a.pdf"]
        blog_items = client.get(f"{cloud.v2_root}/blogposts/{blog.id}/attachments").json()["results"]
        assert blog_items[0]["blogPostId"] == blog.id and "pageId" not in blog_items[0]
        assert client.get(f"{cloud.v2_root}/pages/{blog.id}/attachments").status_code == 404
        single = client.get(f"{cloud.v2_root}/attachments/{on_blog.id}").json()
        assert single["id"] == on_blog.id and single["_links"]["base"] == f"{cloud.url}/wiki"
        wiki.hide_page(page_id)
        assert client.get(url).status_code == 404
