"""The request floor a sync cannot go below, the figures a run collects, and the printed table and verdicts."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from benchmarks.options import ALL_LABEL, SINGLE_LABEL, BenchOptions
from confluence_pipeline.clients.confluence import CONFIRM_BATCH
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import ANCESTOR_BATCH, BODY_BATCH, descendants_cql, discovery_cql
from confluence_pipeline.domain.models import Platform
from confluence_sandbox.confluence import SearchScope, Wiki, evaluate, parse

DISCOVERY_PAGE = 200  # the floor's page size for discovery and descendant queries
DELETE_BATCH_TARGET = 20  # at least this many ids per delete call when that many are pending
INLINE_ATTACHMENTS = 25  # attachments a page read inlines; a full list is listed again


# -- the floor ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Floor:
    """The fewest Confluence requests one sync needs: the instance's identity, discovery, descendant result
    pages, the queries that confirm deletions, body batches, the per-page listings of pages with more
    attachments than a page read inlines (25), and one download per new or changed attachment."""

    labelled: int
    roots: int
    descendant_queries: tuple[int, ...]  # results per `ancestor IN` chunk of ANCESTOR_BATCH roots
    changed: int
    changed_per_space: tuple[int, ...]
    identity: int = 1  # the applinks manifest (DC) or tenant_info (Cloud): the ownership mark
    confirmations: int = 0  # `id IN` queries confirming that pages the diff deletes left the sync set
    attachment_listings: int = 0  # requests listing attachments beyond the 25 a page read inlines
    downloads: int = 0  # one per new or changed attachment with bytes

    @property
    def discovery(self) -> int:
        return max(1, math.ceil(self.labelled / DISCOVERY_PAGE))

    @property
    def descendants(self) -> int:
        return sum(max(1, math.ceil(n / DISCOVERY_PAGE)) for n in self.descendant_queries)

    @property
    def bodies(self) -> int:
        return math.ceil(self.changed / BODY_BATCH)

    @property
    def bodies_per_space(self) -> int:
        """What body batching can reach when each space's bodies are fetched on their own (the job fans out)."""
        return sum(math.ceil(k / BODY_BATCH) for k in self.changed_per_space)

    @property
    def total(self) -> int:
        return (
            self.identity
            + self.discovery
            + self.descendants
            + self.confirmations
            + self.bodies
            + self.attachment_listings
            + self.downloads
        )


def floor_for(
    wiki: Wiki,
    mode: str,
    changed: int,
    changed_per_space: Sequence[int],
    deleted: Sequence[str] = (),
    *,
    synced: Collection[str] = (),
    downloads: int = 0,
) -> Floor:
    """The floor from what Confluence itself would return for the sync's queries (the emulator's CQL engine).

    `deleted` are the pages that left the sync set since the last sync: each batch of CONFIRM_BATCH is
    confirmed with one query, plus one per batch of their ancestors (is one of them subtree-labelled?).
    With attachments on, `synced` pages holding 25 or more attachments are listed on their own (pages of
    200 on DC, 250 on Cloud), and `downloads` attachments are transferred.
    """
    platform = Platform(mode)
    scope = SearchScope(wiki, mode, UTC, "empty")  # type: ignore[arg-type]
    labelled = evaluate(parse(discovery_cql(SINGLE_LABEL, ALL_LABEL, platform)), scope)
    roots = sorted((p.id for p in labelled if ALL_LABEL in p.labels), key=int)
    queries = tuple(len(evaluate(parse(descendants_cql(chunk)), scope)) for chunk in batched(roots, ANCESTOR_BATCH))
    ancestors = {a.id for page_id in deleted for a in wiki.pages[page_id].ancestors(wiki)}
    confirmations = math.ceil(len(deleted) / CONFIRM_BATCH) + math.ceil(len(ancestors) / CONFIRM_BATCH)
    page = 200 if mode == "ONPREM" else 250
    crowded = (len(wiki.attachments_of(page_id)) for page_id in synced)
    listings = sum(max(1, math.ceil(n / page)) for n in crowded if n >= INLINE_ATTACHMENTS)
    return Floor(
        len(labelled),
        len(roots),
        queries,
        changed,
        tuple(changed_per_space),
        confirmations=confirmations,
        attachment_listings=listings,
        downloads=downloads,
    )


# -- results ------------------------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    name: str
    success: bool
    confluence_per_minute: int = 0  # the limit this phase ran with (0 = none)
    discovered: int = 0
    spaces: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # new, updated, unchanged, deleted, failed, skipped
    confluence: dict[str, int] = field(default_factory=dict)  # the connector's own count, by route
    unique: dict[str, int] = field(default_factory=dict)
    confluence_kinds: dict[str, int] = field(default_factory=dict)  # what the emulator saw, by query kind
    unique_seen: dict[str, int] = field(default_factory=dict)  # what the emulator saw, by route / operation
    delete_ids: list[int] = field(default_factory=list)  # ids per delete call
    floor: Floor | None = None
    wall_s: float = 0.0  # the run, from RUN_START to its end (no interpreter start-up)
    process_s: float = 0.0  # the whole child process
    confluence_span_s: float = 0.0  # first to last Confluence request, as the emulator saw them
    peak_rss_mb: float | None = None
    job_cpu_s: float | None = None  # user + system CPU of the job process
    emulator_cpu_s: float = 0.0  # CPU of this process (both emulators) during the run
    step_seconds: dict[str, float] = field(default_factory=dict)  # time inside the run's steps, by op
    bytes_moved: int = 0  # attachment bytes streamed from Confluence to Unique
    error: str = ""

    @property
    def confluence_total(self) -> int:
        return sum(self.confluence.values())

    @property
    def unique_total(self) -> int:
        return sum(self.unique.values())

    @property
    def ratio(self) -> float | None:
        return self.confluence_total / self.floor.total if self.floor and self.floor.total else None

    @property
    def per_page_pattern(self) -> int:
        """Our discovery and expansion, but one body GET per new or changed page instead of batches, and one
        attachment listing per synced page when attachments are on (what connectors without the inline list do)."""
        return (
            self.confluence_total
            - self.confluence_kinds.get("bodies", 0)
            - self.confluence_kinds.get("attachment listings", 0)
            + (self.floor.changed if self.floor else 0)
            + (self.discovered if self.counts.get("attachments", 0) else 0)
        )

    @property
    def pages_per_s(self) -> float:
        return self.discovered / self.wall_s if self.wall_s else 0.0

    @property
    def paced_s(self) -> float | None:
        """requests ÷ rate: the wall time the Confluence limiter alone imposes."""
        if not self.confluence_per_minute:
            return None
        return self.confluence_total / (self.confluence_per_minute / 60)

    @property
    def limiter_binds(self) -> bool:
        """The limit, not our own work, sets the pace: requests ÷ rate is most of the run."""
        paced = self.paced_s
        return paced is not None and self.wall_s > 0 and paced >= 0.75 * self.wall_s

    @property
    def ingest_pages_per_s(self) -> float | None:
        """New and updated pages per second spent inside the `ingest_and_delete` steps."""
        written = self.counts.get("new", 0) + self.counts.get("updated", 0)
        seconds = self.step_seconds.get("ingest_and_delete", 0.0)
        return written / seconds if written and seconds else None


@dataclass
class BenchReport:
    options: BenchOptions
    wiki: dict[str, Any]
    phases: list[PhaseResult]

    def to_json(self) -> dict[str, Any]:
        phases = []
        for phase in self.phases:
            row = asdict(phase)
            row.update(
                confluence_total=phase.confluence_total,
                unique_total=phase.unique_total,
                floor_total=phase.floor.total if phase.floor else None,
                ratio=phase.ratio,
                per_page_pattern=phase.per_page_pattern,
                pages_per_s=phase.pages_per_s,
            )
            phases.append(row)
        return {"options": asdict(self.options), "wiki": self.wiki, "phases": phases}


# -- the table --------------------------------------------------------------------------------------------------
def _fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def format_table(report: BenchReport) -> str:
    options, phases = report.options, report.phases
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: Sequence[str]) -> None:
        rows.append((label, list(values)))

    def counts(phase: PhaseResult) -> str:
        c = phase.counts
        return f"{c.get('new', 0):,}/{c.get('updated', 0):,}/{c.get('deleted', 0):,}"

    row("pages discovered (synced)", [_fmt(p.discovered) for p in phases])
    row("spaces", [_fmt(p.spaces) for p in phases])
    row("new / updated / deleted", [counts(p) for p in phases])
    row("failed", [_fmt(p.counts.get("failed", 0)) for p in phases])
    if any(p.counts.get("attachments", 0) for p in phases):

        def attachments(phase: PhaseResult) -> str:
            c = phase.counts
            new, updated, deleted = (
                c.get("attachments_new", 0),
                c.get("attachments_updated", 0),
                c.get("attachments_deleted", 0),
            )
            return f"{new:,}/{updated:,}/{deleted:,}"

        row("attachments (on synced pages)", [_fmt(p.counts.get("attachments", 0)) for p in phases])
        row("  new / updated / deleted", [attachments(p) for p in phases])
        row(
            "  skipped (type, size) / failed",
            [f"{p.counts.get('attachments_skipped', 0):,} / {p.counts.get('attachments_failed', 0):,}" for p in phases],
        )
        row("  MB moved Confluence → Unique", [_fmt(p.bytes_moved / 1024**2, 1) for p in phases])
    conf_routes = sorted({r for p in phases for r in p.confluence})
    for route in conf_routes:
        row(f"Confluence {route}", [_fmt(p.confluence.get(route, 0)) for p in phases])
    main_kinds = ("discovery", "descendants", "bodies", "attachment listings", "downloads")
    for kind in main_kinds:
        row(f"  of which {kind}", [_fmt(p.confluence_kinds.get(kind, 0)) for p in phases])
    for kind in sorted({k for p in phases for k in p.confluence_kinds} - set(main_kinds)):
        row(f"  of which {kind}", [_fmt(p.confluence_kinds.get(kind, 0)) for p in phases])
    row("Confluence total", [_fmt(p.confluence_total) for p in phases])
    row(
        "floor: id+discovery+descendants+confirm+bodies+listings+downloads",
        [
            f"{p.floor.identity}+{p.floor.discovery}+{p.floor.descendants}+{p.floor.confirmations}+{p.floor.bodies}"
            f"+{p.floor.attachment_listings}+{p.floor.downloads}={p.floor.total}"
            if p.floor
            else "–"
            for p in phases
        ],
    )
    row("ratio actual/floor", [_fmt(p.ratio, 2) for p in phases])
    row("  per-space body floor Σ⌈K_s/50⌉", [_fmt(p.floor.bodies_per_space) if p.floor else "–" for p in phases])
    row("per-page fetch pattern (1 GET/page)", [_fmt(p.per_page_pattern) for p in phases])
    for route in sorted({r for p in phases for r in p.unique}):
        row(f"Unique {route}", [_fmt(p.unique.get(route, 0)) for p in phases])
    row("Unique total", [_fmt(p.unique_total) for p in phases])
    row("delete calls (ids each)", [",".join(str(n) for n in p.delete_ids) or "–" for p in phases])
    row("wall s (run)", [_fmt(p.wall_s, 2) for p in phases])
    row("wall s (process incl. start-up)", [_fmt(p.process_s, 2) for p in phases])
    row("pages/s (discovered ÷ run wall)", [_fmt(p.pages_per_s, 0) for p in phases])
    row(
        "  s in ingest_and_delete / other steps",
        [
            f"{p.step_seconds.get('ingest_and_delete', 0.0):.1f} / "
            f"{sum(v for k, v in p.step_seconds.items() if k != 'ingest_and_delete'):.1f}"
            for p in phases
        ],
    )
    row("  written pages/s inside ingest steps", [_fmt(p.ingest_pages_per_s, 0) for p in phases])
    if any(p.confluence_per_minute for p in phases):
        row(
            "CONFLUENCE_TOKENS_PER_MINUTE",
            [_fmt(p.confluence_per_minute) if p.confluence_per_minute else "–" for p in phases],
        )
        row("Confluence requests ÷ rate (s)", [_fmt(p.paced_s, 2) for p in phases])
        row("  run wall ÷ (requests ÷ rate)", [_fmt(p.wall_s / p.paced_s, 2) if p.paced_s else "–" for p in phases])
        row(
            "  first→last request ÷ ((requests-1) ÷ rate)",
            [
                _fmt(p.confluence_span_s / ((p.confluence_total - 1) / (p.confluence_per_minute / 60)), 2)
                if p.confluence_per_minute and p.confluence_total > 1
                else "–"
                for p in phases
            ],
        )
    row("CPU s: job process / emulators", [f"{_fmt(p.job_cpu_s, 1)} / {_fmt(p.emulator_cpu_s, 1)}" for p in phases])
    row("peak RSS MB (job process)", [_fmt(p.peak_rss_mb, 0) for p in phases])
    width = max(len(label) for label, _ in rows) + 2
    col = max(14, *(len(v) + 2 for _, values in rows for v in values))
    wiki = report.wiki
    limits = f"Confluence {options.confluence_per_minute or '∞'}/min, Unique {options.unique_per_minute or '∞'}/min" + (
        f" from the {options.limits_from} sync on" if options.limits_from != "initial" else ""
    )
    header = [
        f"confluence_sync benchmark: {options.mode}, N={wiki['synced_pages']:,} pages "
        f"({wiki['labelled']:,} labelled + {wiki['descendants']:,} descendants of {wiki['roots']} roots, "
        f"max depth {wiki['max_depth']}), S={options.spaces} spaces, bodies {wiki['mean_body_kb']} KB mean "
        f"({wiki['body_mb']} MB)"
        + (
            f", {wiki['attachments']:,} attachments ({wiki['attachments_synced']:,} of allowed types, "
            f"{wiki['attachment_mb']:,} MB)"
            if wiki.get("attachments")
            else ""
        ),
        f"latency {options.latency_ms:g} ms, limits {limits}, UNIQUE_CONCURRENCY={options.concurrency}, "
        f"scopes: {'one UNIQUE_SCOPE_ID' if options.single_scope else 'one per space'}",
        "",
        "".ljust(width) + "".join(p.name.rjust(col) for p in phases),
    ]
    lines = [label.ljust(width) + "".join(v.rjust(col) for v in values) for label, values in rows]
    return "\n".join(header + lines + [""] + check_targets(report))


def check_targets(report: BenchReport) -> list[str]:
    """One line per performance target this run can judge: met, missed, or not measured here."""
    options, phases = report.options, {p.name: p for p in report.phases}
    out: list[str] = []

    def verdict(ok: bool, text: str) -> None:
        out.append(f"[{'met' if ok else 'MISSED'}] {text}")

    for phase in report.phases:
        if not phase.success:
            out.append(f"[MISSED] {phase.name}: the run failed")
            continue
        if phase.ratio is not None:
            verdict(phase.ratio <= 1.1, f"{phase.name}: Confluence requests/floor = {phase.ratio:.2f} (target ≤ 1.1)")
        mismatch = _mismatch(phase)
        if mismatch:
            out.append(f"[CHECK] {phase.name}: connector and emulator counts differ: {mismatch}")
    resync = phases.get("no-change")
    if resync and resync.success:
        writes = sum(resync.unique.get(r, 0) for r in resync.unique if "Upsert" in r or "Delete" in r or "PUT" in r)
        diffs = resync.unique.get("POST file-diff", 0)
        budget = "≤ 60 at 10k pages/10 spaces" if report.wiki["synced_pages"] == 10_000 else "≤ 60 (stated for 10k/10)"
        verdict(
            resync.confluence_total <= 60 or report.wiki["synced_pages"] > 10_000,
            f"no-change: {resync.confluence_total} Confluence requests ({budget}), {diffs} file-diffs for "
            f"{resync.spaces} spaces, {writes} writes",
        )
    for phase in report.phases:
        if not phase.success:
            continue
        k = sum(phase.counts.get(n, 0) for n in ("new", "updated", "attachments_new", "attachments_updated"))
        upserts, uploads = phase.unique.get("graphql ContentUpsert", 0), phase.unique.get("PUT upload", 0)
        per_page_ok = upserts == 2 * k and uploads == k and phase.unique.get("POST file-diff", 0) == phase.spaces
        small = [n for n in phase.delete_ids if n < DELETE_BATCH_TARGET]
        batched_ok = not small or len(phase.delete_ids) == 1 or all(n == phase.delete_ids[-1] for n in small)
        verdict(
            per_page_ok and batched_ok,
            f"{phase.name}: Unique per changed page or attachment {upserts}/{k} upserts, {uploads}/{k} uploads; "
            f"delete calls {phase.delete_ids or 'none'}",
        )
    initial = phases.get("initial")
    if initial and initial.success:
        unlimited = not options.limited("initial") or not (options.confluence_per_minute or options.unique_per_minute)
        target = options.latency_ms == 5 and unlimited
        text = (
            f"initial: {initial.pages_per_s:.0f} pages/s at UNIQUE_CONCURRENCY={options.concurrency} "
            f"(target ≥ 200 with 5 ms latency, no limits)"
        )
        if target:
            verdict(initial.pages_per_s >= 200, text)
        else:
            out.append(f"[n/a] {text}")
    peak = max((p.peak_rss_mb or 0.0) for p in report.phases)
    if peak:
        out.append(f"[info] peak RSS {peak:.0f} MB at {report.wiki['synced_pages']:,} pages (target ≤ 300 MB at 100k)")
    for phase in report.phases:
        paced = phase.paced_s
        if not phase.success or paced is None:
            continue
        text = (
            f"{phase.name}: run wall {phase.wall_s:.1f} s vs requests÷rate {paced:.1f} s "
            f"(first→last Confluence request {phase.confluence_span_s:.1f} s); target: within 10% when the "
            "limiter binds"
        )
        if phase.limiter_binds:
            verdict(abs(phase.wall_s / paced - 1) <= 0.1, text)
        else:
            out.append(f"[n/a] {text}; here it does not bind (requests÷rate < 75% of the run)")
    return out


def _mismatch(phase: PhaseResult) -> str:
    seen_conf = sum(phase.confluence_kinds.values())
    problems = []
    if seen_conf != phase.confluence_total:
        problems.append(f"Confluence {phase.confluence_total} counted vs {seen_conf} received")
    for route, count in phase.unique.items():
        if phase.unique_seen.get(route, 0) != count:
            problems.append(f"{route} {count} counted vs {phase.unique_seen.get(route, 0)} received")
    return "; ".join(problems)
