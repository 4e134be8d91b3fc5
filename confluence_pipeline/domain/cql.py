"""Builds every CQL query the sync sends, so that no caller ever splices an unquoted value into CQL."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from confluence_pipeline.domain.models import Platform

ANCESTOR_BATCH = 100
"""Ids per `ancestor IN (...)` query (what the vendor's connector uses; keeps URLs well under 8 KB)."""

BODY_BATCH = 50
"""Ids per body fetch: DC caps any `body.*` expansion at 50 results per page."""

_EXCLUDE_ATTACHMENTS = "type != attachment"
_NEWEST_FIRST = "ORDER BY lastmodified DESC"
_DIGITS = re.compile(r"[0-9]+")


def _is_rejected_char(char: str) -> bool:
    # Cc covers C0, DEL and C1 controls; Cs (lone surrogates) cannot be UTF-8 encoded into a URL.
    return unicodedata.category(char) in ("Cc", "Cs")


def is_quotable(value: str) -> bool:
    """True when `quote` accepts `value` (it contains no control characters or lone surrogates)."""
    return isinstance(value, str) and not any(_is_rejected_char(char) for char in value)


def quote(value: str) -> str:
    """Return `value` as a double-quoted CQL string literal.

    Always quoting means a label such as `a") OR (label="b` stays one literal instead of widening the
    query. Control characters are refused rather than escaped: CQL has no escape for them and a
    label or space key never legitimately contains one.
    """
    if not isinstance(value, str):
        raise ValueError(f"CQL value must be a string, got {type(value).__name__}: {value!r}")
    if not is_quotable(value):
        raise ValueError(f"CQL value contains a control character: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _label_clause(single_label: str, all_label: str) -> str:
    for name, label in (("single", single_label), ("all", all_label)):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"the {name} sync label must be a non-empty string, got {label!r}")
    return f"((label={quote(single_label)}) OR (label={quote(all_label)}))"


def _space_type_clause(platform: Platform) -> str:
    if not isinstance(platform, Platform):
        raise ValueError(f"unknown Confluence platform: {platform!r}")
    # `global` first: the query text stays the same whatever a platform adds.
    types = sorted(platform.syncable_space_types, key=lambda kind: (kind != "global", kind))
    clauses = [f"space.type={kind}" for kind in types]
    return clauses[0] if len(clauses) == 1 else f"({' OR '.join(clauses)})"


def _id_list(ids: Sequence[str], what: str) -> str:
    if isinstance(ids, str | bytes):
        # A bare string is a Sequence of characters; "123" must not become "1,2,3".
        raise ValueError(f"{what} must be a sequence of id strings, not a single string: {ids!r}")
    id_list = list(ids)
    if not id_list:
        raise ValueError(f"{what} must not be empty")
    for content_id in id_list:
        if not isinstance(content_id, str) or not _DIGITS.fullmatch(content_id):
            raise ValueError(f"{what} must be decimal content ids, got {content_id!r}")
    return ",".join(id_list)


def discovery_cql(single_label: str, all_label: str, platform: Platform) -> str:
    """Labelled pages and blog posts in global (Cloud: also collaboration) spaces; personal spaces never."""
    return f"{_label_clause(single_label, all_label)} AND {_space_type_clause(platform)} AND {_EXCLUDE_ATTACHMENTS}"


def descendants_cql(ancestor_ids: Sequence[str]) -> str:
    """All descendants, at any depth, of the given pages (callers batch by `ANCESTOR_BATCH`)."""
    return f"ancestor IN ({_id_list(ancestor_ids, 'ancestor ids')}) AND {_EXCLUDE_ATTACHMENTS}"


def ids_cql(ids: Sequence[str]) -> str:
    """Exactly the given content ids (callers batch by `BODY_BATCH` when bodies are expanded)."""
    return f"id IN ({_id_list(ids, 'content ids')})"


def space_labelled_cql(single_label: str, all_label: str, space_key: str) -> str:
    """The confirming query before a space's content is cleaned up: labelled content in that space only."""
    if not isinstance(space_key, str) or not space_key:
        raise ValueError(f"space key must be a non-empty string, got {space_key!r}")
    return f"{_label_clause(single_label, all_label)} AND space = {quote(space_key)} AND {_EXCLUDE_ATTACHMENTS}"


def newest_labelled_cql(single_label: str, all_label: str, platform: Platform) -> str:
    """The discovery query, most recently modified first: its first visible result is the latest change.

    Ordering instead of a `lastmodified >=` date literal keeps the question independent of the zone Confluence
    reads literals in (the server's or the user's), which the connector cannot know.
    """
    return f"{discovery_cql(single_label, all_label, platform)} {_NEWEST_FIRST}"


def newest_descendant_cql(ancestor_ids: Sequence[str]) -> str:
    """The descendants of the given pages, most recently modified first (callers batch by `ANCESTOR_BATCH`)."""
    return f"{descendants_cql(ancestor_ids)} {_NEWEST_FIRST}"


TITLE_BATCH = 20
"""(space, title) pairs per page-by-title query: each pair adds about 60 characters to the URL."""


def page_titles_cql(pairs: Sequence[tuple[str, str]]) -> str:
    """Pages by (space key, title), as storage format names the page an image is attached to."""
    if isinstance(pairs, str | bytes) or not pairs:
        raise ValueError(f"page titles must be a non-empty sequence of (space key, title) pairs, got {pairs!r}")
    clauses = []
    for space_key, title in pairs:
        if not space_key or not title:
            raise ValueError(f"a page is named by a space key and a title, got {(space_key, title)!r}")
        clauses.append(f"(space = {quote(space_key)} AND title = {quote(title)})")
    return f"type = page AND ({' OR '.join(clauses)})"
