"""The metadata attached to each ingested page (a flat map of strings, as Unique stores it)."""

from __future__ import annotations

import json
from collections.abc import Collection

from confluence_pipeline.domain.models import PageRef
from confluence_pipeline.domain.ownership import OWNER_METADATA_KEY


def content_metadata(page: PageRef, sync_labels: Collection[str], mark: str) -> dict[str, str]:
    """Metadata for one page; `confluenceLabels` is a JSON array of its labels minus the sync labels.

    `mark` is the ownership mark of the Confluence instance (`confluenceInstance`): cleanup only ever
    considers items that carry it.

    Sync labels are compared case-insensitively because Confluence lower-cases labels while the
    configured label names may not be.
    """
    excluded = {label.casefold() for label in sync_labels}
    labels = sorted({label for label in page.labels if label.casefold() not in excluded})
    return {
        "confluenceLabels": json.dumps(labels, ensure_ascii=False, separators=(",", ":")),
        "spaceKey": page.space.key,
        "spaceName": page.space.name,
        "spaceId": page.space.id,
        "pageId": page.id,
        "contentType": page.type,
        "version": str(page.version),
        "lastModified": page.updated_at,
        OWNER_METADATA_KEY: mark,
    }
