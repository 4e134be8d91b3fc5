"""Attachments as scenarios, on both platforms: given this wiki, after a sync Unique holds exactly these files,
and Confluence was asked exactly this much."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from urllib.parse import unquote

import pytest

from confluence_pipeline.domain.attachments import AttachmentPolicy, parse_media_types
from confluence_pipeline_tests.support import (
    Sandbox,
    StoredItem,
    expected_state,
    oauth_env,
    output_metadata,
    unique_state,
)
from confluence_sandbox.confluence.attachments import Attachment, sample_pdf, sample_png
from confluence_sandbox.http import Fault

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def attachments_on(box: Sandbox, **extra: str) -> None:
    box.set_env(CONFLUENCE_ATTACHMENTS="true", **extra)


def att_key(box: Sandbox, attachment: Attachment) -> str:
    return f"{box.key_of(attachment.container.id)}::{attachment.id}"


def is_download(request: object) -> bool:
    path = getattr(request, "path", "")
    return "/download/attachments/" in path or path.endswith("/download")


def downloads(box: Sandbox) -> list[str]:
    return [unquote(r.path) for r in box.confluence.requests if is_download(r)]


def policy_of(box: Sandbox) -> AttachmentPolicy:
    types = box.env.get("ATTACHMENT_MIME_TYPES") or "pdf,docx,xlsx,pptx,txt,csv,html,md,png,jpeg"
    limit = int(box.env.get("ATTACHMENT_MAX_BYTES") or 200 * 1024**2)
    return AttachmentPolicy(True, parse_media_types(types), limit)


def expected_with_attachments(box: Sandbox) -> dict[str, StoredItem]:
    """A clean sync's end state derived from the wiki alone: synced pages plus their admitted current attachments."""
    expected = expected_state(box)
    policy = policy_of(box)
    wiki = box.confluence.wiki
    for attachment in list(wiki.attachments.values()):
        if attachment.status != "current" or box.key_of(attachment.container.id) not in expected:
            continue
        if policy.allows_type(attachment.media_type) and attachment.size <= policy.max_bytes:
            expected[att_key(box, attachment)] = StoredItem(True, attachment.title, attachment.data.read())
    return expected


def summary(box: Sandbox, result: object) -> dict[str, object]:
    return output_metadata(result, "summarize_sync")  # type: ignore[arg-type]


def searches(box: Sandbox) -> list[dict[str, str]]:
    return [
        {k: unquote(v[0]) for k, v in r.query.items()}
        for r in box.confluence.requests
        if r.path.endswith("/content/search")
    ]


def requests_to(box: Sandbox, fragment: str) -> list[object]:
    return [r for r in box.confluence.requests if fragment in r.path]


def seed(box: Sandbox, pages: Iterable[str] = ("Runbook",)) -> dict[str, str]:
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    return {title: wiki.add_page("ENG", title, labels=["ai-ingest"], body=f"<p>{title}</p>").id for title in pages}


# -- off by default -------------------------------------------------------------------------------------------
def test_attachments_are_off_until_an_operator_opts_in(sandbox: Sandbox) -> None:
    ids = seed(sandbox)
    sandbox.confluence.wiki.add_attachment(ids["Runbook"], "spec.pdf", sample_pdf())

    sandbox.run_sync()

    assert unique_state(sandbox) == expected_state(sandbox)  # pages only
    assert downloads(sandbox) == []
    assert all("children" not in s.get("expand", "") for s in searches(sandbox))


# -- which attachments, and what their items say --------------------------------------------------------------
def test_current_attachments_of_pages_and_blog_posts_land_as_their_own_items(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    ids = seed(sandbox, ("Runbook", "Design"))
    runbook, design = ids["Runbook"], ids["Design"]
    blog = wiki.add_page("ENG", "Release notes", labels=["ai-ingest"], type="blogpost")
    hidden = wiki.add_page("ENG", "Unlabelled")
    pdf = wiki.add_attachment(runbook, "spec.pdf", sample_pdf("runbook"))
    docx = wiki.add_attachment(runbook, "plan.docx", size=70_000, seed=3)
    png = wiki.add_attachment(runbook, "diagram.png", sample_png())
    empty = wiki.add_attachment(runbook, "empty.txt", b"")
    same_name = wiki.add_attachment(design, "spec.pdf", sample_pdf("design"))  # same filename, other page
    notes = wiki.add_attachment(blog.id, "notes.md", "# Notes\nÜberblick".encode())
    trashed = wiki.add_attachment(runbook, "old.pdf", b"old")
    wiki.remove_attachment(trashed.id)
    wiki.add_attachment(hidden.id, "elsewhere.pdf", b"not synced")
    attachments_on(sandbox)

    result = sandbox.run_sync()

    assert unique_state(sandbox) == expected_with_attachments(sandbox)
    stored = sandbox.stored()
    item = stored[att_key(sandbox, docx)]
    assert (item.mime_type, item.byte_size, item.title) == (DOCX, 70_000, "plan.docx")
    assert item.url and docx.numeric_id in unquote(item.url)
    assert item.metadata == {
        "spaceKey": "ENG",
        "spaceName": "Engineering",
        "spaceId": sandbox.space_prefix("ENG").split("_")[0],
        "pageId": runbook,
        "pageTitle": "Runbook",
        "attachmentId": docx.id,
        "contentType": "attachment",
        "mediaType": DOCX,
        "version": "1",
        "lastModified": docx.when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "confluenceInstance": item.metadata["confluenceInstance"],
    }
    assert item.metadata["confluenceInstance"].startswith("confc:")
    assert stored[att_key(sandbox, empty)].byte_size == 0
    assert stored[att_key(sandbox, same_name)].data != stored[att_key(sandbox, pdf)].data
    assert stored[att_key(sandbox, notes)].metadata["pageTitle"] == "Release notes"
    assert stored[att_key(sandbox, png)].mime_type == "image/png"
    # One download per file with bytes; the empty file needs none.
    assert len(downloads(sandbox)) == 5
    totals = summary(sandbox, result)
    assert (totals["total_attachments"], totals["total_attachments_new"], totals["total_new"]) == (6, 6, 3)
    assert totals["attachment_bytes_moved"] == sum(a.size for a in (pdf, docx, png, empty, same_name, notes))
    assert "| ENG | 6 | 6 | 0 | 0 | 0 | 0 | 0 |" in str(totals["attachments_per_space"])
    # The file-diff named every attachment with its version time.
    submitted = json.loads(next(r.body for r in sandbox.unique.requests if r.path.endswith("/file-diff")))
    entry = next(f for f in submitted["fileList"] if f["key"] == f"{runbook}::{pdf.id}")
    assert entry["updatedAt"] == pdf.when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_no_change_resync_downloads_nothing_and_asks_confluence_nothing_more(sandbox: Sandbox) -> None:
    ids = seed(sandbox, ("Runbook", "Design"))
    wiki = sandbox.confluence.wiki
    for n in range(5):
        wiki.add_attachment(ids["Runbook"], f"file-{n}.pdf", sample_pdf(f"file {n}"))
    wiki.add_attachment(ids["Design"], "design.png", sample_png())
    attachments_on(sandbox)
    sandbox.run_sync()
    sandbox.confluence.clear_requests()
    sandbox.unique.clear_requests()
    if sandbox.confluence.media is not None:
        sandbox.confluence.media.clear_requests()

    result = sandbox.run_sync()

    assert downloads(sandbox) == []
    if sandbox.confluence.media is not None:
        assert sandbox.confluence.media.requests == []
    identity = "/rest/applinks/1.0/manifest" if sandbox.confluence.mode == "ONPREM" else "/_edge/tenant_info"
    assert [r.path.rsplit("/", 3)[-1] for r in sandbox.confluence.requests] == [
        identity.rsplit("/", 3)[-1],
        "search",
    ]  # identity and one discovery search: the attachments came with the pages
    assert sandbox.unique_writes() == []
    totals = summary(sandbox, result)
    assert (totals["total_attachments_unchanged"], totals["total_attachments_new"]) == (6, 0)


# -- skips ---------------------------------------------------------------------------------------------------
def test_skipped_attachments_are_counted_and_named_with_their_reason(sandbox: Sandbox) -> None:
    ids = seed(sandbox)
    wiki = sandbox.confluence.wiki
    ok = wiki.add_attachment(ids["Runbook"], "ok.pdf", b"%PDF small")
    wiki.add_attachment(ids["Runbook"], "archive.zip", b"PK")
    wiki.add_attachment(ids["Runbook"], "huge.pdf", size=5000, seed=1)
    attachments_on(sandbox, ATTACHMENT_MIME_TYPES="pdf", ATTACHMENT_MAX_BYTES="4 KB")

    result = sandbox.run_sync()

    assert set(sandbox.stored()) == {sandbox.key_of(ids["Runbook"]), att_key(sandbox, ok)}
    totals = summary(sandbox, result)
    assert (totals["total_attachments"], totals["total_attachments_skipped"]) == (3, 2)
    named = str(totals["skipped_attachments"])
    assert "archive.zip" in named and "type application/zip not in ATTACHMENT_MIME_TYPES" in named
    assert "huge.pdf" in named and "size 4.9 KB above ATTACHMENT_MAX_BYTES (4.0 KB)" in named
    assert len(downloads(sandbox)) == 1


# -- updates and deletes --------------------------------------------------------------------------------------
def test_updated_removed_replaced_attachments_and_pages_leaving_the_sync_set(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    ids = seed(sandbox, ("Runbook", "Leaves"))
    edited = wiki.add_attachment(ids["Runbook"], "edited.pdf", b"%PDF v1")
    removed = wiki.add_attachment(ids["Runbook"], "removed.pdf", b"%PDF gone soon")
    replaced = wiki.add_attachment(ids["Runbook"], "diagram.png", sample_png(rgb=(1, 2, 3)))
    kept = wiki.add_attachment(ids["Runbook"], "kept.pdf", b"%PDF kept")
    leaving = wiki.add_attachment(ids["Leaves"], "with-its-page.pdf", b"%PDF")
    attachments_on(sandbox)
    sandbox.run_sync()
    old_keys = {att_key(sandbox, a) for a in (removed, replaced, leaving)}
    assert old_keys <= set(sandbox.stored())

    wiki.update_attachment(edited.id, b"%PDF v2, longer")
    wiki.remove_attachment(removed.id)
    wiki.remove_attachment(replaced.id, purge=True)
    new_diagram = wiki.add_attachment(ids["Runbook"], "diagram.png", sample_png(rgb=(9, 9, 9)))
    wiki.remove_label(ids["Leaves"], "ai-ingest")
    sandbox.confluence.clear_requests()
    result = sandbox.run_sync()

    assert unique_state(sandbox) == expected_with_attachments(sandbox)
    assert not old_keys & sandbox.all_keys()
    assert sandbox.stored()[att_key(sandbox, edited)].data == b"%PDF v2, longer"
    assert att_key(sandbox, new_diagram) in sandbox.stored() and att_key(sandbox, kept) in sandbox.stored()
    totals = summary(sandbox, result)
    assert (totals["total_attachments_new"], totals["total_attachments_updated"]) == (1, 1)
    assert (totals["total_attachments_deleted"], totals["total_deleted"]) == (3, 1)
    assert len(downloads(sandbox)) == 2  # the new version and the new file, nothing else


def test_a_type_or_size_no_longer_allowed_is_deleted(sandbox: Sandbox) -> None:
    ids = seed(sandbox)
    wiki = sandbox.confluence.wiki
    pdf = wiki.add_attachment(ids["Runbook"], "spec.pdf", b"%PDF " + b"x" * 2000)
    png = wiki.add_attachment(ids["Runbook"], "diagram.png", sample_png())
    attachments_on(sandbox)
    sandbox.run_sync()
    assert {att_key(sandbox, pdf), att_key(sandbox, png)} <= set(sandbox.stored())

    sandbox.set_env(ATTACHMENT_MIME_TYPES="pdf")
    sandbox.run_sync()
    assert att_key(sandbox, png) not in sandbox.all_keys() and att_key(sandbox, pdf) in sandbox.stored()

    sandbox.set_env(ATTACHMENT_MAX_BYTES="1 KB")
    result = sandbox.run_sync()
    assert set(sandbox.stored()) == {sandbox.key_of(ids["Runbook"])}
    assert summary(sandbox, result)["total_attachments_skipped"] == 2


def test_turning_attachments_off_removes_what_they_added_and_nothing_else(onprem: Sandbox) -> None:
    ids = seed(onprem)
    wiki = onprem.confluence.wiki
    ours = wiki.add_attachment(ids["Runbook"], "spec.pdf", sample_pdf())
    attachments_on(onprem)
    onprem.run_sync()
    page_key = onprem.key_of(ids["Runbook"])
    # An attachment-shaped item another tool wrote under our prefix, without this instance's mark.
    scope = onprem.stored()[page_key].owner_id
    foreign = onprem.unique.store.seed_content(f"{page_key}::att999999", owner_id=scope, title="x.pdf")

    onprem.set_env(CONFLUENCE_ATTACHMENTS="false")
    result = onprem.run_sync()

    assert att_key(onprem, ours) not in onprem.all_keys()
    assert page_key in onprem.stored()
    assert foreign.key in onprem.all_keys()  # not provably ours: left alone while attachments are off
    assert summary(onprem, result)["total_attachments_deleted"] == 1


# -- listing at the floor -------------------------------------------------------------------------------------
def test_dc_lists_only_pages_with_more_than_25_attachments_with_its_paging_quirks(onprem: Sandbox) -> None:
    ids = seed(onprem, ("Big", "Small"))
    wiki = onprem.confluence.wiki
    big = [wiki.add_attachment(ids["Big"], f"f{n:02}.txt", f"file {n}".encode()) for n in range(30)]
    small = wiki.add_attachment(ids["Small"], "one.txt", b"one")
    onprem.confluence.cap_expand = 12  # every listing with expansions is cut at 12; DC miscounts `next`
    onprem.confluence.trailing_empty_next = True
    attachments_on(onprem)

    onprem.run_sync()

    assert unique_state(onprem) == expected_with_attachments(onprem)
    assert {att_key(onprem, a) for a in [*big, small]} <= set(onprem.stored())
    listings = [r for r in onprem.confluence.requests if r.path.endswith("/child/attachment")]
    assert {r.path for r in listings} == {f"/rest/api/content/{ids['Big']}/child/attachment"}
    starts = [r.query["start"][0] for r in listings]
    assert starts == ["0", "12", "24", "30"]  # offsets derived from what came back; the trailing page ends it


def test_cloud_lists_pages_beyond_the_inline_cap_through_v2_following_its_cursor(cloud: Sandbox) -> None:
    ids = seed(cloud, ("Big", "Small"))
    wiki = cloud.confluence.wiki
    for n in range(255):
        wiki.add_attachment(ids["Big"], f"f{n:03}.zip", b"PK")  # listed, then skipped by type: no transfer
    wanted = wiki.add_attachment(ids["Big"], "wanted.pdf", b"%PDF")
    wiki.add_attachment(ids["Small"], "one.txt", b"one")
    attachments_on(cloud)

    result = cloud.run_sync()

    assert att_key(cloud, wanted) in cloud.stored()
    totals = summary(cloud, result)
    assert (totals["total_attachments"], totals["total_attachments_skipped"]) == (257, 255)
    v2 = requests_to(cloud, "/api/v2/")
    assert [r.path for r in v2] == [f"/wiki/api/v2/pages/{ids['Big']}/attachments"] * 2
    assert "cursor" in v2[1].query and v2[0].query["limit"] == ["250"]
    continuation = [r for r in cloud.confluence.requests if r.path.endswith("/child/attachment")]
    assert continuation == []  # the v1 continuation (410 on Cloud) is never tried
    named = str(totals["skipped_attachments"]).splitlines()
    assert len(named) == 21 and named[-1] == "- … and 235 more"  # 20 named per space, all counted


def test_a_blog_post_beyond_the_inline_cap_is_listed_as_a_blog_post(cloud: Sandbox) -> None:
    wiki = cloud.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    blog = wiki.add_page("ENG", "News", labels=["ai-ingest"], type="blogpost")
    files = [wiki.add_attachment(blog.id, f"n{n}.txt", b"n") for n in range(26)]
    attachments_on(cloud)

    cloud.run_sync()

    assert {att_key(cloud, a) for a in files} <= set(cloud.stored())
    assert [r.path for r in requests_to(cloud, "/api/v2/")] == [f"/wiki/api/v2/blogposts/{blog.id}/attachments"]


# -- moves and confirmation -----------------------------------------------------------------------------------
def test_an_attachment_moved_with_its_page_to_another_space(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    ids = seed(sandbox, ("Moves", "Stays"))
    wiki.add_space("OPS", "Operations")
    wiki.add_page("OPS", "Ops home", labels=["ai-ingest"])
    moving = wiki.add_attachment(ids["Moves"], "spec.pdf", sample_pdf())
    attachments_on(sandbox)
    sandbox.run_sync()
    old_key = att_key(sandbox, moving)

    wiki.move_page(ids["Moves"], "OPS")
    sandbox.run_sync()

    new_key = att_key(sandbox, moving)
    assert new_key.startswith(sandbox.space_prefix("OPS") + "/") and old_key != new_key
    assert old_key not in sandbox.all_keys()
    assert unique_state(sandbox) == expected_with_attachments(sandbox)


def test_a_page_kept_by_confirmation_keeps_its_attachments_and_gets_new_ones(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    root = wiki.add_page("ENG", "Root", labels=["ai-ingest-all"])
    child = wiki.add_page("ENG", "Child", parent_id=root.id)
    first = [wiki.add_attachment(child.id, f"c{n:02}.txt", b"c") for n in range(26)]
    attachments_on(onprem)
    onprem.run_sync()
    assert {att_key(onprem, a) for a in first} <= set(onprem.stored())

    # The descendants query comes back without the child, as a partial index or a slipped page would.
    onprem.confluence.faults.add(
        r"/content/search$",
        Fault(200, {"Content-Type": "application/json"}, json.dumps({"results": [], "size": 0}).encode()),
        when=lambda request: "ancestor" in (request.query.get("cql") or [""])[0],
    )
    late = wiki.add_attachment(child.id, "late.pdf", b"%PDF late")
    onprem.run_sync()

    assert unique_state(onprem) == expected_with_attachments(onprem)
    assert att_key(onprem, late) in onprem.stored()


# -- Cloud's redirect -----------------------------------------------------------------------------------------
def test_cloud_downloads_follow_the_redirect_without_confluence_credentials(cloud: Sandbox) -> None:
    ids = seed(cloud)
    pdf = cloud.confluence.wiki.add_attachment(ids["Runbook"], "spec.pdf", size=300_000, seed=9)
    attachments_on(cloud)
    media = cloud.confluence.media
    assert media is not None and cloud.confluence.media_rejects_credentials

    cloud.run_sync()

    stored = cloud.stored()[att_key(cloud, pdf)]
    assert stored.sha256 == pdf.data.sha256()
    rest = [r for r in cloud.confluence.requests if r.path.endswith(f"/child/attachment/{pdf.id}/download")]
    assert len(rest) == 1 and "authorization" in rest[0].headers and rest[0].query["version"] == ["1"]
    assert len(media.requests) == 1 and media.credentialed_requests == []


def test_oauth_service_accounts_download_through_the_rest_route(sandbox: Sandbox) -> None:
    ids = seed(sandbox)
    pdf = sandbox.confluence.wiki.add_attachment(ids["Runbook"], "spec.pdf", size=100_000, seed=3)
    attachments_on(sandbox)
    sandbox.set_env(**oauth_env(sandbox.confluence))

    sandbox.run_sync()

    assert sandbox.stored()[att_key(sandbox, pdf)].sha256 == pdf.data.sha256()
    if sandbox.confluence.mode == "CLOUD":  # `_links.download` refuses OAuth tokens on Cloud: never used
        assert all("/download/attachments/" not in r.path for r in sandbox.confluence.requests)
        assert sandbox.confluence.media is not None and sandbox.confluence.media.credentialed_requests == []


# -- test mode ------------------------------------------------------------------------------------------------
def test_test_mode_counts_attachments_and_moves_nothing(sandbox: Sandbox) -> None:
    ids = seed(sandbox)
    sandbox.confluence.wiki.add_attachment(ids["Runbook"], "spec.pdf", sample_pdf())
    attachments_on(sandbox, TEST_MODE="true")

    result = sandbox.run_sync()

    assert sandbox.unique_writes() == [] and downloads(sandbox) == []
    totals = summary(sandbox, result)
    assert (totals["total_new"], totals["total_attachments_new"]) == (1, 1)


@pytest.mark.parametrize("size", [0, 1, 65_536, 65_537])
def test_sizes_around_the_chunk_boundaries_arrive_intact(onprem: Sandbox, size: int) -> None:
    ids = seed(onprem)
    data = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    attachment = onprem.confluence.wiki.add_attachment(ids["Runbook"], "data.txt", data[:size])
    attachments_on(onprem)

    onprem.run_sync()

    assert onprem.stored()[att_key(onprem, attachment)].data == data[:size]
