"""The `confluence_delete_content` job: delete named Unique content items; unknown ids are reported, not fatal."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: DeleteContentConfig` op parameter (it fails with "Unable to resolve config type").

from typing import Any

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import KEYS_PER_QUERY, ContentNode
from confluence_pipeline.domain.cql import batched
from confluence_pipeline.jobs.reset import PARTIAL_NOTE, delete_nodes, unconfirmed_failure
from confluence_pipeline.jobs.runtime import WRITER_TAG, op_runtime, refuse_concurrent_writer
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource

JOB_NAME = "confluence_delete_content"


class DeleteContentConfig(dg.Config):
    """Which content items to delete, by Unique content id."""

    content_ids: list[str] = Field(description="Unique content ids (cont_…) to delete.")
    dry_run: bool = Field(default=False, description="Report what would be deleted, delete nothing.")


@dg.op(tags={"kind": "unique"})
def delete_content_items(
    context: dg.OpExecutionContext,
    config: DeleteContentConfig,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> dict[str, int]:
    """Look the ids up, delete those that exist in batches, list those that do not."""
    refuse_concurrent_writer(context, f"a {JOB_NAME} run")
    requested = list(dict.fromkeys(i.strip() for i in config.content_ids if i.strip()))
    if not requested:
        raise dg.Failure(
            description="content_ids is empty: list the Unique content ids to delete.", allow_retries=False
        )
    with op_runtime(context, confluence, unique, sync_options) as rt:
        test_mode = rt.settings.sync.test_mode
        dry_run = config.dry_run or test_mode
        try:
            found: dict[str, ContentNode] = {}
            for chunk in batched(requested, KEYS_PER_QUERY):
                for node in rt.unique.iter_content({"id": {"in": chunk}}):
                    if node.id in chunk:
                        found[node.id] = node
            not_found = [i for i in requested if i not in found]
            context.log.info(
                f"Delete content: {len(found)} of {len(requested)} id(s) exist"
                + (f"; not found: {', '.join(not_found[:50])}" if not_found else "")
                + (" [dry run: nothing will be deleted]" if dry_run else "")
            )
            outcome = delete_nodes(rt.unique, [found[i] for i in requested if i in found], dry_run=dry_run)
        except RemoteError as exc:
            raise dg.Failure(
                description=f"Deleting content failed: {exc}. {PARTIAL_NOTE}", allow_retries=False
            ) from None
        requests = sum(rt.request_counts().values())
    metadata: dict[str, Any] = {
        "requested": len(requested),
        "test_mode": test_mode,
        **outcome.metadata(),
        "not_found": dg.MetadataValue.json(not_found),
        "unique_requests": requests,
    }
    if outcome.unconfirmed:
        raise unconfirmed_failure(outcome, metadata)
    context.add_output_metadata(metadata)
    return {
        "requested": len(requested),
        "deleted": 0 if dry_run else len(outcome.deleted_ids),
        "not_found": len(not_found),
    }


@dg.job(
    name=JOB_NAME,
    description="Delete Unique content items by id; unknown ids are listed as not found.",
    tags={WRITER_TAG: "true"},
    executor_def=dg.in_process_executor,
    config=dg.ConfigMapping(
        config_schema=DeleteContentConfig.to_config_schema(),
        config_fn=lambda cfg: {"ops": {"delete_content_items": {"config": cfg}}},
    ),
)
def confluence_delete_content() -> None:
    delete_content_items()
