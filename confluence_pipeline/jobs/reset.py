"""The `confluence_reset` job: delete a scope's content (optionally by key prefix, optionally with child scopes)."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: ResetConfig` op parameter (it fails with "Unable to resolve config type").

from typing import Any

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.config.instances import Instance
from confluence_pipeline.jobs import DEFAULT_FROM_ENVIRONMENT
from confluence_pipeline.jobs.config import flat_config
from confluence_pipeline.jobs.metering import StepRequests
from confluence_pipeline.jobs.writers import instance_tags, refuse_concurrent_writer
from confluence_pipeline.resources import SyncOptionsResource, UniqueResource, require_valid, resources_for
from confluence_pipeline.sync.cleanup import (
    MAX_LISTED_KEYS,
    DeletionOutcome,
    ScopeNotFound,
    content_in_scopes,
    delete_nodes,
    reset_scopes,
)

JOB_NAME = "confluence_reset"
PARTIAL_NOTE = "Items deleted before the error stay deleted; run the job again to finish."


class ResetConfig(dg.Config):
    """What to delete; launch with `dry_run: true` first to see the list."""

    scope_id: str = Field(description="The Unique scope whose content is deleted.")
    partial_key: str | None = Field(
        default=None,
        description=(
            "Only delete content whose key starts with this (e.g. '<spaceId>_<spaceKey>/' for one space); "
            "everything in the scope when omitted."
        ),
    )
    include_child_scopes: bool = Field(default=False, description="Also delete in every scope below scope_id.")
    dry_run: bool = Field(default=False, description="List what would be deleted, delete nothing.")


def deletion_metadata(outcome: DeletionOutcome) -> dict[str, Any]:
    """What reset and delete runs show: counts always complete, the key list capped."""
    keys = outcome.keys()
    return {
        "dry_run": outcome.dry_run,
        "matched": len(outcome.matched),
        "deleted": outcome.deleted,
        "unconfirmed": len(outcome.unconfirmed),
        "keys": dg.MetadataValue.json(keys[:MAX_LISTED_KEYS]),
        "keys_truncated": len(keys) > MAX_LISTED_KEYS,
    }


def unconfirmed_failure(outcome: DeletionOutcome, metadata: dict[str, Any]) -> dg.Failure:
    return dg.Failure(description=outcome.unconfirmed_description(), metadata=metadata, allow_retries=False)


@dg.op(tags={"kind": "unique"})
def reset_scope(
    context: dg.OpExecutionContext, config: ResetConfig, unique: UniqueResource, sync_options: SyncOptionsResource
) -> dict[str, int]:
    """Find the scope (and its children when asked), list matching content, delete it in batches."""
    refuse_concurrent_writer(context)
    scope_id = config.scope_id.strip()
    if not scope_id:
        raise dg.Failure(description="scope_id is empty: name the Unique scope to reset.", allow_retries=False)
    require_valid(unique, sync_options)
    meter = StepRequests(unique=unique)
    test_mode = sync_options.settings.test_mode
    dry_run = config.dry_run or test_mode
    try:
        scopes = reset_scopes(unique.client, scope_id, include_children=config.include_child_scopes)
        nodes = content_in_scopes(unique.client, scopes, config.partial_key)
        mode = "TEST_MODE" if test_mode and not config.dry_run else "dry run"
        context.log.info(
            f"Reset of scope {scopes[0].name or scope_id} ({scope_id}): {len(nodes)} item(s) in {len(scopes)} scope(s)"
            + (f" with keys starting {config.partial_key!r}" if config.partial_key else "")
            + (f" [{mode}: nothing will be deleted]" if dry_run else "")
        )
        outcome = delete_nodes(unique.client, nodes, dry_run=dry_run)
    except ScopeNotFound as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except RemoteError as exc:
        raise dg.Failure(
            description=f"Reset of scope {scope_id} failed: {exc}. {PARTIAL_NOTE}", allow_retries=False
        ) from None
    metadata: dict[str, Any] = {
        "scope_id": scope_id,
        "scopes": dg.MetadataValue.json([s.id for s in scopes]),
        "partial_key": config.partial_key or "",
        "test_mode": test_mode,
        **deletion_metadata(outcome),
        **meter.metadata(),
    }
    if outcome.unconfirmed:
        raise unconfirmed_failure(outcome, metadata)
    context.log.info(f"Reset of scope {scope_id}: {'would delete' if dry_run else 'deleted'} {len(nodes)} item(s)")
    context.add_output_metadata(metadata)
    return {"matched": len(outcome.matched), "deleted": outcome.deleted}


@dg.graph(name=JOB_NAME)
def confluence_reset_graph() -> None:
    reset_scope()


def build_reset_job(instance: Instance) -> dg.JobDefinition:
    """The confluence_reset job of one instance, with the instance's resources bound."""
    return confluence_reset_graph.to_job(
        name=instance.reset_job_name,
        description=(
            "Delete every content item of a Unique scope (and its child scopes when asked) whose key starts with "
            "partial_key. Try dry_run first."
        ),
        tags=instance_tags(instance.name),
        resource_defs=resources_for(instance),
        executor_def=dg.in_process_executor,
        config=flat_config(ResetConfig, "reset_scope"),
    )


confluence_reset = build_reset_job(DEFAULT_FROM_ENVIRONMENT)
"""The default instance's job as the environment configures it (definitions.py builds the one it serves)."""
