"""The `confluence_sync` job: discover → expand → plan → diff per space → guard → write per space → summary."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: SyncRunConfig` op parameter (it fails with "Unable to resolve config type").

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.config.instances import Instance
from confluence_pipeline.domain.guards import GuardTripped
from confluence_pipeline.domain.models import PageRef
from confluence_pipeline.jobs import DEFAULT_FROM_ENVIRONMENT
from confluence_pipeline.jobs.assets import space_row, sync_observation
from confluence_pipeline.jobs.config import ExecutionConfig, flat_config
from confluence_pipeline.jobs.metering import StepRequests, mapping_key_of, run_requests_by_step
from confluence_pipeline.jobs.writers import instance_of, instance_tags, refuse_concurrent_writer
from confluence_pipeline.resources import (
    ConfluenceResource,
    SyncOptionsResource,
    UniqueResource,
    require_valid,
    resources_for,
)
from confluence_pipeline.sync import discovery
from confluence_pipeline.sync.diffing import diff_space
from confluence_pipeline.sync.images import ImageInliner
from confluence_pipeline.sync.planning import plan_sync
from confluence_pipeline.sync.progress import PageProgress
from confluence_pipeline.sync.reports import (
    ATTACHMENT_COUNT_FIELDS,
    RequestTotals,
    SpaceReport,
    SyncTotals,
    counts_table,
    failure_description,
    merge_reports,
    skipped_description,
)
from confluence_pipeline.sync.spaces import SpaceDiff, SpaceWork, write_space
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

    def resolved_test_mode(self, options: SyncOptionsResource) -> bool:
        return options.settings.test_mode if self.test_mode is None else self.test_mode

    def restriction(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.space_keys))


@dataclass(frozen=True)
class LabelledPages:
    pages: dict[str, PageRef]
    roots: tuple[str, ...]
    mark: str  # this Confluence instance's ownership mark


@dataclass(frozen=True)
class DiscoveredPages:
    pages: tuple[PageRef, ...]
    mark: str


@dataclass(frozen=True)
class PlanSummary:
    mark: str


@dataclass(frozen=True)
class SpaceTask:
    diff: SpaceDiff
    scope_id: str | None
    test_mode: bool


@dg.op(tags={"kind": "confluence"})
def discover_labelled_pages(
    context: dg.OpExecutionContext,
    config: SyncRunConfig,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> LabelledPages:
    """Find every page carrying a sync label in a syncable space (CQL, every result page)."""
    refuse_concurrent_writer(context)
    require_valid(confluence, unique, sync_options)
    meter = StepRequests(confluence=confluence)
    labels = confluence.settings.labels
    try:
        mark = confluence.client.instance_mark()
    except RemoteError as exc:
        raise dg.Failure(
            description=f"Could not identify the Confluence instance, so nothing was diffed or written: {exc}",
            allow_retries=False,
        ) from None
    try:
        pages, roots, skipped = discovery.discover_labelled(confluence.client, labels, only_spaces=config.restriction())
    except RemoteError as exc:
        raise _discovery_failed(exc) from None
    test_mode = config.resolved_test_mode(sync_options)
    context.log.info(
        f"Discovery: {len(pages)} labelled pages in {len({p.space.key for p in pages.values()})} spaces, "
        f"{len(roots)} '{labels.subtree}' roots, {skipped} skipped (space type or restriction)"
        + (" [TEST MODE: nothing will be written]" if test_mode else "")
    )
    context.add_output_metadata(
        {"labelled": len(pages), "roots": len(roots), "test_mode": test_mode, **meter.metadata()}
    )
    return LabelledPages(pages, tuple(roots), mark)


@dg.op(tags={"kind": "confluence"})
def expand_descendants(
    context: dg.OpExecutionContext, config: SyncRunConfig, labelled: LabelledPages, confluence: ConfluenceResource
) -> DiscoveredPages:
    """Add every descendant of the subtree-label pages, at any depth, each page once."""
    meter = StepRequests(confluence=confluence)
    try:
        pages, added = discovery.expand_descendants(
            confluence.client, labelled.roots, labelled.pages, only_spaces=config.restriction()
        )
    except RemoteError as exc:
        raise _discovery_failed(exc) from None
    ordered = tuple(sorted(pages.values(), key=lambda p: (len(p.id), p.id)))
    context.log.info(f"Expansion: {added} descendants added, {len(ordered)} pages in total")
    context.add_output_metadata({"pages": len(ordered), "descendants": added, **meter.metadata()})
    return DiscoveredPages(ordered, labelled.mark)


@dg.op(out={"spaces": dg.DynamicOut(SpaceWork), "plan": dg.Out(PlanSummary)}, tags={"kind": "unique"})
def plan_spaces(
    context: dg.OpExecutionContext,
    config: SyncRunConfig,
    discovered: DiscoveredPages,
    confluence: ConfluenceResource,
    unique: UniqueResource,
) -> Iterator[dg.DynamicOutput[SpaceWork] | dg.Output[PlanSummary]]:
    """Group pages per space, find spaces Unique holds that discovery no longer sees, check the global guard."""
    meter = StepRequests(unique=unique)
    try:
        plan = plan_sync(
            discovered.pages,
            unique.client,
            _targets(confluence, unique, discovered.mark),
            mark=discovered.mark,
            only_spaces=config.restriction(),
        )
    except GuardTripped as exc:
        raise dg.Failure(description=str(exc), metadata={"guard": exc.guard}, allow_retries=False) from None
    context.log.info(plan.describe())
    summary = PlanSummary(discovered.mark)
    yield dg.Output(summary, "plan", metadata=meter.metadata())
    for work in plan.works:
        yield dg.DynamicOutput(work, mapping_key=work.mapping_key, output_name="spaces")


@dg.op(name="diff_space", tags={"kind": "unique"})
def diff_space_op(
    context: dg.OpExecutionContext, work: SpaceWork, confluence: ConfluenceResource, unique: UniqueResource
) -> SpaceDiff:
    """File-diff one space against Unique and check its guards. Writes nothing."""
    meter = StepRequests(confluence=confluence, unique=unique)
    settings = confluence.settings
    try:
        result = diff_space(work, confluence.client, unique.client, settings.labels, settings.source)
    except RemoteError as exc:
        raise dg.Failure(
            description=f"Diff of space {work.space.key} failed before any write: {exc}", allow_retries=False
        ) from None
    context.log.info(
        f"Diff {work.space.key}: {result.discovered} discovered, {len(result.to_create)} new, "
        f"{len(result.to_update)} updated, {result.unchanged} unchanged, {len(result.delete_ids)} to delete"
        + (
            f"; attachments: {result.attachments_discovered} discovered, {len(result.attachments_to_create)} new, "
            f"{len(result.attachments_to_update)} updated, {result.attachments_skipped} skipped"
            if result.attachments_discovered
            else ""
        )
        + "".join(f"; {note}" for note in result.notes)
        + (f"; GUARD: {result.guard}" if result.guard else "")
    )
    counts = {"new": len(result.to_create), "updated": len(result.to_update), "unchanged": result.unchanged}
    context.add_output_metadata(
        {
            **counts,
            "to_delete": len(result.delete_ids),
            "old_copies_to_replace": len(result.replaced_ids),
            "kept_after_confirmation": result.kept,
            "attachments_new": len(result.attachments_to_create),
            "attachments_updated": len(result.attachments_to_update),
            "attachments_unchanged": result.attachments_unchanged,
            "attachments_skipped": result.attachments_skipped,
            "pages_with_changed_images": result.images_changed,
            "guard": result.guard or "",
            **meter.metadata(),
        }
    )
    return result


@dg.op(out={"tasks": dg.DynamicOut(SpaceTask), "scopes": dg.Out(dict[str, str])}, tags={"kind": "unique"})
def check_guards(
    context: dg.OpExecutionContext,
    config: SyncRunConfig,
    plan: PlanSummary,
    diffs: list[SpaceDiff],
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> Iterator[dg.DynamicOutput[SpaceTask] | dg.Output[dict[str, str]]]:
    """Abort before any write if any space tripped a guard; otherwise resolve scopes and fan out the writes."""
    tripped = [d for d in diffs if d.guard]
    if tripped:
        lines = "\n".join(f"- {d.guard}" for d in tripped)
        raise dg.Failure(
            description=f"{len(tripped)} space(s) tripped a data-safety guard; the run wrote nothing:\n{lines}",
            metadata={"guarded_spaces": ", ".join(d.space.key for d in tripped)},
            allow_retries=False,
        )
    meter = StepRequests(unique=unique)
    test_mode = config.resolved_test_mode(sync_options)
    needing_scope = [d.space for d in diffs if d.has_uploads]
    scope_ids: dict[str, str] = {}
    if needing_scope and not test_mode:
        try:
            scope_ids = _targets(confluence, unique, plan.mark).ensure(needing_scope)
        except RemoteError as exc:
            raise dg.Failure(description=f"Resolving target scopes failed before any page write: {exc}") from None
    with_writes = [d for d in diffs if d.has_writes]
    context.log.info(
        f"Guards passed for {len(diffs)} spaces; {len(with_writes)} have changes"
        + (" (TEST MODE: counting only)" if test_mode else "")
    )
    yield dg.Output(scope_ids, "scopes", metadata=meter.metadata())
    for diff in with_writes:
        task = SpaceTask(diff, scope_ids.get(diff.space.key), test_mode)
        yield dg.DynamicOutput(task, mapping_key=diff.mapping_key, output_name="tasks")


@dg.op(tags={"kind": "unique"})
def ingest_and_delete(
    context: dg.OpExecutionContext,
    task: SpaceTask,
    confluence: ConfluenceResource,
    unique: UniqueResource,
) -> SpaceReport:
    """Upload new and updated pages of one space (bodies fetched in batches here) and their attachments (streamed),
    then delete stale items."""
    meter = StepRequests(confluence=confluence, unique=unique)
    settings = confluence.settings
    images = (
        ImageInliner(confluence.client, max_bytes=settings.inline_image_max_bytes) if settings.inline_images else None
    )
    progress = PageProgress(f"Space {task.diff.space.key}", len(task.diff.to_create) + len(task.diff.to_update))
    report = write_space(
        task.diff,
        confluence.client,
        unique.client,
        scope_id=task.scope_id,
        sync_labels=settings.labels,
        source=settings.source,
        concurrency=unique.settings.concurrency,
        test_mode=task.test_mode,
        images=images,
        progress=progress,
    )
    context.log.info(
        f"Space {report.space_key}: {report.new} new, {report.updated} updated, {report.deleted} deleted, "
        f"{report.failed} failed, {report.skipped} skipped"
        + (
            f"; attachments: {report.attachments_new} new, {report.attachments_updated} updated, "
            f"{report.attachments_deleted} deleted, {report.attachments_failed} failed, "
            f"{report.bytes_moved} bytes moved"
            if report.attachments or report.attachments_deleted
            else ""
        )
        + (" (test mode: would-be counts)" if report.test_mode else "")
    )
    pace = {} if report.test_mode else progress.metadata()
    context.add_output_metadata({**report.metrics(), **pace, **meter.metadata()})
    return report


@dg.op(tags={"kind": "report"})
def summarize_sync(
    context: dg.OpExecutionContext,
    config: SyncRunConfig,
    diffs: list[SpaceDiff],
    reports: list[SpaceReport],
    sync_options: SyncOptionsResource,
) -> dict[str, int]:
    """Report per space and in total; fail the run when more pages failed than SYNC_FAILURE_TOLERANCE."""
    test_mode = config.resolved_test_mode(sync_options)
    merged = merge_reports(diffs, reports, test_mode=test_mode)
    totals = SyncTotals.of(merged)
    by_step = run_requests_by_step(context)
    requests = RequestTotals.of(by_step.values())
    metadata = _summary_metadata(totals, requests, merged, test_mode)
    context.add_output_metadata(metadata)
    context.log.info(
        "Sync total"
        + (" (TEST MODE, would-be counts)" if test_mode else "")
        + ": "
        + ", ".join(f"{k} {v}" for k, v in totals.as_dict().items())
        + f"; requests: confluence {metadata['confluence_requests']}, unique {metadata['unique_requests']}"
    )
    tolerance = sync_options.settings.failure_tolerance
    if len(totals.failures) > tolerance:
        raise dg.Failure(
            description=failure_description(totals.failures, tolerance),
            metadata={**metadata, "failed_pages": ", ".join(f.relative_key for f in totals.failures[:200])},
            allow_retries=False,
        )
    # Only a complete real sync that succeeded is observed: the instance's freshness means exactly that.
    if not test_mode and not config.restriction():
        rows = [space_row(report, _space_requests(report, by_step)) for report in merged]
        context.log_event(sync_observation(instance_of(context), totals, requests, rows))
    return totals.as_dict()


class SyncJobConfig(SyncRunConfig, ExecutionConfig):
    """What an operator may set when launching a sync: the per-run overrides and how the steps execute."""


@dg.graph(name=JOB_NAME)
def sync_graph() -> None:
    labelled = discover_labelled_pages()
    discovered = expand_descendants(labelled)
    works, plan = plan_spaces(discovered)
    diffs = works.map(diff_space_op).collect()
    tasks, _scopes = check_guards(plan, diffs)
    reports = tasks.map(ingest_and_delete).collect()
    summarize_sync(diffs, reports)


def build_sync_job(instance: Instance) -> dg.JobDefinition:
    """The sync job of one instance, with the instance's resources bound.

    In process by default; `executor: multiprocess` in the run config runs every step in a process of its own.
    """
    return sync_graph.to_job(
        name=instance.sync_job_name,
        description=(
            "Sync labelled Confluence pages into Unique: discover, diff per space, ingest, delete"
            f" (instance {instance.name})."
        ),
        tags=instance_tags(instance.name),
        resource_defs=resources_for(instance),
        executor_def=dg.multi_or_in_process_executor,
        config=flat_config(
            SyncJobConfig,
            "discover_labelled_pages",
            "expand_descendants",
            "plan_spaces",
            "check_guards",
            "summarize_sync",
        ),
    )


confluence_sync = build_sync_job(DEFAULT_FROM_ENVIRONMENT)
"""The default instance's sync as the environment configures it (definitions.py builds the one it serves)."""


def _targets(confluence: ConfluenceResource, unique: UniqueResource, mark: str) -> TargetScopes:
    settings = unique.settings
    return TargetScopes(
        unique.client,
        scope_id=settings.scope_id,
        template=settings.scope_path_template,
        source_name=confluence.settings.base_url,
        mark=mark,
    )


def _summary_metadata(
    totals: SyncTotals, requests: RequestTotals, merged: list[SpaceReport], test_mode: bool
) -> dict[str, Any]:
    metadata: dict[str, Any] = {f"total_{name}": count for name, count in totals.as_dict().items()}
    attachments = totals.as_dict(ATTACHMENT_COUNT_FIELDS)
    metadata.update({f"total_{name}": count for name, count in attachments.items()})
    metadata["attachment_bytes_moved"] = totals.bytes_moved
    if any(attachments.values()):
        metadata["attachments_per_space"] = dg.MetadataValue.md(counts_table(merged, ATTACHMENT_COUNT_FIELDS))
    if totals.skips:
        skipped = skipped_description(totals.skips, totals.counts["attachments_skipped"])
        metadata["skipped_attachments"] = dg.MetadataValue.md(skipped)
    metadata.update(
        {
            "spaces": totals.spaces,
            "test_mode": test_mode,
            "confluence_requests": requests.confluence_requests,
            "unique_requests": requests.unique_requests,
            "confluence_requests_by_route": dg.MetadataValue.json(dict(sorted(requests.confluence.items()))),
            "unique_requests_by_route": dg.MetadataValue.json(dict(sorted(requests.unique.items()))),
            "per_space": dg.MetadataValue.md(counts_table(merged)),
        }
    )
    return metadata


def _space_requests(report: SpaceReport, by_step: dict[str, dict[str, int]]) -> RequestTotals:
    """The requests one space's own steps made."""
    return RequestTotals.of(counts for step, counts in by_step.items() if mapping_key_of(step) == report.mapping_key)


def _discovery_failed(exc: RemoteError) -> dg.Failure:
    return dg.Failure(
        description=f"guard discovery-incomplete: discovery failed, so nothing was diffed or written: {exc}",
        metadata={"guard": "discovery-incomplete"},
        allow_retries=False,
    )
