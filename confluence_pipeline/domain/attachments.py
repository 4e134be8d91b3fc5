"""Attachment rules: which attachments are synced, their keys, sizes and media types, and their diff plan."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from confluence_pipeline.domain.diff import FileDiff
from confluence_pipeline.domain.keys import ATTACHMENT_ID, KEY_SEPARATOR, relative_key_of
from confluence_pipeline.domain.models import AttachmentRef, PageRef
from confluence_pipeline.domain.ownership import OWNER_METADATA_KEY

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")
_SIZE = re.compile(r"(?P<number>[0-9]+)\s*(?P<unit>[kmg]?b?)", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}

MIME_ALIASES: Mapping[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "txt": "text/plain",
    "text": "text/plain",
    "csv": "text/csv",
    "html": "text/html",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
}
"""Friendly names `ATTACHMENT_MIME_TYPES` accepts besides media types (documented in the README)."""

DEFAULT_MIME_TYPES = ("pdf", "docx", "xlsx", "pptx", "txt", "csv", "html", "md", "png", "jpeg")
DEFAULT_MAX_BYTES = 200 * 1024**2
DEFAULT_INLINE_IMAGE_MAX_BYTES = 5 * 1024**2


def media_type(value: str) -> str:
    """A media type as compared here: lower case, without parameters (`text/plain; charset=utf-8` → `text/plain`)."""
    return value.split(";", 1)[0].strip().lower()


def parse_media_types(value: str | Iterable[str]) -> frozenset[str]:
    """Comma-separated media types (`application/pdf`, `image/*`) or aliases (`pdf`, `docx`)."""
    entries = value.split(",") if isinstance(value, str) else list(value)
    parsed: set[str] = set()
    for entry in entries:
        text = media_type(str(entry))
        if not text:
            continue
        resolved = MIME_ALIASES.get(text, text)
        if _MEDIA_TYPE.fullmatch(resolved) is None:
            raise ValueError(
                f"{entry.strip()!r} is neither a media type (type/subtype, e.g. application/pdf or image/*) "
                f"nor one of the names {', '.join(sorted(MIME_ALIASES))}"
            )
        parsed.add(resolved)
    if not parsed:
        raise ValueError("names no media type")
    return frozenset(parsed)


def parse_byte_size(value: str | int) -> int:
    """Bytes, optionally with a binary unit: `1048576`, `512 KB`, `200MB`, `1 GB` (1 KB = 1024 bytes); at least 1."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value.strip()!r} is not a size (bytes, or a number with KB, MB or GB)")
        number = int(match["number"]) * _UNITS[match["unit"].lower()]
    if number < 1:
        raise ValueError(f"{value!r} must be at least 1 byte")
    return number


def byte_text(size: int) -> str:
    """A size as people read it (`5.0 MB`, `300 KB`, `12 bytes`)."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """Which attachments are synced: on or off, the allowed media types and the largest size."""

    enabled: bool = False
    media_types: frozenset[str] = frozenset(MIME_ALIASES[name] for name in DEFAULT_MIME_TYPES)
    max_bytes: int = DEFAULT_MAX_BYTES

    def allows_type(self, value: str) -> bool:
        kind = media_type(value)
        return kind in self.media_types or f"{kind.split('/', 1)[0]}/*" in self.media_types

    def skip_reason(self, attachment: AttachmentRef) -> str | None:
        """Why an attachment is not synced (`type …` or `size …`), or None when it is."""
        if not self.allows_type(attachment.media_type):
            return f"type {media_type(attachment.media_type) or 'unknown'} not in ATTACHMENT_MIME_TYPES"
        if attachment.size > self.max_bytes:
            return f"size {byte_text(attachment.size)} above ATTACHMENT_MAX_BYTES ({byte_text(self.max_bytes)})"
        return None


def attachment_key(page_id: str, attachment_id: str) -> str:
    """The relative key of an attachment in its space's file-diff: `<pageId>::<attachmentId>`."""
    if not page_id.isdigit():
        raise ValueError(f"page ids are decimal digits, got {page_id!r}")
    if ATTACHMENT_ID.fullmatch(attachment_id) is None:
        raise ValueError(f"attachment ids are letters and digits, got {attachment_id!r}")
    return f"{page_id}{KEY_SEPARATOR}{attachment_id}"


def is_attachment_key(relative_key: str) -> bool:
    return KEY_SEPARATOR in relative_key


def page_of_key(key: str) -> str:
    """The page id of a stored or relative key (a page's own, or an attachment's container)."""
    return relative_key_of(key).split(KEY_SEPARATOR, 1)[0]


def attachment_id_of(key: str) -> str | None:
    """The attachment id of a stored or relative attachment key; None for a page's key."""
    _, separator, attachment_id = relative_key_of(key).partition(KEY_SEPARATOR)
    return attachment_id if separator else None


@dataclass(frozen=True, slots=True)
class AttachmentItem:
    """An attachment to sync with what its item in Unique names of its page (id, title, type)."""

    page_id: str
    page_title: str
    attachment: AttachmentRef

    @property
    def key(self) -> str:
        return attachment_key(self.page_id, self.attachment.id)


@dataclass(frozen=True, slots=True)
class SkippedAttachment:
    """An attachment left out by the policy, named in the run report with the reason."""

    page_id: str
    attachment_id: str
    filename: str
    reason: str

    def line(self) -> str:
        return f"{self.filename} ({self.attachment_id}) on page {self.page_id}: {self.reason}"


def select_attachments(
    pages: Iterable[PageRef], policy: AttachmentPolicy
) -> tuple[list[AttachmentItem], list[SkippedAttachment]]:
    """The attachments of `pages` the policy lets through, and those it skips; nothing when attachments are off."""
    items: list[AttachmentItem] = []
    skipped: list[SkippedAttachment] = []
    if not policy.enabled:
        return items, skipped
    for page in pages:
        for attachment in page.attachments:
            reason = policy.skip_reason(attachment)
            if reason is None:
                items.append(AttachmentItem(page.id, page.title, attachment))
            else:
                skipped.append(SkippedAttachment(page.id, attachment.id, attachment.title, reason))
    return items, skipped


def attachment_file_list(items: Sequence[AttachmentItem]) -> list[dict[str, str]]:
    """The attachments' `fileList` entries, sorted by key; `updatedAt` is the attachment's version time."""
    unique = {item.key: item for item in items}
    return [
        {"key": key, "url": item.attachment.web_url, "updatedAt": item.attachment.updated_at}
        for key, item in sorted(unique.items())
    ]


@dataclass(frozen=True, slots=True)
class AttachmentPlan:
    to_create: tuple[AttachmentItem, ...]
    to_update: tuple[AttachmentItem, ...]
    unchanged: int


def plan_attachments(items: Sequence[AttachmentItem], diff: FileDiff) -> AttachmentPlan:
    """Partition the submitted attachments by the diff, as `plan_space` does pages (moved counts as updated)."""
    by_key = {item.key: item for item in items}
    new_keys = set(diff.new)
    updated_keys = (set(diff.updated) | set(diff.moved)) - new_keys
    to_create = tuple(item for key, item in by_key.items() if key in new_keys)
    to_update = tuple(item for key, item in by_key.items() if key in updated_keys)
    return AttachmentPlan(to_create, to_update, len(by_key) - len(to_create) - len(to_update))


def attachment_metadata(
    item: AttachmentItem, space_key: str, space_name: str, space_id: str, mark: str
) -> dict[str, str]:
    """Metadata of an attachment's item: its page and space, its version, this instance's ownership mark."""
    attachment = item.attachment
    return {
        "spaceKey": space_key,
        "spaceName": space_name,
        "spaceId": space_id,
        "pageId": item.page_id,
        "pageTitle": item.page_title,
        "attachmentId": attachment.id,
        "contentType": "attachment",
        "mediaType": media_type(attachment.media_type),
        "version": str(attachment.version),
        "lastModified": attachment.updated_at,
        OWNER_METADATA_KEY: mark,
    }
