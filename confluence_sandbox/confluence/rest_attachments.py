"""Attachment routes: v1 and v2 listings, and downloads (DC bytes from the site, Cloud 302s to the media host)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confluence_sandbox.confluence.attachments import Attachment, AttachmentVersion
from confluence_sandbox.confluence.downloads import binary_response
from confluence_sandbox.confluence.errors import HttpError, v1_error, v2_error
from confluence_sandbox.confluence.pagination import content_array, int_param, v2_results
from confluence_sandbox.confluence.render import Renderer
from confluence_sandbox.confluence.render_attachments import DEFAULT_EXPAND
from confluence_sandbox.confluence.rest_v1 import _expand
from confluence_sandbox.confluence.rest_v2 import _multi
from confluence_sandbox.confluence.wiki import Page
from confluence_sandbox.http import Request, Response

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator, Route

V2_STATUSES = frozenset({"current", "archived", "trashed"})
V2_SORTS = frozenset({"created-date", "-created-date", "modified-date", "-modified-date"})


class AttachmentRoutes:
    """Answers attachment requests from the emulator's wiki; knobs are read from the emulator on every request.

    Routes (`{api}` = the v1 API root on either host, `{v2}` = `/wiki/api/v2` on the site or the gateway):

    - `GET {api}/content/{id}/child/attachment?start&limit&expand&filename&mediaType`: a ContentArray with
      `metadata` always expanded, default limit 50 on DC and 25 on Cloud, capped like content with expansions
      (DC `cap_expand`, default 200), with DC's `next` miscount and trailing empty page. On Cloud any
      `start > 0` answers 410 Gone while `cloud_attachment_pagination_gone` is True (default).
    - `GET {v2}/pages/{id}/attachments`, `{v2}/blogposts/{id}/attachments` (`cursor`, `limit` 1-250 default 50,
      `mediaType`, `filename`, `status`, `sort`) and `GET {v2}/attachments/{id}`; 404 when the page is hidden.
    - `GET {base}/download/attachments/{pageId}/{filename}?version=N` (`_links.download`): on DC 200 with the
      bytes, streamed; on Cloud (`/wiki/download/…`, also through the gateway) a 302 to the media host, and a
      401 for any `Authorization: Bearer` while `cloud_download_refuses_bearer` is True (default).
    - `GET {api}/content/{id}/child/attachment/{attId}/download?version=N` (Cloud, site and gateway): 302 to the
      media host.
    """

    def __init__(self, emulator: ConfluenceEmulator, renderer: Renderer) -> None:
        self._emulator = emulator
        self._json = renderer.attachments

    # -- listings ----------------------------------------------------------------------------
    def list_v1(self, request: Request, page: Page, *, cap: int) -> Response:
        emulator = self._emulator
        cloud = emulator.mode == "CLOUD"
        if cloud and emulator.cloud_attachment_pagination_gone and int_param(request, "start", 0) > 0:
            # Cloud retired paging through v1 attachment lists; clients must switch to the v2 list.
            return v1_error(410, f"Paging v1 attachments of content {page.id} is no longer supported; use v2")
        filename = request.param("filename")
        media_type = request.param("mediaType")
        found = [
            a
            for a in emulator.wiki.attachments_of(page.id)
            if (filename is None or a.title == filename) and (media_type is None or a.media_type == media_type)
        ]
        expand = _expand(request) | DEFAULT_EXPAND
        path = f"/rest/api/content/{page.id}/child/attachment"
        return content_array(
            emulator,
            request,
            found,
            lambda a: self._json.content(a, expand),
            path=path,
            cap=cap,
            default_limit=25 if cloud else 50,
        )

    def list_v2(self, request: Request, page: Page, resource: str) -> Response:
        wiki = self._emulator.wiki
        statuses = set(_multi(request, "status")) or {"current"}
        if not statuses <= V2_STATUSES:
            return v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid status: {','.join(sorted(statuses))}")
        sort = request.param("sort")
        if sort is not None and sort not in V2_SORTS:
            return v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid sort: {sort}")
        filename = request.param("filename")
        media_type = request.param("mediaType")
        found = [
            a
            for a in wiki.attachments_of(page.id, statuses=statuses)
            if (filename is None or a.title == filename) and (media_type is None or a.media_type == media_type)
        ]
        if sort is not None:
            if sort.endswith("created-date"):
                found.sort(key=lambda a: (a.created, int(a.numeric_id)), reverse=sort.startswith("-"))
            else:
                found.sort(key=lambda a: (a.when, int(a.numeric_id)), reverse=sort.startswith("-"))
        path = f"/wiki/api/v2/{resource}/{page.id}/attachments"
        return v2_results(self._emulator, request, found, self._json.v2, path, default_limit=50)

    def get_v2(self, request: Request, route: Route, raw_id: str) -> Response:
        wiki = self._emulator.wiki
        try:
            attachment = wiki.attachment(raw_id)
        except KeyError:
            attachment = None
        if attachment is None or not route.cloud_id_ok or not wiki.attachment_visible(attachment):
            return v2_error(404, "NOT_FOUND", "Not Found")
        body = self._json.v2(attachment)
        body["_links"]["base"] = self._emulator.links.base
        return Response.json(body)

    # -- downloads ---------------------------------------------------------------------------
    def refuse_bearer(self, request: Request, route: Route) -> Response | None:
        """Cloud's `/download/attachments` servlet does not take OAuth tokens (nor any other Bearer)."""
        emulator = self._emulator
        if route.kind != "download" or emulator.mode != "CLOUD" or not emulator.cloud_download_refuses_bearer:
            return None
        scheme = request.headers.get("authorization", "").strip().partition(" ")[0].lower()
        if scheme != "bearer":
            return None
        message = (
            "OAuth 2.0 is not supported on /download/attachments; "
            "use /rest/api/content/{id}/child/attachment/{attachmentId}/download"
        )
        return v1_error(401, message, {"WWW-Authenticate": 'Basic realm="Confluence"'})

    def download(self, request: Request, route: Route) -> Response:
        """`_links.download`: `route.rest` is `{pageId}/{filename}` (already percent-decoded)."""
        emulator = self._emulator
        wiki = emulator.wiki
        page_id, _, filename = route.rest.partition("/")
        with wiki.lock:
            page = wiki.pages.get(page_id)
            attachment = wiki.find_attachment(page_id, filename) if page is not None else None
            if attachment is None or not route.cloud_id_ok or not wiki.attachment_visible(attachment):
                return v1_error(404, f"No attachment {filename!r} on content {page_id}")
            version = _version(request, attachment)
        if emulator.mode == "CLOUD":
            return self._redirect(attachment, version)
        return binary_response(request, attachment, version, emulator.body_cuts)

    def download_v1(self, request: Request, page: Page, raw_id: str) -> Response:
        """Cloud's REST download route; DC has no such route."""
        emulator = self._emulator
        if emulator.mode != "CLOUD":
            return v1_error(404, f"No route for /rest/api/content/{page.id}/child/attachment/{raw_id}/download")
        try:
            attachment: Attachment | None = emulator.wiki.attachment(raw_id)
        except KeyError:
            attachment = None
        if attachment is None or attachment.container is not page or not emulator.wiki.attachment_visible(attachment):
            return v1_error(404, f"No content found with id: ContentId{{id={raw_id}}}")
        return self._redirect(attachment, _version(request, attachment))

    def _redirect(self, attachment: Attachment, version: AttachmentVersion) -> Response:
        media = self._emulator.media
        assert media is not None  # every Cloud emulator has one
        return Response(302, b"", {"Location": media.redirect_url(attachment, version), "Cache-Control": "no-cache"})


def _version(request: Request, attachment: Attachment) -> AttachmentVersion:
    raw = request.param("version")
    if raw is None or raw == "":
        return attachment.current
    if not raw.isdigit():
        raise HttpError(v1_error(400, f"Invalid version: {raw}"))
    version = attachment.at_version(int(raw))
    if version is None:
        raise HttpError(v1_error(404, f"No version {raw} of attachment {attachment.id}"))
    return version
