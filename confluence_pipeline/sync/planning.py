"""Plan a sync: group discovered pages per space, find spaces Unique holds that discovery no longer sees, guard."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

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

    def describe(self) -> str:
        names = ", ".join(v.space_key for v in self.vanished) or "none"
        return (
            f"Plan: {self.discovered_spaces} spaces discovered, {len(self.vanished)} stored spaces no longer "
            f"discovered ({names})"
        )


def plan_sync(
    pages: Sequence[PageRef],
    unique: UniqueClient,
    targets: TargetScopes,
    *,
    only_spaces: Collection[str] = (),
) -> SyncPlan:
    """Group `pages` per space and add the spaces Unique still holds; raise `GuardTripped` on a suspicious empty run.

    A restricted run (`only_spaces`) never plans work outside those spaces.
    """
    by_space: dict[str, list[PageRef]] = {}
    spaces: dict[str, SpaceRef] = {}
    for page in pages:
        by_space.setdefault(page.space.key, []).append(page)
        spaces.setdefault(page.space.key, page.space)
    stored_counts = {
        partial_key(space): unique.count({"key": {"startsWith": f"{partial_key(space)}/"}}) for space in spaces.values()
    }
    vanished = targets.stored_spaces(spaces.values(), stored_counts)
    if only_spaces:
        vanished = [v for v in vanished if v.space_key in only_spaces]
    if not pages:
        held = sum(stored_counts.values()) + (1 if vanished or targets.holds_content() else 0)
        check_discovery(0, held, complete=True)
        log.info("Discovery found no pages and Unique holds none of this Confluence: nothing to do")
    works = [
        SpaceWork(space, tuple(by_space[key]), stored_counts[partial_key(space)])
        for key, space in sorted(spaces.items())
    ]
    for stored in vanished:
        space = SpaceRef(id=stored.space_id, key=stored.space_key, name="", type="unknown")
        works.append(SpaceWork(space, (), 0, vanished=stored))
    keys = mapping_keys(work.space.key for work in works)
    return SyncPlan(
        works=tuple(work.with_mapping_key(keys[work.space.key]) for work in works),
        discovered_spaces=len(spaces),
        vanished=tuple(vanished),
    )
