"""Images in page bodies, on both platforms: inlined in place as `data:` URIs when asked to, byte-for-byte
bodies otherwise, and pages re-ingested when an image they show changes."""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote

from confluence_pipeline_tests.support import Sandbox, expected_state, output_metadata, unique_state
from confluence_sandbox.confluence.attachments import sample_pdf, sample_png
from confluence_sandbox.http import Fault

RED, GREEN, BLUE = sample_png(rgb=(255, 0, 0)), sample_png(rgb=(0, 255, 0)), sample_png(rgb=(0, 0, 255))


def img(data: bytes, alt: str, extra: str = "") -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" alt="{alt}"{extra} />'


def image(filename: str, *, page: str | None = None, space: str | None = None, attrs: str = "") -> str:
    container = ""
    if page is not None:
        space_attr = f' ri:space-key="{space}"' if space else ""
        container = f'<ri:page ri:content-title="{page}"{space_attr} />'
    inner = (
        f'<ri:attachment ri:filename="{filename}">{container}</ri:attachment>'
        if container
        else (f'<ri:attachment ri:filename="{filename}" />')
    )
    return f"<ac:image{attrs}>{inner}</ac:image>"


def downloads(box: Sandbox) -> list[str]:
    return [unquote(r.path) for r in box.confluence.requests if "/download" in r.path]


def body_of(box: Sandbox, page_id: str) -> str:
    data = box.stored()[box.key_of(page_id)].data
    assert data is not None
    return data.decode("utf-8")


def page_writes(box: Sandbox) -> int:
    return sum(1 for r in box.unique.requests if r.method == "PUT" and r.headers.get("content-type") == "text/html")


def setup(box: Sandbox) -> dict[str, str]:
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("DES", "Design")
    gallery = wiki.add_page("DES", "Gallery", body="<p>not synced itself</p>")
    wiki.add_attachment(gallery.id, "blue.png", BLUE)
    neighbour = wiki.add_page("ENG", "Neighbour", body="<p>unlabelled</p>")
    wiki.add_attachment(neighbour.id, "green.png", GREEN)
    body = (
        "<h1>Größe &amp; Maß</h1>"
        + image("red.png", attrs=' ac:width="100" ac:alt="A red square"')
        + "<p>between</p>"
        + image("blue.png", page="Gallery", space="DES")
        + image("green.png", page="Neighbour")
        + image("huge.png")
        + image("missing.png")
        + image("spec.pdf")
        + '<ac:image><ri:url ri:value="https://example.com/x.png" /></ac:image><p>日本語 😀</p>'
    )
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"], body=body)
    wiki.add_attachment(page.id, "red.png", RED)
    wiki.add_attachment(page.id, "huge.png", size=20_000, seed=3, media_type="image/png")
    wiki.add_attachment(page.id, "spec.pdf", sample_pdf())
    return {"page": page.id, "neighbour": neighbour.id, "gallery": gallery.id, "body": body}


def test_with_inlining_off_bodies_stay_byte_for_byte(sandbox: Sandbox) -> None:
    ids = setup(sandbox)

    sandbox.run_sync()

    assert unique_state(sandbox) == expected_state(sandbox)
    assert body_of(sandbox, ids["page"]) == ids["body"]
    assert downloads(sandbox) == []


def test_images_are_inlined_in_place_and_everything_else_stays(sandbox: Sandbox) -> None:
    ids = setup(sandbox)
    sandbox.set_env(INLINE_IMAGES="true", INLINE_IMAGE_MAX_BYTES="10 KB")

    result = sandbox.run_sync()

    expected = (
        "<h1>Größe &amp; Maß</h1>"
        + img(RED, "A red square", ' width="100"')
        + "<p>between</p>"
        + img(BLUE, "blue.png")
        + img(GREEN, "green.png")
        + image("huge.png")  # above INLINE_IMAGE_MAX_BYTES: the markup stays
        + image("missing.png")  # no such file: the markup stays
        + image("spec.pdf")  # not an image
        + '<ac:image><ri:url ri:value="https://example.com/x.png" /></ac:image><p>日本語 😀</p>'
    )
    assert body_of(sandbox, ids["page"]) == expected
    assert set(sandbox.stored()) == {sandbox.key_of(ids["page"])}  # images are not items unless attachments are on
    assert len(downloads(sandbox)) == 3  # the three inlined images, nothing else
    metadata = sandbox.stored()[sandbox.key_of(ids["page"])].metadata
    assert metadata["inlinesImages"] == "true"
    recorded = {(p, f): s for p, f, s in json.loads(metadata["inlinedImages"])}
    wiki = sandbox.confluence.wiki
    assert recorded == {
        (ids["page"], "red.png"): f"{wiki.find_attachment(ids['page'], 'red.png').id}:1",  # type: ignore[union-attr]
        (ids["page"], "huge.png"): f"{wiki.find_attachment(ids['page'], 'huge.png').id}:1",  # type: ignore[union-attr]
        (ids["page"], "missing.png"): "",
        (ids["page"], "spec.pdf"): f"{wiki.find_attachment(ids['page'], 'spec.pdf').id}:1",  # type: ignore[union-attr]
        (ids["gallery"], "blue.png"): f"{wiki.find_attachment(ids['gallery'], 'blue.png').id}:1",  # type: ignore[union-attr]
        (ids["neighbour"], "green.png"): f"{wiki.find_attachment(ids['neighbour'], 'green.png').id}:1",  # type: ignore[union-attr]
    }
    assert output_metadata(result, "summarize_sync")["total_new"] == 1


def test_a_no_change_resync_downloads_no_image_and_reuploads_nothing(sandbox: Sandbox) -> None:
    setup(sandbox)
    sandbox.set_env(INLINE_IMAGES="true", INLINE_IMAGE_MAX_BYTES="10 KB")
    sandbox.run_sync()
    sandbox.confluence.clear_requests()
    sandbox.unique.clear_requests()

    sandbox.run_sync()

    assert downloads(sandbox) == [] and sandbox.unique_writes() == []
    # Change detection: the pages that recorded images (one Unique query), the pages they live on outside
    # this space's discovery (one Confluence query for Gallery), nothing per image.
    searches = [unquote(r.query["cql"][0]) for r in sandbox.confluence.requests if r.path.endswith("/search")]
    assert len(searches) == 2 and searches[1].startswith("id IN (")


def test_a_changed_image_reingests_its_page_though_the_page_did_not_change(sandbox: Sandbox) -> None:
    ids = setup(sandbox)
    sandbox.set_env(INLINE_IMAGES="true", INLINE_IMAGE_MAX_BYTES="10 KB")
    sandbox.run_sync()
    wiki = sandbox.confluence.wiki
    red = wiki.find_attachment(ids["page"], "red.png")
    assert red is not None

    wiki.update_attachment(red.id, GREEN)  # a new version of the page's own image
    result = sandbox.run_sync()
    assert img(GREEN, "A red square", ' width="100"') in body_of(sandbox, ids["page"])
    assert output_metadata(result, "summarize_sync")["total_updated"] == 1

    blue = wiki.find_attachment(ids["gallery"], "blue.png")
    assert blue is not None
    wiki.update_attachment(blue.id, RED)  # a new version of an image on another, unsynced page
    sandbox.run_sync()
    assert img(RED, "blue.png") in body_of(sandbox, ids["page"])

    wiki.add_attachment(ids["page"], "missing.png", BLUE)  # the missing image appears
    sandbox.run_sync()
    assert img(BLUE, "missing.png") in body_of(sandbox, ids["page"])

    sandbox.unique.clear_requests()
    sandbox.run_sync()
    assert page_writes(sandbox) == 0


def test_image_attachments_are_also_items_when_attachments_are_on(onprem: Sandbox) -> None:
    ids = setup(onprem)
    onprem.set_env(INLINE_IMAGES="true", INLINE_IMAGE_MAX_BYTES="10 KB", CONFLUENCE_ATTACHMENTS="true")

    onprem.run_sync()

    red = onprem.confluence.wiki.find_attachment(ids["page"], "red.png")
    assert red is not None
    assert onprem.stored()[f"{onprem.key_of(ids['page'])}::{red.id}"].data == RED
    assert img(RED, "A red square", ' width="100"') in body_of(onprem, ids["page"])


def test_a_failed_image_download_keeps_the_markup_and_is_tried_again_next_run(onprem: Sandbox) -> None:
    ids = setup(onprem)
    onprem.set_env(INLINE_IMAGES="true", INLINE_IMAGE_MAX_BYTES="10 KB")
    onprem.confluence.faults.add(r"/red\.png$", Fault(404), times=None)

    onprem.run_sync()
    assert image("red.png", attrs=' ac:width="100" ac:alt="A red square"') in body_of(onprem, ids["page"])
    assert img(BLUE, "blue.png") in body_of(onprem, ids["page"])

    onprem.confluence.faults.clear()
    onprem.run_sync()
    assert img(RED, "A red square", ' width="100"') in body_of(onprem, ids["page"])


def test_many_pages_with_images_are_all_inlined_with_parallel_uploads(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = []
    for n in range(12):
        page = wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"], body=f"<p>{n}</p>" + image(f"i{n}.png"))
        wiki.add_attachment(page.id, f"i{n}.png", sample_png(rgb=(n, n, n)))
        pages.append(page.id)
    onprem.set_env(INLINE_IMAGES="true", UNIQUE_CONCURRENCY="4")

    onprem.run_sync()

    for n, page_id in enumerate(pages):
        assert body_of(onprem, page_id) == f"<p>{n}</p>" + img(sample_png(rgb=(n, n, n)), f"i{n}.png")
