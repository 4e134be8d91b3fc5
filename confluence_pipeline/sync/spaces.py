"""The per-space units of the sync, and its write stage: ingest new and updated pages, then delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.guards import GuardTripped
from confluence_pipeline.domain.models import PageRef, Source, SpaceRef, SyncLabels
from confluence_pipeline.sync.ingestion import ingest_pages
from confluence_pipeline.sync.progress import PageProgress
from confluence_pipeline.sync.reports import PageFailure, SpaceReport
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

    @property
    def has_writes(self) -> bool:
        return bool(self.to_create or self.to_update or self.delete_ids or self.replaced_ids)


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
    progress: PageProgress | None = None,
) -> SpaceReport:
    """Ingest new and updated pages, then delete stale ones. In test mode only count."""
    report = SpaceReport(
        space_key=diff.space.key,
        space_id=diff.space.id,
        discovered=diff.discovered,
        unchanged=diff.unchanged,
        skipped=diff.skipped,
        test_mode=test_mode,
        cleaned_up=diff.discovered == 0 and bool(diff.delete_ids),
        mapping_key=diff.mapping_key,
    )
    if diff.guard is not None:
        raise GuardTripped("full-deletion", diff.space.key, diff.guard)  # the ops never get here; belt and braces
    if test_mode:
        report.new, report.updated = len(diff.to_create), len(diff.to_update)
        report.deleted = len(diff.delete_ids) + len(diff.replaced_ids)
        return report
    page_ids = [*diff.to_create, *diff.to_update]
    if page_ids:
        if scope_id is None:
            raise ValueError(f"space {diff.space.key} has pages to ingest but no target scope")
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
        )
        report.new, report.updated = outcome.created, outcome.updated
        report.skipped += outcome.skipped
        report.failures.extend(outcome.failures)
    if diff.delete_ids:
        deleted, failures = delete_content(unique, diff.space.key, diff.delete_ids)
        report.deleted += deleted
        report.failures.extend(failures)
    if diff.replaced_ids:
        # An old copy goes only once its page is stored under the new prefix: a page that failed keeps it.
        failed = {f.page_id for f in report.failures}
        replaced = [(key, cid) for key, cid in diff.replaced_ids if _page_of(key) not in failed]
        deleted, failures = delete_content(unique, diff.space.key, replaced)
        report.deleted += deleted
        report.failures.extend(failures)
    report.failed = len(report.failures)
    return report


def delete_content(
    unique: UniqueClient, space_key: str, delete_ids: Sequence[tuple[str, str]]
) -> tuple[int, list[PageFailure]]:
    """Delete by id; ids Unique does not confirm are failures naming their page."""
    try:
        confirmed = set(unique.delete([content_id for _, content_id in delete_ids]))
    except RemoteError as exc:
        log.error("Deleting %d items of space %s failed: %s", len(delete_ids), space_key, exc)
        return 0, [PageFailure(_page_of(key), space_key, "delete", str(exc)) for key, _ in delete_ids]
    failures = [
        PageFailure(_page_of(key), space_key, "delete", "Unique did not confirm the deletion")
        for key, content_id in delete_ids
        if content_id not in confirmed
    ]
    for failure in failures:
        log.error("%s", failure.line())
    return len(delete_ids) - len(failures), failures


def _page_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].split("::", 1)[0]
