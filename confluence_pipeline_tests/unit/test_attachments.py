"""Attachment rules: media types and sizes as configured, the policy's reasons, keys, the file list and the plan."""

from __future__ import annotations

import pytest

from confluence_pipeline.config.settings import ConfigurationError, confluence_settings
from confluence_pipeline.domain.attachments import (
    AttachmentItem,
    AttachmentPolicy,
    attachment_file_list,
    attachment_key,
    attachment_metadata,
    byte_text,
    is_attachment_key,
    page_of_key,
    parse_byte_size,
    parse_media_types,
    plan_attachments,
    select_attachments,
)
from confluence_pipeline.domain.diff import FileDiff, plan_space
from confluence_pipeline.domain.models import AttachmentRef, PageRef, SpaceRef

SPACE = SpaceRef("98306", "OPS", "Operations", "global")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def attachment(
    att_id: str = "att9", *, title: str = "spec.pdf", kind: str = "application/pdf", size: int = 10
) -> AttachmentRef:
    return AttachmentRef(att_id, title, kind, size, 2, "2024-05-01T08:02:03.000Z", "", f"https://w/{att_id}")


def page(page_id: str = "123", *attachments: AttachmentRef) -> PageRef:
    return PageRef(page_id, "page", f"Page {page_id}", SPACE, 1, "2024-05-01T08:00:00.000Z", "u", (), attachments)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/pdf", {"application/pdf"}),
        ("pdf, DOCX ,png", {"application/pdf", DOCX, "image/png"}),
        ("image/*,text/plain; charset=utf-8", {"image/*", "text/plain"}),
        ("jpg,jpeg", {"image/jpeg"}),
        ("md,markdown,txt,text,csv,html", {"text/markdown", "text/plain", "text/csv", "text/html"}),
        (",pdf,,", {"application/pdf"}),
    ],
)
def test_media_types_accept_types_wildcards_and_names(value: str, expected: set[str]) -> None:
    assert parse_media_types(value) == frozenset(expected)


@pytest.mark.parametrize(
    ("value", "named"), [("pdf,exe", "'exe'"), ("application", "'application'"), (" , ", "no media")]
)
def test_media_types_name_the_bad_entry(value: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_media_types(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("1048576", 1048576),
        ("512 KB", 512 * 1024),
        ("200MB", 200 * 1024**2),
        ("5 mb", 5 * 1024**2),
        ("1 GB", 1024**3),
        ("10b", 10),
        ("3k", 3072),
        (4096, 4096),
    ],
)
def test_sizes_are_bytes_with_binary_units(value: str | int, expected: int) -> None:
    assert parse_byte_size(value) == expected


@pytest.mark.parametrize("value", ["", "0", "-5", "1.5 MB", "12 parsecs", "MB", "5 TB"])
def test_bad_sizes_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KB"), (5 * 1024**2, "5.0 MB"), (3 * 1024**3, "3.0 GB")],
)
def test_byte_text(size: int, text: str) -> None:
    assert byte_text(size) == text


BASE = {
    "CONFLUENCE_INSTANCE_TYPE": "ONPREM",
    "CONFLUENCE_URL": "https://wiki.example.com",
    "CONFLUENCE_PAT": "pat-1234",
}


def test_settings_default_to_off_with_the_documented_types_and_sizes() -> None:
    settings = confluence_settings(BASE)
    policy = settings.attachment_policy
    assert not policy.enabled and not settings.inline_images and not settings.lists_attachments
    assert policy.max_bytes == 200 * 1024**2 and settings.inline_image_max_bytes == 5 * 1024**2
    assert policy.media_types == {
        "application/pdf",
        DOCX,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "text/plain",
        "text/csv",
        "text/html",
        "text/markdown",
        "image/png",
        "image/jpeg",
    }


def test_settings_name_every_bad_attachment_variable() -> None:
    bad = {
        **BASE,
        "CONFLUENCE_ATTACHMENTS": "sometimes",
        "ATTACHMENT_MIME_TYPES": "pdf,exe",
        "ATTACHMENT_MAX_BYTES": "lots",
        "INLINE_IMAGES": "2",
        "INLINE_IMAGE_MAX_BYTES": "0",
    }
    with pytest.raises(ConfigurationError) as info:
        confluence_settings(bad)
    assert set(info.value.problems) == {
        "CONFLUENCE_ATTACHMENTS",
        "ATTACHMENT_MIME_TYPES",
        "ATTACHMENT_MAX_BYTES",
        "INLINE_IMAGES",
        "INLINE_IMAGE_MAX_BYTES",
    }
    assert "'exe'" in info.value.problems["ATTACHMENT_MIME_TYPES"]


def test_settings_read_what_the_operator_wrote() -> None:
    settings = confluence_settings(
        {**BASE, "CONFLUENCE_ATTACHMENTS": "TRUE", "ATTACHMENT_MIME_TYPES": "pdf", "ATTACHMENT_MAX_BYTES": "10 MB"}
    )
    assert settings.attachment_policy == AttachmentPolicy(True, frozenset({"application/pdf"}), 10 * 1024**2)
    assert settings.lists_attachments
    assert confluence_settings({**BASE, "INLINE_IMAGES": "true"}).lists_attachments


@pytest.mark.parametrize(
    ("kind", "size", "reason"),
    [
        ("application/pdf", 10, None),
        ("APPLICATION/PDF; name=x", 10, None),
        ("image/gif", 10, "type image/gif not in ATTACHMENT_MIME_TYPES"),
        ("", 10, "type unknown not in ATTACHMENT_MIME_TYPES"),
        ("application/pdf", 1025, "size 1.0 KB above ATTACHMENT_MAX_BYTES (1.0 KB)"),
        ("application/pdf", 1024, None),
        ("image/png", 0, None),
    ],
)
def test_policy_reasons(kind: str, size: int, reason: str | None) -> None:
    policy = AttachmentPolicy(True, parse_media_types("pdf,image/png"), 1024)
    assert policy.skip_reason(attachment(kind=kind, size=size)) == reason


def test_wildcards_admit_a_whole_family() -> None:
    policy = AttachmentPolicy(True, parse_media_types("image/*"), 100)
    assert policy.allows_type("image/svg+xml") and not policy.allows_type("application/pdf")


def test_select_takes_allowed_attachments_and_names_the_rest_only_when_on() -> None:
    pages = [page("1", attachment("att1"), attachment("att2", title="a.zip", kind="application/zip")), page("2")]
    policy = AttachmentPolicy(True, parse_media_types("pdf"), 100)
    items, skipped = select_attachments(pages, policy)
    assert [item.key for item in items] == ["1::att1"]
    assert [s.line() for s in skipped] == ["a.zip (att2) on page 1: type application/zip not in ATTACHMENT_MIME_TYPES"]
    assert select_attachments(pages, AttachmentPolicy(False)) == ([], [])


@pytest.mark.parametrize(("page_id", "att_id"), [("12a", "att1"), ("12", "att-1"), ("12", ""), ("", "att1")])
def test_attachment_keys_refuse_what_would_not_parse_back(page_id: str, att_id: str) -> None:
    with pytest.raises(ValueError):
        attachment_key(page_id, att_id)


@pytest.mark.parametrize(
    ("key", "page_id", "is_attachment"),
    [("123", "123", False), ("123::att9", "123", True), ("9_OPS/123::777", "123", True), ("acme/9_OPS/5", "5", False)],
)
def test_keys_name_their_page(key: str, page_id: str, is_attachment: bool) -> None:
    assert page_of_key(key) == page_id
    assert is_attachment_key(key.rsplit("/", 1)[-1]) is is_attachment


def test_file_list_plan_and_page_plan_share_one_diff() -> None:
    first, second = attachment("att1"), attachment("att2", title="b.pdf")
    pages = [page("123", first, second), page("124")]
    items, _ = select_attachments(pages, AttachmentPolicy(True))
    assert attachment_file_list([*items, items[0]]) == [
        {"key": "123::att1", "url": "https://w/att1", "updatedAt": "2024-05-01T08:02:03.000Z"},
        {"key": "123::att2", "url": "https://w/att2", "updatedAt": "2024-05-01T08:02:03.000Z"},
    ]
    diff = FileDiff(new=("123::att1", "124"), updated=("123",), moved=("123::att2",), deleted=("123::att7", "125"))
    planned = plan_attachments(items, diff)
    assert [i.key for i in planned.to_create] == ["123::att1"] and [i.key for i in planned.to_update] == ["123::att2"]
    assert planned.unchanged == 0
    pages_plan = plan_space(SPACE, pages, diff, other_keys={item.key for item in items})
    assert pages_plan.ignored == ()  # attachment keys are planned, not "never submitted"
    assert pages_plan.to_delete == ("98306_OPS/123::att7", "98306_OPS/125")
    # A submitted attachment the diff calls deleted is never deleted, as for pages.
    guarded = plan_space(SPACE, pages, FileDiff(deleted=("123::att1",)), other_keys={"123::att1"})
    assert guarded.to_delete == ()


def test_metadata_names_page_space_version_and_owner() -> None:
    item = AttachmentItem("123", "Runbook", attachment("att9", kind="Application/PDF"))
    assert attachment_metadata(item, "OPS", "Operations", "98306", "confc:cloud:x") == {
        "spaceKey": "OPS",
        "spaceName": "Operations",
        "spaceId": "98306",
        "pageId": "123",
        "pageTitle": "Runbook",
        "attachmentId": "att9",
        "contentType": "attachment",
        "mediaType": "application/pdf",
        "version": "2",
        "lastModified": "2024-05-01T08:02:03.000Z",
        "confluenceInstance": "confc:cloud:x",
    }
