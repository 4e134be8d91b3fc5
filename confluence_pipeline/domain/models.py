"""Small immutable values that flow between the sync stages (never page bodies)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class Platform(StrEnum):
    ONPREM = "ONPREM"
    CLOUD = "CLOUD"

    @property
    def source_kind(self) -> str:
        return "ATLASSIAN_CONFLUENCE_ONPREM" if self is Platform.ONPREM else "ATLASSIAN_CONFLUENCE_CLOUD"

    @property
    def syncable_space_types(self) -> frozenset[str]:
        """Space types whose content is synced: personal spaces never; Cloud adds collaboration spaces."""
        return frozenset({"global", "collaboration"}) if self is Platform.CLOUD else frozenset({"global"})


@dataclass(frozen=True, slots=True)
class SyncLabels:
    """The two labels that mark content for the sync (stored lower-case, as Confluence stores labels)."""

    single: str  # syncs the labelled page alone
    subtree: str  # syncs the labelled page and every page below it

    def __iter__(self) -> Iterator[str]:
        yield self.single
        yield self.subtree


@dataclass(frozen=True, slots=True)
class Source:
    """Which Confluence content comes from, as Unique records it (`sourceKind`, `sourceName`)."""

    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class SpaceRef:
    """A Confluence space as discovery saw it. `id` is the v1 numeric id as a string."""

    id: str
    key: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class PageRef:
    """One discovered page or blog post: what diff, ingest and report need, without its body.

    `updated_at` is `version.when` normalised to UTC ISO-8601 with milliseconds and `Z`.
    `labels` are lower-cased, sorted and include the sync labels (they are removed for metadata).
    """

    id: str
    type: str
    title: str
    space: SpaceRef
    version: int
    updated_at: str
    web_url: str
    labels: tuple[str, ...]
    # Current attachments when attachments or image inlining are on (empty otherwise); `more_attachments`
    # says the inline list was cut at the platform's cap and the rest still has to be listed.
    attachments: tuple[AttachmentRef, ...] = ()
    more_attachments: bool = False


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """One current attachment of a page: what the diff, the download and the report need, never its bytes.

    `updated_at` is the attachment's `version.when` in UTC (the file-diff's `updatedAt`); `download` is DC's
    `_links.download` (relative to the base URL, empty on Cloud, which downloads through the REST route);
    `web_url` is the attachment's human-facing link.
    """

    id: str
    title: str
    media_type: str
    size: int
    version: int
    updated_at: str
    download: str
    web_url: str


@dataclass(frozen=True, slots=True)
class PageBody:
    """A fetched storage body, at the version it was fetched.

    `metadata` is added to the page's own metadata when it is uploaded (the images it inlined).
    """

    page: PageRef
    storage: str
    metadata: tuple[tuple[str, str], ...] = ()
