"""Unit tests for Unique content keys and Dagster mapping keys."""

from __future__ import annotations

import re

import pytest
from dagster._core.definitions.utils import DISALLOWED_NAMES, is_valid_name
from hypothesis import given
from hypothesis import strategies as st

from confluence_pipeline.domain.keys import (
    _DAGSTER_RESERVED,
    ParsedKey,
    content_key,
    mapping_keys,
    parse_content_key,
    partial_key,
)
from confluence_pipeline.domain.models import SpaceRef

MAPPING_KEY = re.compile(r"[A-Za-z0-9_]+")


def space(space_id: str = "98307", key: str = "ENG") -> SpaceRef:
    return SpaceRef(id=space_id, key=key, name="Engineering", type="global")


@pytest.mark.parametrize(
    ("space_id", "key", "expected"),
    [
        ("98307", "ENG", "98307_ENG"),
        ("1", "~jdoe", "1_~jdoe"),
        ("2", "a_b", "2_a_b"),
        ("3", "a-b", "3_a-b"),
        ("4", "ÜNI", "4_ÜNI"),
    ],
)
def test_partial_key(space_id: str, key: str, expected: str) -> None:
    assert partial_key(space(space_id, key)) == expected


@pytest.mark.parametrize(("space_id", "key"), [("98307", ""), ("98307", "A/B"), ("", "ENG"), ("x1", "ENG")])
def test_partial_key_rejects_unparseable_spaces(space_id: str, key: str) -> None:
    with pytest.raises(ValueError):
        partial_key(space(space_id, key))


@pytest.mark.parametrize(
    ("page_id", "expected"),
    [("123456", "98307_ENG/123456"), ("123::att789", "98307_ENG/123::att789")],
)
def test_content_key(page_id: str, expected: str) -> None:
    assert content_key(space(), page_id) == expected


@pytest.mark.parametrize("page_id", ["", "1/2", "/"])
def test_content_key_rejects_keys_that_would_not_be_one_segment(page_id: str) -> None:
    with pytest.raises(ValueError):
        content_key(space(), page_id)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("98307_ENG/123456", ParsedKey("98307", "ENG", "123456", "98307_ENG")),
        ("acme/98307_ENG/123456", ParsedKey("98307", "ENG", "123456", "98307_ENG", "acme/")),
        ("a/b/98307_ENG/1", ParsedKey("98307", "ENG", "1", "98307_ENG", "a/b/")),
        ("1_~jdoe/2", ParsedKey("1", "~jdoe", "2", "1_~jdoe")),
        ("1_a_b/2", ParsedKey("1", "a_b", "2", "1_a_b")),
        ("1_a-b/2", ParsedKey("1", "a-b", "2", "1_a-b")),
        ("1__/2", ParsedKey("1", "_", "2", "1__")),
        ("12_ÜNI/3", ParsedKey("12", "ÜNI", "3", "12_ÜNI")),
    ],
)
def test_parse_content_key(key: str, expected: ParsedKey) -> None:
    assert parse_content_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        "",
        "98307_ENG",  # a partial key, not an item key
        "98307_ENG/",
        "/98307_ENG/1",  # empty prefix segment
        "acme//98307_ENG/1",
        "98307_ENG/123::",  # an attachment key needs an attachment id
        "98307_ENG/123::att-789",
        "98307_ENG/abc",
        "98307_ENG/1/2",  # page id where a space segment belongs
        "ENG_98307/1",
        "98307-ENG/1",
        "98307_/1",
        "_ENG/1",
        "x98307_ENG/1",
        "sharepoint/site/drive/item.docx",
        "98307_ENG/\uff11\uff12\uff13",  # full-width digits
        None,
    ],
)
def test_parse_content_key_returns_none_for_other_keys(key: str) -> None:
    assert parse_content_key(key) is None


def test_an_attachment_key_parses_to_its_page_and_attachment() -> None:
    parsed = parse_content_key("acme/98307_ENG/123::att789")
    assert parsed is not None
    assert (parsed.page_id, parsed.attachment_id, parsed.relative_key) == ("123", "att789", "123::att789")
    assert parsed.stored_partial_key == "acme/98307_ENG"


@pytest.mark.parametrize("key", ["ENG", "~jdoe", "a-b", "a_b", "x" * 150, "ÜNI", "1_2"])
def test_content_key_round_trips(key: str) -> None:
    parsed = parse_content_key(content_key(space("42", key), "7"))
    assert parsed == ParsedKey("42", key, "7", partial_key(space("42", key)))


def test_stored_partial_key_includes_the_tenant_prefix() -> None:
    parsed = parse_content_key("acme/98307_ENG/1")
    assert parsed is not None
    assert parsed.stored_partial_key == "acme/98307_ENG"
    assert parse_content_key("98307_ENG/1").stored_partial_key == "98307_ENG"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("space_key", "expected"),
    [
        ("ENG", "ENG"),
        ("a_b", "a_b"),
        ("DS2024", "DS2024"),
        ("x" * 100, "x" * 100),
    ],
)
def test_mapping_keys_keep_valid_keys(space_key: str, expected: str) -> None:
    assert mapping_keys([space_key]) == {space_key: expected}


@pytest.mark.parametrize(
    ("space_key", "stem"),
    [
        ("~jdoe", "_jdoe"),
        ("a-b", "a_b"),
        ("", ""),
        ("ÜNI", "_NI"),
        ("type", "type"),  # Dagster-reserved word
        ("None", "None"),  # Python keyword
        ("ENG\n", "ENG_"),  # Dagster's own regex check would let a trailing newline through
        ("x" * 101, "x" * 91),
    ],
)
def test_mapping_keys_hash_invalid_keys(space_key: str, stem: str) -> None:
    value = mapping_keys([space_key])[space_key]
    assert re.fullmatch(rf"{re.escape(stem)}_[0-9a-f]{{8}}", value)
    assert len(value) <= 100
    assert is_valid_name(value)


def test_mapping_keys_keep_similar_keys_apart() -> None:
    result = mapping_keys(["a-b", "a_b", "a.b", "~jdoe", "_jdoe"])
    assert result["a_b"] == "a_b"
    assert result["_jdoe"] == "_jdoe"
    assert len(set(result.values())) == 5


def test_mapping_keys_are_deterministic_and_keep_input_order() -> None:
    keys = ["z-z", "ENG", "~b", "ENG", "a-a"]
    first = mapping_keys(keys)
    assert list(first) == ["z-z", "ENG", "~b", "a-a"]
    assert mapping_keys(reversed(keys)) == first
    assert mapping_keys(["~b"])["~b"] == first["~b"]  # independent of the other keys


def test_mapping_keys_resolve_a_clash_with_a_valid_key() -> None:
    hashed = mapping_keys(["a-b"])["a-b"]
    result = mapping_keys(["a-b", hashed])
    assert result[hashed] == hashed
    assert result["a-b"] != hashed
    assert re.fullmatch(r"a_b_[0-9a-f]{16}", result["a-b"])


def test_mapping_keys_reject_non_strings() -> None:
    with pytest.raises(ValueError):
        mapping_keys(["ENG", 5])  # type: ignore[list-item]


def test_reserved_names_match_dagster() -> None:
    assert frozenset(DISALLOWED_NAMES) == _DAGSTER_RESERVED


@given(st.sets(st.text(max_size=120), max_size=30))
def test_mapping_keys_are_injective_and_valid(space_keys: set[str]) -> None:
    result = mapping_keys(space_keys)
    assert result.keys() == space_keys
    assert len(set(result.values())) == len(space_keys)
    for original, value in result.items():
        assert MAPPING_KEY.fullmatch(value)
        assert len(value) <= 100
        assert is_valid_name(value)
        if MAPPING_KEY.fullmatch(original) and len(original) <= 100 and original not in DISALLOWED_NAMES:
            assert value == original


@given(st.sets(st.from_regex(r"[a-z_\-~]{1,4}", fullmatch=True), max_size=40))
def test_mapping_keys_are_injective_for_near_identical_keys(space_keys: set[str]) -> None:
    result = mapping_keys(space_keys)
    assert len(set(result.values())) == len(space_keys)
