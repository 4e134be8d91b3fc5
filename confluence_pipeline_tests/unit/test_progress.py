"""Progress lines of a long ingest: pages done of total, rate and ETA, at regular intervals even while stalled."""

from __future__ import annotations

import logging
import threading

import pytest

from confluence_pipeline.sync.progress import PageProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("done", "seconds", "line"),
    [
        (0, 0.0, "Space ENG: 0/5,000 pages (0.0/s), ETA unknown"),
        (1200, 5.0, "Space ENG: 1,200/5,000 pages (240/s), ETA 16 s"),
        (3, 10.0, "Space ENG: 3/5,000 pages (0.3/s), ETA 4 h 37 min"),
        (100, 20.0, "Space ENG: 100/5,000 pages (5.0/s), ETA 16 min 20 s"),
        (600, 60.0, "Space ENG: 600/5,000 pages (10/s), ETA 7 min 20 s"),
        (5000, 50.0, "Space ENG: 5,000/5,000 pages (100/s)"),
    ],
)
def test_a_line_says_pages_done_of_total_the_rate_and_the_eta(done: int, seconds: float, line: str) -> None:
    clock = Clock()
    progress = PageProgress("Space ENG", 5000, clock=clock)
    progress.advance(done)
    clock.now += seconds
    assert progress.line() == line


def test_counted_work_advances_whether_it_returns_or_raises() -> None:
    progress = PageProgress("Space ENG", 3)

    def work(fail: bool) -> str:
        if fail:
            raise RuntimeError("upload failed")
        return "ok"

    counted = progress.counted(work)
    assert counted(False) == "ok"
    with pytest.raises(RuntimeError):
        counted(True)
    assert progress.done == 2


def test_lines_keep_coming_while_nothing_advances_and_the_last_one_sums_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.progress")
    three_lines = threading.Event()

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if len(caplog.records) >= 3:
                three_lines.set()

    logger.addHandler(Counting())
    caplog.set_level(logging.INFO, logger="test.progress")
    with PageProgress("Space OPS", 10, interval=0.01, clock=clock, logger=logger) as progress:
        progress.advance(4)
        assert three_lines.wait(5), "no regular progress lines while the work stalled"
        clock.now += 8
        progress.advance(6)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Space OPS: 4/10 pages")
    assert lines[-1] == "Space OPS: 10/10 pages (1.2/s) in 8 s"
    assert progress.metadata() == {"pages_done": 10, "pages_total": 10, "ingest_seconds": 8.0, "pages_per_second": 1.25}


def test_the_default_interval_is_at_most_thirty_seconds() -> None:
    assert PageProgress("Space ENG", 1).interval <= 30
