"""Unit tests for CQL quoting and query building."""

from __future__ import annotations

import pytest

from confluence_pipeline.domain.batches import batched
from confluence_pipeline.domain.cql import (
    ANCESTOR_BATCH,
    BODY_BATCH,
    descendants_cql,
    discovery_cql,
    ids_cql,
    is_quotable,
    newest_descendant_cql,
    newest_labelled_cql,
    quote,
    space_labelled_cql,
)
from confluence_pipeline.domain.models import Platform


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ai-ingest", '"ai-ingest"'),
        ("", '""'),
        ("with space", '"with space"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("trailing\\", r'"trailing\\"'),
        ('\\"', r'"\\\""'),  # backslash before quote: both escaped, quote stays inside
        ('a") OR (label="b', r'"a\") OR (label=\"b"'),
        ("OR", '"OR"'),
        ("AND", '"AND"'),
        (")", '")"'),
        ("label = x ORDER BY id", '"label = x ORDER BY id"'),
        ("~jdoe", '"~jdoe"'),
        ("ünïcødé-标签", '"ünïcødé-标签"'),
        ("emoji-😀", '"emoji-😀"'),
        ("'single'", "\"'single'\""),
        ("2024/05/01 10:00", '"2024/05/01 10:00"'),
    ],
)
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected
    assert is_quotable(value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b", "\t", "x\x1b[31m", "del\x7f", "c1\x85", "lone\ud800"])
def test_quote_rejects_control_characters_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        quote(value)
    assert repr(value) in str(excinfo.value)
    assert not is_quotable(value)


@pytest.mark.parametrize("value", [None, 5, b"bytes"])
def test_quote_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError):
        quote(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("single", "all_", "platform", "expected"),
    [
        (
            "ai-ingest",
            "ai-ingest-all",
            Platform.ONPREM,
            '((label="ai-ingest") OR (label="ai-ingest-all")) AND space.type=global AND type != attachment',
        ),
        (
            "ai-ingest",
            "ai-ingest-all",
            Platform.CLOUD,
            '((label="ai-ingest") OR (label="ai-ingest-all")) AND (space.type=global OR space.type=collaboration)'
            " AND type != attachment",
        ),
        (
            'x") OR (label="y',
            "OR",
            Platform.ONPREM,
            r'((label="x\") OR (label=\"y") OR (label="OR")) AND space.type=global AND type != attachment',
        ),
        (
            "a\\",
            ")",
            Platform.CLOUD,
            r'((label="a\\") OR (label=")")) AND (space.type=global OR space.type=collaboration)'
            " AND type != attachment",
        ),
    ],
)
def test_discovery_cql(single: str, all_: str, platform: Platform, expected: str) -> None:
    assert discovery_cql(single, all_, platform) == expected


@pytest.mark.parametrize(
    ("single", "all_"),
    [("", "ai-ingest-all"), ("ai-ingest", ""), ("  ", "ai-ingest-all"), ("ai\ningest", "ai-ingest-all")],
)
def test_discovery_cql_rejects_bad_labels(single: str, all_: str) -> None:
    with pytest.raises(ValueError):
        discovery_cql(single, all_, Platform.ONPREM)


def test_discovery_cql_rejects_unknown_platform() -> None:
    with pytest.raises(ValueError):
        discovery_cql("a", "b", "ONPREM")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["1"], "ancestor IN (1) AND type != attachment"),
        (["1", "2", "3"], "ancestor IN (1,2,3) AND type != attachment"),
        (("98765432101",), "ancestor IN (98765432101) AND type != attachment"),
    ],
)
def test_descendants_cql(ids: list[str], expected: str) -> None:
    assert descendants_cql(ids) == expected


@pytest.mark.parametrize(
    ("ids", "expected"),
    [(["42"], "id IN (42)"), (["1", "22", "333"], "id IN (1,22,333)")],
)
def test_ids_cql(ids: list[str], expected: str) -> None:
    assert ids_cql(ids) == expected


BAD_ID_LISTS = [
    pytest.param([], id="empty"),
    pytest.param(["1", "2) OR (label=x"], id="injection"),
    pytest.param(["12a"], id="letters"),
    pytest.param(["-1"], id="negative"),
    pytest.param([" 1"], id="space"),
    pytest.param([""], id="empty-id"),
    pytest.param(["1\n"], id="newline"),
    pytest.param(["١٢٣"], id="non-ascii-digits"),
    pytest.param(["att789"], id="attachment"),
    pytest.param([1, 2], id="ints"),
    pytest.param("123", id="bare-string"),
]


@pytest.mark.parametrize("ids", BAD_ID_LISTS)
def test_descendants_cql_rejects(ids: object) -> None:
    with pytest.raises(ValueError):
        descendants_cql(ids)  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", BAD_ID_LISTS)
def test_ids_cql_rejects(ids: object) -> None:
    with pytest.raises(ValueError):
        ids_cql(ids)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("space_key", "expected_space"),
    [
        ("ENG", 'space = "ENG"'),
        ("~jdoe", 'space = "~jdoe"'),
        ('E"NG', r'space = "E\"NG"'),
        ("OR", 'space = "OR"'),
    ],
)
def test_space_labelled_cql(space_key: str, expected_space: str) -> None:
    assert space_labelled_cql("ai-ingest", "ai-ingest-all", space_key) == (
        f'((label="ai-ingest") OR (label="ai-ingest-all")) AND {expected_space} AND type != attachment'
    )


@pytest.mark.parametrize("space_key", ["", "EN\nG"])
def test_space_labelled_cql_rejects(space_key: str) -> None:
    with pytest.raises(ValueError):
        space_labelled_cql("ai-ingest", "ai-ingest-all", space_key)


@pytest.mark.parametrize(
    ("platform", "expected_space_types"),
    [(Platform.ONPREM, "space.type=global"), (Platform.CLOUD, "(space.type=global OR space.type=collaboration)")],
)
def test_newest_labelled_cql_orders_the_discovery_query_newest_first(
    platform: Platform, expected_space_types: str
) -> None:
    # No date literal: nothing in the query depends on the zone Confluence would read one in.
    assert newest_labelled_cql("ai-ingest", "ai-ingest-all", platform) == (
        f'((label="ai-ingest") OR (label="ai-ingest-all")) AND {expected_space_types} AND type != attachment '
        "ORDER BY lastmodified DESC"
    )


def test_newest_descendant_cql_orders_the_descendants_newest_first() -> None:
    assert newest_descendant_cql(["1", "22"]) == "ancestor IN (1,22) AND type != attachment ORDER BY lastmodified DESC"


@pytest.mark.parametrize("ids", BAD_ID_LISTS)
def test_newest_descendant_cql_rejects(ids: object) -> None:
    with pytest.raises(ValueError):
        newest_descendant_cql(ids)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "size", "expected"),
    [
        ([], 3, []),
        ([1], 3, [[1]]),
        ([1, 2, 3], 3, [[1, 2, 3]]),
        ([1, 2, 3, 4], 3, [[1, 2, 3], [4]]),
        ([1, 2, 3, 4, 5, 6, 7], 2, [[1, 2], [3, 4], [5, 6], [7]]),
        (list(range(250)), ANCESTOR_BATCH, [list(range(100)), list(range(100, 200)), list(range(200, 250))]),
        (iter("abc"), 1, [["a"], ["b"], ["c"]]),
    ],
)
def test_batched(items: list[int], size: int, expected: list[list[int]]) -> None:
    assert list(batched(items, size)) == expected


@pytest.mark.parametrize("size", [0, -1, True, 1.5])
def test_batched_rejects_bad_sizes(size: object) -> None:
    with pytest.raises(ValueError):
        list(batched([1, 2], size))  # type: ignore[arg-type]


def test_batch_constants() -> None:
    # DC caps body expansions at 50 per page; the vendor connector batches ancestors by 100.
    assert (ANCESTOR_BATCH, BODY_BATCH) == (100, 50)
