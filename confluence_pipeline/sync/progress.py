"""Progress of a long ingest that a person can follow: a log line at regular intervals with pages, rate and ETA."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_INTERVAL_SECONDS = 30.0


class PageProgress:
    """Counts pages done out of a total; while entered, logs a line every `interval` seconds, and one at the end.

    The lines come from a timer thread, so they keep coming while every worker waits on a slow request or a
    rate limit: "Space ENG: 1,200/5,000 pages (240/s), ETA 16 s". `clock` measures rate and ETA (injectable
    for tests); the timer waits in real time.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.label = label
        self.total = total
        self.interval = interval
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        self._done = 0
        self._started = clock()
        self._ended: float | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    @property
    def done(self) -> int:
        with self._lock:
            return self._done

    def advance(self, pages: int = 1) -> None:
        """Count pages as done (uploaded, failed or skipped alike: they need no more time)."""
        if pages:
            with self._lock:
                self._done += pages

    def counted(self, work: Callable[P, R]) -> Callable[P, R]:
        """`work` that counts one page as done when it returns or raises."""

        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return work(*args, **kwargs)
            finally:
                self.advance()

        return run

    def seconds(self) -> float:
        end = self._clock() if self._ended is None else self._ended
        return max(end - self._started, 0.0)

    def rate(self) -> float:
        """Pages per second so far (0.0 before the first page or the first instant)."""
        seconds = self.seconds()
        return self.done / seconds if seconds > 0 else 0.0

    def line(self) -> str:
        done, rate = self.done, self.rate()
        head = f"{self.label}: {done:,}/{self.total:,} pages ({_rate(rate)})"
        if self._ended is not None:
            return f"{head} in {_duration(self.seconds())}"
        if done >= self.total:
            return head
        if rate <= 0:
            return f"{head}, ETA unknown"
        return f"{head}, ETA {_duration((self.total - done) / rate)}"

    def metadata(self) -> dict[str, float | int]:
        """What the step shows when it is done."""
        return {
            "pages_done": self.done,
            "pages_total": self.total,
            "ingest_seconds": round(self.seconds(), 1),
            "pages_per_second": round(self.rate(), 2),
        }

    def __enter__(self) -> Self:
        self._started = self._clock()
        self._timer = threading.Thread(target=self._tick, name=f"progress-{self.label[:20]}", daemon=True)
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        self._ended = self._clock()
        self._log.info("%s", self.line())

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._log.info("%s", self.line())


def _rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s" if per_second >= 10 else f"{per_second:.1f}/s"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
