"""The Confluence emulator: a DC/Server or Cloud site over a `Wiki`, with routing, auth, identity and quirk knobs."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from confluence_sandbox.confluence.cql import SearchOrder
from confluence_sandbox.confluence.downloads import BodyCuts
from confluence_sandbox.confluence.errors import HttpError, v1_error
from confluence_sandbox.confluence.media import MediaHost
from confluence_sandbox.confluence.oauth import (
    CLOUD_TOKEN_PATH,
    DC_TOKEN_PATH,
    OAuthServer,
    is_token_path,
    redact_token_request,
)
from confluence_sandbox.confluence.render import Links, Renderer
from confluence_sandbox.confluence.rest_attachments import AttachmentRoutes
from confluence_sandbox.confluence.rest_v1 import RestV1
from confluence_sandbox.confluence.rest_v2 import RestV2
from confluence_sandbox.confluence.wiki import Wiki
from confluence_sandbox.http import EmulatorServer, RecordedRequest, Request, Response

Mode = Literal["ONPREM", "CLOUD"]

DEFAULT_CLOUD_ID = "8c3b4f6e-2a1d-4c5e-9f70-1a2b3c4d5e6f"
DEFAULT_SERVER_ID = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff"
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Log in - Confluence</title></head><body>"
    '<form id="loginform" action="/dologin.action" method="post"><input name="os_username"/>'
    '<input type="password" name="os_password"/></form></body></html>'
)


@dataclass(frozen=True)
class Route:
    """Which API a request path addresses, and whether a gateway path named this site's cloud id."""

    kind: Literal["v1", "v2", "manifest", "tenant", "oauth", "download"]
    rest: str = ""  # path below the API root, e.g. "content/search" (for downloads: "{pageId}/{filename}")
    gateway: bool = False
    cloud_id_ok: bool = True


class ConfluenceEmulator(EmulatorServer):
    """A fake Confluence DC/Server (`mode="ONPREM"`) or Cloud site plus API gateway (`mode="CLOUD"`).

    Quirk switches are plain attributes and may be changed while the server runs. A Cloud emulator also runs
    `media`, a `MediaHost` on its own port that serves attachment bytes; it starts and stops with the emulator.
    Attachment routes and knobs: see `AttachmentRoutes` and `MediaHost`.
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
        # OAuth 2.0 client credentials: DC `{base}/rest/oauth2/latest/token`, Cloud `{gateway_url}/oauth/token`.
        # Both exist only when `oauth_client_id` is given; `oauth.clock` may be replaced to expire tokens.
        self.oauth = OAuthServer(oauth_client_id, oauth_client_secret)
        self.cloud_id = cloud_id
        self.server_id = server_id
        self.wiki = wiki if wiki is not None else Wiki()
        # A wiki served as Data Center refuses `rename_space`, as DC cannot change a space key.
        self.wiki.platform = self.mode
        renderer = Renderer(self, username=username)
        self._rest_v1 = RestV1(self, renderer)
        self._rest_v2 = RestV2(self, renderer)
        self.attachment_routes = AttachmentRoutes(self, renderer)
        self.media: MediaHost | None = MediaHost(self, host) if self.mode == "CLOUD" else None

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
        # `os_authType=basic` makes DC ignore Bearer OAuth tokens; PATs keep working unless this is True.
        self.os_authtype_breaks_pat = False
        self.dc_version = "8.5.3"
        self.dc_build_number = 8804
        # -- attachment knobs ----------------------------------------------------------------
        # How DC renders attachment ids: "att" (`att123`, as Cloud) or "numeric" (`123`); routes accept both.
        self.dc_attachment_ids: Literal["att", "numeric"] = "att"
        # Cloud answers 410 Gone to v1 `child/attachment` with `start > 0` (the `children.attachment` continuation).
        self.cloud_attachment_pagination_gone = True
        # Cloud's `/wiki/download/attachments/...` refuses `Authorization: Bearer` (OAuth) with 401.
        self.cloud_download_refuses_bearer = True
        # The media host answers 400 to requests carrying an Authorization header or cookies.
        self.media_rejects_credentials = True
        # Seconds a media redirect's signed token stays valid.
        self.media_token_ttl = 60.0
        # DC downloads to cut off mid-body (the media host has its own `media.body_cuts`).
        self.body_cuts = BodyCuts()

        # -- search, permission, time and OAuth knobs ----------------------------------------
        # Order of search results when the CQL has no ORDER BY: "id" (ascending) or "lastmodified_desc"
        # (newest first, so an edit during a paged search moves the page to the front).
        self.search_order: SearchOrder = "id"
        # Called as `hook(n)` after the n-th content search response (n from 1) was built and before it is
        # sent, so a test can change the wiki between the result pages of one paged search.
        self.between_search_pages: Callable[[int], object] | None = None
        self.search_pages_served = 0
        # Reuse the result list of a CQL query until the wiki changes (every Wiki method bumps its revision).
        # False evaluates every request afresh, which also sees changes made to Page objects directly.
        self.search_cache = True
        # Apply view permissions after cutting the result page, as Confluence does: a page can come back
        # short or empty (`results: []`) while `next` still points at more matching content.
        self.filter_after_paging = False
        # The clock CQL date functions read; None means the real time.
        self.cql_now: datetime | None = None
        # Whether DC accepts `now()` in CQL (Cloud always does); False answers 400 like any unknown function.
        self.dc_accepts_now = True
        # Seconds an issued OAuth token stays valid (`expires_in` in the token response).
        self.oauth_token_ttl: float = 3600

    def __enter__(self) -> ConfluenceEmulator:
        self.start()
        return self

    def start(self) -> ConfluenceEmulator:
        if self.media is not None:
            self.media.start()
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        if self.media is not None:
            self.media.stop()

    def serve_forever(self) -> None:
        if self.media is not None:
            self.media.start()
        super().serve_forever()

    def wrap_tls(self, certfile: str, keyfile: str) -> None:
        super().wrap_tls(certfile, keyfile)
        if self.media is not None:
            self.media.wrap_tls(certfile, keyfile)

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
    def links(self) -> Links:
        """The `base` and `context` the site's JSON links are relative to."""
        if self.mode == "ONPREM":
            return Links(self.base_url, self.context_path)
        return Links(f"{self.url}/wiki", "/wiki")

    # -- OAuth -------------------------------------------------------------------------------
    @property
    def oauth_tokens_issued(self) -> int:
        return self.oauth.issued

    def revoke_oauth_tokens(self) -> None:
        """Every token issued so far answers 401 from now on; new token requests still succeed."""
        self.oauth.revoke_all()

    # -- search hook -------------------------------------------------------------------------
    def search_page_served(self) -> None:
        """The v1 search handler reports each result page it answered, so the hook runs between pages."""
        self.search_pages_served += 1
        if self.between_search_pages is not None:
            self.between_search_pages(self.search_pages_served)

    # -- recording ---------------------------------------------------------------------------
    def _record(self, request: Request) -> RecordedRequest:
        if is_token_path(request.path):
            request = redact_token_request(request)
        return super()._record(request)

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        route = self._resolve(request.path)
        if route is None:
            return v1_error(404, f"No route for {request.path}")
        try:
            if route.kind == "manifest":
                return self._manifest(request)
            if route.kind == "tenant":
                return Response.json({"cloudId": self.cloud_id})
            if route.kind == "oauth":
                return self.oauth.token(request, self.mode, self.oauth_token_ttl)
            if (refusal := self.attachment_routes.refuse_bearer(request, route)) is not None:
                return refusal
            if not self._authenticated(request, route):
                return self._unauthorised(request)
            if self.html_login_page:
                return Response.text(LOGIN_PAGE, 200, "text/html")
            self._check_limit(request)
            if request.method not in ("GET", "HEAD"):
                return v1_error(405, f"{request.method} is not supported by the emulator")
            if route.kind == "download":
                return self.attachment_routes.download(request, route)
            if route.kind == "v1":
                return self._rest_v1.handle(request, route)
            return self._rest_v2.handle(request, route)
        except HttpError as exc:
            return exc.response

    def _resolve(self, path: str) -> Route | None:
        if self.mode == "ONPREM":
            if not path.startswith(self.context_path + "/"):
                return None
            rest = path[len(self.context_path) :]
            if rest == "/rest/applinks/1.0/manifest":
                return Route("manifest")
            if rest == DC_TOKEN_PATH and self.oauth.enabled:
                return Route("oauth")
            if rest.startswith("/rest/api/"):
                return Route("v1", rest[len("/rest/api/") :])
            if rest.startswith("/download/attachments/"):
                return Route("download", rest[len("/download/attachments/") :])
            return None
        if path == "/_edge/tenant_info":
            return Route("tenant")
        if path == CLOUD_TOKEN_PATH and self.oauth.enabled:
            return Route("oauth")
        if match := re.match(r"^/ex/confluence/([^/]+)(?:/wiki)?/rest/api/(.*)$", path):
            return Route("v1", match.group(2), gateway=True, cloud_id_ok=match.group(1) == self.cloud_id)
        if match := re.match(r"^/ex/confluence/([^/]+)/wiki/api/v2/(.*)$", path):
            return Route("v2", match.group(2), gateway=True, cloud_id_ok=match.group(1) == self.cloud_id)
        if match := re.match(r"^/ex/confluence/([^/]+)/wiki/download/attachments/(.*)$", path):
            return Route("download", match.group(2), gateway=True, cloud_id_ok=match.group(1) == self.cloud_id)
        if path.startswith("/wiki/download/attachments/"):
            return Route("download", path[len("/wiki/download/attachments/") :])
        if path.startswith("/wiki/rest/api/"):
            return Route("v1", path[len("/wiki/rest/api/") :])
        if path.startswith("/wiki/api/v2/"):
            return Route("v2", path[len("/wiki/api/v2/") :])
        return None

    # -- auth --------------------------------------------------------------------------------
    def _authenticated(self, request: Request, route: Route) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
        scheme = scheme.lower()
        credential = credential.strip()
        if self.mode == "ONPREM":
            if scheme == "bearer":
                ignore_bearer = (request.param("os_authType") or "").lower() == "basic"
                if self._pat is not None and hmac.compare_digest(credential, self._pat):
                    return not (ignore_bearer and self.os_authtype_breaks_pat)
                return self.oauth.is_valid(credential) and not ignore_bearer
            if scheme == "basic" and self._username is not None and self._password is not None:
                return self._basic_matches(credential, self._username, self._password)
            return False
        if scheme == "basic":
            return self._basic_matches(credential, self._cloud_user, self._cloud_token)
        # Cloud OAuth tokens are only good through the API gateway, never on the site URL.
        if scheme == "bearer" and route.gateway:
            return self.oauth.is_valid(credential)
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
        return v1_error(401, "Client must be authenticated to access this resource.", headers)

    def _check_limit(self, request: Request) -> None:
        raw = request.param("limit")
        if self.fail_above_limit is None or raw is None or not raw.strip().isdigit():
            return
        if int(raw) > self.fail_above_limit:
            raise HttpError(
                v1_error(500, "java.lang.RuntimeException: java.util.concurrent.TimeoutException: search timed out")
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
