"""Attachment objects as Confluence sends them (v1 content objects, Cloud v2 items), read into `AttachmentRef`s."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from confluence_pipeline.clients.errors import UnexpectedResponse
from confluence_pipeline.domain.models import AttachmentRef
from confluence_pipeline.domain.timefmt import to_utc_iso


class MalformedAttachment(ValueError):
    """An attachment object lacks a field the sync needs; the caller names the route."""


def _web_url(web_base: str, webui: Any, page_id: str) -> str:
    if isinstance(webui, str) and webui:
        return f"{web_base}{webui}" if webui.startswith("/") else webui
    return f"{web_base}/pages/viewpageattachments.action?pageId={page_id}"


def _version(version: Any, stamp_field: str, attachment_id: str) -> tuple[int, str]:
    if not isinstance(version, Mapping) or not isinstance(version.get("number"), int):
        raise MalformedAttachment(f"attachment {attachment_id} came back without its version")
    try:
        return version["number"], to_utc_iso(str(version.get(stamp_field) or ""))
    except ValueError as exc:
        raise MalformedAttachment(f"attachment {attachment_id} has an unreadable version time: {exc}") from None


def _size(value: Any, attachment_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedAttachment(f"attachment {attachment_id} has no file size")
    return value


def v1_attachment(item: Mapping[str, Any], *, page_id: str, web_base: str, keep_download: bool) -> AttachmentRef | None:
    """A v1 content object of type `attachment` (DC, Cloud search and `children.attachment`); None unless current."""
    attachment_id = str(item.get("id") or "")
    if not attachment_id or item.get("type", "attachment") != "attachment":
        raise MalformedAttachment(f"an attachment of page {page_id} has no id")
    if item.get("status", "current") != "current":
        return None
    extensions = item.get("extensions") if isinstance(item.get("extensions"), Mapping) else {}
    metadata = item.get("metadata") if isinstance(item.get("metadata"), Mapping) else {}
    kind = extensions.get("mediaType") or metadata.get("mediaType") or "application/octet-stream"
    number, when = _version(item.get("version"), "when", attachment_id)
    links = item.get("_links") if isinstance(item.get("_links"), Mapping) else {}
    download = links.get("download") if keep_download else ""
    return AttachmentRef(
        id=attachment_id,
        title=str(item.get("title") or ""),
        media_type=sys.intern(str(kind)),
        size=_size(extensions.get("fileSize"), attachment_id),
        version=number,
        updated_at=when,
        download=download if isinstance(download, str) else "",
        web_url=_web_url(web_base, links.get("webui"), page_id),
    )


def v2_attachment(item: Mapping[str, Any], *, page_id: str, web_base: str) -> AttachmentRef | None:
    """A Cloud v2 attachment item (`/pages/{id}/attachments`); None unless current."""
    attachment_id = str(item.get("id") or "")
    if not attachment_id:
        raise MalformedAttachment(f"an attachment of page {page_id} has no id")
    if item.get("status", "current") != "current":
        return None
    number, when = _version(item.get("version"), "createdAt", attachment_id)
    links = item.get("_links") if isinstance(item.get("_links"), Mapping) else {}
    return AttachmentRef(
        id=attachment_id,
        title=str(item.get("title") or ""),
        media_type=sys.intern(str(item.get("mediaType") or "application/octet-stream")),
        size=_size(item.get("fileSize"), attachment_id),
        version=number,
        updated_at=when,
        download="",
        web_url=_web_url(web_base, item.get("webuiLink") or links.get("webui"), page_id),
    )


def inline_attachments(
    item: Mapping[str, Any], *, page_id: str, web_base: str, keep_download: bool
) -> tuple[tuple[AttachmentRef, ...], bool] | None:
    """A page's `children.attachment` expansion: its attachments and whether more exist than it holds.

    None when the page came back without the expansion. The list is cut at the platform's cap (25): when it
    is full, or names a `next` page, the rest must be listed separately.
    """
    children = item.get("children")
    listing = children.get("attachment") if isinstance(children, Mapping) else None
    if not isinstance(listing, Mapping):
        return None
    results = listing.get("results")
    if not isinstance(results, list):
        raise MalformedAttachment(f"the attachments of page {page_id} have no results list")
    refs = [
        v1_attachment(entry, page_id=page_id, web_base=web_base, keep_download=keep_download)
        for entry in results
        if isinstance(entry, Mapping)
    ]
    links = listing.get("_links") if isinstance(listing.get("_links"), Mapping) else {}
    size, limit = listing.get("size"), listing.get("limit")
    full = isinstance(size, int) and isinstance(limit, int) and size >= limit
    return tuple(ref for ref in refs if ref is not None), bool(links.get("next")) or full


def malformed(detail: str, route: str = "GET content/search") -> UnexpectedResponse:
    """A Confluence answer (HTTP 200) that lacks what the contract promises."""
    return UnexpectedResponse(system="confluence", method="GET", route=route, status=200, detail=detail)
