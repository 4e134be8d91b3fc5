"""Marks that say "this Confluence instance wrote it": on content (metadata) and on per-space scopes (external id)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from confluence_pipeline.domain.models import Platform

SCOPE_MARK_PREFIX = "confluence-pipeline:"


def scope_mark(source_name: str) -> str:
    """The external-id prefix of every space scope this instance created."""
    return f"{SCOPE_MARK_PREFIX}{source_name}:"


def scope_external_id(source_name: str, space_partial_key: str) -> str:
    """The external id of one space's scope, so a later run can find it after the space vanished."""
    return f"{scope_mark(source_name)}{space_partial_key}"


def partial_key_of_scope(external_id: str | None, source_name: str) -> str | None:
    """The space partial key a scope's external id names, or None when another instance (or nobody) owns it."""
    mark = scope_mark(source_name)
    if not external_id or not external_id.startswith(mark):
        return None
    return external_id[len(mark) :] or None


# -- content: which Confluence instance wrote an item --------------------------------------------------------
OWNER_METADATA_KEY = "confluenceInstance"
"""Metadata key carrying the ownership mark on every item this connector writes."""


def content_mark(platform: Platform, instance_id: str) -> str:
    """The ownership mark of one Confluence instance: its server id (DC) or cloud id (Cloud).

    An id, not the base URL: a host or context-path change must not orphan what the instance wrote, and two
    instances (two DCs, or DC and Cloud during a migration) always have different ids. The form is the one
    the vendor's connector uses for its root scopes.
    """
    if not instance_id or any(ch.isspace() for ch in instance_id):
        raise ValueError(f"a Confluence instance id must be a non-empty word, got {instance_id!r}")
    kind = "data-center" if platform is Platform.ONPREM else "cloud"
    return f"confc:{kind}:{instance_id}"


class Ownership(StrEnum):
    OURS = "ours"  # carries this instance's mark
    UNMARKED = "unmarked"  # written before marks existed (an older connector): ours only if its space resolves here
    FOREIGN = "foreign"  # carries another instance's mark: never touched


def ownership(metadata: Mapping[str, object] | None, mark: str) -> Ownership:
    value = (metadata or {}).get(OWNER_METADATA_KEY)
    if value is None or value == "":
        return Ownership.UNMARKED
    return Ownership.OURS if value == mark else Ownership.FOREIGN
