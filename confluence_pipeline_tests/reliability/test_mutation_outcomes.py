"""Mutations whose answer is lost or wrong: settled by reading Unique back, never by sending them again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from confluence_pipeline_tests.support import (
    JSON,
    Sandbox,
    StoredItem,
    expected_state,
    failure_text,
    logged,
    mutations,
    output_metadata,
    prepare_pending_changes,
    unique_state,
)
from confluence_sandbox.http import Fault, Request
from confluence_sandbox.unique.server import graphql_error_fault

DELETE = "ContentDeleteByContentIds"
GRAPHQL = r"/ingestion/graphql$"
PUT_UPLOAD = r"^/blob/upload$"


def _operation(name: str, *, finalize: bool | None = None, key: str | None = None) -> Callable[[Request], bool]:
    """Matches GraphQL requests of one operation (optionally only register or finalize, only one key)."""

    def matches(request: Request) -> bool:
        body = request.json() or {}
        if body.get("operationName") != name:
            return False
        variables = body.get("variables") or {}
        if finalize is not None and ("fileUrl" in variables) != finalize:
            return False
        return key is None or (variables.get("input") or {}).get("key") == key

    return matches


def _variables(request: Any) -> dict[str, Any]:
    return json.loads(request.body).get("variables") or {}


def _delete_calls(box: Sandbox) -> list[list[str]]:
    """The contentIds of every ContentDeleteByContentIds Unique received, in order."""
    return [_variables(r)["contentIds"] for r in mutations(box, DELETE)]


def _finalizes(box: Sandbox, key: str) -> int:
    """How many finalizes (ContentUpsert with a fileUrl) of `key` Unique received."""
    sent = [_variables(r) for r in mutations(box, "ContentUpsert")]
    return sum(1 for variables in sent if "fileUrl" in variables and variables["input"]["key"] == key)


def _id_read_backs(box: Sandbox) -> list[list[str]]:
    """The ids of every `paginatedContent(where: {id: {in: ...}})` query, in order."""
    queries = [r for r in box.unique.requests if r.path.endswith("/graphql") and b"PaginatedContent" in r.body]
    return [ids for r in queries if (ids := ((_variables(r).get("where") or {}).get("id") or {}).get("in"))]


def _single_item_diffs(box: Sandbox) -> list[str]:
    """Relative keys of the file-diffs that asked about one item only (the finalize read-back)."""
    bodies = [json.loads(r.body) for r in box.unique.requests if r.path.endswith("/file-diff")]
    return [body["fileList"][0]["key"] for body in bodies if len(body["fileList"]) == 1]


def _pending(box: Sandbox) -> tuple[dict[str, StoredItem], str, str, str]:
    """Pending changes; returns the state before, and the keys of the updated, the unlabelled and the new page."""
    before = prepare_pending_changes(box)
    wiki = box.confluence.wiki
    updated = next(p for p in wiki if p.version == 2)
    dropped = next(p for p in wiki if p.labels == set())
    new = next(p for p in wiki if p.title == "Brand new")
    return before, box.key_of(updated.id), box.key_of(dropped.id), box.key_of(new.id)


def _totals(result: Any) -> dict[str, int]:
    metadata = output_metadata(result, "summarize_sync")
    return {name: metadata[f"total_{name}"] for name in ("new", "updated", "deleted", "failed")}


# -- deletes ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Fault(drop=True, after_handler=True), id="dropped"),
        pytest.param(Fault(200, JSON, b'{"data": {"contentDeleteByContentIds": []}}', after_handler=True), id="empty"),
        pytest.param(graphql_error_fault(path=["contentDeleteByContentIds"]), id="graphql-error"),
        pytest.param(graphql_error_fault(http_status=502), id="bad-gateway"),
    ],
)
def test_a_delete_applied_but_answered_badly_counts_as_deleted(onprem: Sandbox, answer: Fault) -> None:
    _, _, dropped_key, _ = _pending(onprem)
    content_id = onprem.unique.store.content_by_key(dropped_key).id
    onprem.unique.faults.add(GRAPHQL, answer, when=_operation(DELETE))

    result = onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert _totals(result) == {"new": 1, "updated": 1, "deleted": 1, "failed": 0}
    assert _delete_calls(onprem) == [[content_id]]  # not sent again: the read-back showed it gone
    assert _id_read_backs(onprem) == [[content_id]]


def test_a_delete_whose_answer_times_out_after_it_was_applied_counts_as_deleted(onprem: Sandbox) -> None:
    _, _, dropped_key, _ = _pending(onprem)
    content_id = onprem.unique.store.content_by_key(dropped_key).id
    onprem.set_env(HTTP_TIMEOUT_SECONDS="1")
    onprem.unique.faults.add(GRAPHQL, Fault(delay=2.5, after_handler=True), when=_operation(DELETE))

    result = onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert _totals(result)["deleted"] == 1 and _totals(result)["failed"] == 0
    assert _delete_calls(onprem) == [[content_id]]
    assert _id_read_backs(onprem) == [[content_id]]


def test_a_delete_lost_before_the_server_acted_is_sent_once_more_after_the_read_back(onprem: Sandbox) -> None:
    _, _, dropped_key, _ = _pending(onprem)
    content_id = onprem.unique.store.content_by_key(dropped_key).id
    onprem.unique.faults.add(GRAPHQL, Fault(drop=True), when=_operation(DELETE))  # before the handler: not applied

    result = onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert _totals(result)["deleted"] == 1
    assert _delete_calls(onprem) == [[content_id], [content_id]]
    assert _id_read_backs(onprem) == [[content_id]]


def test_content_that_survives_the_second_delete_is_reported_with_its_page(onprem: Sandbox) -> None:
    _, _, dropped_key, _ = _pending(onprem)
    content_id = onprem.unique.store.content_by_key(dropped_key).id
    # Every delete is lost before the server acts: the read-back finds the content each time.
    onprem.unique.faults.add(GRAPHQL, Fault(drop=True), when=_operation(DELETE), times=None)

    result = onprem.run_sync(expect_success=False)

    page_id = dropped_key.rsplit("/", 1)[1]
    assert f"page {page_id} in space ENG failed at delete" in failure_text(result)
    assert _delete_calls(onprem) == [[content_id], [content_id]]  # once, then once more: never blindly
    assert _id_read_backs(onprem) == [[content_id], [content_id]]
    state = unique_state(onprem)
    assert dropped_key in state and {k: v for k, v in state.items() if k != dropped_key} == expected_state(onprem)


def test_deletes_go_in_batches_of_at_most_20_ids(onprem: Sandbox) -> None:
    onprem.unique.max_delete_ids = 20  # a bigger batch is refused as a whole
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"]).id for n in range(46)]
    onprem.run_sync()
    stale = pages[:45]
    for page_id in stale:
        wiki.remove_label(page_id, "ai-ingest")
    onprem.unique.clear_requests()

    result = onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert set(unique_state(onprem)) == {onprem.key_of(pages[45])}
    assert _totals(result)["deleted"] == 45
    assert [len(ids) for ids in _delete_calls(onprem)] == [20, 20, 5]
    assert _id_read_backs(onprem) == []  # every id confirmed: nothing to read back


# -- finalize ----------------------------------------------------------------------------------------------------
REFUSED_AGAIN = graphql_error_fault(
    "The upload of this content was already finalized", status_code=400, code="BAD_REQUEST", after_handler=False
)
"""How a server may answer a finalize sent a second time for the same upload."""


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Fault(drop=True, after_handler=True), id="dropped"),
        pytest.param(graphql_error_fault(path=["contentUpsert", "writeUrl"]), id="graphql-error"),
        pytest.param(graphql_error_fault(http_status=502), id="bad-gateway"),
        pytest.param(Fault(delay=2.5, after_handler=True), id="timed-out"),
    ],
)
def test_a_finalize_applied_but_answered_badly_counts_as_ingested(onprem: Sandbox, answer: Fault) -> None:
    _, updated_key, dropped_key, new_key = _pending(onprem)
    dropped_id = onprem.unique.store.content_by_key(dropped_key).id
    if answer.delay:
        onprem.set_env(HTTP_TIMEOUT_SECONDS="1")
    for key in (updated_key, new_key):
        onprem.unique.faults.add(GRAPHQL, answer, when=_operation("ContentUpsert", finalize=True, key=key))
        onprem.unique.faults.add(
            GRAPHQL, REFUSED_AGAIN, when=_operation("ContentUpsert", finalize=True, key=key), times=None
        )

    result = onprem.run_sync()

    assert unique_state(onprem) == expected_state(onprem)
    assert _totals(result) == {"new": 1, "updated": 1, "deleted": 1, "failed": 0}
    assert (_finalizes(onprem, updated_key), _finalizes(onprem, new_key)) == (1, 1)
    assert sorted(_single_item_diffs(onprem)) == sorted(k.rsplit("/", 1)[1] for k in (updated_key, new_key))
    assert _delete_calls(onprem) == [[dropped_id]]  # only the stale page: nothing ingested was removed


def test_a_finalize_that_was_not_applied_fails_the_page_and_removes_only_what_this_run_created(
    onprem: Sandbox,
) -> None:
    before, updated_key, _, new_key = _pending(onprem)
    updated_id = onprem.unique.store.content_by_key(updated_key).id
    for key in (updated_key, new_key):  # lost before the server acted; once only, a repeat would go through
        onprem.unique.faults.add(GRAPHQL, Fault(drop=True), when=_operation("ContentUpsert", finalize=True, key=key))

    result = onprem.run_sync(expect_success=False)

    text = failure_text(result)
    assert "2 page(s) failed" in text and text.count("failed at finalize") == 2
    assert "outcome unknown" in text
    assert (_finalizes(onprem, updated_key), _finalizes(onprem, new_key)) == (1, 1)
    state = unique_state(onprem)
    assert new_key not in state  # registered by this run, never finalized: removed
    assert state == {
        **{k: v for k, v in expected_state(onprem).items() if k != new_key},
        updated_key: before[updated_key],  # the previous version stays readable
    }
    assert onprem.unique.store.content_by_key(updated_key).id == updated_id


# -- cleanup of a half-registered page ---------------------------------------------------------------------------
def test_a_page_the_diff_calls_new_keeps_the_content_its_key_already_held_when_its_upload_fails(
    onprem: Sandbox,
) -> None:
    # The server's file-diff only looks at content of the request's source; the key holds content written
    # under the wiki's former address, so the diff calls the page new although its key exists.
    onprem.unique.file_diff_filters_by_source = True
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Handbook", labels=["ai-ingest"], body="<p>current</p>")
    key = onprem.key_of(page.id)
    scope_id = onprem.env["UNIQUE_SCOPE_ID"]
    earlier = onprem.unique.store.seed_content(
        key, owner_id=scope_id, data=b"<p>earlier</p>", source_name="https://old-wiki.example.com"
    )
    onprem.unique.faults.add(PUT_UPLOAD, Fault(403, JSON, b'{"message":"denied"}'), method="PUT", times=None)

    result = onprem.run_sync(expect_success=False)

    assert onprem.unique.file_diffs[0].new == (page.id,)
    assert "failed at upload" in failure_text(result)
    assert _delete_calls(onprem) == []
    kept = onprem.unique.store.content_by_key(key)
    assert kept is not None and kept.id == earlier.id
    assert unique_state(onprem) == {key: StoredItem(True, "t", b"<p>earlier</p>")}


def test_the_cleanup_delete_of_a_new_page_is_settled_by_reading_back(onprem: Sandbox) -> None:
    before, updated_key, dropped_key, new_key = _pending(onprem)
    dropped_id = onprem.unique.store.content_by_key(dropped_key).id
    onprem.unique.faults.add(PUT_UPLOAD, Fault(403, JSON, b'{"message":"denied"}'), method="PUT", times=None)
    onprem.unique.faults.add(GRAPHQL, Fault(drop=True, after_handler=True), when=_operation(DELETE))  # the cleanup's

    result = onprem.run_sync(expect_success=False)

    assert failure_text(result).count("failed at upload") == 2
    state = unique_state(onprem)
    assert new_key not in state
    assert state == {
        **{k: v for k, v in expected_state(onprem).items() if k != new_key},
        updated_key: before[updated_key],
    }
    cleanup, stale = _delete_calls(onprem)  # the cleanup was not sent twice; the stale page's delete followed
    assert len(cleanup) == 1 and stale == [dropped_id]
    assert _id_read_backs(onprem) == [cleanup]
    assert not [line for line in logged(onprem, result) if "Cleanup of half-registered page" in line]


def _key_lookups(box: Sandbox) -> list[tuple[int, list[str]]]:
    """(position among Unique's requests, keys) of every `paginatedContent(where: {key: {in: ...}})` query."""
    found = []
    for index, request in enumerate(box.unique.requests):
        if request.path.endswith("/graphql") and b"PaginatedContent" in request.body:
            keys = ((_variables(request).get("where") or {}).get("key") or {}).get("in")
            if keys:
                found.append((index, keys))
    return found


def _first_registration(box: Sandbox) -> int:
    return next(
        i for i, r in enumerate(box.unique.requests) if b"ContentUpsert" in r.body and b'"fileUrl"' not in r.body
    )


def test_existing_keys_are_looked_up_before_registering_once_per_body_batch_for_new_pages_only(
    onprem: Sandbox,
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"]).id for n in range(60)]

    onprem.run_sync()

    lookups = _key_lookups(onprem)
    assert sorted(len(keys) for _, keys in lookups) == [10, 50]  # bodies come in batches of 50
    assert {key for _, keys in lookups for key in keys} == {onprem.key_of(p) for p in pages}
    assert lookups[0][0] < _first_registration(onprem)

    wiki.update_page(pages[0], body="<p>changed</p>")
    added = [wiki.add_page("ENG", f"New {n}", labels=["ai-ingest"]).id for n in range(3)]
    onprem.unique.clear_requests()

    onprem.run_sync()

    assert [sorted(keys) for _, keys in _key_lookups(onprem)] == [sorted(onprem.key_of(p) for p in added)]
