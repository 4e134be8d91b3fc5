"""What a sync did, per space and in total, in the shape the Dagster UI shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluence_pipeline.domain.keys import KEY_SEPARATOR

if TYPE_CHECKING:
    from confluence_pipeline.sync.spaces import SpaceDiff

COUNT_FIELDS = ("discovered", "new", "updated", "unchanged", "deleted", "failed", "skipped")
ATTACHMENT_COUNT_FIELDS = (
    "attachments",
    "attachments_new",
    "attachments_updated",
    "attachments_unchanged",
    "attachments_deleted",
    "attachments_failed",
    "attachments_skipped",
)
"""Attachment counts, beside the page counts: `attachments` is how many current attachments synced pages have."""
ALL_COUNT_FIELDS = COUNT_FIELDS + ATTACHMENT_COUNT_FIELDS
MAX_LISTED_FAILURES = 50
MAX_LISTED_SKIPS = 50


@dataclass(frozen=True)
class PageFailure:
    """A page, or one attachment of it (`attachment_id` set), that failed; counts against SYNC_FAILURE_TOLERANCE."""

    page_id: str
    space_key: str
    stage: str  # "fetch", "register", "download", "upload", "finalize", "delete"
    reason: str
    attachment_id: str | None = None
    filename: str = ""

    @property
    def relative_key(self) -> str:
        return self.page_id if self.attachment_id is None else f"{self.page_id}{KEY_SEPARATOR}{self.attachment_id}"

    def line(self) -> str:
        if self.attachment_id is not None:
            what = f"attachment {self.filename or self.attachment_id} ({self.attachment_id}) of page {self.page_id}"
            return f"{what} in space {self.space_key} failed at {self.stage}: {self.reason}"
        return f"page {self.page_id} in space {self.space_key} failed at {self.stage}: {self.reason}"


@dataclass(frozen=True)
class Skip:
    """An attachment the policy left out, as the report names it."""

    space_key: str
    line: str


@dataclass
class SpaceReport:
    """Counts for one space. In test mode `new`/`updated`/`deleted` are what a real run would do."""

    space_key: str
    space_id: str
    discovered: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0
    test_mode: bool = False
    cleaned_up: bool = False
    mapping_key: str = ""
    failures: list[PageFailure] = field(default_factory=list)
    attachments: int = 0
    attachments_new: int = 0
    attachments_updated: int = 0
    attachments_unchanged: int = 0
    attachments_deleted: int = 0
    attachments_failed: int = 0
    attachments_skipped: int = 0
    skipped_attachments: list[str] = field(default_factory=list)  # "file (id) on page N: reason", capped
    bytes_moved: int = 0  # attachment bytes streamed from Confluence to Unique

    def counts(self, fields: Sequence[str] = COUNT_FIELDS) -> dict[str, int]:
        """The counts named in `fields` (by default the page counts), in that order."""
        return {name: int(getattr(self, name)) for name in fields}

    def metrics(self) -> dict[str, int]:
        """Every page and attachment count, and the attachment bytes moved."""
        return {**self.counts(ALL_COUNT_FIELDS), "bytes_moved": self.bytes_moved}


def report_of(diff: SpaceDiff, test_mode: bool) -> SpaceReport:
    """A space's report as its diff starts it: what was discovered, left alone or skipped, nothing written yet."""
    return SpaceReport(
        space_key=diff.space.key,
        space_id=diff.space.id,
        discovered=diff.discovered,
        unchanged=diff.unchanged,
        skipped=diff.skipped,
        test_mode=test_mode,
        mapping_key=diff.mapping_key,
        attachments=diff.attachments_discovered,
        attachments_unchanged=diff.attachments_unchanged,
        attachments_skipped=diff.attachments_skipped,
        skipped_attachments=list(diff.attachment_skips),
    )


def merge_reports(diffs: Iterable[SpaceDiff], written: Iterable[SpaceReport], *, test_mode: bool) -> list[SpaceReport]:
    """One report per diffed space: the write step's when it ran, otherwise the diff's counts.

    `diffs` are in plan order; spaces match on their mapping key.
    """
    by_key = {report.mapping_key: report for report in written}
    merged: list[SpaceReport] = []
    for diff in diffs:
        report = by_key.get(diff.mapping_key)
        merged.append(report_of(diff, test_mode) if report is None else report)  # no writes: the diff says it all
    return merged


@dataclass
class RequestTotals:
    """Requests per system and route (`confluence:GET content/search` style keys are split here)."""

    confluence: Counter[str] = field(default_factory=Counter)
    unique: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, counts: Iterable[Mapping[str, int]]) -> RequestTotals:
        totals = cls()
        for requests in counts:
            for route, count in requests.items():
                system, _, name = route.partition(":")
                (totals.confluence if system == "confluence" else totals.unique)[name] += count
        return totals

    @property
    def confluence_requests(self) -> int:
        return sum(self.confluence.values())

    @property
    def unique_requests(self) -> int:
        return sum(self.unique.values())


@dataclass
class SyncTotals:
    spaces: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[PageFailure] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    bytes_moved: int = 0

    @classmethod
    def of(cls, reports: Iterable[SpaceReport]) -> SyncTotals:
        totals = cls()
        for report in reports:
            totals.spaces += 1
            totals.counts.update(report.counts(ALL_COUNT_FIELDS))
            totals.failures.extend(report.failures)
            totals.skips.extend(Skip(report.space_key, line) for line in report.skipped_attachments)
            totals.bytes_moved += report.bytes_moved
        return totals

    def as_dict(self, fields: Sequence[str] = COUNT_FIELDS) -> dict[str, int]:
        """The totals named in `fields` (by default the page counts), in that order."""
        return {name: self.counts.get(name, 0) for name in fields}


def counts_table(reports: Sequence[SpaceReport], fields: Sequence[str] = COUNT_FIELDS) -> str:
    """A Markdown table of every space's counts named in `fields` (by default the page counts)."""
    header = "| space | " + " | ".join(fields) + " |\n|" + "---|" * (len(fields) + 1) + "\n"
    rows = "".join(
        f"| {r.space_key} | " + " | ".join(str(v) for v in r.counts(fields).values()) + " |\n" for r in reports
    )
    return header + rows


def skipped_description(skips: Sequence[Skip], total: int) -> str:
    """The skipped attachments with their reasons, as a Markdown list: the first that were named, of `total`."""
    shown = skips[:MAX_LISTED_SKIPS]
    lines = "\n".join(f"- {skip.space_key}: {skip.line}" for skip in shown)
    return lines + (f"\n- … and {total - len(shown)} more" if total > len(shown) else "")


def failure_description(failures: Sequence[PageFailure], tolerance: int) -> str:
    shown = "\n".join(f"- {f.line()}" for f in failures[:MAX_LISTED_FAILURES])
    more = f"\n… and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
    pages = sum(1 for f in failures if f.attachment_id is None)
    attachments = len(failures) - pages
    parts = [
        f"{pages} page(s)" if pages or not attachments else "",
        f"{attachments} attachment(s)" if attachments else "",
    ]
    what = " and ".join(part for part in parts if part)
    return (
        f"{what} failed, more than SYNC_FAILURE_TOLERANCE={tolerance} allows "
        f"(everything else was synced):\n{shown}{more}"
    )
