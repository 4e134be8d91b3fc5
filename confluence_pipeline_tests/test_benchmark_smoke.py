"""A small run of benchmarks/sync_bench.py: the request counts of three syncs are exact, so they are asserted.

Timings and RSS are printed by the benchmark, never asserted. ONPREM goes through `dagster job execute` in a
child process, as the benchmark does by default; CLOUD runs the job in this process to keep the file quick.
"""

from __future__ import annotations

import pytest

from benchmarks.sync_bench import (
    PHASES,
    BenchOptions,
    BenchReport,
    PhaseResult,
    check_targets,
    format_table,
    run_benchmark,
)

WRITE_ROUTES = ("graphql ContentUpsert", "PUT upload", "graphql ContentDeleteByContentIds")


def _run(mode: str, *, isolate: bool) -> BenchReport:
    options = BenchOptions(
        pages=120, spaces=2, mode=mode, latency_ms=0, deep_trees=2, tree_share=0.25, concurrency=4, isolate=isolate
    )
    report = run_benchmark(options)
    failed = [f"{p.name}: {p.error}" for p in report.phases if not p.success]
    assert not failed, failed
    assert [p.name for p in report.phases] == list(PHASES)
    return report


def _assert_confluence_at_floor(phase: PhaseResult, mode: str) -> None:
    """Identity, discovery, expansion, confirmations, attachment listings (none: no page has 25 attachments)
    and downloads (one per new or changed attachment) at the floor exactly; bodies in batches of 50 per space."""
    floor = phase.floor
    assert floor is not None
    assert floor.attachment_listings == 0
    assert phase.confluence_kinds == {
        "identity": floor.identity,
        "discovery": floor.discovery,
        "descendants": floor.descendants,
        **({"confirmations": floor.confirmations} if floor.confirmations else {}),
        **({"bodies": floor.bodies_per_space} if floor.changed else {}),
        **({"downloads": floor.downloads} if floor.downloads else {}),
    }
    searches = floor.discovery + floor.descendants + floor.confirmations + floor.bodies_per_space
    identity_route = "GET applinks manifest" if mode == "ONPREM" else "GET tenant_info"
    downloads = {"GET attachment download": floor.downloads} if floor.downloads else {}
    assert phase.confluence == {"GET content/search": searches, identity_route: floor.identity, **downloads}


def _assert_counts_agree(phase: PhaseResult) -> None:
    """What the connector says it sent is what the emulators received."""
    assert sum(phase.confluence_kinds.values()) == phase.confluence_total
    assert {route: phase.unique_seen.get(route, 0) for route in phase.unique} == phase.unique


def _assert_three_syncs(report: BenchReport) -> None:
    initial, resync, changed = report.phases
    pages = report.wiki["synced_pages"]
    assert pages == 120
    for phase in report.phases:
        _assert_confluence_at_floor(phase, report.options.mode)
        _assert_counts_agree(phase)
        assert phase.spaces == 2
        assert phase.unique["POST file-diff"] == 2  # one file-diff per space, whatever changed

    files = report.wiki["attachments_synced"]
    assert report.wiki["attachments"] == 24 and files == 23  # one per five pages; one zip, skipped by type
    assert initial.counts["new"] == initial.discovered == pages
    assert (initial.counts["attachments_new"], initial.counts["attachments_skipped"]) == (files, 1)
    assert initial.floor is not None and initial.floor.downloads == files
    assert initial.unique["graphql ContentUpsert"] == 2 * (pages + files)
    assert initial.unique["PUT upload"] == pages + files
    assert initial.bytes_moved == report.wiki["attachment_bytes"]

    assert resync.discovered == pages
    assert resync.counts["unchanged"] == pages and resync.counts["attachments_unchanged"] == files
    assert not any(resync.unique.get(route) for route in WRITE_ROUTES)
    assert resync.confluence_total == resync.floor.total  # type: ignore[union-attr]
    assert resync.bytes_moved == 0 and "downloads" not in resync.confluence_kinds

    # The change: 1 page edited, 1 page added, 20 pages unlabelled in one space (see change_wiki); 1 new
    # attachment version, 1 new attachment, 1 attachment removed, and the attachments of the unlabelled pages.
    assert (changed.counts["new"], changed.counts["updated"], changed.counts["deleted"]) == (1, 1, 20)
    attachment_counts = tuple(changed.counts[f"attachments_{n}"] for n in ("new", "updated", "deleted"))
    assert attachment_counts == (1, 1, 4)
    assert changed.floor is not None and changed.floor.changed == 2 and changed.floor.downloads == 2
    assert changed.unique["graphql ContentUpsert"] == 4 + 4
    assert changed.unique["PUT upload"] == 2 + 2
    assert changed.delete_ids == [20, 3, 1]  # per space in batches of 20: 20 pages and their 3 attachments; 1
    assert changed.per_page_pattern == changed.confluence_total - changed.confluence_kinds["bodies"] + 2 + 101


@pytest.mark.timeout(120)
def test_benchmark_onprem_through_the_dagster_cli() -> None:
    report = _run("ONPREM", isolate=True)
    _assert_three_syncs(report)
    assert all(p.peak_rss_mb is not None and p.peak_rss_mb > 0 for p in report.phases)
    table = format_table(report)
    labels = (
        "Confluence total",
        "floor: id+discovery+descendants",
        "per-page fetch pattern",
        "peak RSS MB",
        "MB moved",
    )
    for label in labels:
        assert label in table
    verdicts = check_targets(report)
    assert not [line for line in verdicts if line.startswith("[CHECK]")]  # counts of both sides agree


@pytest.mark.timeout(120)
def test_benchmark_cloud_in_process() -> None:
    report = _run("CLOUD", isolate=False)
    _assert_three_syncs(report)
    assert all(p.peak_rss_mb is None for p in report.phases)  # not measurable without a child process
