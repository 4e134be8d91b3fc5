"""Data-safety guards: the decisions that stop a sync before it writes, or allow a space's cleanup."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from confluence_pipeline.domain.diff import FileDiff

GuardName = Literal["discovery-incomplete", "zero-discovery", "zero-submission", "full-deletion"]


class GuardTripped(Exception):
    """A guard refused the sync; the run must fail before any write."""

    def __init__(self, guard: GuardName, space_key: str | None, detail: str) -> None:
        self.guard = guard
        self.space_key = space_key
        self.detail = detail
        where = f" for space {space_key}" if space_key is not None else ""
        super().__init__(f"guard {guard} tripped{where}: {detail}; nothing was written")

    def __reduce__(self) -> tuple[type[GuardTripped], tuple[str, str | None, str]]:
        # Keeps the exception picklable across process boundaries despite the custom __init__.
        return (type(self), (self.guard, self.space_key, self.detail))


def _require_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_discovery(total_discovered: int, stored_items_for_source: int, complete: bool) -> None:
    """Refuse to diff on a partial discovery, or on an empty one while Unique holds this source's content.

    An empty result against a non-empty store is far more often a broken credential, a renamed label
    or a permission change than a real "unlabel everything", and diffing it would delete everything.
    """
    _require_count("total_discovered", total_discovered)
    _require_count("stored_items_for_source", stored_items_for_source)
    if not complete:
        raise GuardTripped(
            "discovery-incomplete",
            None,
            f"discovery did not complete (found {total_discovered} pages before it stopped), so the diff "
            "would treat the missing pages as deleted",
        )
    if total_discovered == 0 and stored_items_for_source > 0:
        raise GuardTripped(
            "zero-discovery",
            None,
            f"discovery found no labelled pages while Unique holds {stored_items_for_source} items from this "
            "Confluence; check the service user's access and the sync labels",
        )


def check_space_diff(space_key: str, submitted: Collection[str], diff: FileDiff, stored_count: int) -> None:
    """Refuse a space's diff that would lose data (`submitted` are relative keys).

    - Nothing submitted but deletions reported: refuse.
    - The diff deletes everything stored for the space (`stored_count` = items whose key starts with
      the space's partial key): refuse, unless it also reports new items and none of the deleted keys
      was submitted, which is what a genuine replacement of every page looks like. A deletion count
      above `stored_count` is treated as "everything" too.
    """
    _require_count("stored_count", stored_count)
    deleted = set(diff.deleted)
    if not submitted and deleted:
        raise GuardTripped(
            "zero-submission",
            space_key,
            f"no pages were submitted but the diff would delete {len(deleted)} stored items",
        )
    if stored_count > 0 and len(deleted) >= stored_count:
        submitted_keys = set(submitted)
        overlap = deleted & submitted_keys
        if diff.new and not overlap:
            return
        reason = f"{len(overlap)} of the deleted keys were submitted" if overlap else "it reports no new items"
        raise GuardTripped(
            "full-deletion",
            space_key,
            f"the diff would delete all {stored_count} stored items while {reason}",
        )


def should_clean_up_space(confirming_query_count: int | None, space_visible: bool) -> bool:
    """Decide whether a space that vanished from discovery may have all its content deleted.

    A space that is gone or invisible to the service user is cleaned up even when the confirming
    query failed, because DC answers CQL on an unknown space key with 400/500 rather than an empty
    result (CONFSERVER-101465). So pass `space_visible=False` only when a *successful* lookup said
    the space is gone; when the lookup itself failed, pass True. Otherwise a failed query (None)
    never leads to deletion, and only a query that returned no labelled content does.
    """
    if not space_visible:
        return True
    if confirming_query_count is None:
        return False
    _require_count("confirming_query_count", confirming_query_count)
    return confirming_query_count == 0
