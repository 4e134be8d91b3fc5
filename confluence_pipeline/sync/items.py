"""What ingesting pages and ingesting attachments share: the lookup of existing keys, the cleanup of a
half-registered item, and collecting the workers' results into failures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from typing import TypeVar

from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.keys import content_key
from confluence_pipeline.domain.models import SpaceRef
from confluence_pipeline.sync.reports import PageFailure

log = logging.getLogger(__name__)

T = TypeVar("T")

FailureOf = Callable[[T, str, str], PageFailure]
"""The failure of one item at a stage, with a reason: `(item, stage, reason) -> PageFailure`."""


class ItemFailed(Exception):
    """An item (page or attachment) failed at `stage`; it fails alone, never its space."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def existing_keys(
    unique: UniqueClient,
    space: SpaceRef,
    items: Sequence[T],
    new_keys: Collection[str],
    *,
    key_of: Callable[[T], str],
    failure_of: FailureOf[T],
    failures: list[PageFailure],
) -> tuple[list[T], set[str]]:
    """The items to ingest and which of their keys exist in Unique before this run registers anything.

    `key_of` gives an item's relative key; only items whose key the diff called new (`new_keys`) are looked
    up (updated ones exist by definition). "New" is not proof of absence: the file-diff matches stored keys by
    their last segment under a substring of the prefix, and a server may leave out content another source
    wrote, so a new item's key may hold content already. When the lookup fails, the new items fail before
    registration (appended to `failures`) rather than risk deleting content this run did not create.
    """
    wanted = [content_key(space, key_of(item)) for item in items if key_of(item) in new_keys]
    existing = {content_key(space, key_of(item)) for item in items if key_of(item) not in new_keys}
    if not wanted:
        return list(items), existing
    try:
        existing.update(unique.ids_for_keys(wanted))
    except RemoteError as exc:
        reason = f"could not look up whether its key exists before registering: {exc}"
        for item in items:
            if key_of(item) in new_keys:
                failure = failure_of(item, "register", reason)
                log.error("%s", failure.line())
                failures.append(failure)
        return [item for item in items if key_of(item) not in new_keys], existing
    return list(items), existing


def remove_registration(unique: UniqueClient, what: str, item_id: str, content_id: str) -> None:
    """Delete content this run created and could not finalize, so it does not linger empty.

    `what` names the item in the log ("page", "attachment")."""
    try:
        gone = unique.delete([content_id])
    except RemoteError as exc:
        log.error("Cleanup of half-registered %s %s (content %s) failed: %s", what, item_id, content_id, exc)
        return
    if content_id not in gone:
        log.error(
            "Cleanup of half-registered %s %s: content %s still exists after deleting it", what, item_id, content_id
        )


def collect(
    pending: Iterable[tuple[T, Future[None]]], failure_of: FailureOf[T], failures: list[PageFailure]
) -> list[T]:
    """Wait for each item's future; the items that succeeded. A failed item is logged and appended to
    `failures`: at its stage when it raised `ItemFailed`, at `ingest` for anything else (a bug must fail
    the item, not its whole space)."""
    done: list[T] = []
    for item, future in pending:
        try:
            future.result()
        except ItemFailed as exc:
            failure = failure_of(item, exc.stage, exc.reason)
            log.error("%s", failure.line())
            failures.append(failure)
            continue
        except Exception as exc:
            failure = failure_of(item, "ingest", f"{type(exc).__name__}: {exc}")
            log.exception("%s", failure.line())
            failures.append(failure)
            continue
        done.append(item)
    return done
