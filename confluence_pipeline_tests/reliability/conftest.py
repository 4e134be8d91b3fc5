"""Reliability sandboxes: the shared ones with short HTTP patience (Retry-After clamped to 1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from confluence_pipeline_tests.support import FAST_HTTP, Sandbox, make_sandbox


def _fast(box_iter: Iterator[Sandbox]) -> Iterator[Sandbox]:
    for box in box_iter:
        box.set_env(**FAST_HTTP)
        yield box


@pytest.fixture
def onprem(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from _fast(make_sandbox("ONPREM", monkeypatch))


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from _fast(make_sandbox("CLOUD", monkeypatch))


@pytest.fixture(params=["ONPREM", "CLOUD"])
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from _fast(make_sandbox(request.param, monkeypatch))
