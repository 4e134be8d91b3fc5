"""Unit tests for reading the file-diff response and planning one space's writes."""

from __future__ import annotations

from typing import Any

import pytest

from confluence_pipeline.domain.diff import FileDiff, SpacePlan, file_list, plan_space
from confluence_pipeline.domain.models import PageRef, SpaceRef

ENG = SpaceRef(id="98307", key="ENG", name="Engineering", type="global")
OPS = SpaceRef(id="98306", key="OPS", name="Operations", type="global")


def page(page_id: str, space: SpaceRef = ENG, updated_at: str = "2024-05-01T08:02:03.000Z") -> PageRef:
    return PageRef(
        id=page_id,
        type="page",
        title=f"Page {page_id}",
        space=space,
        version=1,
        updated_at=updated_at,
        web_url=f"https://wiki.example/pages/viewpage.action?pageId={page_id}",
        labels=("ai-ingest",),
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"newFiles": ["1"], "updatedFiles": ["2"], "movedFiles": ["3"], "deletedFiles": ["4", "5"]},
            FileDiff(new=("1",), updated=("2",), moved=("3",), deleted=("4", "5")),
        ),
        ({}, FileDiff((), (), (), ())),
        ({"newFiles": ["1"]}, FileDiff(new=("1",), updated=(), moved=(), deleted=())),
        ({"deletedFiles": None, "movedFiles": []}, FileDiff((), (), (), ())),
        ({"newFiles": ["1"], "somethingElse": 5}, FileDiff(new=("1",), updated=(), moved=(), deleted=())),
    ],
)
def test_file_diff_from_response(payload: dict[str, Any], expected: FileDiff) -> None:
    assert FileDiff.from_response(payload) == expected


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"newFiles": "1"}, "newFiles"),
        ({"updatedFiles": {"1": True}}, "updatedFiles"),
        ({"deletedFiles": [1]}, "deletedFiles"),
        ({"movedFiles": [None]}, "movedFiles"),
        ({"newFiles": ["1", ["2"]]}, "newFiles"),
    ],
)
def test_file_diff_from_response_names_the_bad_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FileDiff.from_response(payload)


@pytest.mark.parametrize("payload", [None, [], "newFiles"])
def test_file_diff_from_response_rejects_non_objects(payload: object) -> None:
    with pytest.raises(ValueError):
        FileDiff.from_response(payload)  # type: ignore[arg-type]


P1, P2, P3, P4 = page("1"), page("2"), page("3"), page("4")


@pytest.mark.parametrize(
    ("pages", "diff", "expected"),
    [
        pytest.param(
            [P1, P2, P3, P4],
            FileDiff(new=("1",), updated=("2",), moved=(), deleted=("9",)),
            SpacePlan(ENG, (P1,), (P2,), 2, ("98307_ENG/9",), ()),
            id="partition",
        ),
        pytest.param(
            [P1, P2],
            FileDiff(new=(), updated=(), moved=(), deleted=()),
            SpacePlan(ENG, (), (), 2, (), ()),
            id="all-unchanged",
        ),
        pytest.param(
            [P1, P2],
            FileDiff(new=("1", "2"), updated=("2",), moved=(), deleted=()),
            SpacePlan(ENG, (P1, P2), (), 0, (), ()),
            id="new-and-updated-creates-once",
        ),
        pytest.param(
            [P1, P2],
            FileDiff(new=(), updated=(), moved=("1",), deleted=()),
            SpacePlan(ENG, (), (P1,), 1, (), ()),
            id="moved-is-written-again",
        ),
        pytest.param(
            [P1],
            FileDiff(new=("1",), updated=(), moved=("1", "6"), deleted=()),
            SpacePlan(ENG, (P1,), (), 0, (), ("6",)),
            id="moved-and-new-creates-once-unsubmitted-moved-ignored",
        ),
        pytest.param(
            [P1, P2],
            FileDiff(new=(), updated=(), moved=(), deleted=("1", "7")),
            SpacePlan(ENG, (), (), 2, ("98307_ENG/7",), ()),
            id="submitted-key-never-deleted",
        ),
        pytest.param(
            [P1],
            FileDiff(new=("1", "8"), updated=("9",), moved=(), deleted=()),
            SpacePlan(ENG, (P1,), (), 0, (), ("8", "9")),
            id="unsubmitted-new-and-updated-ignored",
        ),
        pytest.param(
            [P1, P1, P2],
            FileDiff(new=("1", "1"), updated=(), moved=(), deleted=("5", "5")),
            SpacePlan(ENG, (P1,), (), 1, ("98307_ENG/5",), ()),
            id="duplicates-collapse",
        ),
        pytest.param(
            [],
            FileDiff(new=(), updated=(), moved=(), deleted=("1", "2")),
            SpacePlan(ENG, (), (), 0, ("98307_ENG/1", "98307_ENG/2"), ()),
            id="nothing-submitted",
        ),
        pytest.param(
            [P1],
            FileDiff(new=(), updated=(), moved=(), deleted=("1::att9",)),
            SpacePlan(ENG, (), (), 1, ("98307_ENG/1::att9",), ()),
            id="foreign-attachment-key-deleted",
        ),
        pytest.param(
            [P3, P1, P2],
            FileDiff(new=("2", "3", "1"), updated=(), moved=(), deleted=()),
            SpacePlan(ENG, (P3, P1, P2), (), 0, (), ()),
            id="keeps-discovery-order",
        ),
    ],
)
def test_plan_space(pages: list[PageRef], diff: FileDiff, expected: SpacePlan) -> None:
    assert plan_space(ENG, pages, diff) == expected


def test_plan_space_keys_deletions_by_the_planned_space() -> None:
    tilde = SpaceRef(id="5", key="~jdoe", name="J", type="global")
    plan = plan_space(tilde, [], FileDiff(new=(), updated=(), moved=(), deleted=("12",)))
    assert plan.to_delete == ("5_~jdoe/12",)


def test_plan_space_rejects_pages_of_another_space() -> None:
    with pytest.raises(ValueError, match="OPS"):
        plan_space(ENG, [P1, page("2", space=OPS)], FileDiff())


@pytest.mark.parametrize("deleted", ["", "a/b"])
def test_plan_space_rejects_deleted_keys_that_are_not_relative(deleted: str) -> None:
    with pytest.raises(ValueError):
        plan_space(ENG, [P1], FileDiff(deleted=(deleted,)))


def test_file_list_sorted_and_deduplicated() -> None:
    pages = [page("20", updated_at="2024-05-02T00:00:00.000Z"), page("3"), page("100"), page("3")]
    assert file_list(pages) == [
        {
            "key": "100",
            "url": "https://wiki.example/pages/viewpage.action?pageId=100",
            "updatedAt": "2024-05-01T08:02:03.000Z",
        },
        {
            "key": "20",
            "url": "https://wiki.example/pages/viewpage.action?pageId=20",
            "updatedAt": "2024-05-02T00:00:00.000Z",
        },
        {
            "key": "3",
            "url": "https://wiki.example/pages/viewpage.action?pageId=3",
            "updatedAt": "2024-05-01T08:02:03.000Z",
        },
    ]


def test_file_list_empty() -> None:
    assert file_list([]) == []
