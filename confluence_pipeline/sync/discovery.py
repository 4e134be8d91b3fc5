"""Find every page to sync: labelled pages, then the descendants of `INGEST_ALL_LABEL` pages."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import ANCESTOR_BATCH, descendants_cql, discovery_cql
from confluence_pipeline.domain.models import PageRef, SyncLabels
from confluence_pipeline.sync.attachments import complete_attachment_lists

log = logging.getLogger(__name__)


def _admit(page: PageRef, space_types: Collection[str], only_spaces: Collection[str]) -> bool:
    if page.space.type not in space_types:
        return False
    return not only_spaces or page.space.key in only_spaces


def discover_labelled(
    client: ConfluenceClient, labels: SyncLabels, *, only_spaces: Collection[str] = ()
) -> tuple[dict[str, PageRef], list[str], int]:
    """Labelled pages by id, the ids of subtree-label roots among them, and how many were skipped."""
    space_types = client.platform.syncable_space_types
    pages: dict[str, PageRef] = {}
    roots: list[str] = []
    skipped = 0
    for batch in client.search_pages(discovery_cql(labels.single, labels.subtree, client.platform)):
        for page in batch:
            if not _admit(page, space_types, only_spaces):
                skipped += 1
                continue
            if page.id in pages:
                continue
            pages[page.id] = page
            if labels.subtree in page.labels:
                roots.append(page.id)
    return pages, roots, skipped


def expand_descendants(
    client: ConfluenceClient, roots: Iterable[str], known: dict[str, PageRef], *, only_spaces: Collection[str] = ()
) -> tuple[dict[str, PageRef], int]:
    """Add every descendant of `roots` (any depth) to a copy of `known`; returns it and the count added.

    Attachments arrive with the pages; the pages whose inline attachment list was cut are then listed in
    full, so every page leaves discovery with all its current attachments.
    """
    space_types = client.platform.syncable_space_types
    pages = dict(known)
    added = 0
    for chunk in batched(sorted(set(roots), key=_numeric), ANCESTOR_BATCH):
        for batch in client.search_pages(descendants_cql(chunk)):
            for page in batch:
                if page.id in pages or not _admit(page, space_types, only_spaces):
                    continue
                pages[page.id] = page
                added += 1
    pages, listed = complete_attachment_lists(client, pages)
    if listed:
        log.info("Listed the attachments of %d pages with more than the inline list holds", listed)
    return pages, added


def _numeric(page_id: str) -> tuple[int, str]:
    return (int(page_id), page_id) if page_id.isdigit() else (1 << 62, page_id)
