"""The Confluence emulator's HTTP app: DC/Server and Cloud REST (v1 and v2) over a `Wiki`, quirks included."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, parse_qsl, quote, quote_plus, urlsplit
from zoneinfo import ZoneInfo

from confluence_sandbox.confluence.cql import (
    CqlError,
    SearchCache,
    SearchScope,
    UnknownSpaceError,
    parse,
)
from confluence_sandbox.confluence.wiki import Page, Space, Wiki
from confluence_sandbox.http import REDACTED, EmulatorServer, RecordedRequest, Request, Response

Mode = Literal["ONPREM", "CLOUD"]
T = TypeVar("T")

DEFAULT_CLOUD_ID = "8c3b4f6e-2a1d-4c5e-9f70-1a2b3c4d5e6f"
DEFAULT_SERVER_ID = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff"
CURSOR_PREFIX = "_sa_"
V2_BODY_FORMATS_LIST = frozenset({"storage", "atlas_doc_format", "view"})
V2_BODY_FORMATS_SINGLE = V2_BODY_FORMATS_LIST | {"export_view", "styled_view", "editor", "anonymous_export_view"}
V2_SORTS = frozenset({"id", "created-date", "modified-date", "title"})
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Log in - Confluence</title></head><body>"
    '<form id="loginform" action="/dologin.action" method="post"><input name="os_username"/>'
    '<input type="password" name="os_password"/></form></body></html>'
)


def _envelope(status: int, message: str, reason: str) -> dict[str, Any]:
    """The error body DC (and Cloud v1) use for 400/401/404/500."""
    return {
        "statusCode": status,
        "data": {"authorized": False, "valid": True, "allowedInReadOnlyMode": True, "errors": [], "successful": False},
        "message": message,
        "reason": reason,
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
    return Response.json(_envelope(status, message, reasons.get(status, "Internal Server Error")), status, headers)


def _v2_error(status: int, code: str, title: str) -> Response:
    return Response.json({"errors": [{"status": status, "code": code, "title": title, "detail": None}]}, status)


class _HttpError(Exception):
    """Raised inside handlers to answer with a ready-made response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class _Route:
    kind: Literal["v1", "v2", "manifest", "tenant", "oauth"]
    rest: str = ""  # path below the API root, e.g. "content/search"
    gateway: bool = False
    cloud_id_ok: bool = True


@dataclass(frozen=True)
class _Links:
    base: str
    context: str


def _qs(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _tiny(page_id: str) -> str:
    raw = int(page_id).to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return "/x/" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class ConfluenceEmulator(EmulatorServer):
    """A fake Confluence DC/Server (`mode="ONPREM"`) or Cloud site plus API gateway (`mode="CLOUD"`).

    Quirk switches are plain attributes and may be changed while the server runs.
    """

    name = "confluence-emulator"

    def __init__(
        self,
        mode: Mode = "ONPREM",
        *,
        context_path: str = "",
        pat: str | None = "test-pat",
        username: str | None = "svc",
        password: str | None = "svc-password",
        cloud_user: str = "svc@example.com",
        cloud_token: str = "cloud-token",
        cloud_id: str = DEFAULT_CLOUD_ID,
        server_id: str = DEFAULT_SERVER_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        wiki: Wiki | None = None,
        oauth_client_id: str | None = None,
        oauth_client_secret: str | None = None,
    ) -> None:
        mode_upper = mode.upper()
        if mode_upper not in ("ONPREM", "CLOUD"):
            raise ValueError(f"mode must be ONPREM or CLOUD, not {mode!r}")
        super().__init__(host, port)
        self.mode: Mode = mode_upper  # type: ignore[assignment]
        self.context_path = ("/" + context_path.strip("/")) if context_path.strip("/") else ""
        if self.mode == "CLOUD" and self.context_path:
            raise ValueError("context_path only exists on Data Center")
        self._pat = pat
        self._username = username
        self._password = password
        self._cloud_user = cloud_user
        self._cloud_token = cloud_token
        self._oauth_client_id = oauth_client_id
        self._oauth_client_secret = oauth_client_secret
        self._oauth_tokens: set[str] = set()
        self.cloud_id = cloud_id
        self.server_id = server_id
        self.wiki = wiki if wiki is not None else Wiki()
        self._search_cache = SearchCache()

        # -- quirk knobs ---------------------------------------------------------------------
        self.cap_body = 50
        self.cap_expand = 200
        self.cap_none = 1000
        self.cap_space = 500
        self.cloud_cap_body = 50
        self.cloud_cap_other = 250
        self.dc_next_bug = self.mode == "ONPREM"
        self.trailing_empty_next = False
        self.fail_above_limit: int | None = None
        self.html_login_page = False
        self.dc_time_offset_minutes = 120
        self.cql_timezone: str | tzinfo = "UTC"
        # What DC does with `space = UNKNOWN` in CQL: "400" (9.3+), "500" (9.2) or "empty".
        self.dc_unknown_space: Literal["400", "500", "empty"] = "400"
        # Cloud v1 search without a cursor: honour the deprecated `start` (True) or always begin at 0.
        self.cloud_honour_start = True
        # `os_authType=basic` makes DC ignore Bearer OAuth tokens; per the contract PATs keep working.
        self.os_authtype_breaks_pat = False
        self.dc_version = "8.5.3"
        self.dc_build_number = 8804

    def __enter__(self) -> ConfluenceEmulator:
        self.start()
        return self

    # -- addresses ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What a client sets as CONFLUENCE_URL."""
        return self.url + self.context_path

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/rest/api" if self.mode == "ONPREM" else f"{self.url}/wiki/rest/api"

    @property
    def gateway_url(self) -> str:
        """CONFLUENCE_CLOUD_API_URL: the emulator is its own API gateway."""
        return self.url

    @property
    def gateway_api_root(self) -> str:
        return f"{self.url}/ex/confluence/{self.cloud_id}/wiki/rest/api"

    @property
    def v2_root(self) -> str:
        return f"{self.url}/wiki/api/v2"

    @property
    def _links(self) -> _Links:
        if self.mode == "ONPREM":
            return _Links(self.base_url, self.context_path)
        return _Links(f"{self.url}/wiki", "/wiki")

    # -- recording ---------------------------------------------------------------------------
    def _record(self, request: Request) -> RecordedRequest:
        if request.path.endswith("/rest/oauth2/latest/token") and request.body:
            request = Request(
                request.method,
                request.path,
                request.query,
                request.headers,
                REDACTED.encode(),
                request.raw_target,
                request.time,
            )
        return super()._record(request)

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        route = self._resolve(request.path)
        if route is None:
            return _error(404, f"No route for {request.path}")
        try:
            if route.kind == "manifest":
                return self._manifest(request)
            if route.kind == "tenant":
                return Response.json({"cloudId": self.cloud_id})
            if route.kind == "oauth":
                return self._oauth_token(request)
            if not self._authenticated(request):
                return self._unauthorised(request)
            if self.html_login_page:
                return Response.text(LOGIN_PAGE, 200, "text/html")
            self._check_limit(request)
            if request.method not in ("GET", "HEAD"):
                return _error(405, f"{request.method} is not supported by the emulator")
            if route.kind == "v1":
                return self._v1(request, route)
            return self._v2(request, route)
        except _HttpError as exc:
            return exc.response

    def _resolve(self, path: str) -> _Route | None:
        if self.mode == "ONPREM":
            if not path.startswith(self.context_path + "/"):
                return None
            rest = path[len(self.context_path) :]
            if rest == "/rest/applinks/1.0/manifest":
                return _Route("manifest")
            if rest == "/rest/oauth2/latest/token" and self._oauth_client_id:
                return _Route("oauth")
            if rest.startswith("/rest/api/"):
                return _Route("v1", rest[len("/rest/api/") :])
            return None
        if path == "/_edge/tenant_info":
            return _Route("tenant")
        if match := re.match(r"^/ex/confluence/([^/]+)(?:/wiki)?/rest/api/(.*)$", path):
            return _Route("v1", match.group(2), gateway=True, cloud_id_ok=match.group(1) == self.cloud_id)
        if match := re.match(r"^/ex/confluence/([^/]+)/wiki/api/v2/(.*)$", path):
            return _Route("v2", match.group(2), gateway=True, cloud_id_ok=match.group(1) == self.cloud_id)
        if path.startswith("/wiki/rest/api/"):
            return _Route("v1", path[len("/wiki/rest/api/") :])
        if path.startswith("/wiki/api/v2/"):
            return _Route("v2", path[len("/wiki/api/v2/") :])
        return None

    # -- auth --------------------------------------------------------------------------------
    def _authenticated(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if self.mode == "ONPREM":
            if scheme == "bearer":
                ignore_bearer = (request.param("os_authType") or "").lower() == "basic"
                if self._pat is not None and hmac.compare_digest(credential, self._pat):
                    return not (ignore_bearer and self.os_authtype_breaks_pat)
                return credential in self._oauth_tokens and not ignore_bearer
            if scheme == "basic" and self._username is not None and self._password is not None:
                return self._basic_matches(credential, self._username, self._password)
            return False
        if scheme == "basic":
            return self._basic_matches(credential, self._cloud_user, self._cloud_token)
        return False

    @staticmethod
    def _basic_matches(credential: str, user: str, password: str) -> bool:
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given_user, sep, given_password = decoded.partition(":")
        return bool(sep) and hmac.compare_digest(given_user, user) and hmac.compare_digest(given_password, password)

    def _unauthorised(self, request: Request) -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="Confluence"'}
        if self.mode == "ONPREM":
            headers["X-AUSERNAME"] = "anonymous"
            if "authorization" in request.headers:
                headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        return _error(401, "Client must be authenticated to access this resource.", headers)

    def _oauth_token(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "use POST")
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self._oauth_client_id
            or not hmac.compare_digest(form.get("client_secret", ""), self._oauth_client_secret or "")
        ):
            return Response.json({"error": "invalid_client", "error_description": "Invalid client"}, 401)
        token = secrets.token_urlsafe(24)
        self._oauth_tokens.add(token)
        return Response.json({"access_token": token, "token_type": "bearer", "expires_in": 3600, "scope": "READ"})

    def _check_limit(self, request: Request) -> None:
        raw = request.param("limit")
        if self.fail_above_limit is None or raw is None or not raw.strip().isdigit():
            return
        if int(raw) > self.fail_above_limit:
            raise _HttpError(
                _error(500, "java.lang.RuntimeException: java.util.concurrent.TimeoutException: search timed out")
            )

    # -- identity ----------------------------------------------------------------------------
    def _manifest(self, request: Request) -> Response:
        manifest = {
            "id": self.server_id,
            "name": "Confluence",
            "typeId": "confluence",
            "version": self.dc_version,
            "buildNumber": self.dc_build_number,
            "applinksVersion": "9.1.4",
            "inboundAuthenticationTypes": ["com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"],
            "outboundAuthenticationTypes": ["com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"],
            "publicSignup": False,
            "url": self.base_url,
            "iconUrl": f"{self.base_url}/images/icons/favicon.png",
        }
        if "application/json" in request.headers.get("accept", ""):
            return Response.json(manifest)
        items = []
        for key, value in manifest.items():
            if isinstance(value, list):
                items.extend(f"<{key}>{v}</{key}>" for v in value)
            else:
                items.append(f"<{key}>{str(value).lower() if isinstance(value, bool) else value}</{key}>")
        xml = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><manifest>' + "".join(items) + "</manifest>"
        return Response(200, xml.encode("utf-8"), {"Content-Type": "application/xml;charset=UTF-8"})

    # -- v1 ----------------------------------------------------------------------------------
    def _v1(self, request: Request, route: _Route) -> Response:
        rest = route.rest.rstrip("/")
        handlers: list[tuple[str, Callable[..., Response]]] = [
            (r"content/search", self._v1_search),
            (r"content", self._v1_content_list),
            (r"content/(\d+)", self._v1_content),
            (r"content/(\d+)/child/page", self._v1_children),
            (r"content/(\d+)/child/attachment", self._v1_attachments),
            (r"content/(\d+)/descendant/page", self._v1_descendants),
            (r"content/(\d+)/label", self._v1_labels),
            (r"space", self._v1_spaces),
            (r"space/([^/]+)", self._v1_space),
            (r"user/current", self._v1_current_user),
        ]
        for pattern, handler in handlers:
            if match := re.fullmatch(pattern, rest):
                with self.wiki.lock:
                    return handler(request, route, *match.groups())
        if re.fullmatch(r"content/[^/]+", rest):
            return _error(404, f"No content found with id: ContentId{{id={rest.split('/')[1]}}}")
        return _error(404, f"No route for /rest/api/{rest}")

    def _v1_search(self, request: Request, route: _Route) -> Response:
        cql = request.param("cql")
        if not cql:
            return _error(400, "CQL query parameter is required")
        try:
            query = parse(cql)
        except CqlError as exc:
            return _error(400, str(exc))
        expand = self._expand(request)
        cap = self._content_cap(expand)
        path = "/rest/api/content/search"
        if not route.cloud_id_ok:
            return self._v1_array(request, [], self._render(expand), path=path, cap=cap, cursor=True)
        unknown: Literal["error", "empty"] = "error"
        if self.mode == "CLOUD" or self.dc_unknown_space == "empty":
            unknown = "empty"
        scope = SearchScope(self.wiki, self.mode, self._timezone(), unknown)
        try:
            pages = self._search_cache.search(query, scope)
        except UnknownSpaceError:
            if self.dc_unknown_space == "500":
                return _error(500, "java.lang.NullPointerException")
            return _error(400, "parameters should not be empty")
        return self._v1_array(request, pages, self._render(expand), path=path, cap=cap, cursor=self.mode == "CLOUD")

    def _v1_content_list(self, request: Request, route: _Route) -> Response:
        expand = self._expand(request)
        if not route.cloud_id_ok:
            raise _HttpError(_error(404, "Not Found"))
        kind = request.param("type") or "page"
        status = request.param("status") or "current"
        title = request.param("title")
        space_key = request.param("spaceKey")
        pool = list(self.wiki.pages.values())
        if space_key:
            space = self.wiki.visible_space(space_key)
            if space is None:
                return _error(404, f"No space with key : {space_key}")
            pool = [self.wiki.pages[i] for i in self.wiki.ids_in_space(space.key)]
        pages = [
            p
            for p in pool
            if p.type == kind
            and (status == "any" or p.status == status)
            and (title is None or p.title == title)
            and self.wiki.is_visible(p)
        ]
        pages.sort(key=lambda p: int(p.id))
        return self._v1_array(
            request, pages, self._render(expand), path="/rest/api/content", cap=self._content_cap(expand)
        )

    def _v1_content(self, request: Request, route: _Route, page_id: str) -> Response:
        status = request.param("status") or "current"
        statuses = {s.strip() for s in status.split(",")}
        page = self._visible_page(page_id, route, statuses)
        expand = self._expand(request) if "expand" in request.query else {"space", "version", "history"}
        body = self._content(page, expand)
        body["_links"].update({"base": self._links.base, "context": self._links.context})
        return Response.json(body)

    def _v1_children(self, request: Request, route: _Route, page_id: str) -> Response:
        parent = self._visible_page(page_id, route)
        children = [self.wiki.pages[c] for c in self.wiki.child_ids(parent.id)]
        children = [c for c in children if c.status == "current" and self.wiki.is_visible(c)]
        expand = self._expand(request)
        path = f"/rest/api/content/{page_id}/child/page"
        return self._v1_array(request, children, self._render(expand), path=path, cap=self._content_cap(expand))

    def _v1_attachments(self, request: Request, route: _Route, page_id: str) -> Response:
        self._visible_page(page_id, route)
        path = f"/rest/api/content/{page_id}/child/attachment"
        return self._v1_array(request, [], self._render(set()), path=path, cap=self._content_cap(set()))

    def _v1_descendants(self, request: Request, route: _Route, page_id: str) -> Response:
        if self.mode == "ONPREM":
            return _error(400, "Descendants of type page are not supported; only comment")
        root = self._visible_page(page_id, route)
        depth_param = (request.param("depth") or "all").lower()
        if depth_param == "all":
            max_depth = None
        elif depth_param == "root":
            max_depth = 1
        elif depth_param.isdigit() and 1 <= int(depth_param) <= 100:
            max_depth = int(depth_param)
        else:
            return _error(400, f"Invalid depth: {depth_param}")
        base_depth = self.wiki.depth(root)
        found = [self.wiki.pages[d] for d in self.wiki.descendant_ids(root.id)]
        found = [
            p
            for p in found
            if p.status == "current"
            and self.wiki.is_visible(p)
            and (max_depth is None or self.wiki.depth(p) - base_depth <= max_depth)
        ]
        expand = self._expand(request)
        path = f"/rest/api/content/{page_id}/descendant/page"
        return self._v1_array(request, found, self._render(expand), path=path, cap=self._content_cap(expand))

    def _v1_labels(self, request: Request, route: _Route, page_id: str) -> Response:
        page = self._visible_page(page_id, route)
        labels = sorted(page.labels)
        path = f"/rest/api/content/{page_id}/label"
        return self._v1_array(request, labels, self._label, path=path, cap=200, default_limit=200)

    def _v1_spaces(self, request: Request, route: _Route) -> Response:
        keys = {k for raw in request.query.get("spaceKey", []) for k in raw.split(",") if k}
        kind = request.param("type")
        status = request.param("status")
        spaces = [] if not route.cloud_id_ok else sorted(self.wiki.spaces.values(), key=lambda s: s.key)
        spaces = [
            s
            for s in spaces
            if not s.hidden
            and (not keys or s.key in keys)
            and (kind is None or s.type == kind)
            and (status is None or s.status == status)
        ]
        cap = self.cap_space if self.mode == "ONPREM" else self.cloud_cap_other
        return self._v1_array(request, spaces, self._space, path="/rest/api/space", cap=cap)

    def _v1_space(self, request: Request, route: _Route, key: str) -> Response:
        space = self.wiki.visible_space(key) if route.cloud_id_ok else None
        if space is None:
            return _error(404, f"No space found with key : {key}")
        body = self._space(space)
        body["_links"].update({"base": self._links.base, "context": self._links.context})
        return Response.json(body)

    def _v1_current_user(self, request: Request, route: _Route) -> Response:
        return Response.json(self._user())

    # -- v1 helpers --------------------------------------------------------------------------
    def _visible_page(self, page_id: str, route: _Route, statuses: set[str] | None = None) -> Page:
        page = self.wiki.pages.get(page_id)
        statuses = statuses or {"current"}
        if (
            page is None
            or not route.cloud_id_ok
            or not self.wiki.is_visible(page)
            or ("any" not in statuses and page.status not in statuses)
        ):
            raise _HttpError(_error(404, f"No content found with id: ContentId{{id={page_id}}}"))
        return page

    @staticmethod
    def _expand(request: Request) -> set[str]:
        return {part.strip() for raw in request.query.get("expand", []) for part in raw.split(",") if part.strip()}

    def _content_cap(self, expand: set[str]) -> int:
        has_body = any(e == "body" or e.startswith("body.") for e in expand)
        if self.mode == "CLOUD":
            return self.cloud_cap_body if has_body else self.cloud_cap_other
        if has_body:
            return self.cap_body
        return self.cap_expand if expand else self.cap_none

    def _timezone(self) -> tzinfo:
        if isinstance(self.cql_timezone, str):
            return UTC if self.cql_timezone.upper() == "UTC" else ZoneInfo(self.cql_timezone)
        return self.cql_timezone

    def _render(self, expand: set[str]) -> Callable[[Page], dict[str, Any]]:
        return lambda page: self._content(page, expand)

    def _int_param(self, request: Request, name: str, default: int) -> int:
        raw = request.param(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _HttpError(_error(400, f"Invalid {name}: {raw}")) from None
        if value < 0 or (name == "limit" and value == 0):
            raise _HttpError(_error(400, f"Invalid {name}: {raw}"))
        return value

    def _v1_array(
        self,
        request: Request,
        items: Sequence[T],
        render: Callable[[T], dict[str, Any]],
        *,
        path: str,
        cap: int,
        cursor: bool = False,
        default_limit: int = 25,
    ) -> Response:
        """A ContentArray page; DC miscounts `next.start` when it capped the limit, Cloud search uses cursors."""
        requested = self._int_param(request, "limit", default_limit)
        limit = min(requested, cap)
        raw_query = urlsplit(request.raw_target).query
        original = parse_qsl(raw_query, keep_blank_values=True)
        cql = request.param("cql") or ""
        if cursor and request.param("cursor"):
            offset = self._decode_cursor(request.param("cursor") or "", cql)
        elif cursor and not self.cloud_honour_start:
            offset = 0
        else:
            offset = self._int_param(request, "start", 0)
        window = list(items[offset : offset + limit])
        links = self._links
        body: dict[str, Any] = {
            "results": [render(item) for item in window],
            "start": offset,
            "limit": limit,
            "size": len(window),
            "_links": {
                "base": links.base,
                "context": links.context,
                "self": f"{links.base}{path}" + (f"?{raw_query}" if raw_query else ""),
            },
        }
        has_more = offset + len(window) < len(items)
        if cursor:
            kept = [(k, v) for k, v in original if k not in ("cql", "limit", "start", "cursor", "next", "prev")]
            if has_more:
                pairs = [("next", "true"), ("cursor", self._encode_cursor(offset + limit, cql)), *kept]
                pairs += [("limit", str(limit)), ("start", str(offset + limit)), ("cql", cql)]
                body["_links"]["next"] = f"{path}?{_qs(pairs)}"
            if offset > 0:
                back = max(0, offset - limit)
                pairs = [("prev", "true"), ("cursor", self._encode_cursor(back, cql)), *kept]
                pairs += [("limit", str(limit)), ("start", str(back)), ("cql", cql)]
                body["_links"]["prev"] = f"{path}?{_qs(pairs)}"
            return Response.json(body)
        kept = [(k, v) for k, v in original if k not in ("limit", "start")]
        trailing = self.mode == "ONPREM" and self.trailing_empty_next
        if has_more or trailing:
            if self.mode == "ONPREM" and self.dc_next_bug:
                next_start = offset + requested
            else:
                next_start = offset + (len(window) if window else limit)
            next_limit = requested if self.mode == "ONPREM" else limit
            pairs = [*kept, ("limit", str(next_limit)), ("start", str(next_start))]
            body["_links"]["next"] = f"{path}?{_qs(pairs)}"
        if self.mode == "CLOUD" and offset > 0:
            pairs = [*kept, ("limit", str(limit)), ("start", str(max(0, offset - limit)))]
            body["_links"]["prev"] = f"{path}?{_qs(pairs)}"
        return Response.json(body)

    @staticmethod
    def _fingerprint(cql: str) -> str:
        return hashlib.sha256(cql.encode("utf-8")).hexdigest()[:12]

    def _encode_cursor(self, offset: int, cql: str) -> str:
        payload = json.dumps({"offset": offset, "q": self._fingerprint(cql)}, separators=(",", ":"))
        return CURSOR_PREFIX + base64.b64encode(payload.encode("utf-8")).decode("ascii")

    def _decode_cursor(self, cursor: str, cql: str) -> int:
        invalid = _HttpError(_error(400, f"Invalid cursor: {cursor}"))
        if not cursor.startswith(CURSOR_PREFIX):
            raise invalid
        try:
            payload = json.loads(base64.b64decode(cursor[len(CURSOR_PREFIX) :], validate=True))
            offset = int(payload["offset"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise invalid from None
        if payload.get("q") != self._fingerprint(cql) or offset < 0:
            raise invalid
        return offset

    # -- v1 rendering ------------------------------------------------------------------------
    def _time(self, when: datetime) -> str:
        if self.mode == "ONPREM":
            local = when.astimezone(timezone(timedelta(minutes=self.dc_time_offset_minutes)))
            return local.isoformat(timespec="milliseconds")
        return _utc(when)

    def _user(self) -> dict[str, Any]:
        if self.mode == "ONPREM":
            return {
                "type": "known",
                "username": self._username or "svc",
                "userKey": "8a7f808a8f1e2d3c018f1e2d3c4b0001",
                "displayName": "Service User",
                "_links": {"self": f"{self.api_root}/user?key=8a7f808a8f1e2d3c018f1e2d3c4b0001"},
            }
        return {
            "type": "known",
            "accountId": "557058:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "accountType": "atlassian",
            "email": "",
            "publicName": "Service User",
            "displayName": "Service User",
        }

    def _webui(self, page: Page) -> str:
        if self.mode == "ONPREM":
            return f"/pages/viewpage.action?pageId={page.id}"
        title = quote_plus(page.title)
        if page.type == "blogpost":
            day = page.created.astimezone(UTC)
            return f"/spaces/{page.space_key}/blog/{day:%Y/%m/%d}/{page.id}/{title}"
        return f"/spaces/{page.space_key}/pages/{page.id}/{title}"

    def _space(self, space: Space) -> dict[str, Any]:
        webui = f"/display/{space.key}" if self.mode == "ONPREM" else f"/spaces/{space.key}"
        return {
            "id": space.id,
            "key": space.key,
            "name": space.name,
            "type": space.type,
            "status": space.status,
            "_links": {"webui": webui, "self": f"{self._links.base}/rest/api/space/{space.key}"},
            "_expandable": {
                "settings": f"/rest/api/space/{space.key}/settings",
                "metadata": "",
                "operations": "",
                "lookAndFeel": f"/rest/api/settings/lookandfeel?spaceKey={space.key}",
                "identifiers": "",
                "permissions": "",
                "icon": "",
                "description": "",
                "theme": f"/rest/api/space/{space.key}/theme",
                "history": "",
                "homepage": "",
            },
        }

    def _label(self, label: str) -> dict[str, Any]:
        return {"prefix": "global", "name": label, "id": self.wiki.label_id(label), "label": label}

    def _version(self, page: Page) -> dict[str, Any]:
        return {
            "by": self._user(),
            "when": self._time(page.when),
            "friendlyWhen": "a moment ago",
            "message": "",
            "number": page.version,
            "minorEdit": False,
            "_links": {"self": f"{self._links.base}/rest/experimental/content/{page.id}/version/{page.version}"},
        }

    def _content(self, page: Page, expand: set[str]) -> dict[str, Any]:
        links = self._links
        space = self.wiki.spaces[page.space_key]
        expandable: dict[str, str] = {
            "childTypes": "",
            "container": f"/rest/api/space/{space.key}",
            "metadata": "",
            "operations": "",
            "children": f"/rest/api/content/{page.id}/child",
            "restrictions": f"/rest/api/content/{page.id}/restriction/byOperation",
            "history": f"/rest/api/content/{page.id}/history",
            "ancestors": "",
            "body": "",
            "version": "",
            "descendants": f"/rest/api/content/{page.id}/descendant",
            "space": f"/rest/api/space/{space.key}",
        }
        content: dict[str, Any] = {"id": page.id, "type": page.type, "status": page.status, "title": page.title}

        # `space` is wanted for `space` and for `space.homepage`: the first segment of every expansion decides.
        wanted = {e.split(".", 1)[0] for e in expand}

        def wants(name: str) -> bool:
            return name in wanted

        if wants("space"):
            content["space"] = self._space(space)
        if wants("container"):
            content["container"] = self._space(space)
        if wants("history"):
            history: dict[str, Any] = {
                "latest": True,
                "createdBy": self._user(),
                "createdDate": self._time(page.created),
                "_links": {"self": f"{links.base}/rest/api/content/{page.id}/history"},
                "_expandable": {"lastUpdated": "", "previousVersion": "", "contributors": "", "nextVersion": ""},
            }
            if "history.lastUpdated" in expand:
                history["lastUpdated"] = self._version(page)
                del history["_expandable"]["lastUpdated"]
            content["history"] = history
        if wants("version"):
            content["version"] = self._version(page)
        if wants("ancestors"):
            content["ancestors"] = [self._content(a, set()) for a in page.ancestors(self.wiki)]
        if wants("metadata"):
            metadata: dict[str, Any] = {
                "_expandable": {
                    "currentuser": "",
                    "comments": "",
                    "simple": "",
                    "properties": "",
                    "frontend": "",
                    "labels": "",
                    "likes": "",
                }
            }
            if "metadata.labels" in expand:
                labels = sorted(page.labels)
                metadata["labels"] = {
                    "results": [self._label(label) for label in labels[:200]],
                    "start": 0,
                    "limit": 200,
                    "size": min(len(labels), 200),
                    "_links": {"self": f"{links.base}/rest/api/content/{page.id}/label"},
                }
                del metadata["_expandable"]["labels"]
            content["metadata"] = metadata
        if wants("body"):
            content["body"] = self._body(page, expand)
        if wants("children"):
            content["children"] = self._children_expansion(page, expand)
        content["extensions"] = {"position": page.position}
        content["_links"] = {
            "webui": self._webui(page),
            "edit": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": _tiny(page.id),
            "self": f"{links.base}/rest/api/content/{page.id}",
        }
        content["_expandable"] = {k: v for k, v in expandable.items() if not wants(k)}
        return content

    def _body(self, page: Page, expand: set[str]) -> dict[str, Any]:
        renderings = {
            "storage": page.body,
            "view": f'<div class="view">{page.body}</div>',
            "export_view": f'<div class="view">{page.body}</div>',
            "styled_view": f'<html><body><div class="view">{page.body}</div></body></html>',
            "editor": page.body,
            "anonymous_export_view": f'<div class="view">{page.body}</div>',
        }
        if self.mode == "CLOUD":
            renderings["atlas_doc_format"] = _adf(page.body)
        body: dict[str, Any] = {}
        for name, value in renderings.items():
            if f"body.{name}" in expand:
                body[name] = {
                    "value": value,
                    "representation": name,
                    "_expandable": {"content": f"/rest/api/content/{page.id}"},
                }
        body["_expandable"] = {name: "" for name in renderings if name not in body}
        return body

    def _children_expansion(self, page: Page, expand: set[str]) -> dict[str, Any]:
        children: dict[str, Any] = {}
        expandable = {
            "attachment": f"/rest/api/content/{page.id}/child/attachment",
            "comment": f"/rest/api/content/{page.id}/child/comment",
            "page": f"/rest/api/content/{page.id}/child/page",
        }
        for kind in list(expandable):
            if f"children.{kind}" not in expand:
                continue
            found: list[Page] = []
            if kind == "page":
                found = [self.wiki.pages[c] for c in self.wiki.child_ids(page.id)]
                found = [c for c in found if c.status == "current" and self.wiki.is_visible(c)]
            window = found[:25]
            listing: dict[str, Any] = {
                "results": [self._content(c, set()) for c in window],
                "start": 0,
                "limit": 25,
                "size": len(window),
                "_links": {"self": f"{self._links.base}{expandable[kind]}"},
            }
            if len(found) > 25:
                listing["_links"]["next"] = f"{expandable.pop(kind)}?limit=25&start=25"
            else:
                expandable.pop(kind)
            children[kind] = listing
        children["_expandable"] = expandable
        return children

    # -- v2 ----------------------------------------------------------------------------------
    def _v2(self, request: Request, route: _Route) -> Response:
        rest = route.rest.rstrip("/")
        with self.wiki.lock:
            if rest in ("pages", "blogposts"):
                return self._v2_content_list(request, route, "page" if rest == "pages" else "blogpost", rest)
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)", rest):
                return self._v2_content(request, route, match.group(2), match.group(1))
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)/attachments", rest):
                self._v2_page(route, match.group(2), match.group(1))
                return self._v2_list(request, [], lambda x: x, f"/wiki/api/v2/{rest}", default_limit=50)
            if match := re.fullmatch(r"(pages|blogposts)/(\d+)/labels", rest):
                page = self._v2_page(route, match.group(2), match.group(1))
                return self._v2_list(request, sorted(page.labels), self._v2_label, f"/wiki/api/v2/{rest}")
            if rest == "spaces":
                return self._v2_spaces(request, route)
            if match := re.fullmatch(r"spaces/(\d+)", rest):
                space = self.wiki.space_by_id(int(match.group(1)))
                if space is None or space.hidden or not route.cloud_id_ok:
                    return _v2_error(404, "NOT_FOUND", "Not Found")
                body = self._v2_space(space)
                body["_links"]["base"] = self._links.base
                return Response.json(body)
        return _v2_error(404, "NOT_FOUND", "Not Found")

    def _v2_page(self, route: _Route, page_id: str, resource: str) -> Page:
        page = self.wiki.pages.get(page_id)
        kind = "page" if resource == "pages" else "blogpost"
        if (
            page is None
            or page.type != kind
            or page.status != "current"
            or not route.cloud_id_ok
            or not self.wiki.is_visible(page)
        ):
            raise _HttpError(_v2_error(404, "NOT_FOUND", "Not Found"))
        return page

    @staticmethod
    def _multi(request: Request, name: str) -> list[str]:
        raw = request.query.get(name, []) + request.query.get(f"{name}[]", [])
        return [part.strip() for value in raw for part in value.split(",") if part.strip()]

    def _v2_body_format(self, request: Request, allowed: frozenset[str]) -> str | None:
        fmt = request.param("body-format")
        if fmt is not None and fmt not in allowed:
            raise _HttpError(_v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid body-format: {fmt}"))
        return fmt

    def _v2_content_list(self, request: Request, route: _Route, kind: str, resource: str) -> Response:
        fmt = self._v2_body_format(request, V2_BODY_FORMATS_LIST)
        ids = self._multi(request, "id")
        if len(ids) > 250:
            return _v2_error(400, "INVALID_REQUEST_PARAMETER", "At most 250 ids")
        space_ids = {s for s in self._multi(request, "space-id")}
        statuses = set(self._multi(request, "status")) or {"current"}
        title = request.param("title")
        sort = request.param("sort") or "id"
        if sort.lstrip("-") not in V2_SORTS:
            return _v2_error(400, "INVALID_REQUEST_PARAMETER", f"Invalid sort: {sort}")
        if not route.cloud_id_ok:
            pool: list[Page] = []
        elif ids:
            pool = [self.wiki.pages[i] for i in dict.fromkeys(ids) if i in self.wiki.pages]
        else:
            pool = list(self.wiki.pages.values())
        pages = [
            p
            for p in pool
            if p.type == kind
            and p.status in statuses
            and self.wiki.is_visible(p)
            and (not space_ids or str(self.wiki.spaces[p.space_key].id) in space_ids)
            and (title is None or p.title == title)
        ]
        keys: dict[str, Callable[[Page], Any]] = {
            "id": lambda p: int(p.id),
            "created-date": lambda p: (p.created, int(p.id)),
            "modified-date": lambda p: (p.when, int(p.id)),
            "title": lambda p: (p.title.lower(), int(p.id)),
        }
        pages.sort(key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
        return self._v2_list(request, pages, lambda p: self._v2_content_json(p, fmt), f"/wiki/api/v2/{resource}")

    def _v2_content(self, request: Request, route: _Route, page_id: str, resource: str) -> Response:
        page = self._v2_page(route, page_id, resource)
        fmt = self._v2_body_format(request, V2_BODY_FORMATS_SINGLE)
        include_version = (request.param("include-version") or "true").lower() != "false"
        body = self._v2_content_json(page, fmt, include_version=include_version)
        if (request.param("include-labels") or "").lower() == "true":
            labels = sorted(page.labels)
            body["labels"] = {
                "results": [self._v2_label(label) for label in labels[:50]],
                "meta": {"hasMore": len(labels) > 50, "cursor": self._v2_cursor(50) if len(labels) > 50 else None},
                "_links": {"self": f"/wiki/api/v2/{resource}/{page.id}/labels"},
            }
        body["_links"]["base"] = self._links.base
        return Response.json(body)

    def _v2_spaces(self, request: Request, route: _Route) -> Response:
        ids = set(self._multi(request, "ids"))
        keys = set(self._multi(request, "keys"))
        kind = request.param("type")
        status = request.param("status")
        spaces = sorted(self.wiki.spaces.values(), key=lambda s: s.id) if route.cloud_id_ok else []
        spaces = [
            s
            for s in spaces
            if not s.hidden
            and (not ids or str(s.id) in ids)
            and (not keys or s.key in keys)
            and (kind is None or s.type == kind)
            and (status is None or s.status == status)
        ]
        return self._v2_list(request, spaces, self._v2_space, "/wiki/api/v2/spaces")

    def _v2_list(
        self,
        request: Request,
        items: Sequence[T],
        render: Callable[[T], Any],
        path: str,
        default_limit: int = 25,
    ) -> Response:
        raw_limit = request.param("limit")
        try:
            limit = int(raw_limit) if raw_limit else default_limit
        except ValueError:
            limit = 0
        if not 1 <= limit <= 250:
            return _v2_error(400, "INVALID_REQUEST_PARAMETER", "limit must be between 1 and 250")
        offset = 0
        if cursor := request.param("cursor"):
            try:
                offset = int(json.loads(base64.b64decode(cursor, validate=True))["offset"])
            except (binascii.Error, ValueError, KeyError, TypeError):
                return _v2_error(400, "INVALID_REQUEST_PARAMETER", "Invalid cursor")
        window = items[offset : offset + limit]
        links: dict[str, str] = {}
        headers: dict[str, str] = {}
        if offset + len(window) < len(items):
            original = parse_qsl(urlsplit(request.raw_target).query, keep_blank_values=True)
            pairs = [(k, v) for k, v in original if k != "cursor"] + [("cursor", self._v2_cursor(offset + limit))]
            links["next"] = f"{path}?{_qs(pairs)}"
            headers["Link"] = f'<{links["next"]}>; rel="next", <{self._links.base}>; rel="base"'
        links["base"] = self._links.base
        return Response.json({"results": [render(item) for item in window], "_links": links}, headers=headers)

    @staticmethod
    def _v2_cursor(offset: int) -> str:
        return base64.b64encode(json.dumps({"offset": offset}).encode("utf-8")).decode("ascii")

    def _v2_label(self, label: str) -> dict[str, Any]:
        return {"id": self.wiki.label_id(label), "name": label, "prefix": "global"}

    def _v2_space(self, space: Space) -> dict[str, Any]:
        return {
            "id": str(space.id),
            "key": space.key,
            "name": space.name,
            "type": space.type,
            "status": space.status,
            "authorId": self._user()["accountId"],
            "createdAt": _utc(space.created),
            "homepageId": None,
            "description": None,
            "icon": None,
            "_links": {"webui": f"/spaces/{space.key}"},
        }

    def _v2_content_json(self, page: Page, fmt: str | None, *, include_version: bool = True) -> dict[str, Any]:
        space = self.wiki.spaces[page.space_key]
        author = self._user()["accountId"]
        body: dict[str, Any] = {
            "id": page.id,
            "status": page.status,
            "title": page.title,
            "spaceId": str(space.id),
        }
        if page.type == "page":
            body.update(
                {
                    "parentId": page.parent_id,
                    "parentType": "page" if page.parent_id else None,
                    "position": page.position,
                }
            )
        body.update({"authorId": author, "ownerId": author, "createdAt": _utc(page.created)})
        if include_version:
            body["version"] = {
                "createdAt": _utc(page.when),
                "message": "",
                "number": page.version,
                "minorEdit": False,
                "authorId": author,
            }
        body["body"] = {}
        if fmt is not None:
            value = {
                "storage": page.body,
                "atlas_doc_format": _adf(page.body),
            }.get(fmt, f'<div class="view">{page.body}</div>')
            body["body"] = {fmt: {"representation": fmt, "value": value}}
        body["_links"] = {
            "webui": self._webui(page),
            "editui": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": _tiny(page.id),
        }
        return body


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _adf(storage: str) -> str:
    """A trivial Atlassian Document Format rendering: one paragraph with the tag-stripped text."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", storage)).strip()
    paragraph: dict[str, Any] = {"type": "paragraph", "content": [{"type": "text", "text": text}] if text else []}
    return json.dumps({"type": "doc", "version": 1, "content": [paragraph]})
