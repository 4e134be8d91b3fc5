"""What a sync did, per space and in total, in the shape the Dagster UI shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

COUNT_FIELDS = ("discovered", "new", "updated", "unchanged", "deleted", "failed", "skipped")
MAX_LISTED_FAILURES = 50


@dataclass(frozen=True)
class PageFailure:
    page_id: str
    space_key: str
    stage: str  # "fetch", "register", "upload", "finalize", "delete"
    reason: str

    def line(self) -> str:
        return f"page {self.page_id} in space {self.space_key} failed at {self.stage}: {self.reason}"


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

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNT_FIELDS}


class DiffSummary(Protocol):
    """What the report needs of a space's diff when that space had nothing to write."""

    @property
    def discovered(self) -> int: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def mapping_key(self) -> str: ...


def merge_reports(
    diffs: Iterable[tuple[str, str, DiffSummary]], written: Iterable[SpaceReport], *, test_mode: bool
) -> list[SpaceReport]:
    """One report per diffed space: the write step's when it ran, otherwise the diff's counts.

    `diffs` are (space key, space id, diff) in plan order; spaces match on their mapping key.
    """
    by_key = {report.mapping_key: report for report in written}
    merged: list[SpaceReport] = []
    for space_key, space_id, diff in diffs:
        report = by_key.get(diff.mapping_key)
        if report is None:  # no writes needed: the diff says it all
            report = SpaceReport(
                space_key=space_key,
                space_id=space_id,
                discovered=diff.discovered,
                unchanged=diff.unchanged,
                skipped=diff.skipped,
                test_mode=test_mode,
                mapping_key=diff.mapping_key,
            )
        merged.append(report)
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


@dataclass
class SyncTotals:
    spaces: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[PageFailure] = field(default_factory=list)

    @classmethod
    def of(cls, reports: Iterable[SpaceReport]) -> SyncTotals:
        totals = cls()
        for report in reports:
            totals.spaces += 1
            totals.counts.update(report.counts())
            totals.failures.extend(report.failures)
        return totals

    def as_dict(self) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in COUNT_FIELDS}


def per_space_table(reports: Sequence[SpaceReport]) -> str:
    """A Markdown table of every space's counts."""
    header = "| space | " + " | ".join(COUNT_FIELDS) + " |\n|" + "---|" * (len(COUNT_FIELDS) + 1) + "\n"
    rows = "".join(f"| {r.space_key} | " + " | ".join(str(v) for v in r.counts().values()) + " |\n" for r in reports)
    return header + rows


def failure_description(failures: Sequence[PageFailure], tolerance: int) -> str:
    shown = "\n".join(f"- {f.line()}" for f in failures[:MAX_LISTED_FAILURES])
    more = f"\n… and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
    return (
        f"{len(failures)} page(s) failed, more than SYNC_FAILURE_TOLERANCE={tolerance} allows "
        f"(every other page was synced):\n{shown}{more}"
    )
