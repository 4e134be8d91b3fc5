"""Image inlining in storage format: find `<ac:image>` attachment references, replace them by `data:` URIs, record them.

Storage format is not well-formed XML (namespaces are never declared, entities are HTML's), so nothing here
parses and re-serialises it: references are found with patterns and replaced in place, and every other byte
of the body stays as it was.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from confluence_pipeline.domain.models import AttachmentRef

IMAGES_METADATA_KEY = "inlinedImages"
"""Metadata of a page with image references: JSON `[[pageId, filename, state], …]` as of its upload."""
IMAGES_FLAG_KEY = "inlinesImages"
"""`"true"` on pages that carry `inlinedImages`, so the diff can ask Unique for exactly those pages."""
MAX_RECORDED_IMAGES = 200
"""References recorded per page; a page with more images is re-checked only for its first 200."""
FAILED_STATE = "!"
"""The state of a reference whose download failed: it never equals a current state, so the page is retried."""

_IMAGE = re.compile(r"<ac:image\b(?P<attrs>[^>]*?)(?<!/)>(?P<inner>.*?)</ac:image\s*>", re.DOTALL)
_ATTACHMENT = re.compile(r"<ri:attachment\b(?P<attrs>[^>]*?)(?:/>|>(?P<inner>.*?)</ri:attachment\s*>)", re.DOTALL)
_CONTAINER = re.compile(r"<ri:(?P<kind>page|blog-post)\b(?P<attrs>[^>]*?)/?>", re.DOTALL)
_ATTRIBUTE = re.compile(r"""(?P<name>[\w:.-]+)\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")
_KEPT_ATTRIBUTES = (("ac:width", "width"), ("ac:height", "height"), ("ac:title", "title"))


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One `<ac:image>` naming an attachment: on the page itself (`page_title` None) or on another page.

    `space_key` None means the referencing page's space. `start`/`end` span the whole `<ac:image>` element.
    """

    start: int
    end: int
    filename: str
    page_title: str | None
    space_key: str | None
    attributes: tuple[tuple[str, str], ...]

    def attribute(self, name: str) -> str | None:
        return next((value for key, value in self.attributes if key == name), None)


def _attributes(text: str) -> dict[str, str]:
    return {m["name"]: html.unescape(m["dq"] if m["dq"] is not None else m["sq"]) for m in _ATTRIBUTE.finditer(text)}


def image_refs(storage: str) -> list[ImageRef]:
    """Every `<ac:image>` with an `<ri:attachment ri:filename>`, in body order.

    Images of URLs (`<ri:url>`) and attachments of blog posts (`<ri:blog-post>`, addressed by posting day)
    are not references this module resolves and are left out.
    """
    refs: list[ImageRef] = []
    for image in _IMAGE.finditer(storage):
        attachment = _ATTACHMENT.search(image["inner"])
        if attachment is None:
            continue
        filename = _attributes(attachment["attrs"]).get("ri:filename")
        if not filename:
            continue
        page_title = space_key = None
        container = _CONTAINER.search(attachment["inner"] or "")
        if container is not None:
            if container["kind"] != "page":
                continue
            container_attrs = _attributes(container["attrs"])
            page_title = container_attrs.get("ri:content-title")
            space_key = container_attrs.get("ri:space-key") or None
            if not page_title:
                continue
        refs.append(
            ImageRef(
                start=image.start(),
                end=image.end(),
                filename=filename,
                page_title=page_title,
                space_key=space_key,
                attributes=tuple(sorted(_attributes(image["attrs"]).items())),
            )
        )
    return refs


def img_element(ref: ImageRef, media_type: str, data: bytes) -> str:
    """`<img src="data:…" alt="…">`, keeping the image's width, height and title; alt is its alt text or filename."""
    encoded = base64.b64encode(data).decode("ascii")
    alt = ref.attribute("ac:alt") or ref.filename
    parts = [f'<img src="data:{html.escape(media_type, quote=True)};base64,{encoded}"', f'alt="{html.escape(alt)}"']
    for source, target in _KEPT_ATTRIBUTES:
        value = ref.attribute(source)
        if value:
            parts.append(f'{target}="{html.escape(value)}"')
    return " ".join(parts) + " />"


def inline_images(
    storage: str, refs: Sequence[ImageRef], resolve: Callable[[ImageRef], tuple[str, bytes] | None]
) -> str:
    """`storage` with each of `refs` that `resolve` answers replaced by an `<img>`; everything else untouched.

    `resolve` returns (media type, bytes) or None to keep the original markup (too large, not found).
    """
    pieces: list[str] = []
    position = 0
    for ref in sorted(refs, key=lambda r: r.start):
        image = resolve(ref)
        if image is None:
            continue
        pieces.append(storage[position : ref.start])
        pieces.append(img_element(ref, *image))
        position = ref.end
    if not pieces:
        return storage
    pieces.append(storage[position:])
    return "".join(pieces)


# -- what a page inlined, and whether that changed --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImageState:
    """A resolved reference as of an upload: the page holding the file, its name, and `<attachmentId>:<version>`
    (`""` when the page has no such file, `FAILED_STATE` when the download failed)."""

    page_id: str
    filename: str
    state: str


def attachment_state(attachment: AttachmentRef | None) -> str:
    return "" if attachment is None else f"{attachment.id}:{attachment.version}"


def images_metadata(states: Iterable[ImageState]) -> dict[str, str]:
    """The metadata recording a page's image references (nothing for a page without any)."""
    unique = sorted({(s.page_id, s.filename): s.state for s in states}.items())[:MAX_RECORDED_IMAGES]
    if not unique:
        return {}
    records = [[page_id, filename, state] for (page_id, filename), state in unique]
    return {
        IMAGES_METADATA_KEY: json.dumps(records, ensure_ascii=False, separators=(",", ":")),
        IMAGES_FLAG_KEY: "true",
    }


def recorded_images(metadata: Mapping[str, object] | None) -> list[ImageState]:
    """The references a stored page recorded; empty when there are none or the record is unreadable."""
    raw = (metadata or {}).get(IMAGES_METADATA_KEY)
    if not isinstance(raw, str):
        return []
    try:
        records = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(records, list):
        return []
    return [
        ImageState(str(r[0]), str(r[1]), str(r[2]))
        for r in records
        if isinstance(r, list) and len(r) == 3 and all(isinstance(v, str) for v in r)
    ]


def images_changed(recorded: Iterable[ImageState], current: Callable[[str, str], str | None]) -> bool:
    """Whether any recorded reference now resolves differently; `current(page_id, filename)` is its state now,
    or None when that page's attachments are unknown (then it counts as changed: better one upload too many)."""
    return any(current(state.page_id, state.filename) != state.state for state in recorded)
