"""Confluence REST client: CQL search with each platform's pagination, batched bodies, instance identity."""

from __future__ import annotations

import logging
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote as quote_path
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confluence_pipeline.clients.attachment_wire import (
    MalformedAttachment,
    inline_attachments,
    malformed,
    v1_attachment,
    v2_attachment,
)
from confluence_pipeline.clients.errors import RemoteHttpError, RemoteNotFound, UnexpectedResponse
from confluence_pipeline.clients.oauth import ClientCredentialsAuth, ClientCredentialsTokens
from confluence_pipeline.clients.ratelimit import RateLimiter
from confluence_pipeline.clients.transport import HttpApi, RequestCounter, RetryPolicy
from confluence_pipeline.config.secrets import Scrubber, reveal
from confluence_pipeline.config.settings import CloudSettings, OnPremSettings
from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import BODY_BATCH, TITLE_BATCH, ids_cql, page_titles_cql, quote
from confluence_pipeline.domain.models import AttachmentRef, PageBody, PageRef, Platform, SpaceRef, SyncLabels
from confluence_pipeline.domain.ownership import content_mark
from confluence_pipeline.domain.timefmt import to_utc_iso

ConfluenceSettings = OnPremSettings | CloudSettings

log = logging.getLogger(__name__)

DISCOVERY_EXPAND = ("space", "version", "metadata.labels")
CONFIRM_EXPAND = ("space", "version", "metadata.labels", "ancestors")
CONFIRM_BATCH = 200  # ids per confirming query: DC caps results with non-body expansions at 200
BODY_EXPAND = ("body.storage", "space", "version", "metadata.labels")
DISCOVERY_PAGE_SIZE = 200  # DC caps expanded searches at 200; larger requests are silently cut
SYNCABLE_TYPES = frozenset({"page", "blogpost"})
_SHRINKABLE_STATUSES = frozenset({500, 502, 503, 504})
_SEARCH_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_LIMIT_PARAM = re.compile(r"([?&]limit=)\d+")
# Attachments arrive with their pages: their version is the one sub-expansion `children.attachment` needs
# (`extensions` with media type and size, and `_links`, always come along).
ATTACHMENT_EXPAND = ("children.attachment.version",)
ATTACHMENT_PAGE_SIZE = 200  # DC caps listings with expansions at 200
V2_ATTACHMENT_PAGE_SIZE = 250  # the v2 maximum
DOWNLOAD_ROUTE = "GET attachment download"
DOWNLOAD_CHUNK = 64 * 1024
# Looking for the first visible match: one result first (the usual answer), then pages of PROBE_PAGE_SIZE. 25 is
# below every DC cap (50 with bodies, 200 with other expansions, 1000 without), so an empty DC page spans exactly
# that many rows.
PROBE_PAGE_SIZE = 25
PROBE_MAX_PAGES = 10


# -- wire models (only the fields we rely on; everything else is ignored) ------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Space(_Wire):
    id: int | str
    key: str
    name: str = ""
    type: str = "global"


class _Version(_Wire):
    number: int
    when: str


class _Label(_Wire):
    name: str


class _LabelArray(_Wire):
    results: list[_Label] = []


class _Metadata(_Wire):
    labels: _LabelArray = _LabelArray()


class _Storage(_Wire):
    value: str


class _Body(_Wire):
    storage: _Storage | None = None


class _Links(_Wire):
    webui: str | None = None


class _Content(_Wire):
    id: str
    type: str
    status: str = "current"
    title: str = ""
    space: _Space | None = None
    version: _Version | None = None
    metadata: _Metadata = _Metadata()
    body: _Body | None = None
    links: _Links = Field(default_factory=_Links, alias="_links")

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SearchPage(BaseModel):
    """One result page of `content/search`, as far as pagination needs it."""

    model_config = ConfigDict(extra="ignore")
    results: list[dict[str, Any]]
    next_link: str | None = None
    base: str | None = None


class ConfluenceClient(ABC):
    """One interface for DC/Server and Cloud; subclasses differ only in pagination and URLs."""

    platform: Platform

    def __init__(
        self, settings: ConfluenceSettings, api: HttpApi, tokens: ClientCredentialsTokens | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.tokens = tokens  # the OAuth service account's tokens, when it authenticates that way
        self._spaces: dict[tuple[str, str, str, str], SpaceRef] = {}

    # -- platform specifics ---------------------------------------------------------------------
    def _search_pages(self, cql: str, expand: Sequence[str], limit: int) -> Iterator[list[dict[str, Any]]]:
        """Yield the raw results of every page of a CQL search that were not seen on an earlier page.

        Stops at the first empty page (DC may send one, with a `next`, past the last row); the listing stops
        when `next` is absent.
        """
        seen: set[str] = set()
        for page in self._listing(cql, expand, limit):
            fresh = [item for item in page.results if str(item.get("id")) not in seen]
            seen.update(str(item.get("id")) for item in page.results)
            if fresh:
                yield fresh
            if not page.results:
                return

    @abstractmethod
    def _listing(self, cql: str, expand: Sequence[str], limit: int) -> Iterator[SearchPage]:
        """Yield every result page of a CQL search as the server sends it, empty ones included, until `next`
        is absent."""

    @abstractmethod
    def web_url(self, content: dict[str, Any], page_id: str) -> str:
        """Human-facing link to a page."""

    # -- shared ---------------------------------------------------------------------------------
    def _get_search(self, url: str, params: dict[str, Any] | None) -> SearchPage:
        # A 500 on a search is answered by shrinking the page (below), not by repeating it as is.
        payload = self.api.json(
            "GET", url, route="GET content/search", params=params, retry_statuses=_SEARCH_RETRY_STATUSES
        )
        return _parse_search_page(payload, url)

    def _get_search_shrinking(
        self, url_for_limit: Any, limit: int, params_for_limit: Any = None
    ) -> tuple[SearchPage, int]:
        """GET one result page; on a persistent 5xx halve the page size and try again (large pages cause 5xx)."""
        while True:
            try:
                params = params_for_limit(limit) if params_for_limit else None
                return self._get_search(url_for_limit(limit), params), limit
            except RemoteHttpError as exc:
                if exc.status not in _SHRINKABLE_STATUSES or limit <= 1:
                    raise
                smaller = max(1, limit // 2)
                log.warning(
                    "Confluence answered %s to a page of %d results; retrying with %d", exc.status, limit, smaller
                )
                limit = smaller

    def search(
        self, cql: str, *, expand: Sequence[str] = DISCOVERY_EXPAND, limit: int = DISCOVERY_PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        return self._search_pages(cql, expand, limit)

    @property
    def attachment_expand(self) -> tuple[str, ...]:
        """What page reads add to list each page's attachments: nothing unless attachments or images are on."""
        return ATTACHMENT_EXPAND if self.settings.lists_attachments else ()

    def search_pages(self, cql: str) -> Iterator[list[PageRef]]:
        """Yield syncable pages/blog posts of a discovery-style CQL search, one result page at a time."""
        for results in self.search(cql, expand=(*DISCOVERY_EXPAND, *self.attachment_expand)):
            yield [ref for ref in (self.page_ref(item) for item in results) if ref is not None]

    def has_any(self, cql: str) -> bool:
        """Whether a CQL query matches anything visible (`first_visible` says what an empty page is worth)."""
        return self.first_visible(cql) is not None

    def newest_modified(self, cql: str) -> str | None:
        """When the first visible result of `cql` was last modified (UTC, `…Z`); None when nothing matches.

        Callers order the query newest first (`domain.cql.newest_labelled_cql`), so this is the latest
        modification Confluence reports, by Confluence's own clock and in no particular zone.
        """
        item = self.first_visible(cql, ("version",))
        if item is None:
            return None
        version = item.get("version")
        when = version.get("when") if isinstance(version, dict) else ""
        try:
            return to_utc_iso(when)
        except ValueError as exc:
            raise malformed(f"content {item.get('id')} has an unreadable version time: {exc}") from exc

    def first_visible(self, cql: str, expand: Sequence[str] = ()) -> dict[str, Any] | None:
        """The first result of a CQL search the caller may view, or None when the search ends without one.

        Confluence applies view permissions after it has cut a result page, so a page can come back empty
        while `next` says more follows: an empty page alone proves nothing. One result is asked for first;
        when that page is empty but not the last, the search is walked again in pages of PROBE_PAGE_SIZE, at
        most PROBE_MAX_PAGES of them. A search still going on after those raises `UnexpectedResponse`: "not
        sure" must never read as "nothing", since a confirming query's "nothing" lets a space be cleaned up.
        """
        for probe in self._listing(cql, expand, 1):
            if probe.results:
                return probe.results[0]
            if not probe.next_link:
                return None
            break
        for number, page in enumerate(self._listing(cql, expand, PROBE_PAGE_SIZE), start=1):
            if page.results:
                return page.results[0]
            if page.next_link and number >= PROBE_MAX_PAGES:
                raise UnexpectedResponse(
                    system="confluence",
                    method="GET",
                    route="GET content/search",
                    status=200,
                    detail=(
                        f"{number} result pages of {PROBE_PAGE_SIZE} in a row came back empty although more "
                        "were announced (content the service user may not view); cannot tell whether anything "
                        "visible matches"
                    ),
                )
        return None

    def fetch_bodies(self, page_ids: Sequence[str]) -> dict[str, PageBody]:
        """Storage bodies of up to BODY_BATCH pages in one search (two if the server caps lower).

        Pages that vanished or became invisible since discovery are simply absent.
        """
        if len(page_ids) > BODY_BATCH:
            raise ValueError(f"at most {BODY_BATCH} bodies per batch, got {len(page_ids)}")
        bodies: dict[str, PageBody] = {}
        for results in self._search_pages(ids_cql(page_ids), self._body_expand(), BODY_BATCH):
            for item in results:
                body = self.page_body(item)
                if body is not None:
                    bodies[body.page.id] = body
        return bodies

    def fetch_body(self, page_id: str) -> PageBody | None:
        """One page's body by id (the fallback when a batch fails); None when gone or hidden."""
        try:
            payload = self.api.json(
                "GET",
                f"{self.settings.api_root}/content/{page_id}",
                route="GET content/{id}",
                params={"expand": ",".join(self._body_expand())},
            )
        except RemoteNotFound:
            return None
        return self.page_body(payload)

    def page_ref(self, item: dict[str, Any]) -> PageRef | None:
        """Parse one search result; None for types we do not sync or non-current content."""
        try:
            content = _Content.model_validate(item)
        except ValidationError as exc:
            raise malformed(f"a search result is missing fields: {_short_errors(exc)}") from exc
        if content.type not in SYNCABLE_TYPES or content.status != "current":
            return None
        if content.space is None or content.version is None:
            raise malformed(f"content {content.id} came back without space or version expanded")
        # One SpaceRef object per space and interned labels and types: discovery holds every page of
        # the wiki at once, and these shared values made up half of each page's footprint.
        wire_space = (str(content.space.id), content.space.key, content.space.name, content.space.type)
        space = self._spaces.get(wire_space)
        if space is None:
            space = self._spaces.setdefault(wire_space, SpaceRef(*wire_space))
        try:
            updated_at = to_utc_iso(content.version.when)
        except ValueError as exc:
            raise malformed(f"content {content.id} has an unreadable version time: {exc}") from exc
        if not space.id.isdigit():
            # Keys and partial keys are built from it; a non-numeric id would fail later, mid-plan.
            raise malformed(f"content {content.id} has a non-numeric space id {space.id!r}")
        labels = tuple(sorted({sys.intern(label.name.lower()) for label in content.metadata.labels.results}))
        try:
            listed = inline_attachments(
                item, page_id=content.id, web_base=self.settings.web_base, keep_download=self._keeps_download
            )
        except MalformedAttachment as exc:
            raise malformed(str(exc)) from exc
        attachments, more = listed if listed is not None else ((), False)
        return PageRef(
            id=content.id,
            type=sys.intern(content.type),
            title=content.title,
            space=space,
            version=content.version.number,
            updated_at=updated_at,
            web_url=self.web_url(item, content.id),
            labels=labels,
            attachments=attachments,
            more_attachments=more,
        )

    def page_body(self, item: dict[str, Any]) -> PageBody | None:
        ref = self.page_ref(item)
        if ref is None:
            return None
        storage = ((item.get("body") or {}).get("storage") or {}).get("value")
        if not isinstance(storage, str):
            raise malformed(f"content {ref.id} came back without body.storage")
        return PageBody(page=ref, storage=storage)

    def space_visible(self, space_key: str) -> bool:
        """Whether the space exists and the service user can see it."""
        try:
            self.api.json("GET", f"{self.settings.api_root}/space/{space_key}", route="GET space/{key}")
        except RemoteNotFound:
            return False
        return True

    # -- identity ---------------------------------------------------------------------------------
    def instance_mark(self) -> str:
        """The ownership mark of this Confluence instance (one unauthenticated request, or none on Cloud
        with CONFLUENCE_CLOUD_ID set)."""
        return content_mark(self.platform, self._instance_id())

    @abstractmethod
    def _instance_id(self) -> str:
        """The server id (DC) or cloud id (Cloud) of this Confluence."""

    def _public_id(self, url: str, route: str, field: str, missing: str) -> str:
        """The non-empty string `field` of the JSON at `url`, asked without credentials (Confluence 10 answers
        XML unless asked for JSON); UnexpectedResponse with `missing` when there is none."""
        payload = self.api.json("GET", url, route=route, auth=None)
        value = payload.get(field) if isinstance(payload, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise malformed(missing, route)
        return value.strip()

    @abstractmethod
    def resolve_space(self, space_id: str, key_hint: str) -> SpaceRef | None:
        """The space with this id as it is now (its key may have changed), or None when it is gone or hidden."""

    def _space_ref(self, payload: Any, route: str) -> SpaceRef:
        try:
            space = _Space.model_validate(payload)
        except ValidationError as exc:
            raise malformed(f"a space is missing fields: {_short_errors(exc)}", route) from exc
        return SpaceRef(str(space.id), space.key, space.name, space.type)

    # -- deletion confirmation --------------------------------------------------------------------
    def pages_still_synced(self, page_ids: Sequence[str], space_id: str, labels: SyncLabels) -> dict[str, PageRef]:
        """Of `page_ids` (missing from discovery), those still in the sync set of space `space_id`.

        Still synced means: visible and current, in that space, in a syncable space type, and either
        labelled itself or below a page carrying the subtree label. Two batched queries per 200 pages:
        the pages with their ancestors, then which of those ancestors carry the subtree label.
        """
        kept: dict[str, PageRef] = {}
        unlabelled: dict[str, tuple[PageRef, frozenset[str]]] = {}
        space_types = self.platform.syncable_space_types
        for batch in batched(list(dict.fromkeys(page_ids)), CONFIRM_BATCH):
            expand = (*CONFIRM_EXPAND, *self.attachment_expand)
            for results in self._search_pages(ids_cql(batch), expand, CONFIRM_BATCH):
                for item in results:
                    ref = self.page_ref(item)
                    if ref is None or ref.space.id != space_id or ref.space.type not in space_types:
                        continue  # deleted, trashed, hidden, moved away or not syncable: it left the sync set
                    if labels.single in ref.labels or labels.subtree in ref.labels:
                        kept[ref.id] = ref
                    else:
                        unlabelled[ref.id] = (ref, _ancestor_ids(item))
        ancestors = sorted({a for _, ids in unlabelled.values() for a in ids}, key=lambda a: (len(a), a))
        tree_roots: set[str] = set()
        for batch in batched(ancestors, CONFIRM_BATCH):
            cql = f"{ids_cql(batch)} AND label = {quote(labels.subtree)}"
            for results in self._search_pages(cql, (), CONFIRM_BATCH):
                tree_roots.update(str(item.get("id")) for item in results)
        for page_id, (ref, ids) in unlabelled.items():
            if ids & tree_roots:
                kept[page_id] = ref
        return kept

    @property
    def scrubber(self) -> Scrubber:
        return self.api.scrubber

    def request_counts(self) -> dict[str, int]:
        return self.api.counter.snapshot()

    # -- attachments --------------------------------------------------------------------------
    _keeps_download = False  # DC downloads from `_links.download`; Cloud through the REST route

    def _body_expand(self) -> tuple[str, ...]:
        # Inlining images needs the page's own attachments next to its body.
        return (*BODY_EXPAND, *self.attachment_expand) if self.settings.inline_images else BODY_EXPAND

    @abstractmethod
    def _list_attachments(self, page: PageRef) -> list[AttachmentRef]:
        """Every current attachment of one page, by the platform's per-page listing."""

    @abstractmethod
    def _download_url(self, page_id: str, attachment: AttachmentRef) -> str:
        """Where the bytes of this version of the attachment are served."""

    def complete_attachments(self, page: PageRef) -> PageRef:
        """`page` with all its attachments, listing them when its inline list was cut; unchanged otherwise.

        A page that vanished or became hidden since it was read keeps its partial list, still marked partial,
        so nothing is decided on a list known to be incomplete.
        """
        if not page.more_attachments:
            return page
        try:
            listed = self._list_attachments(page)
        except RemoteNotFound:
            log.warning("Page %s vanished while its attachments were listed; its list stays partial", page.id)
            return page
        unique = {ref.id: ref for ref in listed}
        return replace(page, attachments=tuple(unique.values()), more_attachments=False)

    def pages_with_attachments(self, page_ids: Sequence[str]) -> dict[str, PageRef]:
        """The pages among `page_ids` that are visible and current, each with all its attachments."""
        found: dict[str, PageRef] = {}
        expand = (*DISCOVERY_EXPAND, *ATTACHMENT_EXPAND)
        for batch in batched(list(dict.fromkeys(page_ids)), CONFIRM_BATCH):
            for results in self._search_pages(ids_cql(batch), expand, CONFIRM_BATCH):
                for item in results:
                    ref = self.page_ref(item)
                    if ref is not None:
                        found[ref.id] = self.complete_attachments(ref)
        return found

    def pages_by_title(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], PageRef]:
        """Pages named by (space key, title), as storage format names them, each with all its attachments.

        Keys are the pairs as Confluence compares them: space key and title case-folded.
        """
        found: dict[tuple[str, str], PageRef] = {}
        expand = (*DISCOVERY_EXPAND, *ATTACHMENT_EXPAND)
        wanted = sorted({(space.casefold(), title.casefold()): (space, title) for space, title in pairs}.values())
        for batch in batched(wanted, TITLE_BATCH):
            for results in self._search_pages(page_titles_cql(batch), expand, CONFIRM_BATCH):
                for item in results:
                    ref = self.page_ref(item)
                    if ref is not None and ref.type == "page":
                        found[(ref.space.key.casefold(), ref.title.casefold())] = self.complete_attachments(ref)
        return found

    @contextmanager
    def download(self, page_id: str, attachment: AttachmentRef) -> Iterator[Iterator[bytes]]:
        """The bytes of the attachment's listed version, streamed: open, read chunk by chunk, closed on exit.

        Counted and paced like every Confluence request; Cloud's 302 to its media host is followed without
        the credentials (httpx drops them on a redirect to another origin).
        """
        url = self._download_url(page_id, attachment)
        with self.api.stream("GET", url, route=DOWNLOAD_ROUTE, headers={"Accept": "*/*"}) as response:
            yield self.api.iter_body(response, route=DOWNLOAD_ROUTE, chunk_size=DOWNLOAD_CHUNK)

    def _attachment_listing(
        self, payload: Any, route: str, page: PageRef, *, v2: bool
    ) -> tuple[list[AttachmentRef], Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            raise malformed(f"the attachments of page {page.id} came without a results list", route)
        refs: list[AttachmentRef] = []
        try:
            for item in payload["results"]:
                if not isinstance(item, dict):
                    raise MalformedAttachment(f"an attachment of page {page.id} is not a JSON object")
                ref = (
                    v2_attachment(item, page_id=page.id, web_base=self.settings.web_base)
                    if v2
                    else v1_attachment(
                        item, page_id=page.id, web_base=self.settings.web_base, keep_download=self._keeps_download
                    )
                )
                if ref is not None:
                    refs.append(ref)
        except MalformedAttachment as exc:
            raise malformed(str(exc), route) from exc
        return refs, (payload.get("_links") or {}).get("next")

    def close(self) -> None:
        self.api.close()
        if self.tokens is not None:
            self.tokens.api.close()


class OnPremConfluenceClient(ConfluenceClient):
    """Confluence Data Center / Server."""

    platform = Platform.ONPREM

    def _listing(self, cql: str, expand: Sequence[str], limit: int) -> Iterator[SearchPage]:
        # DC writes a wrong `start` into `next` when it caps the page size and may return rows or an empty page
        # past the end: the offset is ours, derived from what came back.
        url = f"{self.settings.api_root}/content/search"
        start = 0
        while True:

            def params(size: int, offset: int = start) -> dict[str, Any]:
                query: dict[str, Any] = {"cql": cql, "limit": size, "start": offset}
                if expand:
                    query["expand"] = ",".join(expand)
                return query

            page, limit = self._get_search_shrinking(lambda _size: url, limit, params)
            yield page
            if not page.next_link:
                return
            # A page emptied by permissions still spanned `limit` rows.
            start += len(page.results) or limit

    def web_url(self, content: dict[str, Any], page_id: str) -> str:
        return f"{self.settings.base_url}/pages/viewpage.action?pageId={page_id}"

    _keeps_download = True

    def _list_attachments(self, page: PageRef) -> list[AttachmentRef]:
        # `child/attachment` pages like a search on DC: `next` may carry a wrong start and may follow the last
        # row, so the offset is derived from what came back and an empty page ends the list.
        route = "GET content/{id}/child/attachment"
        url = f"{self.settings.api_root}/content/{page.id}/child/attachment"
        refs: list[AttachmentRef] = []
        start = 0
        while True:
            params = {"start": start, "limit": ATTACHMENT_PAGE_SIZE, "expand": "version"}
            payload = self.api.json("GET", url, route=route, params=params)
            found, next_link = self._attachment_listing(payload, route, page, v2=False)
            refs.extend(found)
            results = payload["results"]
            if not results or not next_link:
                return refs
            start += len(results)

    def _download_url(self, page_id: str, attachment: AttachmentRef) -> str:
        # `_links.download` is relative to `_links.base`, which is the base URL with its context path.
        if attachment.download:
            return f"{self.settings.base_url}{attachment.download}"
        return (
            f"{self.settings.base_url}/download/attachments/{page_id}/{quote_path(attachment.title, safe='')}"
            f"?version={attachment.version}&api=v2"
        )

    def _instance_id(self) -> str:
        url = f"{self.settings.base_url}/rest/applinks/1.0/manifest"
        return self._public_id(url, "GET applinks manifest", "id", "the applinks manifest has no server id")

    def resolve_space(self, space_id: str, key_hint: str) -> SpaceRef | None:
        # DC cannot look a space up by id, but it cannot change a space's key either: a space with this id,
        # if it still exists, still has the key it had. Another id under that key means ours is gone.
        route = "GET space/{key}"
        try:
            payload = self.api.json("GET", f"{self.settings.api_root}/space/{quote_path(key_hint)}", route=route)
        except RemoteNotFound:
            return None
        space = self._space_ref(payload, route)
        return space if space.id == space_id else None


class CloudConfluenceClient(ConfluenceClient):
    """Confluence Cloud, through the site or the API gateway."""

    platform = Platform.CLOUD

    def _api_prefix(self) -> str:
        # `next` links are relative to `.../wiki`, not to the API root; on the gateway we must stay on
        # the gateway, since scoped tokens are refused on the site.
        return self.settings.api_root[: -len("/rest/api")]

    def _listing(self, cql: str, expand: Sequence[str], limit: int) -> Iterator[SearchPage]:
        query: dict[str, Any] = {"cql": cql, "limit": limit}
        if expand:
            query["expand"] = ",".join(expand)
        url = str(httpx.URL(f"{self.settings.api_root}/content/search", params=query))
        while True:
            page, limit = self._get_search_shrinking(lambda size, u=url: _LIMIT_PARAM.sub(rf"\g<1>{size}", u), limit)
            yield page
            if not page.next_link:
                return
            url = self._join_next(page.next_link)  # follow `next` verbatim: the cursor is already percent-encoded

    def _join_next(self, link: str) -> str:
        if urlsplit(link).scheme:
            return link
        path = link if link.startswith("/") else f"/{link}"
        if path.startswith("/wiki/"):
            path = path[len("/wiki") :]
        return f"{self._api_prefix()}{path}"

    def _list_attachments(self, page: PageRef) -> list[AttachmentRef]:
        # The v1 continuation of `children.attachment` answers 410 Gone on Cloud: the v2 list replaces it.
        route = "GET v2 attachments"
        kind = "blogposts" if page.type == "blogpost" else "pages"
        url = f"{self._api_prefix()}/api/v2/{kind}/{page.id}/attachments"
        params: dict[str, Any] | None = {"limit": V2_ATTACHMENT_PAGE_SIZE}
        refs: list[AttachmentRef] = []
        while True:
            payload = self.api.json("GET", url, route=route, params=params)
            found, next_link = self._attachment_listing(payload, route, page, v2=True)
            refs.extend(found)
            if not payload["results"] or not next_link:
                return refs
            url, params = self._join_next(next_link), None  # the cursor is already in the link

    def _download_url(self, page_id: str, attachment: AttachmentRef) -> str:
        # `_links.download` refuses OAuth tokens on Cloud; this route works with every credential and
        # answers with a redirect to the media host.
        return (
            f"{self.settings.api_root}/content/{page_id}/child/attachment/"
            f"{quote_path(attachment.id, safe='')}/download?version={attachment.version}"
        )

    def web_url(self, content: dict[str, Any], page_id: str) -> str:
        webui = (content.get("_links") or {}).get("webui")
        if isinstance(webui, str) and webui:
            return f"{self.settings.web_base}{webui}"
        return f"{self.settings.web_base}/pages/viewpage.action?pageId={page_id}"

    def _instance_id(self) -> str:
        if self.settings.cloud_id:
            return self.settings.cloud_id
        url = f"{self.settings.base_url}/_edge/tenant_info"
        return self._public_id(url, "GET tenant_info", "cloudId", "tenant_info has no cloudId")

    def resolve_space(self, space_id: str, key_hint: str) -> SpaceRef | None:
        # Cloud can rename a space key, so only the id identifies it: ask the v2 API by id.
        route = "GET v2 spaces"
        payload = self.api.json("GET", f"{self._api_prefix()}/api/v2/spaces", route=route, params={"ids": space_id})
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise malformed("the v2 spaces response has no results list", route)
        for item in results:
            if isinstance(item, dict) and str(item.get("id")) == space_id:
                return self._space_ref(item, route)
        return None

    def fetch_body(self, page_id: str) -> PageBody | None:
        # v1 single-content routes are deprecated on Cloud; read one page through CQL instead.
        bodies: dict[str, PageBody] = {}
        for results in self._search_pages(ids_cql([page_id]), self._body_expand(), 1):
            for item in results:
                body = self.page_body(item)
                if body is not None:
                    bodies[body.page.id] = body
        return bodies.get(page_id)


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` as an httpx auth, so a request can opt out with auth=None."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _ancestor_ids(item: dict[str, Any]) -> frozenset[str]:
    ancestors = item.get("ancestors")
    if not isinstance(ancestors, list):
        return frozenset()
    return frozenset(str(a.get("id")) for a in ancestors if isinstance(a, dict) and str(a.get("id", "")).isdigit())


def _parse_search_page(payload: Any, url: str) -> SearchPage:
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise malformed("the search response has no results list")
    if not all(isinstance(item, dict) for item in payload["results"]):
        raise malformed("a search result is not a JSON object")
    links = payload.get("_links") or {}
    return SearchPage(results=payload["results"], next_link=links.get("next"), base=links.get("base"))


def _short_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:3])


def build_confluence_client(
    settings: ConfluenceSettings,
    *,
    transport: httpx.BaseTransport | None = None,
    verify: Any = None,
    retry: RetryPolicy | None = None,
    timeout: httpx.Timeout | None = None,
) -> ConfluenceClient:
    """The client for the configured platform, with its auth, rate limit and retries.

    `retry` and `timeout` default to the configured (patient) settings; sensors pass short ones.
    """
    patience = float(settings.http.timeout_seconds)
    options: dict[str, Any] = {
        "system": "confluence",
        "headers": {"Accept": "application/json"},
        # Shared with the token endpoint's API, so token requests count against CONFLUENCE_TOKENS_PER_MINUTE
        # and in the run's request counts, and an issued token is scrubbed from every message.
        "limiter": RateLimiter(settings.tokens_per_minute),
        "counter": RequestCounter(),
        "scrubber": Scrubber(secret.get_secret_value() for secret in settings.secrets),
        "timeout": timeout or httpx.Timeout(patience, connect=min(15.0, patience)),
        "retry": retry or RetryPolicy(retry_after_max=settings.http.retry_after_max_seconds),
        "transport": transport,
        "verify": verify,
    }
    tokens: ClientCredentialsTokens | None = None
    auth: httpx.Auth
    if settings.uses_oauth:
        token_api = HttpApi(
            base_url=settings.token_url, logger=logging.getLogger("confluence_pipeline.clients.oauth.http"), **options
        )
        tokens = ClientCredentialsTokens(
            token_api,
            token_url=settings.token_url,
            client_id=settings.client_id or "",
            client_secret=reveal(settings.client_secret) or "",
            scopes=settings.scopes,
            body="form" if settings.platform is Platform.ONPREM else "json",
        )
        auth = ClientCredentialsAuth(tokens)
    elif isinstance(settings, OnPremSettings):
        if settings.pat is not None:
            auth = BearerAuth(settings.pat.get_secret_value())
        else:
            auth = httpx.BasicAuth(settings.username or "", reveal(settings.password) or "")
    else:
        auth = httpx.BasicAuth(settings.cloud_user or "", reveal(settings.cloud_token) or "")
    api = HttpApi(
        base_url=settings.api_root,
        auth=auth,
        logger=logging.getLogger("confluence_pipeline.clients.confluence.http"),
        **options,
    )
    cls = OnPremConfluenceClient if settings.platform is Platform.ONPREM else CloudConfluenceClient
    return cls(settings, api, tokens)
