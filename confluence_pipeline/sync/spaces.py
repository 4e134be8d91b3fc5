"""The per-space units of the sync, and its write stage: ingest new and updated pages and attachments, then delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.attachments import AttachmentItem, attachment_id_of, is_attachment_key, page_of_key
from confluence_pipeline.domain.guards import GuardTripped
from confluence_pipeline.domain.keys import relative_key_of
from confluence_pipeline.domain.models import PageRef, Source, SpaceRef, SyncLabels
from confluence_pipeline.sync.attachments import ingest_attachments
from confluence_pipeline.sync.images import ImageInliner
from confluence_pipeline.sync.ingestion import ingest_pages
from confluence_pipeline.sync.progress import PageProgress
from confluence_pipeline.sync.reports import PageFailure, SpaceReport, report_of
from confluence_pipeline.sync.targets import StoredSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpaceWork:
    """One unit of the fan-out: a discovered space with its pages, or a vanished space to clean up.

    `predecessors` are stored copies of the same space under an older prefix (its key was renamed, or the
    space was re-created or restored with a new id); `mark` is this Confluence instance's ownership mark.
    """

    space: SpaceRef
    pages: tuple[PageRef, ...]
    stored_count: int
    vanished: StoredSpace | None = None
    predecessors: tuple[StoredSpace, ...] = ()
    mark: str = ""
    mapping_key: str = ""  # the Dagster mapping key of this space's steps: unique per stored prefix


@dataclass(frozen=True)
class SpaceDiff:
    """The read-only result of diffing one space: what the write stage will do, or why it must not."""

    space: SpaceRef
    discovered: int
    to_create: tuple[str, ...] = ()  # page ids: the write stage fetches everything else with the body
    to_update: tuple[str, ...] = ()
    unchanged: int = 0
    delete_ids: tuple[tuple[str, str], ...] = ()  # (stored key, content id), deleted after the ingestion
    replaced_ids: tuple[tuple[str, str], ...] = ()  # old copies: deleted after the ingestion, except failed pages
    kept: int = 0  # pages the diff called deleted that are still in the sync set (kept, re-diffed)
    guard: str | None = None
    skipped: int = 0
    notes: tuple[str, ...] = field(default=())
    mark: str = ""
    mapping_key: str = ""
    # Attachments: what to upload (small references, never bytes), how many were seen, left alone or skipped.
    attachments_to_create: tuple[AttachmentItem, ...] = ()
    attachments_to_update: tuple[AttachmentItem, ...] = ()
    attachments_discovered: int = 0
    attachments_unchanged: int = 0
    attachments_skipped: int = 0
    attachment_skips: tuple[str, ...] = ()  # the first of them, named with their reason
    images_changed: int = 0  # pages re-ingested although unchanged: an image they inline changed

    @property
    def has_writes(self) -> bool:
        return bool(
            self.to_create
            or self.to_update
            or self.delete_ids
            or self.replaced_ids
            or self.attachments_to_create
            or self.attachments_to_update
        )

    @property
    def has_uploads(self) -> bool:
        """Whether anything is uploaded (and so needs a target scope)."""
        return bool(self.to_create or self.to_update or self.attachments_to_create or self.attachments_to_update)


def write_space(
    diff: SpaceDiff,
    confluence: ConfluenceClient,
    unique: UniqueClient,
    *,
    scope_id: str | None,
    sync_labels: SyncLabels,
    source: Source,
    concurrency: int,
    test_mode: bool,
    progress: PageProgress,
    images: ImageInliner | None = None,
) -> SpaceReport:
    """Ingest new and updated pages (inlining their images with `images`, logging their pace with `progress`),
    then attachments, then delete stale items. In test mode only count."""
    report = report_of(diff, test_mode)
    report.cleaned_up = diff.discovered == 0 and bool(diff.delete_ids)
    if diff.guard is not None:
        raise GuardTripped("full-deletion", diff.space.key, diff.guard)  # the ops never get here; belt and braces
    if test_mode:
        report.new, report.updated = len(diff.to_create), len(diff.to_update)
        report.attachments_new = len(diff.attachments_to_create)
        report.attachments_updated = len(diff.attachments_to_update)
        _count_deleted(report, [key for key, _ in (*diff.delete_ids, *diff.replaced_ids)])
        return report
    if diff.has_uploads and scope_id is None:
        raise ValueError(f"space {diff.space.key} has content to ingest but no target scope")
    page_ids = [*diff.to_create, *diff.to_update]
    if page_ids:
        assert scope_id is not None
        outcome = ingest_pages(
            confluence,
            unique,
            space=diff.space,
            page_ids=page_ids,
            new_ids=set(diff.to_create),
            scope_id=scope_id,
            sync_labels=sync_labels,
            source=source,
            mark=diff.mark,
            concurrency=concurrency,
            progress=progress,
            images=images,
        )
        report.new, report.updated = outcome.created, outcome.updated
        report.skipped += outcome.skipped
        report.failures.extend(outcome.failures)
    items = [*diff.attachments_to_create, *diff.attachments_to_update]
    if items:
        assert scope_id is not None
        attached = ingest_attachments(
            confluence,
            unique,
            space=diff.space,
            items=items,
            new_keys={item.key for item in diff.attachments_to_create},
            scope_id=scope_id,
            source=source,
            mark=diff.mark,
            concurrency=concurrency,
        )
        report.attachments_new, report.attachments_updated = attached.created, attached.updated
        report.bytes_moved = attached.bytes_moved
        report.failures.extend(attached.failures)
    if diff.delete_ids:
        deleted, failures = delete_content(unique, diff.space.key, diff.delete_ids)
        _count_deleted(report, deleted)
        report.failures.extend(failures)
    if diff.replaced_ids:
        # An old copy goes only once its item is stored under the new prefix: an item that failed keeps it.
        failed = {f.relative_key for f in report.failures}
        replaced = [(key, cid) for key, cid in diff.replaced_ids if relative_key_of(key) not in failed]
        deleted, failures = delete_content(unique, diff.space.key, replaced)
        _count_deleted(report, deleted)
        report.failures.extend(failures)
    report.failed = sum(1 for f in report.failures if f.attachment_id is None)
    report.attachments_failed = len(report.failures) - report.failed
    return report


def _count_deleted(report: SpaceReport, keys: Sequence[str]) -> None:
    attachments = sum(1 for key in keys if is_attachment_key(relative_key_of(key)))
    report.attachments_deleted += attachments
    report.deleted += len(keys) - attachments


def delete_content(
    unique: UniqueClient, space_key: str, delete_ids: Sequence[tuple[str, str]]
) -> tuple[list[str], list[PageFailure]]:
    """Delete by id; returns the keys deleted, and failures (naming page and attachment) for ids not confirmed."""
    try:
        confirmed = set(unique.delete([content_id for _, content_id in delete_ids]))
    except RemoteError as exc:
        log.error("Deleting %d items of space %s failed: %s", len(delete_ids), space_key, exc)
        return [], [_delete_failure(key, space_key, str(exc)) for key, _ in delete_ids]
    failures = [
        _delete_failure(key, space_key, "Unique did not confirm the deletion")
        for key, content_id in delete_ids
        if content_id not in confirmed
    ]
    for failure in failures:
        log.error("%s", failure.line())
    return [key for key, content_id in delete_ids if content_id in confirmed], failures


def _delete_failure(key: str, space_key: str, reason: str) -> PageFailure:
    return PageFailure(page_of_key(key), space_key, "delete", reason, attachment_id=attachment_id_of(key))
