"""Turns Unique's file-diff answer for one space into what to create, update and delete."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluence_pipeline.domain.keys import content_key
from confluence_pipeline.domain.models import PageRef, SpaceRef

_FIELDS = {"new": "newFiles", "updated": "updatedFiles", "moved": "movedFiles", "deleted": "deletedFiles"}


def _string_tuple(payload: Mapping[str, Any], field: str) -> tuple[str, ...]:
    value = payload.get(field)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"file-diff field {field!r} must be a list of keys, got {type(value).__name__}")
    for entry in value:
        if not isinstance(entry, str):
            raise ValueError(f"file-diff field {field!r} must hold only string keys, got {entry!r}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class FileDiff:
    """The file-diff response: relative keys (page ids), exactly as the server listed them."""

    new: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    @classmethod
    def from_response(cls, payload: Mapping[str, Any]) -> FileDiff:
        """Read a v2 file-diff body; a missing or null array counts as empty."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"file-diff response must be a JSON object, got {type(payload).__name__}")
        return cls(**{attr: _string_tuple(payload, field) for attr, field in _FIELDS.items()})


@dataclass(frozen=True, slots=True)
class SpacePlan:
    """What one space's sync will do. `to_delete` holds full stored keys, `ignored` relative keys."""

    space: SpaceRef
    to_create: tuple[PageRef, ...]
    to_update: tuple[PageRef, ...]
    unchanged: int
    to_delete: tuple[str, ...]
    ignored: tuple[str, ...]


def _unique_by_id(pages: Sequence[PageRef]) -> dict[str, PageRef]:
    by_id: dict[str, PageRef] = {}
    for page in pages:
        by_id.setdefault(page.id, page)
    return by_id


def plan_space(
    space: SpaceRef, pages: Sequence[PageRef], diff: FileDiff, *, other_keys: Collection[str] = ()
) -> SpacePlan:
    """Partition the submitted pages by the diff and resolve deletions to full keys.

    - A key both new and updated is created once.
    - `movedFiles` (same key, stored under another URL: Cloud URLs carry the title) count as updated, so
      the item is written again with its current URL. A move between spaces arrives as new in one space
      and deleted in the other.
    - A deleted key that was also submitted is never deleted here; `guards.check_space_diff` decides
      whether such a diff may proceed at all.
    - new/updated keys that were never submitted are reported in `ignored`, not acted on.
    - `other_keys` are submitted keys that are not pages (attachments): planned elsewhere, never deleted here.

    Raises ValueError when a page belongs to another space or the server lists a deleted key that
    cannot be a relative key (empty or containing `/`).
    """
    for page in pages:
        if (page.space.id, page.space.key) != (space.id, space.key):
            raise ValueError(f"page {page.id} belongs to space {page.space.key!r}, not {space.key!r}")
    submitted = _unique_by_id(pages)
    others = set(other_keys)
    new_keys = set(diff.new)
    updated_keys = (set(diff.updated) | set(diff.moved)) - new_keys

    to_create = tuple(page for page_id, page in submitted.items() if page_id in new_keys)
    to_update = tuple(page for page_id, page in submitted.items() if page_id in updated_keys)
    ignored = tuple(
        dict.fromkeys(
            key for key in (*diff.new, *diff.updated, *diff.moved) if key not in submitted and key not in others
        )
    )
    to_delete = tuple(
        dict.fromkeys(content_key(space, key) for key in diff.deleted if key not in submitted and key not in others)
    )
    return SpacePlan(
        space=space,
        to_create=to_create,
        to_update=to_update,
        unchanged=len(submitted) - len(to_create) - len(to_update),
        to_delete=to_delete,
        ignored=ignored,
    )


def file_list(pages: Sequence[PageRef]) -> list[dict[str, str]]:
    """The file-diff `fileList` for one space, one entry per page id, sorted by key."""
    return [
        {"key": page.id, "url": page.web_url, "updatedAt": page.updated_at}
        for page in sorted(_unique_by_id(pages).values(), key=lambda page: page.id)
    ]
