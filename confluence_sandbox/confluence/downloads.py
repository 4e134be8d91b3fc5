"""Binary download answers shared by the site and the media host: streamed bytes, headers, scripted mid-body cuts."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

from confluence_sandbox.confluence.attachments import Attachment, AttachmentVersion, FileData
from confluence_sandbox.http import Request, Response


@dataclass
class _Cut:
    pattern: re.Pattern[str]
    after: int | None
    remaining: int | None
    predicate: Callable[[Request], bool] | None


class BodyCuts:
    """Downloads that send their headers and part of the body, then hang up: a broken upstream or proxy.

    The `FaultPlan` answers before the handler runs and so cannot fail halfway through a body; this plan is
    consulted by the download handlers themselves. Matching works like `FaultPlan.add`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cuts: list[_Cut] = []

    def add(
        self,
        path_regex: str,
        *,
        after: int | None = None,
        times: int | None = 1,
        when: Callable[[Request], bool] | None = None,
    ) -> None:
        """Cut the next `times` matching downloads (None = every one) after `after` bytes (None = half the body)."""
        with self._lock:
            self._cuts.append(_Cut(re.compile(path_regex), after, times, when))

    def clear(self) -> None:
        with self._lock:
            self._cuts.clear()

    def take(self, request: Request, size: int) -> int | None:
        """How many bytes to send before hanging up, or None to send everything."""
        with self._lock:
            for cut in self._cuts:
                if not cut.pattern.search(request.path):
                    continue
                if cut.predicate is not None and not cut.predicate(request):
                    continue
                if cut.remaining is not None:
                    cut.remaining -= 1
                    if cut.remaining <= 0:
                        self._cuts.remove(cut)
                return min(size, size // 2 if cut.after is None else cut.after)
        return None


def binary_response(
    request: Request, attachment: Attachment, version: AttachmentVersion, cuts: BodyCuts, *, inline: bool = False
) -> Response:
    """200 with the version's bytes streamed in blocks and the full Content-Length, possibly cut short."""
    data = version.data
    limit = cuts.take(request, data.size)
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Type": version.media_type,
        "Content-Length": str(data.size),
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(attachment.title, safe='')}",
        "ETag": f'"{attachment.id}-{version.number}"',
        "Cache-Control": "private, max-age=0",
    }
    return Response(200, b"", headers, stream=_chunks(data, limit))


def _chunks(data: FileData, limit: int | None) -> Iterator[bytes]:
    if limit is None:
        yield from data.chunks()
        return
    sent = 0
    for chunk in data.chunks():
        if sent + len(chunk) >= limit:
            yield chunk[: limit - sent]
            return
        yield chunk
        sent += len(chunk)
