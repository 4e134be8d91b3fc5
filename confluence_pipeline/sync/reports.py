"""What a sync did, per space and in total, in the shape the Dagster UI shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

COUNT_FIELDS = ("discovered", "new", "updated", "unchanged", "deleted", "failed", "skipped")


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
    failures: list[PageFailure] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNT_FIELDS}


@dataclass
class SyncTotals:
    spaces: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[PageFailure] = field(default_factory=list)
    confluence_requests: Counter[str] = field(default_factory=Counter)
    unique_requests: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, reports: Iterable[SpaceReport], extra_requests: Iterable[Mapping[str, int]] = ()) -> SyncTotals:
        totals = cls()
        for report in reports:
            totals.spaces += 1
            totals.counts.update(report.counts())
            totals.failures.extend(report.failures)
            totals.add_requests(report.requests)
        for requests in extra_requests:
            totals.add_requests(requests)
        return totals

    def add_requests(self, requests: Mapping[str, int]) -> None:
        for route, count in requests.items():
            system, _, name = route.partition(":")
            target = self.confluence_requests if system == "confluence" else self.unique_requests
            target[name] += count
