"""REST v1 handlers (`/rest/api/...`) as DC/Server and Cloud answer them: search, content, children, spaces."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from confluence_sandbox.confluence.cql import CqlError, SearchCache, SearchScope, UnknownSpaceError, evaluate, parse
from confluence_sandbox.confluence.errors import HttpError, v1_error
from confluence_sandbox.confluence.pagination import content_array
from confluence_sandbox.confluence.render import Renderer
from confluence_sandbox.confluence.render_attachments import DEFAULT_EXPAND
from confluence_sandbox.confluence.wiki import Page
from confluence_sandbox.http import Request, Response

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator, Route


class RestV1:
    """Answers v1 requests from the emulator's wiki; quirk knobs are read from the emulator on every request."""

    def __init__(self, emulator: ConfluenceEmulator, renderer: Renderer) -> None:
        self._emulator = emulator
        self._renderer = renderer
        self._search_cache = SearchCache()

    def handle(self, request: Request, route: Route) -> Response:
        rest = route.rest.rstrip("/")
        handlers: list[tuple[str, Callable[..., Response]]] = [
            (r"content/search", self._search),
            (r"content", self._content_list),
            (r"content/(\d+)", self._content),
            (r"content/(\d+)/child/page", self._children),
            (r"content/(\d+)/child/attachment", self._attachments),
            (r"content/(\d+)/child/attachment/([^/]+)/download", self._attachment_download),
            (r"content/(\d+)/descendant/page", self._descendants),
            (r"content/(\d+)/label", self._labels),
            (r"space", self._spaces),
            (r"space/([^/]+)", self._space),
        ]
        for pattern, handler in handlers:
            if match := re.fullmatch(pattern, rest):
                with self._emulator.wiki.lock:
                    return handler(request, route, *match.groups())
        if re.fullmatch(r"content/[^/]+", rest):
            return v1_error(404, f"No content found with id: ContentId{{id={rest.split('/')[1]}}}")
        return v1_error(404, f"No route for /rest/api/{rest}")

    # -- handlers ----------------------------------------------------------------------------
    def _search(self, request: Request, route: Route) -> Response:
        emulator = self._emulator
        cql = request.param("cql")
        if not cql:
            return v1_error(400, "CQL query parameter is required")
        try:
            query = parse(cql)
        except CqlError as exc:
            return v1_error(400, str(exc))
        if query.uses_now and emulator.mode == "ONPREM" and not emulator.dc_accepts_now:
            return v1_error(400, f"Could not parse cql : {cql}")
        expand = _expand(request)
        cap = self._content_cap(expand)
        path = "/rest/api/content/search"
        if not route.cloud_id_ok:
            return content_array(emulator, request, [], self._content_json(expand), path=path, cap=cap, cursor=True)
        unknown: Literal["error", "empty"] = "error"
        if emulator.mode == "CLOUD" or emulator.dc_unknown_space == "empty":
            unknown = "empty"
        scope = SearchScope(
            emulator.wiki,
            emulator.mode,
            self._timezone(),
            unknown,
            now=emulator.cql_now,
            default_order=emulator.search_order,
            include_hidden=emulator.filter_after_paging,
        )
        try:
            pages = self._search_cache.search(query, scope) if emulator.search_cache else evaluate(query, scope)
        except UnknownSpaceError:
            if emulator.dc_unknown_space == "500":
                return v1_error(500, "java.lang.NullPointerException")
            return v1_error(400, "parameters should not be empty")
        cursor = emulator.mode == "CLOUD"
        visible = emulator.wiki.content_visible if emulator.filter_after_paging else None
        render = self._content_json(expand)
        response = content_array(emulator, request, pages, render, path=path, cap=cap, cursor=cursor, visible=visible)
        if response.status == 200:
            emulator.search_page_served()
        return response

    def _content_list(self, request: Request, route: Route) -> Response:
        wiki = self._emulator.wiki
        expand = _expand(request)
        if not route.cloud_id_ok:
            raise HttpError(v1_error(404, "Not Found"))
        kind = request.param("type") or "page"
        status = request.param("status") or "current"
        title = request.param("title")
        space_key = request.param("spaceKey")
        pool = list(wiki.pages.values())
        if space_key:
            space = wiki.visible_space(space_key)
            if space is None:
                return v1_error(404, f"No space with key : {space_key}")
            pool = [wiki.pages[i] for i in wiki.ids_in_space(space.key)]
        pages = [
            p
            for p in pool
            if p.type == kind
            and (status == "any" or p.status == status)
            and (title is None or p.title == title)
            and wiki.is_visible(p)
        ]
        pages.sort(key=lambda p: int(p.id))
        return content_array(
            self._emulator,
            request,
            pages,
            self._content_json(expand),
            path="/rest/api/content",
            cap=self._content_cap(expand),
        )

    def _content(self, request: Request, route: Route, page_id: str) -> Response:
        status = request.param("status") or "current"
        statuses = {s.strip() for s in status.split(",")}
        page = self._visible_page(page_id, route, statuses)
        expand = _expand(request) if "expand" in request.query else {"space", "version", "history"}
        body = self._renderer.content(page, expand)
        links = self._emulator.links
        body["_links"].update({"base": links.base, "context": links.context})
        return Response.json(body)

    def _children(self, request: Request, route: Route, page_id: str) -> Response:
        wiki = self._emulator.wiki
        parent = self._visible_page(page_id, route)
        children = [wiki.pages[c] for c in wiki.child_ids(parent.id)]
        children = [c for c in children if c.status == "current" and wiki.is_visible(c)]
        expand = _expand(request)
        path = f"/rest/api/content/{page_id}/child/page"
        cap = self._content_cap(expand)
        return content_array(self._emulator, request, children, self._content_json(expand), path=path, cap=cap)

    def _attachments(self, request: Request, route: Route, page_id: str) -> Response:
        page = self._visible_page(page_id, route)
        cap = self._content_cap(_expand(request) | DEFAULT_EXPAND)
        return self._emulator.attachment_routes.list_v1(request, page, cap=cap)

    def _attachment_download(self, request: Request, route: Route, page_id: str, attachment_id: str) -> Response:
        page = self._visible_page(page_id, route)
        return self._emulator.attachment_routes.download_v1(request, page, attachment_id)

    def _descendants(self, request: Request, route: Route, page_id: str) -> Response:
        emulator = self._emulator
        wiki = emulator.wiki
        if emulator.mode == "ONPREM":
            return v1_error(400, "Descendants of type page are not supported; only comment")
        root = self._visible_page(page_id, route)
        depth_param = (request.param("depth") or "all").lower()
        if depth_param == "all":
            max_depth = None
        elif depth_param == "root":
            max_depth = 1
        elif depth_param.isdigit() and 1 <= int(depth_param) <= 100:
            max_depth = int(depth_param)
        else:
            return v1_error(400, f"Invalid depth: {depth_param}")
        base_depth = wiki.depth(root)
        found = [wiki.pages[d] for d in wiki.descendant_ids(root.id)]
        found = [
            p
            for p in found
            if p.status == "current"
            and wiki.is_visible(p)
            and (max_depth is None or wiki.depth(p) - base_depth <= max_depth)
        ]
        expand = _expand(request)
        path = f"/rest/api/content/{page_id}/descendant/page"
        cap = self._content_cap(expand)
        return content_array(emulator, request, found, self._content_json(expand), path=path, cap=cap)

    def _labels(self, request: Request, route: Route, page_id: str) -> Response:
        page = self._visible_page(page_id, route)
        labels = sorted(page.labels)
        path = f"/rest/api/content/{page_id}/label"
        return content_array(
            self._emulator, request, labels, self._renderer.label, path=path, cap=200, default_limit=200
        )

    def _spaces(self, request: Request, route: Route) -> Response:
        emulator = self._emulator
        keys = {k for raw in request.query.get("spaceKey", []) for k in raw.split(",") if k}
        kind = request.param("type")
        status = request.param("status")
        spaces = [] if not route.cloud_id_ok else sorted(emulator.wiki.spaces.values(), key=lambda s: s.key)
        spaces = [
            s
            for s in spaces
            if not s.hidden
            and (not keys or s.key in keys)
            and (kind is None or s.type == kind)
            and (status is None or s.status == status)
        ]
        cap = emulator.cap_space if emulator.mode == "ONPREM" else emulator.cloud_cap_other
        return content_array(emulator, request, spaces, self._renderer.space, path="/rest/api/space", cap=cap)

    def _space(self, request: Request, route: Route, key: str) -> Response:
        space = self._emulator.wiki.visible_space(key) if route.cloud_id_ok else None
        if space is None:
            return v1_error(404, f"No space found with key : {key}")
        body = self._renderer.space(space)
        links = self._emulator.links
        body["_links"].update({"base": links.base, "context": links.context})
        return Response.json(body)

    # -- shared ------------------------------------------------------------------------------
    def _visible_page(self, page_id: str, route: Route, statuses: set[str] | None = None) -> Page:
        wiki = self._emulator.wiki
        page = wiki.pages.get(page_id)
        statuses = statuses or {"current"}
        if (
            page is None
            or not route.cloud_id_ok
            or not wiki.is_visible(page)
            or ("any" not in statuses and page.status not in statuses)
        ):
            raise HttpError(v1_error(404, f"No content found with id: ContentId{{id={page_id}}}"))
        return page

    def _content_cap(self, expand: set[str]) -> int:
        """The platform's largest page size for content, which depends on what is expanded."""
        emulator = self._emulator
        has_body = any(e == "body" or e.startswith("body.") for e in expand)
        if emulator.mode == "CLOUD":
            return emulator.cloud_cap_body if has_body else emulator.cloud_cap_other
        if has_body:
            return emulator.cap_body
        return emulator.cap_expand if expand else emulator.cap_none

    def _timezone(self) -> tzinfo:
        setting = self._emulator.cql_timezone
        if isinstance(setting, str):
            return UTC if setting.upper() == "UTC" else ZoneInfo(setting)
        return setting

    def _content_json(self, expand: set[str]) -> Callable[[Page], dict[str, Any]]:
        return lambda page: self._renderer.content(page, expand)


def _expand(request: Request) -> set[str]:
    return {part.strip() for raw in request.query.get("expand", []) for part in raw.split(",") if part.strip()}
