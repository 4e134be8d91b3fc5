"""Target scopes in Unique: where each space's pages go, and which Confluence spaces Unique already holds."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from confluence_pipeline.clients.unique import ScopeNode, UniqueClient
from confluence_pipeline.domain.keys import parse_content_key, partial_key
from confluence_pipeline.domain.models import SpaceRef
from confluence_pipeline.domain.ownership import Ownership, ownership, partial_key_of_scope, scope_external_id
from confluence_pipeline.domain.scopes import scope_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSpace:
    """A Confluence space that Unique holds content of: `stored_prefix` is what its keys start with."""

    space_id: str
    space_key: str
    stored_prefix: str
    scope_id: str | None


def _fixed_segments(template: str) -> list[str]:
    """The path segments before the first placeholder: the parent of every space scope."""
    fixed: list[str] = []
    for segment in template.strip("/").split("/"):
        if "{" in segment:
            break
        fixed.append(segment)
    return fixed


def _template_depth(template: str) -> int:
    return len(template.strip("/").split("/")) - len(_fixed_segments(template))


class TargetScopes:
    """Resolves scopes for spaces: one configured scope, or one scope per space from the path template."""

    def __init__(
        self, unique: UniqueClient, *, scope_id: str | None, template: str, source_name: str, mark: str
    ) -> None:
        self.unique = unique
        self.scope_id = scope_id
        self.template = template
        self.source_name = source_name
        self.mark = mark  # this Confluence instance's ownership mark on content
        # What `stored_spaces` learnt, so that `holds_content` does not ask Unique again (cleared by `ensure`):
        # the marked space scopes with their partial keys, the item count per partial key it asked for, and
        # in single-scope mode whether the scope holds an item in this connector's key form.
        self._scanned_scopes: list[tuple[ScopeNode, str]] | None = None
        self._counts: dict[str, int] = {}
        self._saw_content_key: bool | None = None

    @property
    def single(self) -> bool:
        return self.scope_id is not None

    def external_id(self, space: SpaceRef) -> str:
        """Marks a space scope as ours, so a later run can find it when the space vanished."""
        return scope_external_id(self.source_name, partial_key(space))

    # -- writes ---------------------------------------------------------------------------------
    def ensure(self, spaces: Collection[SpaceRef]) -> dict[str, str]:
        """Scope id per space key, creating per-space scopes (and marking them) when needed."""
        self._scanned_scopes, self._counts, self._saw_content_key = None, {}, None
        if self.scope_id is not None:
            return {space.key: self.scope_id for space in spaces}
        ordered = sorted(spaces, key=lambda s: s.key)
        if not ordered:
            return {}
        scopes = self.unique.scopes_for_paths([scope_path(self.template, s) for s in ordered])
        resolved: dict[str, str] = {}
        for space, scope in zip(ordered, scopes, strict=True):
            resolved[space.key] = scope.id
            wanted = self.external_id(space)
            if scope.external_id == wanted or self._marks_another_copy(scope, space):
                continue
            try:
                self.unique.set_scope_external_id(scope.id, wanted)
            except Exception as exc:  # marking only helps later cleanup; never block ingestion
                log.warning("Could not mark scope %s of space %s as ours: %s", scope.id, space.key, exc)
        return resolved

    def _marks_another_copy(self, scope: ScopeNode, space: SpaceRef) -> bool:
        """Whether the scope's mark names an older copy of this space that still holds content.

        A space re-created with the same key gets the same scope path. Its old copy is only found again
        through this mark, so the mark moves to the new prefix once the old copy is gone, not before.
        """
        previous = partial_key_of_scope(scope.external_id, self.source_name)
        if previous is None or previous == partial_key(space):
            return False
        if self.unique.count({"key": {"startsWith": f"{previous}/"}}) == 0:
            return False
        log.info("Scope %s keeps its mark for %s until that copy is cleaned up", scope.id, previous)
        return True

    # -- reads ----------------------------------------------------------------------------------
    def _root(self) -> ScopeNode | None:
        """The scope above all space scopes (None: it does not exist yet, or the template has no fixed part)."""
        parent: ScopeNode | None = None
        for name in _fixed_segments(self.template):
            if parent is None:
                candidates = [s for s in self.unique.find_scopes({"name": {"equals": name}}) if s.parent_id is None]
            else:
                candidates = [s for s in self.unique.find_scopes({"parentId": {"equals": parent.id}}) if s.name == name]
            if not candidates:
                return None
            parent = candidates[0]
        return parent

    def _marked_space_scopes(self) -> list[tuple[ScopeNode, str]]:
        """Every scope at the template's depth below the root that carries our mark, with its partial key."""
        if self._scanned_scopes is not None:
            return self._scanned_scopes
        root = self._root()
        if _fixed_segments(self.template) and root is None:
            return []
        if root is None:
            # A template with no fixed part puts space scopes at the top level: only marked ones are ours.
            level, steps = self.unique.find_scopes({"parentId": {"equals": None}}), _template_depth(self.template) - 1
        else:
            level, steps = [root], _template_depth(self.template)
        for _ in range(steps):
            level = [c for s in level for c in self.unique.find_scopes({"parentId": {"equals": s.id}})]
        marked = [(s, partial_key_of_scope(s.external_id, self.source_name)) for s in level]
        self._scanned_scopes = [(s, pk) for s, pk in marked if pk is not None]
        return self._scanned_scopes

    def _count(self, pk: str) -> int:
        if pk not in self._counts:
            self._counts[pk] = self.unique.count({"key": {"startsWith": f"{pk}/"}})
        return self._counts[pk]

    def stored_spaces(self, discovered: Iterable[SpaceRef], stored_counts: Mapping[str, int]) -> list[StoredSpace]:
        """Spaces Unique holds content of that are not among `discovered`.

        `stored_counts` is the exact number of stored items per discovered partial key: in
        single-scope mode the scope is only listed when it holds more than that.
        """
        known = {partial_key(space) for space in discovered}
        if self.scope_id is not None:
            total = self.unique.count({"ownerId": {"equals": self.scope_id}, "ownerType": {"equals": "SCOPE"}})
            if total <= sum(stored_counts.get(pk, 0) for pk in known):
                self._saw_content_key = False if total == 0 else None
                return []
            found: dict[str, StoredSpace] = {}
            self._saw_content_key = False
            for node in self.unique.iter_content({"ownerId": {"equals": self.scope_id}}):
                parsed = parse_content_key(node.key)
                self._saw_content_key = self._saw_content_key or parsed is not None
                if parsed is None or parsed.stored_partial_key in known or parsed.stored_partial_key in found:
                    continue
                # Key shape alone never makes content ours: our mark, or no mark in this connector's key form.
                kind = ownership(node.metadata, self.mark)
                if kind is Ownership.FOREIGN or (kind is Ownership.UNMARKED and parsed.key_prefix):
                    continue
                found[parsed.stored_partial_key] = StoredSpace(
                    parsed.space_id, parsed.space_key, parsed.stored_partial_key, self.scope_id
                )
            return sorted(found.values(), key=lambda s: (s.space_key, s.stored_prefix))
        vanished: list[StoredSpace] = []
        for scope, pk in self._marked_space_scopes():
            parsed = parse_content_key(f"{pk}/0")
            if parsed is None or parsed.partial_key in known:
                continue
            if self._count(pk) == 0:
                continue
            vanished.append(StoredSpace(parsed.space_id, parsed.space_key, pk, scope.id))
        return sorted(vanished, key=lambda s: s.space_key)

    def holds_content(self) -> bool:
        """Whether Unique holds any content of this Confluence in the target scope(s)."""
        if self.scope_id is not None:
            if self._saw_content_key is not None:
                return self._saw_content_key
            return any(
                parse_content_key(node.key) is not None
                for node in self.unique.iter_content({"ownerId": {"equals": self.scope_id}})
            )
        return any(self._count(pk) > 0 for _, pk in self._marked_space_scopes())
