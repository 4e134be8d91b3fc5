"""Unique misbehaving: token, GraphQL, upload and file-diff faults end in a clean sync's state or change nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from confluence_pipeline_tests.support import (
    JSON,
    Sandbox,
    StoredItem,
    expected_state,
    failure_text,
    prepare_pending_changes,
    unique_state,
)
from confluence_sandbox.http import Fault, Request

PUT_UPLOAD = r"^/blob/upload$"


def _graphql_error(message: str, status: int = 500, code: str = "INTERNAL_SERVER_ERROR") -> bytes:
    """An error in the contract's shape (unique-ingestion §2)."""
    error = {
        "message": message,
        "path": ["contentUpsert"],
        "extensions": {"code": code, "response": {"statusCode": status, "message": message, "error": "Error"}},
    }
    return json.dumps({"data": None, "errors": [error]}).encode()


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


def _pending(box: Sandbox) -> tuple[dict[str, StoredItem], str, str, str]:
    """Pending changes; returns the state before, and the keys of the updated, the unlabelled and the new page."""
    before = prepare_pending_changes(box)
    wiki = box.confluence.wiki
    updated = next(p for p in wiki if p.version == 2)
    dropped = next(p for p in wiki if p.labels == set())
    new = next(p for p in wiki if p.title == "Brand new")
    return before, box.key_of(updated.id), box.key_of(dropped.id), box.key_of(new.id)


def _assert_clean(box: Sandbox) -> None:
    assert unique_state(box) == expected_state(box)


def _converges_after_faults_clear(box: Sandbox) -> None:
    box.unique.faults.clear()
    box.confluence.faults.clear()
    box.run_sync()
    _assert_clean(box)


def _fails_before_any_write(box: Sandbox, before: dict[str, StoredItem]) -> str:
    result = box.run_sync(expect_success=False)
    assert not result.success
    assert box.unique_writes() == []
    assert unique_state(box) == before
    return failure_text(result)


# -- auth: nothing happens without a token -----------------------------------------------------------------
def test_token_endpoint_down_fails_before_any_write(onprem: Sandbox) -> None:
    before, *_ = _pending(onprem)
    with socket.socket() as closed:  # a port nobody listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/oauth/v2/token"
    onprem.set_env(ZITADEL_OAUTH_TOKEN_URL=dead_url)

    text = _fails_before_any_write(onprem, before)

    assert "zitadel POST zitadel token: no answer" in text and "ConnectError" in text
    assert onprem.unique.requests == []
    onprem.set_env(ZITADEL_OAUTH_TOKEN_URL=onprem.unique.token_url)
    _converges_after_faults_clear(onprem)


def _expire_tokens_at_first_api_call(box: Sandbox, then: Callable[[], None] = lambda: None) -> None:
    """The run's token stops being accepted when its first Unique API call arrives (then `then()` runs)."""
    done: list[bool] = []

    def expire(request: Request) -> bool:
        if not done:
            done.append(True)
            box.unique.expire_tokens()
            then()
        return False  # a side effect only: the request itself is answered normally (and refused as expired)

    box.unique.faults.add(r"^/ingestion/", Fault(500), when=expire, times=None)


def test_token_endpoint_refusing_the_client_fails_before_any_write(onprem: Sandbox) -> None:
    before, *_ = _pending(onprem)
    # The run's token is refused, and the client credentials are revoked at the same moment.
    revoked: list[bool] = []
    onprem.unique.faults.add(
        r"/oauth/v2/token$",
        Fault(401, JSON, b'{"error":"invalid_client"}'),
        method="POST",
        times=None,
        when=lambda request: bool(revoked),
    )
    _expire_tokens_at_first_api_call(onprem, then=lambda: revoked.append(True))

    text = _fails_before_any_write(onprem, before)

    assert "zitadel POST zitadel token: authentication or permission failure (HTTP 401)" in text
    assert len(onprem.unique.requests_to(r"/oauth/v2/token$")) == 2  # the run's token, then one refused refresh
    assert [r.status for r in onprem.unique.requests if r.path.startswith("/ingestion/")] == [401]
    _converges_after_faults_clear(onprem)


def test_a_token_unique_no_longer_accepts_is_replaced_once_and_the_sync_converges(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    issued_before = onprem.unique.tokens_issued
    _expire_tokens_at_first_api_call(onprem)  # the run's token goes stale under it

    onprem.run_sync()

    _assert_clean(onprem)
    refused = [r for r in onprem.unique.requests if r.status == 401]
    assert len(refused) == 1 and onprem.unique.tokens_issued == issued_before + 2


# -- GraphQL errors: the page fails alone, previous content stays --------------------------------------------
def test_graphql_error_on_register_fails_those_pages_alone(onprem: Sandbox) -> None:
    before, updated_key, dropped_key, new_key = _pending(onprem)
    for key in (updated_key, new_key):
        onprem.unique.faults.add(
            r"/graphql$",
            Fault(200, JSON, _graphql_error("Bad Request", 400, "BAD_USER_INPUT")),
            times=None,
            when=_operation("ContentUpsert", finalize=False, key=key),
        )

    result = onprem.run_sync(expect_success=False)

    text = failure_text(result)
    assert "2 page(s) failed" in text and text.count("failed at register") == 2
    expected = {k: v for k, v in expected_state(onprem).items() if k != new_key}
    expected[updated_key] = before[updated_key]  # the previous version stays readable
    assert unique_state(onprem) == expected
    assert dropped_key not in unique_state(onprem)  # deletions of the space still happened
    _converges_after_faults_clear(onprem)


def test_graphql_error_on_finalize_of_an_update_keeps_the_previous_version(onprem: Sandbox) -> None:
    before, updated_key, _, _ = _pending(onprem)
    content_id = onprem.unique.store.content_by_key(updated_key).id
    onprem.unique.faults.add(
        r"/graphql$",
        Fault(200, JSON, _graphql_error("Internal server error")),
        times=None,
        when=_operation("ContentUpsert", finalize=True, key=updated_key),
    )

    result = onprem.run_sync(expect_success=False)

    assert "failed at finalize" in failure_text(result)
    state = unique_state(onprem)
    assert state[updated_key] == before[updated_key]  # not deleted (contract §9 "known hazard"), not changed
    assert onprem.unique.store.content_by_key(updated_key).id == content_id
    assert state == {**expected_state(onprem), updated_key: before[updated_key]}
    _converges_after_faults_clear(onprem)


def test_graphql_error_with_a_5xx_status_is_retried_and_converges(onprem: Sandbox) -> None:
    _, updated_key, _, _ = _pending(onprem)
    onprem.unique.faults.add(
        r"/graphql$",
        Fault(503, {"Retry-After": "0", **JSON}, _graphql_error("Service Unavailable", 503)),
        times=2,
        when=_operation("ContentUpsert", finalize=True, key=updated_key),
    )

    onprem.run_sync()

    _assert_clean(onprem)
    assert [r.status for r in onprem.unique.requests if r.status == 503] == [503, 503]


def test_graphql_error_on_delete_keeps_the_content_and_fails_the_run(onprem: Sandbox) -> None:
    _, _, dropped_key, _ = _pending(onprem)
    page_id = dropped_key.rsplit("/", 1)[1]
    onprem.unique.faults.add(
        r"/graphql$",
        Fault(200, JSON, _graphql_error("Internal server error")),
        times=None,
        when=_operation("ContentDeleteByContentIds"),
    )

    result = onprem.run_sync(expect_success=False)

    assert f"page {page_id} in space ENG failed at delete" in failure_text(result)
    expected = expected_state(onprem)
    state = unique_state(onprem)
    assert dropped_key in state and {k: v for k, v in state.items() if k != dropped_key} == expected
    _converges_after_faults_clear(onprem)


# -- uploads ---------------------------------------------------------------------------------------------------
def test_an_upload_failing_once_is_retried_and_converges(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    onprem.unique.faults.add(PUT_UPLOAD, Fault(503, {"Retry-After": "0"}, b"busy"), method="PUT", times=1)

    onprem.run_sync()

    _assert_clean(onprem)
    assert [r.status for r in onprem.unique.requests if r.method == "PUT"].count(503) == 1


def test_an_upload_refused_for_a_new_page_leaves_no_half_registered_content(onprem: Sandbox) -> None:
    before, updated_key, _, new_key = _pending(onprem)
    refused = Fault(403, {"Content-Type": "application/xml"}, b"<Error><Code>AuthenticationFailed</Code></Error>")
    onprem.unique.faults.add(PUT_UPLOAD, refused, method="PUT", times=None)

    result = onprem.run_sync(expect_success=False)

    text = failure_text(result)
    assert text.count("failed at upload") == 2 and "HTTP 403" in text
    puts = [r for r in onprem.unique.requests if r.method == "PUT"]
    assert len(puts) == 2  # a refusal is not retried
    state = unique_state(onprem)
    assert new_key not in state  # registered, refused, removed again
    assert state == {
        **{k: v for k, v in expected_state(onprem).items() if k != new_key},
        updated_key: before[updated_key],
    }
    _converges_after_faults_clear(onprem)


# -- file-diff ---------------------------------------------------------------------------------------------------
def test_file_diff_5xx_then_success_converges(onprem: Sandbox) -> None:
    prepare_pending_changes(onprem)
    for status in (500, 502, 504):
        onprem.unique.faults.add(r"/v2/content/file-diff$", Fault(status, JSON, b'{"message":"gateway"}'))

    onprem.run_sync()

    _assert_clean(onprem)
    diffs = [r.status for r in onprem.unique.requests if r.path.endswith("/file-diff")]
    assert diffs == [500, 502, 504, 200]


def test_file_diff_down_for_good_in_one_space_fails_the_run_before_any_write_anywhere(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("OPS", "Operations")
    ops = [wiki.add_page("OPS", f"Ops {n}", labels=["ai-ingest"]) for n in range(2)]
    before = prepare_pending_changes(onprem)  # ENG: an update, a deletion and a new page pending
    wiki.remove_label(ops[0].id, "ai-ingest")  # OPS: a deletion pending
    wiki.add_page("OPS", "Ops new", labels=["ai-ingest"])
    down = Fault(503, {"Retry-After": "0", **JSON}, b'{"message":"down"}')
    onprem.unique.faults.add(
        r"/v2/content/file-diff$",
        down,
        times=None,
        when=lambda r: (r.json() or {}).get("partialKey", "").endswith("_ENG"),
    )

    text = _fails_before_any_write(onprem, before)

    assert "Diff of space ENG failed before any write" in text and "HTTP 503" in text
    diffs = [r.status for r in onprem.unique.requests if r.path.endswith("/file-diff")]
    assert diffs.count(503) == 5 and diffs.count(200) == 1  # ENG retried to exhaustion, OPS diffed
    _converges_after_faults_clear(onprem)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Fault(200, {"Content-Type": "text/html"}, b"<html><title>Sign in</title></html>"), id="html"),
        pytest.param(Fault(200, JSON, b'{"newFiles": "all"}'), id="wrong-shape"),
        pytest.param(Fault(200, JSON, b'{"newFiles": ['), id="malformed-json"),
    ],
)
def test_a_file_diff_answer_that_cannot_be_read_fails_before_any_write(onprem: Sandbox, answer: Any) -> None:
    before = prepare_pending_changes(onprem)
    onprem.unique.faults.add(r"/v2/content/file-diff$", answer, times=None)

    text = _fails_before_any_write(onprem, before)

    assert "Diff of space ENG failed before any write" in text
    _converges_after_faults_clear(onprem)
