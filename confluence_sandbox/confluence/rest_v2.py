"""Cloud REST v2 handlers (`/wiki/api/v2/...`): pages, blog posts, their labels and attachments, spaces."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluence_sandbox.confluence.errors import HttpError, v2_error
from confluence_sandbox.confluence.pagination import v2_cursor, v2_results
from confluence_sandbox.confluence.render import Renderer
from confluence_sandbox.confluence.wiki import Page
from confluence_sandbox.http import Request, Response

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator, Route

BODY_FORMATS_LIST = frozenset({"storage", "atlas_doc_format", "view"})
BODY_FORMATS_SINGLE = BODY_FORMATS_LIST | {"export_view", "styled_view", "editor", "anonymous_export_view"}
SORTS = frozenset({"id", "created-date", "modified-date", "title"})


class RestV2:
    """Answers v2 requests from the emulator's wiki."""

    def __init__(self, emulator: ConfluenceEmulator, renderer: Renderer) -> None:
        self._emulator = emulator
        self._renderer = renderer

    def handle(self, request: Request, route: Route) -> Response:
        rest = route.rest.rstrip("/")
        wiki = self._emulator.wiki
        with wiki.lock:
            if rest in ("pages", "blogposts"):
                return self._content_list(request, route, "page" if rest == "pages" else "blogpost", rest)
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)", rest):
                return self._content(request, route, match.group(2), match.group(1))
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)/attachments", rest):
                page = self._page(route, match.group(2), match.group(1))
                return self._emulator.attachment_routes.list_v2(request, page, match.group(1))
            if match := re.fullmatch(r"attachments/([^/]+)", rest):
                return self._emulator.attachment_routes.get_v2(request, route, match.group(1))
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)/labels", rest):
                page = self._page(route, match.group(2), match.group(1))
                labels = sorted(page.labels)
                return v2_results(self._emulator, request, labels, self._renderer.v2_label, f"/wiki/api/v2/{rest}")
            if rest == "spaces":
                return self._spaces(request, route)
            if match := re.fullmatch(r"spaces/(\d+)", rest):
                space = wiki.space_by_id(int(match.group(1)))
                if space is None or space.hidden or not route.cloud_id_ok:
                    return v2_error(404, "NOT_FOUND", "Not Found")
                body = self._renderer.v2_space(space)
                body["_links"]["base"] = self._emulator.links.base
                return Response.json(body)
        return v2_error(404, "NOT_FOUND", "Not Found")

    def _page(self, route: Route, page_id: str, resource: str) -> Page:
        wiki = self._emulator.wiki
        page = wiki.pages.get(page_id)
        kind = "page" if resource == "pages" else "blogpost"
        if (
            page is None
            or page.type != kind
            or page.status != "current"
            or not route.cloud_id_ok
            or not wiki.is_visible(page)
        ):
            raise HttpError(v2_error(404, "NOT_FOUND", "Not Found"))
        return page

    def _content_list(self, request: Request, route: Route, kind: str, resource: str) -> Response:
        wiki = self._emulator.wiki
        fmt = _body_format(request, BODY_FORMATS_LIST)
        ids = _multi(request, "id")
        if len(ids) > 250:
            return v2_error(400, "INVALID_REQUEST_PARAMETER", "At most 250 ids")
        space_ids = set(_multi(request, "space-id"))
        statuses = set(_multi(request, "status")) or {"current"}
        title = request.param("title")
        sort = request.param("sort") or "id"
        if sort.lstrip("-") not in SORTS:
            return v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid sort: {sort}")
        if not route.cloud_id_ok:
            pool: list[Page] = []
        elif ids:
            pool = [wiki.pages[i] for i in dict.fromkeys(ids) if i in wiki.pages]
        else:
            pool = list(wiki.pages.values())
        pages = [
            p
            for p in pool
            if p.type == kind
            and p.status in statuses
            and wiki.is_visible(p)
            and (not space_ids or str(wiki.spaces[p.space_key].id) in space_ids)
            and (title is None or p.title == title)
        ]
        keys: dict[str, Callable[[Page], Any]] = {
            "id": lambda p: int(p.id),
            "created-date": lambda p: (p.created, int(p.id)),
            "modified-date": lambda p: (p.when, int(p.id)),
            "title": lambda p: (p.title.lower(), int(p.id)),
        }
        pages.sort(key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
        render = self._renderer.v2_content
        return v2_results(self._emulator, request, pages, lambda p: render(p, fmt), f"/wiki/api/v2/{resource}")

    def _content(self, request: Request, route: Route, page_id: str, resource: str) -> Response:
        page = self._page(route, page_id, resource)
        fmt = _body_format(request, BODY_FORMATS_SINGLE)
        include_version = (request.param("include-version") or "true").lower() != "false"
        body = self._renderer.v2_content(page, fmt, include_version=include_version)
        if (request.param("include-labels") or "").lower() == "true":
            labels = sorted(page.labels)
            body["labels"] = {
                "results": [self._renderer.v2_label(label) for label in labels[:50]],
                "meta": {"hasMore": len(labels) > 50, "cursor": v2_cursor(50) if len(labels) > 50 else None},
                "_links": {"self": f"/wiki/api/v2/{resource}/{page.id}/labels"},
            }
        body["_links"]["base"] = self._emulator.links.base
        return Response.json(body)

    def _spaces(self, request: Request, route: Route) -> Response:
        ids = set(_multi(request, "ids"))
        keys = set(_multi(request, "keys"))
        kind = request.param("type")
        status = request.param("status")
        spaces = sorted(self._emulator.wiki.spaces.values(), key=lambda s: s.id) if route.cloud_id_ok else []
        spaces = [
            s
            for s in spaces
            if not s.hidden
            and (not ids or str(s.id) in ids)
            and (not keys or s.key in keys)
            and (kind is None or s.type == kind)
            and (status is None or s.status == status)
        ]
        return v2_results(self._emulator, request, spaces, self._renderer.v2_space, "/wiki/api/v2/spaces")


def _multi(request: Request, name: str) -> list[str]:
    """A list parameter, whether repeated (`id=1&id=2`, `id[]=1`) or comma-separated (`id=1,2`)."""
    raw = request.query.get(name, []) + request.query.get(f"{name}[]", [])
    return [part.strip() for value in raw for part in value.split(",") if part.strip()]


def _body_format(request: Request, allowed: frozenset[str]) -> str | None:
    fmt = request.param("body-format")
    if fmt is not None and fmt not in allowed:
        raise HttpError(v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid body-format: {fmt}"))
    return fmt
