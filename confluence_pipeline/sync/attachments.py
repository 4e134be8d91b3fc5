"""Attachments in the sync: complete the lists cut at the inline cap, and stream each file from Confluence to Unique.

A file is never held: its download is piped chunk by chunk into the upload, whose `Content-Length` is the size
Confluence listed, so memory stays flat however large the file. A failed transfer is tried again from the
start (a new download) a few times; an attachment that still fails fails alone, never its page.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError, RemoteUnavailable
from confluence_pipeline.clients.unique import ContentSpec, Registration, UniqueClient
from confluence_pipeline.domain.attachments import AttachmentItem, attachment_metadata, media_type
from confluence_pipeline.domain.keys import content_key
from confluence_pipeline.domain.models import PageRef, Source, SpaceRef
from confluence_pipeline.sync.items import FailureOf, ItemFailed, collect, existing_keys, remove_registration
from confluence_pipeline.sync.reports import PageFailure

log = logging.getLogger(__name__)

TRANSFER_ATTEMPTS = 3
"""Whole transfers (download and upload) per attachment before it counts as failed."""


def complete_attachment_lists(client: ConfluenceClient, pages: Mapping[str, PageRef]) -> tuple[dict[str, PageRef], int]:
    """`pages` with every cut attachment list completed, and how many pages needed a listing of their own.

    Pages arrive with up to 25 attachments inline; only a page whose list is full is listed again, by the
    platform's per-page listing (DC `child/attachment`, Cloud v2), which reads the same store as the inline
    list, never the search index: a deletion is never decided on an index that lags behind.
    """
    completed = dict(pages)
    listed = 0
    for page_id, page in pages.items():
        if page.more_attachments:
            completed[page_id] = client.complete_attachments(page)
            listed += 1
    return completed, listed


class TransferFailed(Exception):
    """A transfer that cannot succeed by repeating it (the file's length differs from what Confluence listed)."""


def _exactly(chunks: Iterable[bytes], size: int, filename: str) -> Iterator[bytes]:
    """The download's chunks, checked against the declared length before a byte too many is sent."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise TransferFailed(f"{filename} is longer than the {size} bytes Confluence listed")
        yield chunk
    if sent != size:
        raise TransferFailed(f"{filename} has {sent} bytes, not the {size} Confluence listed")


def transfer(
    confluence: ConfluenceClient, unique: UniqueClient, registration: Registration, item: AttachmentItem, kind: str
) -> None:
    """Stream one attachment's bytes from Confluence into the registered upload, sent as media type `kind`;
    nothing is downloaded for 0 bytes."""
    attachment = item.attachment
    if attachment.size == 0:
        unique.upload_stream(registration, iter(()), 0, kind)
        return
    with confluence.download(item.page_id, attachment) as chunks:
        unique.upload_stream(registration, _exactly(chunks, attachment.size, attachment.title), attachment.size, kind)


@dataclass
class AttachmentOutcome:
    created: int = 0
    updated: int = 0
    bytes_moved: int = 0
    failures: list[PageFailure] = field(default_factory=list)


def _worth_another_transfer(exc: RemoteError) -> bool:
    """A broken connection or body, or a failed upload (sent once), may heal; a download refused with a status
    was already retried by the transport, and a client error will not change."""
    if isinstance(exc, RemoteUnavailable):
        return True
    return exc.system != "confluence" and (exc.status is None or exc.status == 429 or exc.status >= 500)


def _stage(exc: Exception) -> str:
    if isinstance(exc, RemoteError):
        return "download" if exc.system == "confluence" else "upload"
    return "download"


def _ingest_attachment(
    confluence: ConfluenceClient,
    unique: UniqueClient,
    space: SpaceRef,
    item: AttachmentItem,
    *,
    existed_before: bool,
    scope_id: str,
    source: Source,
    mark: str,
) -> None:
    attachment = item.attachment
    spec = ContentSpec(
        key=content_key(space, item.key),
        title=attachment.title,
        url=attachment.web_url,
        byte_size=attachment.size,
        metadata=attachment_metadata(item, space.key, space.name, space.id, mark),
        scope_id=scope_id,
        source=source,
        mime_type=media_type(attachment.media_type) or "application/octet-stream",
        updated_at=attachment.updated_at,  # the listed version, which is the one downloaded
    )
    try:
        registration = unique.register(spec)
    except RemoteError as exc:
        raise ItemFailed("register", str(exc)) from exc
    try:
        for attempt in range(1, TRANSFER_ATTEMPTS + 1):
            try:
                transfer(confluence, unique, registration, item, spec.mime_type)
                break
            except RemoteError as exc:
                if attempt == TRANSFER_ATTEMPTS or not _worth_another_transfer(exc):
                    raise ItemFailed(_stage(exc), f"{exc} (after {attempt} transfers)") from exc
                log.warning(
                    "Attachment %s of page %s: transfer %d failed (%s); downloading it again",
                    attachment.id,
                    item.page_id,
                    attempt,
                    exc,
                )
            except TransferFailed as exc:
                raise ItemFailed("download", str(exc)) from exc
        try:
            unique.finalize(spec, registration)
        except RemoteError as exc:
            raise ItemFailed("finalize", str(exc)) from exc
    except ItemFailed:
        if not existed_before:
            remove_registration(unique, "attachment", attachment.id, registration.id)
        # Content that existed before keeps its id (registration upserts by key): deleting it would remove
        # its readable previous version, or what another source wrote under this key.
        raise


def _attachment_failure(space: SpaceRef) -> FailureOf[AttachmentItem]:
    def failure(item: AttachmentItem, stage: str, reason: str) -> PageFailure:
        named = {"attachment_id": item.attachment.id, "filename": item.attachment.title}
        return PageFailure(item.page_id, space.key, stage, reason, **named)

    return failure


def _item_key(item: AttachmentItem) -> str:
    return item.key


def ingest_attachments(
    confluence: ConfluenceClient,
    unique: UniqueClient,
    *,
    space: SpaceRef,
    items: Sequence[AttachmentItem],
    new_keys: Collection[str],
    scope_id: str,
    source: Source,
    mark: str,
    concurrency: int,
) -> AttachmentOutcome:
    """Register, stream and finalize each attachment, `concurrency` at a time; each holds one chunk in memory."""
    outcome = AttachmentOutcome()
    failure_of = _attachment_failure(space)
    # Without knowing which keys exist, a failed new attachment could not be cleaned up safely: when the lookup
    # fails, the new attachments fail before registration.
    items, existing = existing_keys(
        unique, space, items, new_keys, key_of=_item_key, failure_of=failure_of, failures=outcome.failures
    )
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"attach-{space.key[:10]}") as pool:
        futures = [
            (
                item,
                pool.submit(
                    _ingest_attachment,
                    confluence,
                    unique,
                    space,
                    item,
                    existed_before=content_key(space, item.key) in existing,
                    scope_id=scope_id,
                    source=source,
                    mark=mark,
                ),
            )
            for item in items
        ]
        for item in collect(futures, failure_of, outcome.failures):
            outcome.bytes_moved += item.attachment.size
            if item.key in new_keys:
                outcome.created += 1
            else:
                outcome.updated += 1
    return outcome
