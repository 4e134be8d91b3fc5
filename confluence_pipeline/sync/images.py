"""Image inlining in the sync: resolve the images a body shows, inline them, and find pages whose images changed.

While a page is uploaded its images are in memory (at most `INLINE_IMAGE_MAX_BYTES` each); a lock lets only one
page hold its images at a time, so memory never grows with the number of workers. Pages without images are
not held back by it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

from confluence_pipeline.clients.confluence import ConfluenceClient
from confluence_pipeline.clients.errors import RemoteError
from confluence_pipeline.clients.unique import UniqueClient
from confluence_pipeline.domain.attachments import media_type
from confluence_pipeline.domain.images import (
    FAILED_STATE,
    IMAGES_FLAG_KEY,
    ImageRef,
    ImageState,
    attachment_state,
    image_refs,
    images_changed,
    images_metadata,
    inline_images,
    recorded_images,
)
from confluence_pipeline.domain.keys import parse_content_key
from confluence_pipeline.domain.models import AttachmentRef, PageBody, PageRef

log = logging.getLogger(__name__)

UNKNOWN_PAGE = "?"
"""The page id recorded for a reference whose page could not be looked up: re-checked on the next run."""
_FAILED = object()


def _find(attachments: Sequence[AttachmentRef], filename: str) -> AttachmentRef | None:
    exact = next((a for a in attachments if a.title == filename), None)
    if exact is not None:
        return exact
    folded = filename.casefold()
    return next((a for a in attachments if a.title.casefold() == folded), None)


def _is_same_page(ref: ImageRef, page: PageRef) -> bool:
    if ref.page_title is None:
        return True
    same_space = ref.space_key is None or ref.space_key.casefold() == page.space.key.casefold()
    return same_space and ref.page_title.casefold() == page.title.casefold()


def _pair(ref: ImageRef, page: PageRef) -> tuple[str, str]:
    return (ref.space_key or page.space.key, ref.page_title or page.title)


def _folded(pair: tuple[str, str]) -> tuple[str, str]:
    return (pair[0].casefold(), pair[1].casefold())


class ImageInliner:
    """Inlines the images of page bodies for one space's write step; `max_bytes` caps each image."""

    def __init__(self, confluence: ConfluenceClient, *, max_bytes: int) -> None:
        self._confluence = confluence
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pages: dict[tuple[str, str], object] = {}  # (space, title) case-folded -> PageRef, None or _FAILED

    def prepare(self, bodies: Sequence[PageBody]) -> None:
        """Look up the other pages this batch's images live on, 20 titles per query, before its uploads start."""
        wanted = {
            _pair(ref, body.page)
            for body in bodies
            for ref in image_refs(body.storage)
            if not _is_same_page(ref, body.page)
        }
        missing = [pair for pair in wanted if _folded(pair) not in self._pages]
        if not missing:
            return
        try:
            found = self._confluence.pages_by_title(missing)
        except RemoteError as exc:
            log.warning("Looking up %d pages that images are attached to failed: %s", len(missing), exc)
            for pair in missing:
                self._pages[_folded(pair)] = _FAILED
            return
        for pair in missing:
            self._pages[_folded(pair)] = found.get(_folded(pair))

    @contextmanager
    def page(self, body: PageBody) -> Iterator[PageBody]:
        """The body with its images inlined and their record in its metadata, for as long as it is uploaded."""
        refs = image_refs(body.storage)
        if not refs:
            yield body
            return
        with self._lock:
            yield self._inlined(body, refs)

    def _container(self, ref: ImageRef, page: PageRef) -> PageRef | object | None:
        if _is_same_page(ref, page):
            return page
        return self._pages.get(_folded(_pair(ref, page)), _FAILED)

    def _inlined(self, body: PageBody, refs: Sequence[ImageRef]) -> PageBody:
        page = body.page
        if page.more_attachments and any(_find(page.attachments, r.filename) is None for r in refs):
            try:
                page = self._confluence.complete_attachments(page)
            except RemoteError as exc:
                log.warning("Listing the attachments of page %s for its images failed: %s", page.id, exc)
        states: list[ImageState] = []
        images: dict[int, tuple[str, bytes]] = {}
        downloaded: dict[str, tuple[str, bytes] | None] = {}
        for ref in refs:
            container = self._container(ref, page)
            if container is None:
                continue  # no such page: the markup stays, and nothing is recorded to re-check
            if not isinstance(container, PageRef):
                states.append(ImageState(UNKNOWN_PAGE, ref.filename, FAILED_STATE))
                continue
            attachment = _find(container.attachments, ref.filename)
            state = attachment_state(attachment)
            if attachment is not None and self._inlinable(attachment):
                if attachment.id not in downloaded:
                    downloaded[attachment.id] = self._download(container.id, attachment)
                image = downloaded[attachment.id]
                if image is None:
                    state = FAILED_STATE
                else:
                    images[ref.start] = image
            states.append(ImageState(container.id, ref.filename, state))
        storage = inline_images(body.storage, refs, lambda ref: images.get(ref.start))
        return PageBody(page, storage, tuple(images_metadata(states).items()))

    def _inlinable(self, attachment: AttachmentRef) -> bool:
        return attachment.media_type.lower().startswith("image/") and attachment.size <= self._max_bytes

    def _download(self, page_id: str, attachment: AttachmentRef) -> tuple[str, bytes] | None:
        data = bytearray()
        try:
            with self._confluence.download(page_id, attachment) as chunks:
                for chunk in chunks:
                    data += chunk
                    if len(data) > self._max_bytes:
                        log.warning("Image %s of page %s is larger than listed; not inlined", attachment.id, page_id)
                        return None
        except RemoteError as exc:
            log.warning("Downloading image %s of page %s failed (%s); its markup stays", attachment.id, page_id, exc)
            return None
        return media_type(attachment.media_type), bytes(data)


def pages_with_changed_images(
    confluence: ConfluenceClient,
    unique: UniqueClient,
    prefix: str,
    pages: Sequence[PageRef],
    exclude: Collection[str],
) -> set[str]:
    """Pages of this space (outside `exclude`) whose stored copy inlined an image that has changed since.

    Asks Unique only for the pages that recorded images (one query per 100 of them), and Confluence only about
    pages those images live on outside this space's discovery (one query per 200 of them).
    """
    by_id = {page.id: page for page in pages}
    recorded: dict[str, list[ImageState]] = {}
    where = {"key": {"startsWith": f"{prefix}/"}, "metadata": {"path": [IMAGES_FLAG_KEY], "equals": "true"}}
    for node in unique.iter_content(where):
        parsed = parse_content_key(node.key)
        if parsed is None or parsed.attachment_id is not None or parsed.stored_partial_key != prefix:
            continue
        if parsed.page_id in by_id and parsed.page_id not in exclude:
            recorded[parsed.page_id] = recorded_images(node.metadata)
    others = sorted(
        {s.page_id for states in recorded.values() for s in states if s.page_id not in by_id} - {UNKNOWN_PAGE}
    )
    looked_up: Mapping[str, PageRef] = confluence.pages_with_attachments(others) if others else {}

    def current(page_id: str, filename: str) -> str | None:
        container = by_id.get(page_id) or looked_up.get(page_id)
        if container is None:
            return "" if page_id in others else None  # looked up and gone: no such image any more
        if container.more_attachments:
            return None
        return attachment_state(_find(container.attachments, filename))

    return {page_id for page_id, states in recorded.items() if images_changed(states, current)}
