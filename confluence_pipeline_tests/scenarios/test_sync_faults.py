"""Scenarios for rate limits and isolated page failures (issue: sync job, item 11)."""

from __future__ import annotations

import json
from urllib.parse import unquote

from confluence_pipeline_tests.support import Sandbox, failure_text
from confluence_sandbox.http import Fault

JSON = {"Content-Type": "application/json"}


def _wiki(box: Sandbox, pages: int = 5) -> list[str]:
    box.confluence.wiki.add_space("ENG", "Engineering")
    return [
        box.confluence.wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"], body=f"<p>{n}</p>").id for n in range(pages)
    ]


def _is_body_batch(request: object) -> bool:
    cql = unquote(getattr(request, "query", {}).get("cql", [""])[0])
    return "ID IN" in cql.upper() and "," in cql


def test_rate_limits_and_503s_are_retried_to_the_exact_end_state(sandbox: Sandbox) -> None:
    ids = _wiki(sandbox, 8)
    faults = sandbox.confluence.faults
    faults.rate_limited(r"/content/search$", retry_after="1", times=2)
    faults.add(r"/content/search$", Fault(503, {"Retry-After": "0", **JSON}, b'{"message":"busy"}'), times=2)
    sandbox.unique.faults.add(r"/v2/content/file-diff$", Fault(503, {"Retry-After": "0"}, b"busy"), times=1)

    sandbox.run_sync()

    assert set(sandbox.stored()) == {sandbox.key_of(i) for i in ids}
    statuses = [r.status for r in sandbox.confluence.requests if r.path.endswith("/content/search")]
    assert statuses.count(429) == 2 and statuses.count(503) == 2


def test_a_page_whose_body_cannot_be_fetched_fails_alone(onprem: Sandbox) -> None:
    ids = _wiki(onprem, 6)
    onprem.run_sync()
    before = {k: v.data for k, v in onprem.stored().items()}
    for page_id in ids:
        onprem.confluence.wiki.update_page(page_id, body=f"<p>v2 {page_id}</p>")
    bad = ids[2]
    onprem.confluence.faults.add(
        r"/content/search$", Fault(500, JSON, b'{"message":"batch"}'), times=None, when=_is_body_batch
    )
    onprem.confluence.faults.add(rf"/content/{bad}$", Fault(500, JSON, b'{"message":"broken page"}'), times=None)

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    text = failure_text(result)
    assert f"page {bad} in space ENG failed at fetch" in text and "SYNC_FAILURE_TOLERANCE=0" in text
    stored = onprem.stored()
    assert stored[onprem.key_of(bad)].data == before[onprem.key_of(bad)]  # previous content intact
    for page_id in ids:
        if page_id != bad:
            assert stored[onprem.key_of(page_id)].data == f"<p>v2 {page_id}</p>".encode()


def test_failure_tolerance_lets_the_run_succeed(onprem: Sandbox) -> None:
    ids = _wiki(onprem, 3)
    onprem.set_env(SYNC_FAILURE_TOLERANCE="1")
    onprem.confluence.faults.add(r"/content/search$", Fault(500, JSON, b"{}"), times=None, when=_is_body_batch)
    onprem.confluence.faults.add(rf"/content/{ids[0]}$", Fault(500, JSON, b"{}"), times=None)

    result = onprem.run_sync()

    assert result.success
    assert set(onprem.stored()) == {onprem.key_of(i) for i in ids[1:]}


def test_failed_upload_of_a_new_page_leaves_nothing_behind_and_an_update_keeps_the_old_version(
    sandbox: Sandbox,
) -> None:
    ids = _wiki(sandbox, 3)
    sandbox.run_sync()
    old = sandbox.stored()[sandbox.key_of(ids[0])].data
    sandbox.confluence.wiki.update_page(ids[0], body="<p>new version</p>")
    new_page = sandbox.confluence.wiki.add_page("ENG", "Brand new", labels=["ai-ingest"], body="<p>fresh</p>")
    sandbox.unique.faults.add(r"^/blob/upload$", Fault(500, {}, b"storage down"), method="PUT", times=None)

    result = sandbox.run_sync(expect_success=False)

    assert not result.success
    text = failure_text(result)
    assert "failed at upload" in text and new_page.id in text and ids[0] in text
    assert sandbox.key_of(new_page.id) not in sandbox.all_keys()  # no half-registered content
    assert sandbox.stored()[sandbox.key_of(ids[0])].data == old  # the previous version stays


def test_graphql_error_on_finalize_isolates_the_page(onprem: Sandbox) -> None:
    ids = _wiki(onprem, 3)
    error = {
        "data": None,
        "errors": [
            {
                "message": "Internal server error",
                "path": ["contentUpsert"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "response": {"statusCode": 500, "message": "x"}},
            }
        ],
    }
    target = onprem.key_of(ids[1]).encode()
    onprem.unique.faults.add(
        r"/graphql$",
        Fault(200, JSON, json.dumps(error).encode()),
        times=None,
        when=lambda r: b'"fileUrl"' in r.body and target in r.body,
    )

    result = onprem.run_sync(expect_success=False)

    assert "failed at finalize" in failure_text(result)
    assert set(onprem.stored()) == {onprem.key_of(ids[0]), onprem.key_of(ids[2])}
    assert onprem.key_of(ids[1]) not in onprem.all_keys()
