"""The request pacer keeps the SPEC's promises: evenly spread, bounded bursts, never more than N per minute."""

from __future__ import annotations

import itertools
import math
import random
import sys
import threading

import pytest

from confluence_pipeline.clients.ratelimit import RateLimiter

EPS = 1e-6


class FakeTime:
    """A clock that only moves when the limiter sleeps (or the test idles)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def _limiter(per_minute: int) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    return RateLimiter(per_minute, clock=fake.clock, sleep=fake.sleep), fake


def _max_in_window(grants: list[float], window: float) -> int:
    """Most grants in any half-open window [t, t + window)."""
    best, start = 0, 0
    for end, granted in enumerate(grants):
        while granted - grants[start] >= window - EPS:
            start += 1
        best = max(best, end - start + 1)
    return best


def _burst_cap(per_minute: int) -> int:
    return max(1, math.ceil(per_minute / 60)) + 1


@pytest.mark.parametrize("per_minute", [250, 100, 7, 1])
def test_continuous_demand_respects_both_windows_and_settles_to_even_spacing(per_minute: int) -> None:
    limiter, fake = _limiter(per_minute)
    minutes = 12
    grants: list[float] = []
    while fake.now < 1000.0 + minutes * 60:
        limiter.acquire()
        grants.append(fake.now)

    assert _max_in_window(grants, 60.0) <= per_minute
    assert _max_in_window(grants, 1.0) <= _burst_cap(per_minute)
    # Throughput is not throttled below the budget: about N per minute over the run.
    assert len(grants) >= per_minute * minutes
    # After the start-up burst has worked its way out, requests come exactly every 60/N seconds.
    settled = [t for t in grants if t >= 1000.0 + (minutes - 2) * 60]
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(settled)}
    assert gaps == {round(60.0 / per_minute, 6)}


@pytest.mark.parametrize("per_minute", [250, 100, 7, 1])
def test_intermittent_demand_never_bursts_past_the_cap_nor_the_minute_budget(per_minute: int) -> None:
    limiter, fake = _limiter(per_minute)
    rnd = random.Random(per_minute)
    grants: list[float] = []
    for _ in range(300):
        fake.now += rnd.choice([0.0, 0.0, 0.1, 0.5, 1.0, 5.0, 30.0, 90.0])  # idle spells refill the bucket
        for _ in range(rnd.randint(1, 3 * _burst_cap(per_minute))):
            limiter.acquire()
            grants.append(fake.now)

    assert _max_in_window(grants, 60.0) <= per_minute
    assert _max_in_window(grants, 1.0) <= _burst_cap(per_minute)


def test_a_full_bucket_serves_one_seconds_worth_at_once_then_paces() -> None:
    limiter, fake = _limiter(250)  # 5 tokens, one more every 0.24 s
    waits = [limiter.acquire() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.24)
    # The seventh would fit the bucket at 0.48 s but would make 7 in one second: it waits for the window.
    assert fake.now - 1000.0 >= 1.0 - EPS
    assert all(w >= 0 for w in waits)
    assert sum(waits) == pytest.approx(fake.now - 1000.0)


def test_small_budget_spreads_requests_instead_of_bunching() -> None:
    limiter, fake = _limiter(6)  # one every 10 s
    limiter.acquire()
    assert limiter.acquire() == pytest.approx(10.0)
    fake.now += 3.0  # the caller was busy; it only waits the rest
    assert limiter.acquire() == pytest.approx(7.0)


@pytest.mark.parametrize("per_minute", [None, 0])
def test_unlimited_never_reads_the_clock_nor_sleeps(per_minute: int | None) -> None:
    def forbidden(*_: object) -> float:
        raise AssertionError("an unlimited limiter must not wait")

    limiter = RateLimiter(per_minute, clock=forbidden, sleep=forbidden)
    assert limiter.per_minute is None
    assert [limiter.acquire() for _ in range(1000)] == [0.0] * 1000


def test_negative_budget_is_rejected() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        RateLimiter(-1)


def test_concurrent_callers_get_distinct_slots_of_the_same_schedule() -> None:
    """Real threads; the clock stands still so every slot is a reservation that must not be double-booked."""
    per_minute, threads, each = 600, 8, 40

    expected_limiter = RateLimiter(per_minute, clock=lambda: 0.0, sleep=lambda _: None)
    expected = sorted(expected_limiter.acquire() for _ in range(threads * each))

    limiter = RateLimiter(per_minute, clock=lambda: 0.0, sleep=lambda _: None)
    got: list[float] = []
    got_lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(each):
            slot = limiter.acquire()
            with got_lock:
                got.append(slot)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the interpreter switch threads as often as it can
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=10)
    finally:
        sys.setswitchinterval(previous)

    assert sorted(got) == pytest.approx(expected)
    assert _max_in_window(sorted(got), 1.0) <= _burst_cap(per_minute)
    assert _max_in_window(sorted(got), 60.0) <= per_minute
