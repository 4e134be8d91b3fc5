"""Caller input: ids, instance names, flags, query strings and the reset body, as tables of cases."""

from __future__ import annotations

import pytest

from confluence_pipeline.http_api import inputs
from confluence_pipeline.http_api.inputs import InvalidInput


@pytest.mark.parametrize(
    "value",
    ["cont_clx1abc2def", "scope_k2j3h4g5", "A", "a-b_c", "0" * 128],
)
def test_identifiers_accepted(value: str) -> None:
    assert inputs.identifier("content id", value) == value


@pytest.mark.parametrize(
    "value",
    ["", "0" * 129, "cont_1/../x", "cont 1", "cont_1;", "cont_ü", "cont_1\n", '"}) { x } #', "${x}", "cont.1"],
)
def test_identifiers_refused_naming_the_part(value: str) -> None:
    with pytest.raises(InvalidInput, match="scope id"):
        inputs.identifier("scope id", value)


def test_refused_values_are_quoted_escaped_and_clipped() -> None:
    with pytest.raises(InvalidInput) as raised:
        inputs.identifier("content id", "x\n" + "y" * 500)
    message = str(raised.value)
    assert "\n" not in message and "\\n" in message and len(message) < 250


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("default", "default"), ("emea", "emea"), ("team_2", "team_2"), ("a" * 64, "a" * 64)],
)
def test_instance_names_accepted(value: str | None, expected: str | None) -> None:
    assert inputs.instance_name(value) == expected


@pytest.mark.parametrize("value", ["", "EMEA", "e-mea", "e mea", "a" * 65, "ä", "emea\n"])
def test_instance_names_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="instance"):
        inputs.instance_name(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False)],
)
def test_flags(value: str | None, expected: bool) -> None:
    assert inputs.flag("dry_run", value) is expected


@pytest.mark.parametrize("value", ["", "on", "maybe", "truee"])
def test_flags_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="dry_run"):
        inputs.flag("dry_run", value)


def test_query_parameters_refuse_unknown_and_repeated_names() -> None:
    assert inputs.query_parameters([("instance", "a"), ("dry_run", "true")], {"instance", "dry_run"}) == {
        "instance": "a",
        "dry_run": "true",
    }
    with pytest.raises(InvalidInput, match="unknown query parameter 'dryrun'"):
        inputs.query_parameters([("dryrun", "true")], {"instance", "dry_run"})
    with pytest.raises(InvalidInput, match="more than once"):
        inputs.query_parameters([("instance", "a"), ("instance", "b")], {"instance"})
    with pytest.raises(InvalidInput, match=r"accepted here: none"):
        inputs.query_parameters([("x", "1")], ())


@pytest.mark.parametrize(
    "value",
    ["3c4c5d6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "3C4C5D6E-1A2B-4C3D-8E9F-0A1B2C3D4E5F"],
)
def test_run_ids(value: str) -> None:
    assert inputs.run_id(value) == value.lower()


@pytest.mark.parametrize(
    "value", ["", "42", "3c4c5d6e-1a2b-4c3d-8e9f-0a1b2c3d4e5", "3c4c5d6e_1a2b_4c3d_8e9f_0a1b2c3d4e5f"]
)
def test_run_ids_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="run id"):
        inputs.run_id(value)


@pytest.mark.parametrize(
    ("body", "partial_key"),
    [
        (b"", None),
        (b"  \n", None),
        (b"{}", None),
        (b'{"partialKey": null}', None),
        (b'{"partialKey": ""}', None),
        (b'{"partialKey": "98307_ENG/"}', "98307_ENG/"),
        (b'{"partialKey": "acme/98307_ENG"}', "acme/98307_ENG"),
        ('{"partialKey": "98307_ÄÖÜ/"}'.encode(), "98307_ÄÖÜ/"),
        (b'{"partialKey": "' + b"k" * 1024 + b'"}', "k" * 1024),
    ],
)
def test_reset_bodies_accepted(body: bytes, partial_key: str | None) -> None:
    assert inputs.reset_body(body).partial_key == partial_key


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"partialKey": "' + b"k" * 1025 + b'"}', "at most 1024"),
        (b'{"partialKey": "a\\u0000"}', "U+0000"),
        (b'{"partialKey": "a\\nb"}', "U+000A at position 1"),
        (b'{"partialKey": "a\\u202eb"}', "U+202E"),  # right-to-left override: disguises a key in logs and the UI
        (b'{"partialKey": "a\\u2028"}', "U+2028"),
        (b'{"partialKey": "\\ud800"}', "valid string"),  # a lone surrogate
        (b'{"partialKey": 5}', "must be a string"),
        (b'{"partialKey": true}', "must be a string"),
        (b'{"partialKey": {"startsWith": "a"}}', "must be a string"),
        (b'{"partial_key": "a"}', "unknown field 'partial_key'"),
        (b'{"partialKey": "a", "scopeId": "b"}', "unknown field 'scopeId'"),
        (b'{"partialKey": "a", "partialKey": "b"}', "repeats the field(s) 'partialKey'"),
        (b'["partialKey"]', "must be a JSON object"),
        (b'"a"', "must be a JSON object"),
        (b"partialKey=a", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_reset_bodies_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        inputs.reset_body(body)
    assert fragment in str(raised.value)
