"""Per-space sync stages: diff and guard (read-only), then ingest and delete (writes)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.cql import space_labelled_cql
from confluence_pipeline.domain.diff import FileDiff, file_list, plan_space
from confluence_pipeline.domain.guards import GuardTripped, check_space_diff, should_clean_up_space
from confluence_pipeline.domain.keys import partial_key
from confluence_pipeline.domain.models import PageRef, Source, SpaceRef, SyncLabels
from confluence_pipeline.sync.ingestion import ingest_pages
from confluence_pipeline.sync.reports import PageFailure, SpaceReport
from confluence_pipeline.sync.targets import StoredSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpaceWork:
    """One unit of the fan-out: a discovered space with its pages, or a vanished space to clean up."""

    space: SpaceRef
    pages: tuple[PageRef, ...]
    stored_count: int
    vanished: StoredSpace | None = None
    mapping_key: str = ""  # the Dagster mapping key of this space's steps

    def with_mapping_key(self, mapping_key: str) -> SpaceWork:
        return replace(self, mapping_key=mapping_key)


@dataclass(frozen=True)
class SpaceDiff:
    """The read-only result of diffing one space: what the write stage will do, or why it must not."""

    space: SpaceRef
    discovered: int
    to_create: tuple[str, ...] = ()  # page ids: the write stage fetches everything else with the body
    to_update: tuple[str, ...] = ()
    unchanged: int = 0
    delete_ids: tuple[tuple[str, str], ...] = ()  # (stored key, content id)
    guard: str | None = None
    skipped: int = 0
    notes: tuple[str, ...] = field(default=())
    mapping_key: str = ""

    @property
    def has_writes(self) -> bool:
        return bool(self.to_create or self.to_update or self.delete_ids)


def diff_space(
    work: SpaceWork, confluence: ConfluenceClient, unique: UniqueClient, labels: SyncLabels, source: Source
) -> SpaceDiff:
    """Ask Unique what changed in this space and check the guards; writes nothing."""
    if work.vanished is not None:
        return replace(_diff_vanished_space(work, confluence, unique, labels), mapping_key=work.mapping_key)
    space = work.space
    pages = work.pages
    diff = unique.file_diff(partial_key(space), file_list(pages), source)
    plan = plan_space(space, pages, diff)
    submitted = {page.id for page in pages}
    existing = unique.ids_for_keys(plan.to_delete) if plan.to_delete else {}
    # Only keys that really exist under this space's prefix count: the server matches stored keys by
    # substring, so its list may name items of other spaces.
    prefix = f"{partial_key(space)}/"
    resolved = tuple(sorted(existing.items()))
    guard_diff = FileDiff(
        new=diff.new,
        updated=diff.updated,
        deleted=tuple(key[len(prefix) :] for key, _ in resolved) + tuple(k for k in diff.deleted if k in submitted),
    )
    notes = []
    if plan.ignored:
        notes.append(f"file-diff named {len(plan.ignored)} keys that were not submitted; ignored")
    guard = None
    try:
        check_space_diff(space.key, submitted, guard_diff, work.stored_count)
    except GuardTripped as exc:
        guard = str(exc)
    return SpaceDiff(
        space=space,
        discovered=len(pages),
        to_create=tuple(page.id for page in plan.to_create),
        to_update=tuple(page.id for page in plan.to_update),
        unchanged=plan.unchanged,
        delete_ids=resolved,
        guard=guard,
        notes=tuple(notes),
        mapping_key=work.mapping_key,
    )


def _diff_vanished_space(
    work: SpaceWork, confluence: ConfluenceClient, unique: UniqueClient, labels: SyncLabels
) -> SpaceDiff:
    vanished = work.vanished
    assert vanished is not None
    space = work.space
    try:
        visible = confluence.space_visible(space.key)
    except RemoteError as exc:
        log.warning("Space %s left discovery but its visibility check failed (%s); not cleaning up", space.key, exc)
        return SpaceDiff(space=space, discovered=0, skipped=1, notes=(f"visibility check failed: {exc}",))
    confirming: int | None = 0
    if visible:
        try:
            confirming = 1 if confluence.has_any(space_labelled_cql(labels.single, labels.subtree, space.key)) else 0
        except RemoteError as exc:
            log.warning("Confirming query for vanished space %s failed (%s); not cleaning up", space.key, exc)
            confirming = None
    if not should_clean_up_space(confirming, visible):
        reason = "its confirming query failed" if confirming is None else "it still has labelled pages"
        return SpaceDiff(space=space, discovered=0, skipped=1, notes=(f"cleanup skipped: {reason}",))
    nodes = list(unique.iter_content({"key": {"startsWith": f"{vanished.stored_prefix}/"}}))
    delete_ids = tuple(sorted((n.key, n.id) for n in nodes if n.key.startswith(f"{vanished.stored_prefix}/")))
    why = "is gone or invisible" if not visible else "has no labelled pages any more"
    return SpaceDiff(space=space, discovered=0, delete_ids=delete_ids, notes=(f"space {why}; cleaning up",))


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
        report.new, report.updated, report.deleted = len(diff.to_create), len(diff.to_update), len(diff.delete_ids)
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
            concurrency=concurrency,
        )
        report.new, report.updated = outcome.created, outcome.updated
        report.skipped += outcome.skipped
        report.failures.extend(outcome.failures)
    if diff.delete_ids:
        report.deleted, failures = delete_content(unique, diff.space.key, diff.delete_ids)
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
    return key.rsplit("/", 1)[-1]
