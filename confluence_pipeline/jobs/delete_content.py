"""The `confluence_delete_content` job: delete named Unique content items; unknown ids are reported, not fatal."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: DeleteContentConfig` op parameter (it fails with "Unable to resolve config type").

from typing import Any

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.config.instances import Instance
from confluence_pipeline.jobs import DEFAULT_FROM_ENVIRONMENT
from confluence_pipeline.jobs.config import flat_config
from confluence_pipeline.jobs.metering import StepRequests
from confluence_pipeline.jobs.reset import PARTIAL_NOTE, deletion_metadata, unconfirmed_failure
from confluence_pipeline.jobs.writers import instance_tags, refuse_concurrent_writer
from confluence_pipeline.resources import SyncOptionsResource, UniqueResource, require_valid, resources_for
from confluence_pipeline.sync.cleanup import delete_nodes

JOB_NAME = "confluence_delete_content"


class DeleteContentConfig(dg.Config):
    """Which content items to delete, by Unique content id."""

    content_ids: list[str] = Field(description="Unique content ids (cont_…) to delete.")
    dry_run: bool = Field(default=False, description="Report what would be deleted, delete nothing.")


@dg.op(tags={"kind": "unique"})
def delete_content_items(
    context: dg.OpExecutionContext,
    config: DeleteContentConfig,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> dict[str, int]:
    """Look the ids up, delete those that exist in batches, list those that do not."""
    refuse_concurrent_writer(context)
    requested = list(dict.fromkeys(i.strip() for i in config.content_ids if i.strip()))
    if not requested:
        raise dg.Failure(
            description="content_ids is empty: list the Unique content ids to delete.", allow_retries=False
        )
    require_valid(unique, sync_options)
    meter = StepRequests(unique=unique)
    test_mode = sync_options.settings.test_mode
    dry_run = config.dry_run or test_mode
    try:
        found = unique.client.nodes_for_ids(requested)
        not_found = [i for i in requested if i not in found]
        context.log.info(
            f"Delete content: {len(found)} of {len(requested)} id(s) exist"
            + (f"; not found: {', '.join(not_found[:50])}" if not_found else "")
            + (" [dry run: nothing will be deleted]" if dry_run else "")
        )
        outcome = delete_nodes(unique.client, [found[i] for i in requested if i in found], dry_run=dry_run)
    except RemoteError as exc:
        raise dg.Failure(description=f"Deleting content failed: {exc}. {PARTIAL_NOTE}", allow_retries=False) from None
    metadata: dict[str, Any] = {
        "requested": len(requested),
        "test_mode": test_mode,
        **deletion_metadata(outcome),
        "not_found": dg.MetadataValue.json(not_found),
        **meter.metadata(),
    }
    if outcome.unconfirmed:
        raise unconfirmed_failure(outcome, metadata)
    context.add_output_metadata(metadata)
    return {"requested": len(requested), "deleted": outcome.deleted, "not_found": len(not_found)}


@dg.graph(name=JOB_NAME)
def confluence_delete_content_graph() -> None:
    delete_content_items()


def build_delete_content_job(instance: Instance) -> dg.JobDefinition:
    """The confluence_delete_content job of one instance, with the instance's resources bound."""
    return confluence_delete_content_graph.to_job(
        name=instance.delete_content_job_name,
        description="Delete Unique content items by id; unknown ids are listed as not found.",
        tags=instance_tags(instance.name),
        resource_defs=resources_for(instance),
        executor_def=dg.in_process_executor,
        config=flat_config(DeleteContentConfig, "delete_content_items"),
    )


confluence_delete_content = build_delete_content_job(DEFAULT_FROM_ENVIRONMENT)
"""The default instance's job as the environment configures it (definitions.py builds the one it serves)."""
