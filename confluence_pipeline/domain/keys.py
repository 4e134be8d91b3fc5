"""Unique content keys (`<spaceId>_<spaceKey>/<pageId>`) and Dagster mapping keys for spaces."""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass

from confluence_pipeline.domain.models import SpaceRef

KEY_SEPARATOR = "::"
"""Between a page id and an attachment id in an attachment's relative key: `<pageId>::<attachmentId>`."""
ATTACHMENT_ID = re.compile(r"[A-Za-z0-9]+")

_DIGITS = re.compile(r"[0-9]+")
_RELATIVE_KEY = re.compile(rf"(?P<page_id>[0-9]+)(?:{KEY_SEPARATOR}(?P<attachment_id>{ATTACHMENT_ID.pattern}))?")
_SPACE_SEGMENT = re.compile(r"(?P<space_id>[0-9]+)_(?P<space_key>.+)", re.DOTALL)

MAPPING_KEY_MAX = 100
_MAPPING_KEY = re.compile(r"[A-Za-z0-9_]+")
_MAPPING_KEY_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_]")
# Dagster refuses these as names (dagster._core.definitions.utils.DISALLOWED_NAMES); a unit test keeps
# this copy honest, because the domain layer must not import Dagster.
_DAGSTER_RESERVED = frozenset(
    {
        "context",
        "conf",
        "config",
        "meta",
        "arg_dict",
        "dict",
        "input_arg_dict",
        "output_arg_dict",
        "int",
        "str",
        "float",
        "bool",
        "input",
        "output",
        "type",
        *keyword.kwlist,
    }
)


def partial_key(space: SpaceRef) -> str:
    """The file-diff `partialKey` of a space: `<spaceId>_<spaceKey>` (the v1 connector's key format).

    The server matches stored keys on their last `/` segment, so a space key containing `/` would
    produce keys that no longer parse back to their space; such a space is refused.
    """
    if not _DIGITS.fullmatch(space.id):
        raise ValueError(f"space id must be decimal digits, got {space.id!r} (space {space.key!r})")
    if not space.key or "/" in space.key:
        raise ValueError(f"space key must be non-empty and free of '/', got {space.key!r}")
    return f"{space.id}_{space.key}"


def content_key(space: SpaceRef, page_id: str) -> str:
    """The full stored key of one item: `<partialKey>/<relative key>`.

    `page_id` is the relative key as file-diff uses it; usually a page id, but the server may report
    keys of items stored by other connectors (e.g. `123::att789`), which must still resolve for deletion.
    """
    if not isinstance(page_id, str) or not page_id or "/" in page_id:
        raise ValueError(f"relative content key must be non-empty and free of '/', got {page_id!r}")
    return f"{partial_key(space)}/{page_id}"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A stored key recognised as a Confluence page key.

    `partial_key` is `<spaceId>_<spaceKey>`, comparable with `partial_key(space)`. `key_prefix` is
    whatever preceded it in the stored key (a tenant prefix such as `acme/` written by the vendor's
    v2 connector, or `""`); `stored_partial_key` is the two together, which is what a `startsWith`
    prefix wipe of this space's content needs.
    """

    space_id: str
    space_key: str
    page_id: str
    partial_key: str
    key_prefix: str = ""
    attachment_id: str | None = None  # set for an attachment key `<pageId>::<attachmentId>`

    @property
    def stored_partial_key(self) -> str:
        return f"{self.key_prefix}{self.partial_key}"

    @property
    def relative_key(self) -> str:
        """The key below the partial key, as file-diff names it."""
        return self.page_id if self.attachment_id is None else f"{self.page_id}{KEY_SEPARATOR}{self.attachment_id}"


def relative_key_of(key: str) -> str:
    """The last segment of a stored key: `<pageId>` or `<pageId>::<attachmentId>`, as file-diff names it."""
    return key.rsplit("/", 1)[-1]


def parse_content_key(key: str) -> ParsedKey | None:
    """Parse `[<prefix>/]<digits>_<spaceKey>/<pageId>[::<attachmentId>]`; None for keys of anything else."""
    if not isinstance(key, str):
        return None
    segments = key.split("/")
    if len(segments) < 2 or any(not segment for segment in segments):
        return None
    relative = _RELATIVE_KEY.fullmatch(segments[-1])
    space_match = _SPACE_SEGMENT.fullmatch(segments[-2])
    if space_match is None or relative is None:
        return None
    page_id = relative["page_id"]
    prefix_segments = segments[:-2]
    return ParsedKey(
        space_id=space_match["space_id"],
        space_key=space_match["space_key"],
        page_id=page_id,
        partial_key=segments[-2],
        key_prefix="".join(f"{segment}/" for segment in prefix_segments),
        attachment_id=relative["attachment_id"],
    )


def _is_valid_mapping_key(value: str) -> bool:
    return (
        len(value) <= MAPPING_KEY_MAX and _MAPPING_KEY.fullmatch(value) is not None and value not in _DAGSTER_RESERVED
    )


def _hashed_mapping_key(space_key: str, digest_chars: int) -> str:
    digest = hashlib.sha256(space_key.encode("utf-8", "surrogatepass")).hexdigest()[:digest_chars]
    stem = _MAPPING_KEY_INVALID_CHAR.sub("_", space_key)[: MAPPING_KEY_MAX - digest_chars - 1]
    return f"{stem}_{digest}"


def mapping_keys(space_keys: Iterable[str]) -> dict[str, str]:
    """Map each space key to a Dagster DynamicOut mapping key (`^[A-Za-z0-9_]+$`, at most 100 chars).

    Keys Dagster already accepts stay as they are, so step names read `diff_space[ENG]`. Others
    (`~jdoe`, `a-b`, reserved words such as `type`, over-long keys) become their sanitised form plus
    `_` and 8 hex digits of the original's SHA-256, which keeps `a-b` and `a_b` apart. On the
    (astronomically rare) clash a longer digest is used; inputs are handled in sorted order so the
    result depends only on the set of keys.
    """
    ordered: dict[str, None] = {}
    for space_key in space_keys:
        if not isinstance(space_key, str):
            raise ValueError(f"space keys must be strings, got {space_key!r}")
        ordered[space_key] = None

    chosen = {space_key: space_key for space_key in ordered if _is_valid_mapping_key(space_key)}
    taken = set(chosen.values())
    for space_key in sorted(ordered.keys() - chosen.keys()):
        for digest_chars in (8, 16, 32, 64):
            candidate = _hashed_mapping_key(space_key, digest_chars)
            if candidate not in taken:
                break
        else:  # pragma: no cover - needs a full SHA-256 collision
            raise ValueError(f"cannot derive a unique mapping key for space key {space_key!r}")
        chosen[space_key] = candidate
        taken.add(candidate)
    return {space_key: chosen[space_key] for space_key in ordered}
