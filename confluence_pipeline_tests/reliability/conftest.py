"""Reliability fixtures: the scenario sandboxes with short HTTP patience, and exact Unique end-state helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pytest

from confluence_pipeline.clients import zitadel
from confluence_pipeline_tests.operations.conftest import home  # noqa: F401 - the persistent-instance fixture
from confluence_pipeline_tests.scenarios.conftest import Sandbox, failure_text, make_sandbox

__all__ = [
    "FAST_HTTP",
    "JSON",
    "Sandbox",
    "StoredItem",
    "expected_state",
    "failure_text",
    "is_body_batch",
    "logged",
    "prepare_pending_changes",
    "search_cql",
    "unique_state",
]

# No Retry-After is honoured for longer than 1 s, so the clamp shows in the logged wait instead of stalling
# the suite. The request timeout stays generous except where a test waits for it (a busy CI machine must
# not turn ordinary emulator answers into timeouts).
FAST_HTTP = {"HTTP_RETRY_AFTER_MAX_SECONDS": "1"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def _fresh_token_providers() -> Iterator[None]:
    # Token providers are shared per process and keyed by URL; ephemeral ports get reused, so a token
    # cached for a previous test's emulator must not leak into the next one.
    zitadel._SHARED.clear()
    yield
    zitadel._SHARED.clear()


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


@dataclass(frozen=True)
class StoredItem:
    """What a test compares of one content row: finalized or not, title and the exact bytes."""

    finalized: bool
    title: str
    data: bytes | None


def unique_state(box: Sandbox) -> dict[str, StoredItem]:
    """Every content row in Unique (finalized or not) by key."""
    return {c.key: StoredItem(c.finalized_at is not None, c.title, c.data) for c in box.unique.store.contents.values()}


def expected_state(box: Sandbox) -> dict[str, StoredItem]:
    """What a clean sync of the emulator's wiki leaves in Unique, derived from the wiki alone."""
    wiki = box.confluence.wiki
    single = box.env.get("INGEST_SINGLE_LABEL") or "ai-ingest"
    tree = box.env.get("INGEST_ALL_LABEL") or "ai-ingest-all"
    space_types = {"global", "collaboration"} if box.confluence.mode == "CLOUD" else {"global"}
    expected: dict[str, StoredItem] = {}
    for page in wiki:
        space = wiki.spaces.get(page.space_key)
        if page.status != "current" or space is None or space.type not in space_types or not wiki.is_visible(page):
            continue
        under_tree = any(tree in a.labels and a.status == "current" for a in page.ancestors(wiki))
        if single in page.labels or tree in page.labels or under_tree:
            expected[box.key_of(page.id)] = StoredItem(True, page.title, page.body.encode("utf-8"))
    return expected


def prepare_pending_changes(box: Sandbox, pages: int = 4) -> dict[str, StoredItem]:
    """A clean first sync, then wiki changes that a second sync would write (update, new, delete).

    Returns Unique's state after the first sync: what a run that fails before any write must leave.
    """
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    ids = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>v1 {n}</p>").id for n in range(pages)]
    box.run_sync()
    before = unique_state(box)
    assert before == expected_state(box)
    wiki.update_page(ids[0], body="<p>v2 changed</p>")
    wiki.remove_label(ids[1], "ai-ingest")
    wiki.add_page("ENG", "Brand new", labels=["ai-ingest"], body="<p>new</p>")
    box.confluence.clear_requests()
    box.unique.clear_requests()
    assert expected_state(box) != before  # the next clean sync would write
    return before


def search_cql(request: Any) -> str:
    return unquote((getattr(request, "query", {}).get("cql") or [""])[0])


def is_body_batch(request: Any) -> bool:
    return "body.storage" in ((getattr(request, "query", {}).get("expand") or [""])[0])


def logged(box: Sandbox, result: dg.ExecuteInProcessResult) -> list[str]:
    """Every log message of the run as the Dagster UI shows it (our module loggers are forwarded there)."""
    return [entry.user_message for entry in box.instance.all_logs(result.run_id)]
