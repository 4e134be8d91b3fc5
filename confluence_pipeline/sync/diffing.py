"""The read-only stage per space: ask Unique what changed, confirm every deletion, decide cleanups, check guards.

Nothing here writes. Three rules keep deletes safe:
- **Ownership.** Only items carrying this instance's mark are ours; an unmarked item (written before marks
  existed) is adopted only when its space resolves in this Confluence and its key has this connector's
  form; items another instance marked are never touched.
- **Confirmation.** A page the file-diff calls deleted is deleted only after a targeted query shows it left
  the sync set (gone, trashed, moved, hidden, or neither labelled nor below a subtree-labelled page). An
  attachment goes with its page, or when its page's complete attachment list, read in this run, no longer
  holds it or the policy no longer admits it (removed, replaced, type or size not allowed, attachments off);
  a page whose list is incomplete keeps all its attachments.
- **Identity.** A space is its id: an old prefix of a discovered space (key renamed, or the space re-created
  or restored under a new id) is replaced by the new one, and a vanished space is asked for by id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import ContentNode, UniqueClient
from confluence_pipeline.domain.attachments import (
    AttachmentItem,
    AttachmentPlan,
    AttachmentPolicy,
    SkippedAttachment,
    attachment_file_list,
    is_attachment_key,
    page_of_key,
    plan_attachments,
    select_attachments,
)
from confluence_pipeline.domain.cql import space_labelled_cql
from confluence_pipeline.domain.diff import FileDiff, SpacePlan, file_list, plan_space
from confluence_pipeline.domain.guards import GuardTripped, check_space_diff, should_clean_up_space
from confluence_pipeline.domain.keys import parse_content_key, partial_key, relative_key_of
from confluence_pipeline.domain.models import PageRef, Source, SpaceRef, SyncLabels
from confluence_pipeline.domain.ownership import Ownership, ownership
from confluence_pipeline.sync.attachments import complete_attachment_lists
from confluence_pipeline.sync.images import pages_with_changed_images
from confluence_pipeline.sync.spaces import SpaceDiff, SpaceWork
from confluence_pipeline.sync.targets import StoredSpace

log = logging.getLogger(__name__)

Deletion = tuple[str, str]  # (stored key, content id)
MAX_NAMED_SKIPS = 20  # skipped attachments named per space; the count covers them all


def diff_space(
    work: SpaceWork, confluence: ConfluenceClient, unique: UniqueClient, labels: SyncLabels, source: Source
) -> SpaceDiff:
    """Ask Unique what changed in this space and decide every write; writes nothing."""
    if work.vanished is not None:
        return replace(
            _diff_vanished(work.space, work.vanished, confluence, unique, labels, work.mark),
            mapping_key=work.mapping_key,
            mark=work.mark,
        )
    return _diff_discovered(work, confluence, unique, labels, source)


def _diff_items(
    unique: UniqueClient, space: SpaceRef, pages: list[PageRef], policy: AttachmentPolicy, source: Source
) -> tuple[SpacePlan, list[AttachmentItem], list[SkippedAttachment], AttachmentPlan, FileDiff]:
    """One file-diff of every page and admitted attachment of the space, and what it means for each."""
    items, skipped = select_attachments(pages, policy)
    diff = unique.file_diff(partial_key(space), file_list(pages) + attachment_file_list(items), source)
    plan = plan_space(space, pages, diff, other_keys={item.key for item in items})
    return plan, items, skipped, plan_attachments(items, diff), diff


def _diff_discovered(
    work: SpaceWork, confluence: ConfluenceClient, unique: UniqueClient, labels: SyncLabels, source: Source
) -> SpaceDiff:
    space, pages = work.space, list(work.pages)
    policy = confluence.settings.attachment_policy
    prefix = partial_key(space)
    notes: list[str] = []
    plan, items, skipped, attached, diff = _diff_items(unique, space, pages, policy, source)
    # The server matches stored keys by substring and compares only their last segment, so its list may
    # name keys of other spaces or of nobody: only keys that exist exactly, and that are ours, count.
    nodes = unique.nodes_for_keys(plan.to_delete)
    candidates = _owned(nodes.values(), work.mark, adopt_unmarked=True, notes=notes)
    # Pages missing from discovery are confirmed, with attachments the diff dropped whose page is missing too.
    discovered = {page.id for page in pages}
    missing = sorted({page_of_key(key) for key, _ in candidates} - discovered)
    kept = confluence.pages_still_synced(missing, space.id, labels) if missing else {}
    if kept:
        if confluence.settings.lists_attachments:
            kept, _ = complete_attachment_lists(confluence, kept)
        # Offset paging may have let these slip out of discovery: they stay, and a second diff says whether
        # they changed (the file-diff needs every item of the space at once).
        notes.append(f"{len(kept)} page(s) missing from discovery are still labelled or below a labelled page: kept")
        log.warning(
            "Space %s: pages %s were missing from discovery but are still in the sync set; kept",
            space.key,
            ", ".join(sorted(kept)[:20]),
        )
        pages += [page for page in kept.values() if page.id not in discovered]
        plan, items, skipped, attached, diff = _diff_items(unique, space, pages, policy, source)
    page_ids = {page.id for page in pages}
    submitted = page_ids | {item.key for item in items}
    partial = {page.id for page in pages if page.more_attachments}
    deletions: list[Deletion] = []
    deleted_keys: list[str] = []  # the relative keys of `deletions`, as the guard counts them
    for key, cid in candidates:
        relative = relative_key_of(key)
        if relative in submitted:
            continue
        if is_attachment_key(relative) and page_of_key(relative) in page_ids:
            if page_of_key(relative) in partial:
                continue  # its page's attachment list is incomplete: no decision on it this run
            if not policy.enabled and ownership(nodes[key].metadata, work.mark) is not Ownership.OURS:
                continue  # not ours to remove while attachments are off: it did not come from this connector
        deletions.append((key, cid))
        deleted_keys.append(relative)
    if partial:
        notes.append(f"{len(partial)} page(s) could not list all their attachments: their attachments are kept")
    forced: set[str] = set()
    if confluence.settings.inline_images:
        changing = {page.id for page in (*plan.to_create, *plan.to_update)}
        try:
            forced = pages_with_changed_images(confluence, unique, prefix, pages, changing)
        except RemoteError as exc:
            notes.append(f"checking inlined images failed ({exc}); pages with changed images wait for the next run")
        if forced:
            notes.append(f"{len(forced)} unchanged page(s) re-ingested: an image they inline changed")
    if plan.ignored:
        notes.append(f"file-diff named {len(plan.ignored)} keys that were not submitted; ignored")
    replaced: list[Deletion] = []
    cleaned: list[Deletion] = []
    for old in work.predecessors:
        old_replaced, old_cleaned = _predecessor(space, old, confluence, unique, labels, work.mark, notes)
        replaced += old_replaced
        cleaned += old_cleaned
    guard_diff = FileDiff(
        new=diff.new,
        updated=diff.updated,
        deleted=(*deleted_keys, *(k for k in diff.deleted if k in submitted)),
    )
    to_update = (*(page.id for page in plan.to_update), *sorted(forced))
    guard = None
    try:
        check_space_diff(space.key, submitted, guard_diff, work.stored_count)
    except GuardTripped as exc:
        guard = str(exc)
    return SpaceDiff(
        space=space,
        discovered=len(pages),
        to_create=tuple(page.id for page in plan.to_create),
        to_update=to_update,
        unchanged=plan.unchanged - len(forced),
        delete_ids=tuple(sorted(deletions)) + tuple(sorted(cleaned)),
        replaced_ids=tuple(sorted(replaced)),
        kept=len(kept),
        guard=guard,
        notes=tuple(notes),
        mark=work.mark,
        mapping_key=work.mapping_key,
        attachments_to_create=attached.to_create,
        attachments_to_update=attached.to_update,
        attachments_discovered=len(items) + len(skipped),
        attachments_unchanged=attached.unchanged,
        attachments_skipped=len(skipped),
        attachment_skips=tuple(skip.line() for skip in skipped[:MAX_NAMED_SKIPS]),
        images_changed=len(forced),
    )


def _predecessor(
    space: SpaceRef,
    old: StoredSpace,
    confluence: ConfluenceClient,
    unique: UniqueClient,
    labels: SyncLabels,
    mark: str,
    notes: list[str],
) -> tuple[list[Deletion], list[Deletion]]:
    """What becomes of an old prefix of this space: (replaced after ingestion, cleaned up now)."""
    if old.space_id == space.id:
        notes.append(f"key renamed from {old.space_key}: the copy under {old.stored_prefix} is replaced")
        return _stored(unique, old, mark, adopt_unmarked=True, notes=notes), []
    try:
        still_there = confluence.resolve_space(old.space_id, old.space_key)
    except RemoteError as exc:
        notes.append(f"old copy {old.stored_prefix} kept: looking up space id {old.space_id} failed ({exc})")
        return [], []
    if still_there is None:
        notes.append(f"space re-created under a new id: the old copy under {old.stored_prefix} is replaced")
        return _stored(unique, old, mark, adopt_unmarked=False, notes=notes), []
    # The old id is another live space (Cloud: renamed away while a new space took the key).
    # resolve_space returns only the space with the id asked for: `still_there` is that space as it is now.
    cleanup = _diff_vanished(still_there, old, confluence, unique, labels, mark, resolved=still_there)
    notes.extend(f"{old.stored_prefix}: {note}" for note in cleanup.notes)
    return [], list(cleanup.delete_ids)


def _diff_vanished(
    space: SpaceRef,
    vanished: StoredSpace,
    confluence: ConfluenceClient,
    unique: UniqueClient,
    labels: SyncLabels,
    mark: str,
    *,
    resolved: SpaceRef | None = None,
) -> SpaceDiff:
    """A stored space discovery no longer sees: ask Confluence about its id; clean up only what is ours."""
    notes: list[str] = []
    if resolved is None:
        try:
            resolved = confluence.resolve_space(vanished.space_id, vanished.space_key)
        except RemoteError as exc:
            log.warning("Space %s left discovery but looking it up failed (%s); not cleaning up", space.key, exc)
            return SpaceDiff(space=space, discovered=0, skipped=1, notes=(f"space lookup failed: {exc}",))
    confirming: int | None = 0
    if resolved is not None:
        try:
            cql = space_labelled_cql(labels.single, labels.subtree, resolved.key)
            confirming = 1 if confluence.has_any(cql) else 0
        except RemoteError as exc:
            log.warning("Confirming query for vanished space %s failed (%s); not cleaning up", space.key, exc)
            confirming = None
    if not should_clean_up_space(confirming, resolved is not None):
        reason = "its confirming query failed" if confirming is None else "it still has labelled pages"
        return SpaceDiff(space=space, discovered=0, skipped=1, notes=(f"cleanup skipped: {reason}",))
    # Unmarked content counts as ours only while its space id still resolves in this Confluence.
    deletions = _stored(unique, vanished, mark, adopt_unmarked=resolved is not None, notes=notes)
    why = "is gone or hidden" if resolved is None else "has no labelled pages any more"
    return SpaceDiff(
        space=space, discovered=0, delete_ids=tuple(sorted(deletions)), notes=(f"space {why}; cleaning up", *notes)
    )


def _stored(
    unique: UniqueClient, stored: StoredSpace, mark: str, *, adopt_unmarked: bool, notes: list[str]
) -> list[Deletion]:
    """Our items under a stored prefix, as (key, id)."""
    prefix = f"{stored.stored_prefix}/"
    nodes = [n for n in unique.iter_content({"key": {"startsWith": prefix}}) if n.key.startswith(prefix)]
    return _owned(nodes, mark, adopt_unmarked=adopt_unmarked, notes=notes)


def _owned(nodes: Iterable[ContentNode], mark: str, *, adopt_unmarked: bool, notes: list[str]) -> list[Deletion]:
    """The nodes this instance may delete, as (key, id); says in `notes` what it leaves alone and why."""
    owned: list[Deletion] = []
    foreign = unadopted = 0
    for node in nodes:
        kind = ownership(node.metadata, mark)
        parsed = parse_content_key(node.key)
        adoptable = adopt_unmarked and parsed is not None and not parsed.key_prefix
        if kind is Ownership.OURS or (kind is Ownership.UNMARKED and adoptable):
            owned.append((node.key, node.id))
        elif kind is Ownership.FOREIGN:
            foreign += 1
        else:
            unadopted += 1
    if foreign:
        notes.append(f"{foreign} item(s) another Confluence instance wrote: left alone")
    if unadopted:
        notes.append(f"{unadopted} unmarked item(s) not provably from this Confluence: left alone")
    return owned
