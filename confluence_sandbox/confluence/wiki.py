"""In-memory Confluence content model (spaces, pages, labels, visibility) behind the emulator, with search indexes."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from confluence_sandbox.confluence.attachments import WikiAttachments

SPACE_TYPES = frozenset({"global", "personal", "collaboration", "knowledge_base"})
CONTENT_TYPES = frozenset({"page", "blogpost"})
FIRST_PAGE_ID = 100000
FIRST_SPACE_ID = 98305
FIRST_LABEL_ID = 5001


def to_millis(when: datetime) -> datetime:
    """Confluence keeps millisecond precision; storing exactly that keeps `Page.when` equal to what the API says."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _now() -> datetime:
    return to_millis(datetime.now(UTC))


class SpaceKeyRenameError(ValueError):
    """Raised when a space key is renamed on a wiki served as Data Center, which has no way to change a key."""

    def __init__(self, old_key: str, new_key: str) -> None:
        super().__init__(
            f"cannot rename space {old_key!r} to {new_key!r}: Confluence Data Center cannot change a space key "
            "(only Cloud can); delete the space and add it again under the new key instead"
        )
        self.old_key = old_key
        self.new_key = new_key


@dataclass
class Space:
    key: str
    name: str
    type: str
    id: int
    status: str = "current"
    hidden: bool = False
    created: datetime = field(default_factory=_now)


@dataclass
class Page:
    """One page or blog post. `when` is the last version's time (aware, UTC, millisecond precision)."""

    id: str
    type: str
    title: str
    space_key: str
    parent_id: str | None
    labels: set[str]
    body: str
    version: int
    when: datetime
    created: datetime
    position: int
    status: str = "current"
    hidden: bool = False

    def ancestors(self, wiki: Wiki) -> list[Page]:
        """Root first, immediate parent last (the order Confluence's `ancestors` expansion uses)."""
        chain: list[Page] = []
        parent_id = self.parent_id
        while parent_id is not None:
            parent = wiki.pages.get(parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent.parent_id
        chain.reverse()
        return chain


class Wiki(WikiAttachments):
    """Thread-safe state; every mutation bumps `revision`, which lets the server cache search results.

    Visibility follows Confluence: view restrictions inherit, so a hidden page hides its whole subtree,
    and a hidden space hides all its content. Attachments: see `WikiAttachments`.
    """

    def __init__(self, *, first_page_id: int = FIRST_PAGE_ID, first_space_id: int = FIRST_SPACE_ID) -> None:
        """`first_page_id`/`first_space_id`: where ids start; two wikis in one sandbox must not share ids."""
        super().__init__()
        self.lock = threading.RLock()
        self.pages: dict[str, Page] = {}
        self.spaces: dict[str, Space] = {}
        self.revision = 0
        self._next_page_id = first_page_id
        self._next_space_id = first_space_id
        self._next_position = 0
        self._label_ids: dict[str, str] = {}
        # Indexes kept in step with `pages` so CQL can avoid scanning every page.
        self._by_label: dict[str, set[str]] = {}
        self._by_space: dict[str, set[str]] = {}
        self._children: dict[str, set[str]] = {}
        self._by_title: dict[str, set[str]] = {}
        self._hidden_pages: set[str] = set()
        # The platform serving this wiki (the emulator sets it); Data Center refuses to rename space keys.
        self.platform: Literal["ONPREM", "CLOUD"] | None = None

    # -- spaces ----------------------------------------------------------------------------
    def add_space(self, key: str, name: str, type: str = "global", space_id: int | None = None) -> Space:  # noqa: A002
        if type not in SPACE_TYPES:
            raise ValueError(f"unknown space type {type!r}; expected one of {sorted(SPACE_TYPES)}")
        with self.lock:
            if self.find_space(key) is not None:
                raise ValueError(f"space {key!r} already exists")
            space = Space(key=key, name=name, type=type, id=self._take_space_id(space_id))
            self.spaces[key] = space
            self._by_space[key] = set()
            self._touch()
            return space

    def find_space(self, key: str) -> Space | None:
        """Space keys are case-insensitive for lookups, as in Confluence (it stores a lower-cased key)."""
        with self.lock:
            space = self.spaces.get(key)
            if space is not None:
                return space
            lowered = key.lower()
            for candidate in self.spaces.values():
                if candidate.key.lower() == lowered:
                    return candidate
            return None

    def space_by_id(self, space_id: int) -> Space | None:
        with self.lock:
            return next((s for s in self.spaces.values() if s.id == space_id), None)

    def hide_space(self, key: str) -> None:
        with self.lock:
            self._space(key).hidden = True
            self._touch()

    def unhide_space(self, key: str) -> None:
        with self.lock:
            self._space(key).hidden = False
            self._touch()

    def delete_space(self, key: str) -> None:
        """Removes the space and everything in it. The key is free again; `add_space` with it hands out a new id."""
        with self.lock:
            space = self._space(key)
            for page_id in list(self._by_space.get(space.key, ())):
                self._unindex(self.pages.pop(page_id))
            del self.spaces[space.key]
            self._by_space.pop(space.key, None)
            self._touch()

    def reassign_space_id(self, key: str, space_id: int | None = None) -> Space:
        """An XML restore or a site migration: the space comes back under a new id (the next free one unless
        `space_id` is given) with the same key, pages and page ids."""
        with self.lock:
            space = self._space(key)
            space.id = self._take_space_id(space_id)
            self._touch()
            return space

    def rename_space(self, old_key: str, new_key: str) -> Space:
        """Cloud's "change space key": same id, the content follows, and the old key no longer resolves.

        Raises `SpaceKeyRenameError` when the wiki is served as Data Center (`platform == "ONPREM"`).
        """
        with self.lock:
            if self.platform == "ONPREM":
                raise SpaceKeyRenameError(old_key, new_key)
            space = self._space(old_key)
            if not new_key or any(ch.isspace() for ch in new_key):
                raise ValueError(f"invalid space key {new_key!r}")
            other = self.find_space(new_key)
            if other is not None and other is not space:
                raise ValueError(f"space {new_key!r} already exists")
            page_ids = self._by_space.pop(space.key, set())
            del self.spaces[space.key]
            space.key = new_key
            self.spaces[new_key] = space
            self._by_space[new_key] = page_ids
            for page_id in page_ids:
                self.pages[page_id].space_key = new_key
            self._touch()
            return space

    # -- pages -----------------------------------------------------------------------------
    def add_page(
        self,
        space_key: str,
        title: str,
        *,
        body: str = "<p>...</p>",
        parent_id: str | None = None,
        labels: Iterable[str] = (),
        type: str = "page",  # noqa: A002
        page_id: str | None = None,
        when: datetime | None = None,
    ) -> Page:
        if type not in CONTENT_TYPES:
            raise ValueError(f"unknown content type {type!r}; expected one of {sorted(CONTENT_TYPES)}")
        with self.lock:
            space = self._space(space_key)
            if parent_id is not None:
                if type != "page":
                    raise ValueError("only pages have parents")
                parent = self._page(parent_id)
                if parent.space_key != space.key:
                    raise ValueError(f"parent {parent_id} is in space {parent.space_key}, not {space.key}")
            if type == "page":
                self._check_title_free(space.key, title, None)
            if page_id is None:
                while str(self._next_page_id) in self.pages:
                    self._next_page_id += 1
                page_id = str(self._next_page_id)
                self._next_page_id += 1
            elif not page_id.isdigit():
                raise ValueError(f"page ids are numeric strings, got {page_id!r}")
            elif page_id in self.pages:
                raise ValueError(f"page id {page_id} already in use")
            stamp = to_millis(when) if when is not None else _now()
            self._next_position += 1
            page = Page(
                id=page_id,
                type=type,
                title=title,
                space_key=space.key,
                parent_id=parent_id,
                labels={_label(label) for label in labels},
                body=body,
                version=1,
                when=stamp,
                created=stamp,
                position=self._next_position,
            )
            self.pages[page_id] = page
            self._index(page)
            self._touch()
            return page

    def update_page(
        self, page_id: str, *, body: str | None = None, title: str | None = None, when: datetime | None = None
    ) -> Page:
        """A new version: number + 1 and `when` = `when` or now (never earlier than the previous version)."""
        with self.lock:
            page = self._page(page_id)
            if title is not None and title != page.title:
                if page.type == "page":
                    self._check_title_free(page.space_key, title, page.id)
                self._unindex(page)
                page.title = title
                self._index(page)
            if body is not None:
                page.body = body
            page.version += 1
            if when is not None:
                page.when = to_millis(when)
            else:
                page.when = max(_now(), page.when + timedelta(milliseconds=1))
            self._touch()
            return page

    def add_label(self, page_id: str, label: str) -> None:
        """Labels are not versioned in Confluence, so this leaves `version` and `when` alone."""
        with self.lock:
            page = self._page(page_id)
            name = _label(label)
            page.labels.add(name)
            self._by_label.setdefault(name, set()).add(page.id)
            self._touch()

    def remove_label(self, page_id: str, label: str) -> None:
        with self.lock:
            page = self._page(page_id)
            name = _label(label)
            page.labels.discard(name)
            self._by_label.get(name, set()).discard(page.id)
            self._touch()

    def set_labels(self, page_id: str, labels: Iterable[str]) -> None:
        with self.lock:
            page = self._page(page_id)
            self._unindex(page)
            page.labels = {_label(label) for label in labels}
            self._index(page)
            self._touch()

    def trash_page(self, page_id: str, *, with_descendants: bool = False) -> None:
        """Moves the page to the trash. Like Confluence, its children move up to its parent unless
        `with_descendants` (Cloud's "delete page and its children") trashes the subtree too."""
        with self.lock:
            page = self._page(page_id)
            if with_descendants:
                for descendant_id in self.descendant_ids(page.id):
                    self.pages[descendant_id].status = "trashed"
            else:
                self._reparent_children(page)
            page.status = "trashed"
            self._touch()

    def restore_page(self, page_id: str) -> None:
        with self.lock:
            self._page(page_id).status = "current"
            self._touch()

    def delete_page(self, page_id: str) -> None:
        """Gone entirely (purged); children move up to the deleted page's parent."""
        with self.lock:
            page = self._page(page_id)
            self._reparent_children(page)
            self._unindex(page)
            del self.pages[page_id]
            self._touch()

    def move_page(self, page_id: str, space_key: str, parent_id: str | None = None) -> None:
        """Moves the page under `parent_id` (or to the space root) in `space_key`, taking its subtree along."""
        with self.lock:
            page = self._page(page_id)
            space = self._space(space_key)
            subtree = [page.id, *self.descendant_ids(page.id)]
            if parent_id is not None:
                parent = self._page(parent_id)
                if parent.space_key != space.key:
                    raise ValueError(f"parent {parent_id} is not in space {space.key}")
                if parent_id in subtree:
                    raise ValueError("cannot move a page below itself")
            if space.key != page.space_key:
                for moved_id in subtree:
                    moved = self.pages[moved_id]
                    if moved.type == "page":
                        self._check_title_free(space.key, moved.title, None)
            for moved_id in subtree:
                moved = self.pages[moved_id]
                self._unindex(moved)
                if moved_id == page.id:
                    moved.parent_id = parent_id
                moved.space_key = space.key
                self._index(moved)
            self._touch()

    def hide_page(self, page_id: str) -> None:
        with self.lock:
            self._page(page_id).hidden = True
            self._hidden_pages.add(page_id)
            self._touch()

    def unhide_page(self, page_id: str) -> None:
        with self.lock:
            self._page(page_id).hidden = False
            self._hidden_pages.discard(page_id)
            self._touch()

    # -- queries used by the server and the CQL evaluator ------------------------------------
    def is_visible(self, page: Page) -> bool:
        """Whether the service user may see this page: its space and every ancestor must be visible too."""
        space = self.spaces.get(page.space_key)
        if space is None or space.hidden:
            return False
        if not self._hidden_pages:
            return True
        current: Page | None = page
        while current is not None:
            if current.hidden:
                return False
            current = self.pages.get(current.parent_id) if current.parent_id is not None else None
        return True

    def visible_space(self, key: str) -> Space | None:
        space = self.find_space(key)
        return space if space is not None and not space.hidden else None

    def label_id(self, label: str) -> str:
        with self.lock:
            if label not in self._label_ids:
                self._label_ids[label] = str(FIRST_LABEL_ID + len(self._label_ids))
            return self._label_ids[label]

    def ids_with_label(self, label: str) -> set[str]:
        return self._by_label.get(_label(label), set())

    def ids_in_space(self, key: str) -> set[str]:
        return self._by_space.get(key, set())

    def ids_with_title(self, title: str) -> set[str]:
        return self._by_title.get(title.lower(), set())

    def child_ids(self, page_id: str) -> list[str]:
        """Direct children in position order (trashed and hidden included; callers filter)."""
        children = [self.pages[c] for c in self._children.get(page_id, ())]
        return [c.id for c in sorted(children, key=lambda c: c.position)]

    def descendant_ids(self, page_id: str) -> list[str]:
        """All depths, top-down (breadth first)."""
        found: list[str] = []
        frontier = [page_id]
        while frontier:
            next_frontier: list[str] = []
            for current in frontier:
                kids = self.child_ids(current)
                found.extend(kids)
                next_frontier.extend(kids)
            frontier = next_frontier
        return found

    def depth(self, page: Page) -> int:
        depth = 0
        parent_id = page.parent_id
        while parent_id is not None and parent_id in self.pages:
            depth += 1
            parent_id = self.pages[parent_id].parent_id
        return depth

    def __iter__(self) -> Iterator[Page]:
        return iter(list(self.pages.values()))

    # -- internals -------------------------------------------------------------------------
    def _touch(self) -> None:
        self.revision += 1

    def _take_space_id(self, space_id: int | None) -> int:
        """Ids only grow, as in Confluence: a deleted space's id is not handed out again unless asked for."""
        if space_id is None:
            space_id = self._next_space_id
        if any(s.id == space_id for s in self.spaces.values()):
            raise ValueError(f"space id {space_id} already in use")
        self._next_space_id = max(self._next_space_id, space_id + 1)
        return space_id

    def _space(self, key: str) -> Space:
        space = self.find_space(key)
        if space is None:
            raise KeyError(f"no space {key!r}")
        return space

    def _page(self, page_id: str) -> Page:
        page = self.pages.get(page_id)
        if page is None:
            raise KeyError(f"no page {page_id!r}")
        return page

    def _check_title_free(self, space_key: str, title: str, own_id: str | None) -> None:
        """Confluence keeps page titles unique per space (case-insensitively)."""
        for other_id in self._by_title.get(title.lower(), ()):
            other = self.pages[other_id]
            if (
                other.id != own_id
                and other.space_key == space_key
                and other.type == "page"
                and other.status == "current"
            ):
                raise ValueError(f"a page titled {title!r} already exists in space {space_key}")

    def _reparent_children(self, page: Page) -> None:
        for child_id in self.child_ids(page.id):
            child = self.pages[child_id]
            self._unindex(child)
            child.parent_id = page.parent_id
            self._index(child)

    def _index(self, page: Page) -> None:
        for label in page.labels:
            self._by_label.setdefault(label, set()).add(page.id)
        self._by_space.setdefault(page.space_key, set()).add(page.id)
        if page.parent_id is not None:
            self._children.setdefault(page.parent_id, set()).add(page.id)
        self._by_title.setdefault(page.title.lower(), set()).add(page.id)
        if page.hidden:
            self._hidden_pages.add(page.id)

    def _unindex(self, page: Page) -> None:
        for label in page.labels:
            self._by_label.get(label, set()).discard(page.id)
        self._by_space.get(page.space_key, set()).discard(page.id)
        if page.parent_id is not None:
            self._children.get(page.parent_id, set()).discard(page.id)
        self._by_title.get(page.title.lower(), set()).discard(page.id)
        self._hidden_pages.discard(page.id)


def _label(label: str) -> str:
    """Confluence lower-cases labels and forbids spaces in them."""
    name = label.strip().lower()
    if not name or any(ch.isspace() for ch in name):
        raise ValueError(f"invalid label {label!r}")
    return name
