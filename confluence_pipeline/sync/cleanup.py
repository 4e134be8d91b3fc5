"""Explicit deletions the operator asks for: a scope's content by key prefix (reset) or items by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluence_pipeline.clients.unique import ContentNode, ScopeNode, UniqueClient

MAX_LISTED_KEYS = 5000
"""Keys listed in a run's metadata; the counts always cover everything (the UI chokes on huge lists)."""
MAX_LISTED_UNCONFIRMED = 20


class ScopeNotFound(LookupError):
    def __init__(self, scope_id: str) -> None:
        self.scope_id = scope_id
        super().__init__(
            f"Scope {scope_id!r} does not exist in Unique (or the service user cannot see it). Nothing was deleted."
        )


@dataclass(frozen=True)
class DeletionOutcome:
    """What a reset or delete run found and did."""

    matched: tuple[ContentNode, ...]
    deleted_ids: frozenset[str]
    dry_run: bool

    @property
    def unconfirmed(self) -> tuple[ContentNode, ...]:
        return () if self.dry_run else tuple(n for n in self.matched if n.id not in self.deleted_ids)

    @property
    def deleted(self) -> int:
        return 0 if self.dry_run else len(self.deleted_ids)

    def keys(self) -> list[str]:
        return sorted(n.key for n in self.matched)

    def unconfirmed_description(self) -> str:
        missing = self.unconfirmed
        shown = ", ".join(f"{n.id} ({n.key})" for n in missing[:MAX_LISTED_UNCONFIRMED])
        more = f" and {len(missing) - MAX_LISTED_UNCONFIRMED} more" if len(missing) > MAX_LISTED_UNCONFIRMED else ""
        return (
            f"Unique confirmed {len(self.deleted_ids)} of {len(self.matched)} deletions; not confirmed: "
            f"{shown}{more}. Run the job again to retry the rest."
        )


def delete_nodes(unique: UniqueClient, nodes: Sequence[ContentNode], *, dry_run: bool) -> DeletionOutcome:
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


def reset_scopes(unique: UniqueClient, scope_id: str, *, include_children: bool) -> list[ScopeNode]:
    """The scope to reset (and its children when asked); raises ScopeNotFound."""
    root = unique.scope(scope_id)
    if root is None:
        raise ScopeNotFound(scope_id)
    return scope_tree(unique, root) if include_children else [root]


def content_in_scopes(unique: UniqueClient, scopes: Sequence[ScopeNode], partial_key: str | None) -> list[ContentNode]:
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
