"""Confluence misbehaving: every fault ends in exactly the state a clean sync gives, or fails before any write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from confluence_pipeline_tests.support import (
    JSON,
    Sandbox,
    expected_state,
    failure_text,
    is_body_batch,
    logged,
    prepare_pending_changes,
    search_cql,
    unique_state,
)
from confluence_sandbox.confluence.server import LOGIN_PAGE
from confluence_sandbox.http import Fault

ABSURD = "9223372036854775807"  # seen from Atlassian in the wild (contract confluence-rest §6)
_BODYLESS = json.dumps(
    {
        "results": [
            {
                "id": "100000",
                "type": "page",
                "status": "current",
                "title": "Page 0",
                "space": {"id": 98305, "key": "ENG", "name": "Engineering", "type": "global"},
                "version": {"number": 2, "when": "2030-01-01T00:00:00.000Z"},
            }
        ],
        "_links": {},
    }
).encode()  # a well-formed page of results whose content lacks body.storage


def _searches(box: Sandbox) -> list[Any]:
    return [r for r in box.confluence.requests if r.path.endswith("/content/search")]


def _is_discovery(request: Any) -> bool:
    return "label" in search_cql(request) and not is_body_batch(request)


def _assert_clean(box: Sandbox) -> None:
    assert unique_state(box) == expected_state(box)


# -- faults the sync rides out: the end state is exactly a clean sync's ----------------------------------
def test_a_429_storm_honours_retry_after_and_converges(sandbox: Sandbox) -> None:
    prepare_pending_changes(sandbox)
    # Four 429s in a row on discovery (the fifth attempt gets through), three more on the body batch.
    sandbox.confluence.faults.rate_limited(r"/content/search$", retry_after="0", times=3)
    sandbox.confluence.faults.rate_limited(r"/content/search$", retry_after="1", times=1)
    sandbox.confluence.faults.add(
        r"/content/search$",
        Fault(429, {"Retry-After": "0", **JSON}, b'{"message":"Rate limit exceeded"}'),
        times=3,
        when=is_body_batch,
    )

    sandbox.run_sync()

    _assert_clean(sandbox)
    searches = _searches(sandbox)
    assert [r.status for r in searches[:5]] == [429, 429, 429, 429, 200]
    assert searches[4].time - searches[3].time >= 1.0  # Retry-After: 1 was waited out
    batches = [r.status for r in searches if is_body_batch(r)]
    assert batches == [429, 429, 429, 200]


def test_absurd_retry_after_values_are_clamped(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    faults = onprem.confluence.faults
    faults.add(
        r"/content/search$",
        Fault(429, {"Retry-After": ABSURD, "X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0", **JSON}, b"{}"),
    )
    faults.add(r"/content/search$", Fault(503, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT", **JSON}, b"{}"))

    result = onprem.run_sync()

    _assert_clean(onprem)
    statuses = [r.status for r in _searches(onprem)[:3]]
    assert statuses == [429, 503, 200]
    waits = [m for m in logged(onprem, result) if "GET content/search attempt" in m]
    assert len(waits) == 2 and all(m.endswith("retrying in 1.0 s") for m in waits), waits  # HTTP_RETRY_AFTER_MAX


def test_a_429_with_only_rate_limit_headers_backs_off_and_converges(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2030-01-01T00:00Z"}
    onprem.confluence.faults.add(r"/content/search$", Fault(429, {**headers, **JSON}, b"{}"), times=2)

    result = onprem.run_sync()

    _assert_clean(onprem)
    assert [r.status for r in _searches(onprem)[:3]] == [429, 429, 200]
    waits = [m for m in logged(onprem, result) if "attempt" in m and "HTTP 429" in m]
    assert len(waits) == 2 and not any("retrying in 1.0 s" in m for m in waits)  # exponential backoff, no clamp


def test_503_with_retry_after_during_expansion_and_body_fetch_converges(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    root = wiki.add_page("ENG", "Root", labels=["ai-ingest-all"], body="<p>root</p>")
    for n in range(3):
        wiki.add_page("ENG", f"Child {n}", parent_id=root.id, body=f"<p>child {n}</p>")
    busy = Fault(503, {"Retry-After": "0", **JSON}, b'{"message":"busy"}')
    sandbox.confluence.faults.add(r"/content/search$", busy, times=2, when=lambda r: "ancestor" in search_cql(r))
    sandbox.confluence.faults.add(r"/content/search$", busy, times=2, when=is_body_batch)

    sandbox.run_sync()

    _assert_clean(sandbox)
    assert len(expected_state(sandbox)) == 4
    assert [r.status for r in _searches(sandbox) if "ancestor" in search_cql(r)] == [503, 503, 200]


def test_500_on_large_pages_shrinks_the_page_size_and_skips_nothing(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    for n in range(57):
        wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>{n}</p>")
    sandbox.confluence.fail_above_limit = 60

    sandbox.run_sync()

    _assert_clean(sandbox)
    assert len(expected_state(sandbox)) == 57
    discovery = [(int(r.query["limit"][0]), r.status) for r in _searches(sandbox) if _is_discovery(r)]
    # 200 and 100 fail; the rest of discovery keeps the size that worked (57 pages: two pages of 50).
    assert discovery[:3] == [(200, 500), (100, 500), (50, 200)]
    assert all(status == 200 for _, status in discovery[2:]) and {size for size, _ in discovery[2:]} == {50}


def test_a_request_that_times_out_is_retried_and_converges(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    onprem.set_env(HTTP_TIMEOUT_SECONDS="2")
    # The server holds the first discovery request past HTTP_TIMEOUT_SECONDS=2, then hangs up.
    onprem.confluence.faults.add(r"/content/search$", Fault(delay=2.5, drop=True), when=_is_discovery)

    result = onprem.run_sync()

    _assert_clean(onprem)
    discovery = [r.status for r in _searches(onprem) if _is_discovery(r)]
    assert discovery == [None, 200]
    assert any("ReadTimeout" in m for m in logged(onprem, result))


def test_dropped_connections_are_retried_and_converge(sandbox: Sandbox) -> None:
    prepare_pending_changes(sandbox)
    sandbox.confluence.faults.add(r"/content/search$", Fault(drop=True), times=2, when=_is_discovery)
    sandbox.confluence.faults.add(r"/content/search$", Fault(drop=True), times=1, when=is_body_batch)

    sandbox.run_sync()

    _assert_clean(sandbox)
    assert [r.status for r in _searches(sandbox)].count(None) == 3


@pytest.mark.parametrize(
    ("mode", "fault"),
    [
        pytest.param("onprem", Fault(200, {"Content-Type": "text/html"}, LOGIN_PAGE.encode()), id="html-login-page"),
        pytest.param("onprem", Fault(200, JSON, b'{"results": [{"id": "1"'), id="malformed-json"),
        pytest.param("cloud", Fault(200, JSON, b'{"results": [{"id": "1"'), id="cloud-malformed-json"),
        pytest.param("onprem", Fault(200, JSON, _BODYLESS), id="missing-body"),
    ],
)
def test_a_bad_body_batch_answer_falls_back_to_single_fetches_and_converges(
    request: pytest.FixtureRequest, mode: str, fault: Fault
) -> None:
    box: Sandbox = request.getfixturevalue(mode)
    prepare_pending_changes(box)
    box.confluence.faults.add(r"/content/search$", fault, times=1, when=is_body_batch)

    box.run_sync()

    _assert_clean(box)
    batch = next(r for r in _searches(box) if is_body_batch(r))
    assert batch.status == 200 and batch.query["cql"][0].count(",") >= 1  # the faulted request was the batch


# -- faults that must stop the run before any write --------------------------------------------------------
def _result_page(*results: Any) -> bytes:
    return json.dumps({"results": list(results), "start": 0, "limit": 200, "size": len(results), "_links": {}}).encode()


_COMPLETE = {
    "id": "100000",
    "type": "page",
    "status": "current",
    "title": "x",
    "space": {"id": 98305, "key": "ENG", "name": "Engineering", "type": "global"},
    "version": {"number": 1, "when": "2024-05-01T10:02:03.000+02:00"},
}


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        pytest.param(Fault(200, {"Content-Type": "text/html"}, LOGIN_PAGE.encode()), "SSO login page", id="html-login"),
        pytest.param(Fault(200, JSON, b'{"results": [{"id": '), "malformed JSON", id="malformed-json"),
        pytest.param(Fault(200, JSON, b'{"size": 0, "_links": {}}'), "no results list", id="no-results"),
        pytest.param(Fault(200, JSON, _result_page({"type": "page"})), "missing fields: id", id="result-without-id"),
        pytest.param(
            Fault(200, JSON, _result_page({"id": "100000", "type": "page", "status": "current"})),
            "without space or version",
            id="result-without-expansions",
        ),
        pytest.param(Fault(200, JSON, _result_page("100000")), "search result", id="result-not-an-object"),
        pytest.param(
            Fault(200, JSON, _result_page({**_COMPLETE, "version": {"number": 1, "when": "yesterday"}})),
            "yesterday",
            id="unreadable-version-time",
        ),
        pytest.param(
            Fault(200, JSON, _result_page({**_COMPLETE, "space": {**_COMPLETE["space"], "id": "eng"}})),
            "space id",
            id="non-numeric-space-id",
        ),
    ],
)
def test_a_broken_discovery_answer_fails_before_any_write(onprem: Sandbox, fault: Fault, detail: str) -> None:
    before = prepare_pending_changes(onprem)
    onprem.confluence.faults.add(r"/content/search$", fault, times=None, when=_is_discovery)

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    text = failure_text(result)
    assert "discovery-incomplete" in text and detail in text, text
    assert onprem.unique.requests == []  # not even a diff
    assert unique_state(onprem) == before

    onprem.confluence.faults.clear()
    onprem.run_sync()
    _assert_clean(onprem)
