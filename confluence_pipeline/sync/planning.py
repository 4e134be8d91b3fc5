"""Plan a sync: group discovered pages per space, find spaces Unique holds that discovery no longer sees, guard."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.guards import check_discovery
from confluence_pipeline.domain.keys import mapping_keys, partial_key
from confluence_pipeline.domain.models import PageRef, SpaceRef
from confluence_pipeline.sync.spaces import SpaceWork
from confluence_pipeline.sync.targets import StoredSpace, TargetScopes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncPlan:
    """One unit of work per space (discovered or vanished), each with its Dagster mapping key."""

    works: tuple[SpaceWork, ...]
    discovered_spaces: int
    vanished: tuple[StoredSpace, ...]
    replaced: tuple[StoredSpace, ...] = ()  # old prefixes of discovered spaces (renamed, re-created)

    def describe(self) -> str:
        names = ", ".join(v.stored_prefix for v in self.vanished) or "none"
        text = (
            f"Plan: {self.discovered_spaces} spaces discovered, {len(self.vanished)} stored spaces no longer "
            f"discovered ({names})"
        )
        if self.replaced:
            copies = ", ".join(r.stored_prefix for r in self.replaced)
            text += f", {len(self.replaced)} old copies of discovered spaces ({copies})"
        return text


def plan_sync(
    pages: Sequence[PageRef],
    unique: UniqueClient,
    targets: TargetScopes,
    *,
    mark: str,
    only_spaces: Collection[str] = (),
) -> SyncPlan:
    """Group `pages` per space and add the spaces Unique still holds; raise `GuardTripped` on a suspicious empty run.

    A space is identified by its id: pages are grouped per stored prefix (`<spaceId>_<spaceKey>`), and a stored
    prefix whose space id or key is discovered under another prefix becomes a predecessor of that space
    (renamed key, or re-created/restored under a new id) instead of a vanished space of its own. A restricted
    run (`only_spaces`) never plans work outside those spaces.
    """
    by_prefix: dict[str, list[PageRef]] = {}
    spaces: dict[str, SpaceRef] = {}
    for page in pages:
        by_prefix.setdefault(partial_key(page.space), []).append(page)
        spaces.setdefault(partial_key(page.space), page.space)
    stored_counts = {pk: unique.count({"key": {"startsWith": f"{pk}/"}}) for pk in spaces}
    stored = targets.stored_spaces(spaces.values(), stored_counts)
    if not pages:
        held = sum(stored_counts.values()) + (1 if stored or targets.holds_content() else 0)
        check_discovery(0, held, complete=True)
        log.info("Discovery found no pages and Unique holds none of this Confluence: nothing to do")
    by_id = {space.id: pk for pk, space in spaces.items()}
    by_key = {space.key: pk for pk, space in spaces.items()}
    predecessors: dict[str, list[StoredSpace]] = {}
    vanished: list[StoredSpace] = []
    for old in stored:
        successor = by_id.get(old.space_id) or by_key.get(old.space_key)
        if successor is not None:
            predecessors.setdefault(successor, []).append(old)
        elif not only_spaces or old.space_key in only_spaces:
            vanished.append(old)
    works = [
        SpaceWork(space, tuple(by_prefix[pk]), stored_counts[pk], predecessors=tuple(predecessors.get(pk, ())))
        for pk, space in sorted(spaces.items(), key=lambda item: (item[1].key, item[0]))
    ]
    for old in vanished:
        space = SpaceRef(id=old.space_id, key=old.space_key, name="", type="unknown")
        works.append(SpaceWork(space, (), 0, vanished=old))
    keys = mapping_keys(_work_id(work) for work in works)
    return SyncPlan(
        works=tuple(replace(work, mark=mark, mapping_key=keys[_work_id(work)]) for work in works),
        discovered_spaces=len(spaces),
        vanished=tuple(vanished),
        replaced=tuple(old for olds in predecessors.values() for old in olds),
    )


def _work_id(work: SpaceWork) -> str:
    """What makes a unit of work unique: its stored prefix (a space key alone can repeat under two ids)."""
    return work.vanished.stored_prefix if work.vanished is not None else partial_key(work.space)
