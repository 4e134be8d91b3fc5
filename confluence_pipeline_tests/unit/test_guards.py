"""Unit tests for the data-safety guard decisions."""

from __future__ import annotations

import pickle

import pytest

from confluence_pipeline.domain.diff import FileDiff
from confluence_pipeline.domain.guards import (
    GuardTripped,
    check_discovery,
    check_space_diff,
    should_clean_up_space,
)


@pytest.mark.parametrize(
    ("discovered", "stored", "complete", "guard"),
    [
        (10, 10, True, None),
        (10, 0, True, None),
        (0, 0, True, None),  # first run against an empty Unique
        (10, 10, False, "discovery-incomplete"),
        (0, 0, False, "discovery-incomplete"),
        (0, 1, True, "zero-discovery"),
        (0, 500, True, "zero-discovery"),
        (0, 500, False, "discovery-incomplete"),  # incompleteness is reported first
    ],
)
def test_check_discovery(discovered: int, stored: int, complete: bool, guard: str | None) -> None:
    if guard is None:
        check_discovery(discovered, stored, complete)
        return
    with pytest.raises(GuardTripped) as excinfo:
        check_discovery(discovered, stored, complete)
    assert excinfo.value.guard == guard
    assert excinfo.value.space_key is None
    assert str(excinfo.value).startswith(f"guard {guard} tripped: ")
    assert str(excinfo.value).endswith("; nothing was written")


@pytest.mark.parametrize(("discovered", "stored"), [(-1, 0), (0, -1), (True, 0)])
def test_check_discovery_rejects_bad_counts(discovered: int, stored: int) -> None:
    with pytest.raises(ValueError):
        check_discovery(discovered, stored, True)


def diff(new: tuple[str, ...] = (), updated: tuple[str, ...] = (), deleted: tuple[str, ...] = ()) -> FileDiff:
    return FileDiff(new=new, updated=updated, moved=(), deleted=deleted)


@pytest.mark.parametrize(
    ("submitted", "file_diff", "stored", "guard"),
    [
        pytest.param({"1", "2"}, diff(), 2, None, id="no-change"),
        pytest.param({"1", "2"}, diff(deleted=("3",)), 3, None, id="partial-deletion"),
        pytest.param(set(), diff(), 0, None, id="empty-space-empty-store"),
        pytest.param({"1"}, diff(new=("1",)), 0, None, id="first-sync"),
        pytest.param(set(), diff(deleted=("1",)), 5, "zero-submission", id="zero-submission"),
        pytest.param(set(), diff(deleted=("1",)), 1, "zero-submission", id="zero-submission-beats-full"),
        pytest.param(set(), diff(deleted=("1",)), 0, "zero-submission", id="zero-submission-unknown-store"),
        pytest.param({"1", "2"}, diff(deleted=("1", "2")), 2, "full-deletion", id="full-overlapping"),
        pytest.param({"1", "2"}, diff(new=("1",), deleted=("1", "2")), 2, "full-deletion", id="full-new-overlap"),
        pytest.param({"5"}, diff(deleted=("1", "2")), 2, "full-deletion", id="full-without-new"),
        pytest.param({"5", "6"}, diff(new=("5", "6"), deleted=("1", "2")), 2, None, id="full-replacement-allowed"),
        pytest.param({"5"}, diff(new=("5",), deleted=("1", "2", "3")), 2, None, id="more-than-stored-replacement"),
        pytest.param({"1"}, diff(deleted=("1", "2", "3")), 2, "full-deletion", id="more-than-stored-overlap"),
        pytest.param({"1", "2"}, diff(deleted=("1", "1")), 2, None, id="duplicate-deleted-counted-once"),
        pytest.param({"1"}, diff(deleted=("2",)), 0, None, id="unknown-store-count"),
    ],
)
def test_check_space_diff(submitted: set[str], file_diff: FileDiff, stored: int, guard: str | None) -> None:
    if guard is None:
        check_space_diff("ENG", submitted, file_diff, stored)
        return
    with pytest.raises(GuardTripped) as excinfo:
        check_space_diff("ENG", submitted, file_diff, stored)
    assert excinfo.value.guard == guard
    assert excinfo.value.space_key == "ENG"
    assert str(excinfo.value).startswith(f"guard {guard} tripped for space ENG: ")


def test_full_deletion_message() -> None:
    with pytest.raises(GuardTripped) as excinfo:
        check_space_diff(
            "ENG", {"1", "2", "3", "13"}, diff(deleted=tuple(str(n) for n in range(1, 13))), stored_count=12
        )
    assert str(excinfo.value) == (
        "guard full-deletion tripped for space ENG: the diff would delete all 12 stored items while 3 of the "
        "deleted keys were submitted; nothing was written"
    )


def test_guard_tripped_survives_pickling() -> None:
    original = GuardTripped("full-deletion", "ENG", "detail")
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.guard, copy.space_key, copy.detail, str(copy)) == (
        original.guard,
        original.space_key,
        original.detail,
        str(original),
    )


@pytest.mark.parametrize(
    ("count", "visible", "expected"),
    [
        (None, True, False),  # query failed: never delete on incomplete information
        (0, True, True),
        (1, True, False),
        (250, True, False),
        (None, False, True),  # space gone: DC answers CQL on a missing space with 400/500
        (0, False, True),
        (3, False, True),
    ],
)
def test_should_clean_up_space(count: int | None, visible: bool, expected: bool) -> None:
    assert should_clean_up_space(count, visible) is expected


def test_should_clean_up_space_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        should_clean_up_space(-1, True)
