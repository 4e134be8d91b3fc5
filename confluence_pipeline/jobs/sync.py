"""The `confluence_sync` job: discover → expand → plan → diff per space → guard → write per space → summary."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: SyncRunConfig` op parameter (it fails with "Unable to resolve config type").

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.domain.guards import GuardTripped, check_discovery
from confluence_pipeline.domain.keys import mapping_keys, partial_key
from confluence_pipeline.domain.models import PageRef, SpaceRef
from confluence_pipeline.jobs.runtime import WRITER_TAG, OpRuntime, op_runtime, refuse_concurrent_sync
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource
from confluence_pipeline.sync import discovery as discovery_stage
from confluence_pipeline.sync.reports import COUNT_FIELDS, PageFailure, SpaceReport, SyncTotals
from confluence_pipeline.sync.spaces import SpaceDiff, SpaceWork, diff_space, write_space
from confluence_pipeline.sync.targets import TargetScopes

JOB_NAME = "confluence_sync"


class SyncRunConfig(dg.Config):
    """Per-run overrides, all optional: the job launches with no run config."""

    test_mode: bool | None = Field(
        default=None, description="Override TEST_MODE for this run: discover and diff, write nothing."
    )
    space_keys: list[str] = Field(
        default_factory=list,
        description="Only sync these space keys; a restricted run never deletes outside them.",
    )


@dataclass(frozen=True)
class RunOptions:
    test_mode: bool
    space_keys: tuple[str, ...]


@dataclass(frozen=True)
class LabelledPages:
    options: RunOptions
    pages: dict[str, PageRef]
    roots: tuple[str, ...]
    skipped: int
    requests: dict[str, int]


@dataclass(frozen=True)
class DiscoveredPages:
    options: RunOptions
    pages: tuple[PageRef, ...]
    labelled: int
    descendants: int
    skipped: int
    requests: dict[str, int]


@dataclass(frozen=True)
class SpaceTask:
    diff: SpaceDiff
    scope_id: str | None
    test_mode: bool


@dataclass(frozen=True)
class StageRequests:
    """Request counts of a fan-in/fan-out op that has no per-space output to carry them."""

    requests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """What the later ops need of the run's start, without the page list (it can be 100k pages)."""

    options: RunOptions
    requests: dict[str, int]  # discovery, expansion and planning


@dg.op(tags={"kind": "confluence"})
def discover_labelled_pages(
    context: dg.OpExecutionContext,
    config: SyncRunConfig,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> LabelledPages:
    """Find every page carrying a sync label in a syncable space (CQL, every result page)."""
    refuse_concurrent_sync(context, JOB_NAME)
    with op_runtime(context, confluence, unique, sync_options) as rt:
        options = RunOptions(
            test_mode=rt.settings.sync.test_mode if config.test_mode is None else config.test_mode,
            space_keys=tuple(dict.fromkeys(config.space_keys)),
        )
        try:
            pages, roots, skipped = discovery_stage.discover_labelled(
                rt.confluence, *rt.labels, only_spaces=options.space_keys
            )
        except RemoteError as exc:
            raise _discovery_failed(exc) from None
        context.log.info(
            f"Discovery: {len(pages)} labelled pages in {len({p.space.key for p in pages.values()})} spaces, "
            f"{len(roots)} '{rt.labels[1]}' roots, {skipped} skipped (space type or restriction)"
            + (" [TEST MODE: nothing will be written]" if options.test_mode else "")
        )
        result = LabelledPages(options, pages, tuple(roots), skipped, rt.request_counts())
    context.add_output_metadata({"labelled": len(pages), "roots": len(roots), "test_mode": options.test_mode})
    return result


@dg.op(tags={"kind": "confluence"})
def expand_descendants(
    context: dg.OpExecutionContext,
    labelled: LabelledPages,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> DiscoveredPages:
    """Add every descendant of the `INGEST_ALL_LABEL` pages, at any depth, each page once."""
    with op_runtime(context, confluence, unique, sync_options) as rt:
        try:
            pages, added = discovery_stage.expand_descendants(
                rt.confluence, labelled.roots, labelled.pages, only_spaces=labelled.options.space_keys
            )
        except RemoteError as exc:
            raise _discovery_failed(exc) from None
        ordered = tuple(sorted(pages.values(), key=lambda p: (len(p.id), p.id)))
        context.log.info(f"Expansion: {added} descendants added, {len(ordered)} pages in total")
        requests = Counter(labelled.requests)
        requests.update(rt.request_counts())
    context.add_output_metadata({"pages": len(ordered), "descendants": added})
    return DiscoveredPages(labelled.options, ordered, len(labelled.pages), added, labelled.skipped, dict(requests))


@dg.op(out={"spaces": dg.DynamicOut(SpaceWork), "run_info": dg.Out(RunInfo)}, tags={"kind": "unique"})
def plan_spaces(
    context: dg.OpExecutionContext,
    discovered: DiscoveredPages,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> Iterator[dg.DynamicOutput[SpaceWork] | dg.Output[RunInfo]]:
    """Group pages per space, find spaces Unique holds that discovery no longer sees, check the global guard."""
    with op_runtime(context, confluence, unique, sync_options) as rt:
        by_space: dict[str, list[PageRef]] = {}
        spaces: dict[str, SpaceRef] = {}
        for page in discovered.pages:
            by_space.setdefault(page.space.key, []).append(page)
            spaces.setdefault(page.space.key, page.space)
        targets = _targets(rt)
        stored_counts = {
            partial_key(space): rt.unique.count({"key": {"startsWith": f"{partial_key(space)}/"}})
            for space in spaces.values()
        }
        vanished = targets.stored_spaces(spaces.values(), stored_counts)
        if discovered.options.space_keys:
            vanished = [v for v in vanished if v.space_key in discovered.options.space_keys]
        if not discovered.pages:
            held = sum(stored_counts.values()) + (1 if vanished or targets.holds_content() else 0)
            try:
                check_discovery(0, held, complete=True)
            except GuardTripped as exc:
                raise dg.Failure(description=str(exc), metadata={"guard": exc.guard}, allow_retries=False) from None
            context.log.info("Discovery found no pages and Unique holds none of this Confluence: nothing to do")
        works = [
            SpaceWork(space, tuple(by_space[key]), stored_counts[partial_key(space)])
            for key, space in sorted(spaces.items())
        ]
        for stored in vanished:
            space = SpaceRef(id=stored.space_id, key=stored.space_key, name="", type="unknown")
            works.append(SpaceWork(space, (), 0, vanished=stored))
        keys = mapping_keys(work.space.key for work in works)
        context.log.info(
            f"Plan: {len(spaces)} spaces discovered, {len(vanished)} stored spaces no longer discovered "
            f"({', '.join(v.space_key for v in vanished) or 'none'})"
        )
        requests = rt.request_counts()
    totals = Counter(discovered.requests)
    totals.update(requests)
    yield dg.Output(RunInfo(discovered.options, dict(totals)), "run_info")
    for work in works:
        yield dg.DynamicOutput(work, mapping_key=keys[work.space.key], output_name="spaces")


@dg.op(name="diff_space", tags={"kind": "unique"})
def diff_space_op(
    context: dg.OpExecutionContext,
    work: SpaceWork,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> SpaceDiff:
    """File-diff one space against Unique and check its guards. Writes nothing."""
    with op_runtime(context, confluence, unique, sync_options) as rt:
        try:
            result = diff_space(work, rt.confluence, rt.unique, rt.labels)
        except RemoteError as exc:
            raise dg.Failure(
                description=f"Diff of space {work.space.key} failed before any write: {exc}", allow_retries=False
            ) from None
        result = _with_requests(result, rt.request_counts())
    context.log.info(
        f"Diff {work.space.key}: {result.discovered} discovered, {len(result.to_create)} new, "
        f"{len(result.to_update)} updated, {result.unchanged} unchanged, {len(result.delete_ids)} to delete"
        + "".join(f"; {note}" for note in result.notes)
        + (f"; GUARD: {result.guard}" if result.guard else "")
    )
    context.add_output_metadata(
        {
            "new": len(result.to_create),
            "updated": len(result.to_update),
            "unchanged": result.unchanged,
            "to_delete": len(result.delete_ids),
            "guard": result.guard or "",
        }
    )
    return result


@dg.op(out={"tasks": dg.DynamicOut(SpaceTask), "guard_requests": dg.Out(StageRequests)}, tags={"kind": "unique"})
def check_guards(
    context: dg.OpExecutionContext,
    diffs: list[SpaceDiff],
    run_info: RunInfo,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> Iterator[dg.DynamicOutput[SpaceTask] | dg.Output[StageRequests]]:
    """Abort before any write if any space tripped a guard; otherwise resolve scopes and fan out the writes."""
    tripped = [d for d in diffs if d.guard]
    if tripped:
        lines = "\n".join(f"- {d.guard}" for d in tripped)
        raise dg.Failure(
            description=f"{len(tripped)} space(s) tripped a data-safety guard; the run wrote nothing:\n{lines}",
            metadata={"guarded_spaces": ", ".join(d.space.key for d in tripped)},
            allow_retries=False,
        )
    test_mode = run_info.options.test_mode
    with op_runtime(context, confluence, unique, sync_options) as rt:
        needing_scope = [d.space for d in diffs if d.to_create or d.to_update]
        scope_ids: dict[str, str] = {}
        if needing_scope and not test_mode:
            try:
                scope_ids = _targets(rt).ensure(needing_scope)
            except RemoteError as exc:
                raise dg.Failure(description=f"Resolving target scopes failed before any page write: {exc}") from None
        requests = rt.request_counts()
    with_writes = [d for d in diffs if d.has_writes]
    context.log.info(
        f"Guards passed for {len(diffs)} spaces; {len(with_writes)} have changes"
        + (" (TEST MODE: counting only)" if test_mode else "")
    )
    keys = mapping_keys(d.space.key for d in with_writes)
    yield dg.Output(StageRequests(requests), "guard_requests")
    for diff in with_writes:
        task = SpaceTask(diff, scope_ids.get(diff.space.key), test_mode)
        yield dg.DynamicOutput(task, mapping_key=keys[diff.space.key], output_name="tasks")


@dg.op(tags={"kind": "unique"})
def ingest_and_delete(
    context: dg.OpExecutionContext,
    task: SpaceTask,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> SpaceReport:
    """Upload new and updated pages of one space (bodies fetched in batches here), then delete stale ones."""
    with op_runtime(context, confluence, unique, sync_options) as rt:
        report = write_space(
            task.diff,
            rt.confluence,
            rt.unique,
            scope_id=task.scope_id,
            sync_labels=rt.labels,
            concurrency=rt.settings.unique.concurrency,
            test_mode=task.test_mode,
        )
        report.requests.update(rt.request_counts())
    context.log.info(
        f"Space {report.space_key}: {report.new} new, {report.updated} updated, {report.deleted} deleted, "
        f"{report.failed} failed, {report.skipped} skipped"
        + (" (test mode: would-be counts)" if report.test_mode else "")
    )
    context.add_output_metadata(report.counts())
    return report


@dg.op(tags={"kind": "report"})
def summarize_sync(
    context: dg.OpExecutionContext,
    run_info: RunInfo,
    diffs: list[SpaceDiff],
    guard_requests: StageRequests,
    reports: list[SpaceReport],
    sync_options: SyncOptionsResource,
    confluence: ConfluenceResource,
    unique: UniqueResource,
) -> dict[str, int]:
    """Report per space and in total; fail the run when more pages failed than SYNC_FAILURE_TOLERANCE."""
    with op_runtime(context, confluence, unique, sync_options) as rt:
        tolerance = rt.settings.sync.failure_tolerance
    written = {r.space_key: r for r in reports}
    merged: list[SpaceReport] = []
    for diff in diffs:
        report = written.get(diff.space.key)
        if report is None:  # no writes needed: the diff says it all
            report = SpaceReport(
                space_key=diff.space.key,
                space_id=diff.space.id,
                discovered=diff.discovered,
                unchanged=diff.unchanged,
                skipped=diff.skipped,
                test_mode=run_info.options.test_mode,
            )
        report.requests.update(_diff_requests(diff))
        merged.append(report)
    totals = SyncTotals.of(merged, extra_requests=[run_info.requests, guard_requests.requests])
    metadata: dict[str, dg.RawMetadataValue] = {f"total_{name}": totals.counts.get(name, 0) for name in COUNT_FIELDS}
    metadata.update(
        {
            "spaces": totals.spaces,
            "test_mode": run_info.options.test_mode,
            "confluence_requests": sum(totals.confluence_requests.values()),
            "unique_requests": sum(totals.unique_requests.values()),
            "confluence_requests_by_route": dg.MetadataValue.json(dict(sorted(totals.confluence_requests.items()))),
            "unique_requests_by_route": dg.MetadataValue.json(dict(sorted(totals.unique_requests.items()))),
            "per_space": dg.MetadataValue.md(_per_space_table(merged)),
        }
    )
    for report in merged:
        context.log_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(["confluence_space", _asset_safe(report.space_key)]),
                metadata={
                    **report.counts(),
                    "space_key": report.space_key,
                    "confluence_requests": sum(v for k, v in report.requests.items() if k.startswith("confluence:")),
                    "unique_requests": sum(v for k, v in report.requests.items() if k.startswith("unique:")),
                },
            )
        )
    context.add_output_metadata(metadata)
    counts = {name: totals.counts.get(name, 0) for name in COUNT_FIELDS}
    context.log.info(
        "Sync total"
        + (" (TEST MODE, would-be counts)" if run_info.options.test_mode else "")
        + ": "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; requests: confluence {sum(totals.confluence_requests.values())}, "
        f"unique {sum(totals.unique_requests.values())}"
    )
    if len(totals.failures) > tolerance:
        raise dg.Failure(
            description=_failure_description(totals.failures, tolerance),
            metadata={**metadata, "failed_pages": ", ".join(f.page_id for f in totals.failures[:200])},
            allow_retries=False,
        )
    return counts


@dg.job(
    name=JOB_NAME,
    description="Sync labelled Confluence pages into Unique: discover, diff per space, ingest, delete.",
    tags={WRITER_TAG: "true"},
    executor_def=dg.in_process_executor,
    config=dg.ConfigMapping(
        config_schema=SyncRunConfig.to_config_schema(),
        config_fn=lambda cfg: {"ops": {"discover_labelled_pages": {"config": cfg}}},
    ),
)
def confluence_sync() -> None:
    labelled = discover_labelled_pages()
    discovered = expand_descendants(labelled)
    works, run_info = plan_spaces(discovered)
    diffs = works.map(diff_space_op).collect()
    tasks, guard_requests = check_guards(diffs, run_info)
    reports = tasks.map(ingest_and_delete).collect()
    summarize_sync(run_info, diffs, guard_requests, reports)


# -- helpers ----------------------------------------------------------------------------------------
def _targets(rt: OpRuntime) -> TargetScopes:
    settings = rt.settings
    return TargetScopes(
        rt.unique,
        scope_id=settings.unique.scope_id,
        template=settings.unique.scope_path_template,
        source_name=settings.confluence.base_url,
    )


def _discovery_failed(exc: RemoteError) -> dg.Failure:
    return dg.Failure(
        description=f"guard discovery-incomplete: discovery failed, so nothing was diffed or written: {exc}",
        metadata={"guard": "discovery-incomplete"},
        allow_retries=False,
    )


def _with_requests(diff: SpaceDiff, requests: dict[str, int]) -> SpaceDiff:
    return replace(diff, requests=tuple(sorted(requests.items())))


def _diff_requests(diff: SpaceDiff) -> dict[str, int]:
    return dict(diff.requests)


def _per_space_table(reports: list[SpaceReport]) -> str:
    header = "| space | " + " | ".join(COUNT_FIELDS) + " |\n|" + "---|" * (len(COUNT_FIELDS) + 1) + "\n"
    rows = "".join(f"| {r.space_key} | " + " | ".join(str(v) for v in r.counts().values()) + " |\n" for r in reports)
    return header + rows


def _asset_safe(space_key: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in space_key) or "_"


def _failure_description(failures: list[PageFailure], tolerance: int) -> str:
    shown = "\n".join(f"- {f.line()}" for f in failures[:50])
    more = f"\n… and {len(failures) - 50} more" if len(failures) > 50 else ""
    return (
        f"{len(failures)} page(s) failed, more than SYNC_FAILURE_TOLERANCE={tolerance} allows "
        f"(every other page was synced):\n{shown}{more}"
    )
