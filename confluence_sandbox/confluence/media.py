"""The Cloud media host: a second origin that serves attachment bytes against short-lived signed tokens only."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from confluence_sandbox.confluence.attachments import Attachment, AttachmentVersion
from confluence_sandbox.confluence.downloads import BodyCuts, binary_response
from confluence_sandbox.http import REDACTED, EmulatorServer, RecordedRequest, Request, Response

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator

MEDIA_CLIENT_ID = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f"


class MediaHost(EmulatorServer):
    """Plays `api.media.atlassian.com` for one Cloud emulator, on its own port, so it is another origin.

    Cloud download routes answer 302 to `{url}/file/{fileId}/binary?token=…&client=…&name=…&dl=true`. The
    token is signed with a per-process key and names the attachment, version and expiry. The host answers:

    - 400 when the request carries an `Authorization` header or a cookie and the emulator's
      `media_rejects_credentials` knob (default True) is on: a client that forwards its Confluence
      credentials across origins is caught. `credentialed_requests` lists such requests either way.
    - 401 for a missing, forged or expired token (`media_token_ttl`, default 60 s), 403 when the token was
      issued for another file, 404 when the attachment was purged, else 200 with the bytes, streamed.

    Recording works as on every emulator (credential headers redacted), and the token is redacted from the
    recorded query too. `faults` (a `FaultPlan`) and `body_cuts` (a `BodyCuts`) script failures.
    """

    name = "confluence-media-emulator"

    def __init__(self, emulator: ConfluenceEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._emulator = emulator
        self._key = secrets.token_bytes(32)
        self.body_cuts = BodyCuts()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        # `shutdown()` waits for a serve loop that was never started; an unstarted host has nothing to stop.
        if self._thread is None:
            self._server.server_close()
            return
        super().stop()
        self._thread = None

    # -- tokens ----------------------------------------------------------------------------
    def redirect_url(self, attachment: Attachment, version: AttachmentVersion) -> str:
        """Where a Cloud download route sends the client: a signed, short-lived URL on this host."""
        expires = time.time() + self._emulator.media_token_ttl
        payload = {"file": version.file_id, "att": attachment.id, "v": version.number, "exp": expires}
        raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        signature = base64.urlsafe_b64encode(hmac.new(self._key, raw, hashlib.sha256).digest()).rstrip(b"=")
        token = f"{raw.decode()}.{signature.decode()}"
        name = quote(attachment.title, safe="")
        max_age = max(int(self._emulator.media_token_ttl), 0)
        return (
            f"{self.url}/file/{version.file_id}/binary?token={token}&client={MEDIA_CLIENT_ID}"
            f"&name={name}&dl=true&max-age={max_age}"
        )

    def _verify(self, token: str) -> dict[str, object] | None:
        raw, _, signature = token.partition(".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, raw.encode(), hashlib.sha256).digest()).rstrip(b"=")
        if not signature or not hmac.compare_digest(signature.encode(), expected):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError):
            return None
        return payload if isinstance(payload, dict) else None

    # -- recording -------------------------------------------------------------------------
    @property
    def credentialed_requests(self) -> list[RecordedRequest]:
        """Requests that carried an `Authorization` header or cookies (their values are redacted)."""
        return [r for r in self.requests if "authorization" in r.headers or "cookie" in r.headers]

    def _record(self, request: Request) -> RecordedRequest:
        if "token" in request.query:
            query = dict(request.query)
            query["token"] = [REDACTED]
            request = Request(
                request.method, request.path, query, request.headers, request.body, request.raw_target, request.time
            )
        return super()._record(request)

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        emulator = self._emulator
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "file" or parts[2] != "binary":
            return _error(404, "NotFound", f"No route for {request.path}")
        if request.method not in ("GET", "HEAD"):
            return _error(405, "MethodNotAllowed", f"{request.method} is not supported")
        if emulator.media_rejects_credentials and ("authorization" in request.headers or "cookie" in request.headers):
            return _error(400, "BadRequest", "Requests with a token must not carry other credentials")
        payload = self._verify(request.param("token") or "")
        if payload is None:
            return _error(401, "Unauthorized", "Missing or invalid token")
        if float(payload.get("exp", 0)) < time.time():  # type: ignore[arg-type]
            return _error(401, "Unauthorized", "Token expired")
        if payload.get("file") != parts[1]:
            return _error(403, "Forbidden", "Token was issued for another file")
        wiki = emulator.wiki
        with wiki.lock:
            attachment = wiki.attachments.get(str(payload.get("att")))
            version = attachment.at_version(int(payload.get("v", 0))) if attachment is not None else None  # type: ignore[call-overload]
            # The token is the permission: only a purged attachment (or an unknown version) is gone here.
            if attachment is None or version is None:
                return _error(404, "NotFound", "File not found")
        return binary_response(request, attachment, version, self.body_cuts, inline=request.param("dl") != "true")


def _error(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "title": message}}, status)
