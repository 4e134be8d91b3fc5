"""What one benchmark run is configured with: sizes, latency, rate limits, and which phases it runs."""

from __future__ import annotations

from dataclasses import dataclass

SINGLE_LABEL = "ai-ingest"
ALL_LABEL = "ai-ingest-all"
PHASES = ("initial", "no-change", "1% changed")


@dataclass(frozen=True)
class BenchOptions:
    """One benchmark configuration. `pages` counts what a sync ingests: labelled pages plus descendants."""

    pages: int = 1000
    spaces: int = 10
    mode: str = "ONPREM"
    latency_ms: float = 5.0
    confluence_per_minute: int = 0  # 0 = unlimited
    unique_per_minute: int = 0
    limits_from: str = "initial"  # the first phase the rate limits apply to (earlier ones run unlimited)
    concurrency: int = 4
    deep_trees: int = 4
    tree_share: float = 0.2  # share of pages that are descendants of the deep trees
    changed_share: float = 0.01
    attachment_share: float = 0.2  # attachments per synced page (one per five pages), 10 KB-5 MB each; 0 = off
    large_file_mb: int = 0  # one extra attachment of this size before the initial sync (peak RSS); 0 = none
    single_scope: bool = False  # True: UNIQUE_SCOPE_ID set; False: one scope per space (the product default)
    seed: int = 5
    isolate: bool = True  # False runs the job in this process (smoke test): no RSS figure
    keep_home: bool = False
    profile: bool = False  # cProfile the job process; the .prof files land next to the run logs

    def __post_init__(self) -> None:
        if self.mode not in ("ONPREM", "CLOUD"):
            raise ValueError(f"mode must be ONPREM or CLOUD, got {self.mode!r}")
        if self.pages < 10 or self.spaces < 1 or self.spaces > self.pages // 5:
            raise ValueError("need at least 10 pages and at least 5 pages per space")
        if not 0 <= self.tree_share < 0.9 or not 0 < self.changed_share <= 0.5:
            raise ValueError("tree_share must be in [0, 0.9) and changed_share in (0, 0.5]")
        if not 0 <= self.attachment_share <= 5 or self.large_file_mb < 0:
            raise ValueError("attachment_share must be in [0, 5] and large_file_mb not negative")
        if self.limits_from not in PHASES:
            raise ValueError(f"limits_from must be one of {PHASES}, got {self.limits_from!r}")

    def limited(self, phase: str) -> bool:
        return PHASES.index(phase) >= PHASES.index(self.limits_from)
