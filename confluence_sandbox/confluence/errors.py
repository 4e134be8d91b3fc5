"""Error answers in the shapes Confluence uses: the DC/Cloud v1 envelope and the Cloud v2 `errors` list."""

from __future__ import annotations

from typing import Any

from confluence_sandbox.http import Response

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}


def _envelope(status: int, message: str, reason: str) -> dict[str, Any]:
    """The error body DC (and Cloud v1) use for 400/401/404/500."""
    return {
        "statusCode": status,
        "data": {"authorized": False, "valid": True, "allowedInReadOnlyMode": True, "errors": [], "successful": False},
        "message": message,
        "reason": reason,
    }


def v1_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json(_envelope(status, message, _REASONS.get(status, "Internal Server Error")), status, headers)


def v2_error(status: int, code: str, title: str) -> Response:
    return Response.json({"errors": [{"status": status, "code": code, "title": title, "detail": None}]}, status)


class HttpError(Exception):
    """Raised inside handlers to answer with a ready-made response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response
