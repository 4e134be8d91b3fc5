"""Client-side request pacing: N requests per minute, spread evenly, with small bounded bursts.

Semantics of CONFLUENCE_TOKENS_PER_MINUTE and UNIQUE_TOKENS_PER_MINUTE: one request (retries included) takes
one token; tokens refill continuously at N/60 per second into a bucket that holds at most one second's worth (⌈N/60⌉, at
least 1). On top of the bucket two logs of grant times make the promises hard limits rather than
averages: no 1 s window holds more than ⌈N/60⌉+1 grants (a full bucket plus its refill could otherwise
give almost 2·N/60 right after an idle spell), and no 60 s window holds more than N grants (the bucket
alone would allow N plus its capacity). Time spent waiting on a window earns no tokens, so a burst is not
echoed a window later; under steady demand grants settle to one every 60/N seconds.

Written here rather than taken from a library: pyrate-limiter (v3) enforces sliding-window counts only,
so it lets a whole second's allowance go at once instead of spreading requests, and its blocking mode
sleeps with `time.sleep` without an injectable clock/sleep; `limits` has no blocking acquire at all.

Threads reserve their slot under the lock and sleep outside it, so waiting callers are served in order
and the schedule never double-books a slot.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Blocking, thread-safe limiter; `per_minute` None or 0 means unlimited."""

    def __init__(
        self,
        per_minute: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute is not None and per_minute < 0:
            raise ValueError(f"per_minute must be positive, 0 or None (unlimited), got {per_minute}")
        self.per_minute = per_minute or None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        if self.per_minute is None:
            return
        self.capacity = max(1, math.ceil(self.per_minute / 60))
        self._rate = self.per_minute / 60.0  # tokens per second
        self._tokens = float(self.capacity)
        self._updated: float | None = None  # time at which `_tokens` was true; also the latest reservation
        self._second: deque[float] = deque(maxlen=self.capacity + 1)
        self._minute: deque[float] = deque(maxlen=self.per_minute)

    def acquire(self) -> float:
        """Block until a token is granted; return the seconds waited (0.0 when unlimited)."""
        if self.per_minute is None:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = self._reserve(now)
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def _reserve(self, now: float) -> float:
        start = now if self._updated is None else max(now, self._updated)
        tokens = self._tokens if self._updated is None else self._tokens + (start - self._updated) * self._rate
        tokens = min(tokens, float(self.capacity))
        ready = start if tokens >= 1.0 else start + (1.0 - tokens) / self._rate
        slot = ready
        if len(self._second) == self._second.maxlen:
            slot = max(slot, self._second[0] + 1.0)
        if len(self._minute) == self._minute.maxlen:
            slot = max(slot, self._minute[0] + 60.0)
        # Time spent blocked by a window earns no tokens, or the burst that filled the window would be refunded
        # and repeat one window later, forever. max(): float rounding must not leave the bucket a hair short.
        tokens = 1.0 if slot > ready else max(1.0, min(float(self.capacity), tokens + (slot - start) * self._rate))
        self._tokens = tokens - 1.0
        self._updated = slot
        self._second.append(slot)
        self._minute.append(slot)
        return slot
