"""Paged listings: v1 ContentArrays (start/limit, DC's `next` miscount, Cloud search cursors) and v2 cursor lists."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from confluence_sandbox.confluence.errors import HttpError, v1_error, v2_error
from confluence_sandbox.http import Request, Response

if TYPE_CHECKING:
    from confluence_sandbox.confluence.server import ConfluenceEmulator

T = TypeVar("T")

SEARCH_CURSOR_PREFIX = "_sa_"


def query_string(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def int_param(request: Request, name: str, default: int) -> int:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(v1_error(400, f"Invalid {name}: {raw}")) from None
    if value < 0 or (name == "limit" and value == 0):
        raise HttpError(v1_error(400, f"Invalid {name}: {raw}"))
    return value


def content_array(
    emulator: ConfluenceEmulator,
    request: Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    *,
    path: str,
    cap: int,
    cursor: bool = False,
    default_limit: int = 25,
    visible: Callable[[T], bool] | None = None,
) -> Response:
    """A ContentArray page; DC miscounts `next.start` when it capped the limit, Cloud search uses cursors.

    With `visible`, `items` still holds what the caller may not see: the window is cut first and filtered
    afterwards, so a page can come back short or empty while `next` says more follows.
    """
    requested = int_param(request, "limit", default_limit)
    limit = min(requested, cap)
    raw_query = urlsplit(request.raw_target).query
    original = parse_qsl(raw_query, keep_blank_values=True)
    cql = request.param("cql") or ""
    if cursor and request.param("cursor"):
        offset = _decode_search_cursor(request.param("cursor") or "", cql)
    elif cursor and not emulator.cloud_honour_start:
        offset = 0
    else:
        offset = int_param(request, "start", 0)
    window = list(items[offset : offset + limit])
    shown = window if visible is None else [item for item in window if visible(item)]
    links = emulator.links
    body: dict[str, Any] = {
        "results": [render(item) for item in shown],
        "start": offset,
        "limit": limit,
        "size": len(shown),
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
            pairs = [("next", "true"), ("cursor", _encode_search_cursor(offset + limit, cql)), *kept]
            pairs += [("limit", str(limit)), ("start", str(offset + limit)), ("cql", cql)]
            body["_links"]["next"] = f"{path}?{query_string(pairs)}"
        if offset > 0:
            back = max(0, offset - limit)
            pairs = [("prev", "true"), ("cursor", _encode_search_cursor(back, cql)), *kept]
            pairs += [("limit", str(limit)), ("start", str(back)), ("cql", cql)]
            body["_links"]["prev"] = f"{path}?{query_string(pairs)}"
        return Response.json(body)
    kept = [(k, v) for k, v in original if k not in ("limit", "start")]
    onprem = emulator.mode == "ONPREM"
    if has_more or (onprem and emulator.trailing_empty_next):
        if onprem and emulator.dc_next_bug:
            next_start = offset + requested
        else:
            next_start = offset + (len(window) if window else limit)
        next_limit = requested if onprem else limit
        pairs = [*kept, ("limit", str(next_limit)), ("start", str(next_start))]
        body["_links"]["next"] = f"{path}?{query_string(pairs)}"
    if not onprem and offset > 0:
        pairs = [*kept, ("limit", str(limit)), ("start", str(max(0, offset - limit)))]
        body["_links"]["prev"] = f"{path}?{query_string(pairs)}"
    return Response.json(body)


def _fingerprint(cql: str) -> str:
    return hashlib.sha256(cql.encode("utf-8")).hexdigest()[:12]


def _encode_search_cursor(offset: int, cql: str) -> str:
    # The query's fingerprint ties a cursor to its CQL, so a cursor replayed with another query is rejected.
    payload = json.dumps({"offset": offset, "q": _fingerprint(cql)}, separators=(",", ":"))
    return SEARCH_CURSOR_PREFIX + base64.b64encode(payload.encode("utf-8")).decode("ascii")


def _decode_search_cursor(cursor: str, cql: str) -> int:
    invalid = HttpError(v1_error(400, f"Invalid cursor: {cursor}"))
    if not cursor.startswith(SEARCH_CURSOR_PREFIX):
        raise invalid
    try:
        payload = json.loads(base64.b64decode(cursor[len(SEARCH_CURSOR_PREFIX) :], validate=True))
        offset = int(payload["offset"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid from None
    if payload.get("q") != _fingerprint(cql) or offset < 0:
        raise invalid
    return offset


def v2_results(
    emulator: ConfluenceEmulator,
    request: Request,
    items: Sequence[T],
    render: Callable[[T], Any],
    path: str,
    default_limit: int = 25,
) -> Response:
    """A v2 `results` page: opaque cursor in `_links.next` and in the `Link` header."""
    raw_limit = request.param("limit")
    try:
        limit = int(raw_limit) if raw_limit else default_limit
    except ValueError:
        limit = 0
    if not 1 <= limit <= 250:
        return v2_error(400, "INVALID_REQUEST_PARAMETER", "limit must be between 1 and 250")
    offset = 0
    if cursor := request.param("cursor"):
        try:
            offset = int(json.loads(base64.b64decode(cursor, validate=True))["offset"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            return v2_error(400, "INVALID_REQUEST_PARAMETER", "Invalid cursor")
    window = items[offset : offset + limit]
    base = emulator.links.base
    links: dict[str, str] = {}
    headers: dict[str, str] = {}
    if offset + len(window) < len(items):
        original = parse_qsl(urlsplit(request.raw_target).query, keep_blank_values=True)
        pairs = [(k, v) for k, v in original if k != "cursor"] + [("cursor", v2_cursor(offset + limit))]
        links["next"] = f"{path}?{query_string(pairs)}"
        headers["Link"] = f'<{links["next"]}>; rel="next", <{base}>; rel="base"'
    links["base"] = base
    return Response.json({"results": [render(item) for item in window], "_links": links}, headers=headers)


def v2_cursor(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode("utf-8")).decode("ascii")
