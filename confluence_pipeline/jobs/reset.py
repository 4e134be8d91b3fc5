"""The `confluence_reset` job: delete a scope's content (optionally by key prefix, optionally with child scopes)."""

# No `from __future__ import annotations` here: Dagster 1.13 cannot resolve a string-annotated
# `config: ResetConfig` op parameter (it fails with "Unable to resolve config type").

from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import ContentNode, ScopeNode, UniqueClient
from confluence_pipeline.jobs.runtime import WRITER_TAG, op_runtime, refuse_concurrent_writer
from confluence_pipeline.resources import ConfluenceResource, SyncOptionsResource, UniqueResource

JOB_NAME = "confluence_reset"
KEYS_IN_METADATA = 5000
"""Keys listed in the run's metadata; the counts always cover everything (the UI chokes on huge lists)."""
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


@dataclass(frozen=True)
class DeletionOutcome:
    """What a reset or delete run found and did; shared by both jobs for their metadata."""

    matched: tuple[ContentNode, ...]
    deleted_ids: frozenset[str]
    dry_run: bool

    @property
    def unconfirmed(self) -> tuple[ContentNode, ...]:
        return () if self.dry_run else tuple(n for n in self.matched if n.id not in self.deleted_ids)

    def metadata(self) -> dict[str, Any]:
        keys = sorted(n.key for n in self.matched)
        return {
            "dry_run": self.dry_run,
            "matched": len(self.matched),
            "deleted": 0 if self.dry_run else len(self.deleted_ids),
            "unconfirmed": len(self.unconfirmed),
            "keys": dg.MetadataValue.json(keys[:KEYS_IN_METADATA]),
            "keys_truncated": len(keys) > KEYS_IN_METADATA,
        }


def delete_nodes(unique: UniqueClient, nodes: list[ContentNode], *, dry_run: bool) -> DeletionOutcome:
    """Delete `nodes` in batches unless dry-running; Unique's confirmation is what counts as deleted."""
    confirmed = frozenset() if dry_run or not nodes else frozenset(unique.delete([n.id for n in nodes]))
    return DeletionOutcome(tuple(nodes), confirmed, dry_run)


def scope_tree(unique: UniqueClient, root: ScopeNode) -> list[ScopeNode]:
    """`root` and every scope below it, parents before children (a cycle cannot loop us)."""
    found = [root]
    seen = {root.id}
    index = 0
    while index < len(found):
        for child in unique.find_scopes({"parentId": {"equals": found[index].id}}):
            if child.id not in seen:
                seen.add(child.id)
                found.append(child)
        index += 1
    return found


def content_in_scopes(unique: UniqueClient, scopes: list[ScopeNode], partial_key: str | None) -> list[ContentNode]:
    """Every content item owned by the scopes whose key starts with `partial_key`, collected before any delete."""
    nodes: dict[str, ContentNode] = {}
    for scope in scopes:
        where: dict[str, object] = {"ownerId": {"equals": scope.id}, "ownerType": {"equals": "SCOPE"}}
        if partial_key:
            where["key"] = {"startsWith": partial_key}
        for node in unique.iter_content(where):
            # Filter again here: a server that ignored part of `where` must not widen the delete.
            if node.owner_id in (None, scope.id) and (not partial_key or node.key.startswith(partial_key)):
                nodes.setdefault(node.id, node)
    return list(nodes.values())


def unconfirmed_failure(outcome: DeletionOutcome, metadata: dict[str, Any]) -> dg.Failure:
    missing = outcome.unconfirmed
    shown = ", ".join(f"{n.id} ({n.key})" for n in missing[:20])
    more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
    return dg.Failure(
        description=(
            f"Unique confirmed {len(outcome.deleted_ids)} of {len(outcome.matched)} deletions; not confirmed: "
            f"{shown}{more}. Run the job again to retry the rest."
        ),
        metadata=metadata,
        allow_retries=False,
    )


@dg.op(tags={"kind": "unique"})
def reset_scope(
    context: dg.OpExecutionContext,
    config: ResetConfig,
    confluence: ConfluenceResource,
    unique: UniqueResource,
    sync_options: SyncOptionsResource,
) -> dict[str, int]:
    """Find the scope (and its children when asked), list matching content, delete it in batches."""
    refuse_concurrent_writer(context, f"a {JOB_NAME} run")
    scope_id = config.scope_id.strip()
    if not scope_id:
        raise dg.Failure(description="scope_id is empty: name the Unique scope to reset.", allow_retries=False)
    with op_runtime(context, confluence, unique, sync_options) as rt:
        test_mode = rt.settings.sync.test_mode
        dry_run = config.dry_run or test_mode
        try:
            root = rt.unique.scope(scope_id)
            if root is None:
                raise dg.Failure(
                    description=(
                        f"Scope {scope_id!r} does not exist in Unique (or the service user cannot see it). "
                        "Nothing was deleted."
                    ),
                    allow_retries=False,
                )
            scopes = scope_tree(rt.unique, root) if config.include_child_scopes else [root]
            nodes = content_in_scopes(rt.unique, scopes, config.partial_key)
            mode = "TEST_MODE" if test_mode and not config.dry_run else "dry run"
            context.log.info(
                f"Reset of scope {root.name or root.id} ({root.id}): {len(nodes)} item(s) in {len(scopes)} scope(s)"
                + (f" with keys starting {config.partial_key!r}" if config.partial_key else "")
                + (f" [{mode}: nothing will be deleted]" if dry_run else "")
            )
            outcome = delete_nodes(rt.unique, nodes, dry_run=dry_run)
        except RemoteError as exc:
            raise dg.Failure(
                description=f"Reset of scope {scope_id} failed: {exc}. {PARTIAL_NOTE}", allow_retries=False
            ) from None
        requests = sum(rt.request_counts().values())
    metadata: dict[str, Any] = {
        "scope_id": scope_id,
        "scopes": dg.MetadataValue.json([s.id for s in scopes]),
        "partial_key": config.partial_key or "",
        "test_mode": test_mode,
        **outcome.metadata(),
        "unique_requests": requests,
    }
    if outcome.unconfirmed:
        raise unconfirmed_failure(outcome, metadata)
    verb = "would delete" if dry_run else "deleted"
    context.log.info(f"Reset of scope {scope_id}: {verb} {len(outcome.matched)} item(s)")
    context.add_output_metadata(metadata)
    return {"matched": len(outcome.matched), "deleted": 0 if dry_run else len(outcome.deleted_ids)}


@dg.job(
    name=JOB_NAME,
    description=(
        "Delete every content item of a Unique scope (and its child scopes when asked) whose key starts with "
        "partial_key. Try dry_run first."
    ),
    tags={WRITER_TAG: "true"},
    executor_def=dg.in_process_executor,
    config=dg.ConfigMapping(
        config_schema=ResetConfig.to_config_schema(),
        config_fn=lambda cfg: {"ops": {"reset_scope": {"config": cfg}}},
    ),
)
def confluence_reset() -> None:
    reset_scope()
