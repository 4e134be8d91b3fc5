"""Marks that say "this Confluence instance wrote it": on per-space scopes (their external id)."""

from __future__ import annotations

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
