"""Unit tests for per-space scope paths."""

from __future__ import annotations

import pytest

from confluence_pipeline.domain.models import SpaceRef
from confluence_pipeline.domain.scopes import scope_path, validate_scope_template


def space(key: str = "ENG", name: str = "Engineering", space_id: str = "98307") -> SpaceRef:
    return SpaceRef(id=space_id, key=key, name=name, type="global")


@pytest.mark.parametrize(
    ("template", "ref", "expected"),
    [
        ("/Confluence/{space_key}", space(), "/Confluence/ENG"),
        ("/{space_key}", space(), "/ENG"),
        ("/KB/{space_id}", space(), "/KB/98307"),
        ("/KB/{space_name} ({space_key})", space(), "/KB/Engineering (ENG)"),
        ("/KB/{space_name}/{space_id}", space(name="R/D"), "/KB/R-D/98307"),  # "/" in a value: one leaf
        ("/KB/{space_key}", space(key="~jdoe"), "/KB/~jdoe"),
        ("/KB/{space_key}/{space_name}", space(name="Ünïcode 标签"), "/KB/ENG/Ünïcode 标签"),
        ("/KB/{{literal}}/{space_key}", space(), "/KB/{literal}/ENG"),
        ("/KB/{space_key}", space(key="{space_name}"), "/KB/{space_name}"),  # values are not re-expanded
    ],
)
def test_scope_path(template: str, ref: SpaceRef, expected: str) -> None:
    assert scope_path(template, ref) == expected


@pytest.mark.parametrize(
    "template",
    [
        "",
        "Confluence/{space_key}",  # relative
        "/Confluence",  # no placeholder
        "/Confluence/{space_name}",  # does not identify the space
        "/Confluence/{space}",  # unknown placeholder
        "/Confluence/{SPACE_KEY}",
        "/Confluence/{}",
        "/Confluence/{0}",
        "/Confluence/{space_key!r}",
        "/Confluence/{space_key:>10}",
        "/Confluence/{space_key.upper}",
        "/Confluence/{space_key",  # unbalanced
        "/Confluence/}{space_key}",
        "/Confluence/{space_key}/",  # trailing slash
        "/Confluence//{space_key}",  # empty segment
        "//{space_key}",
    ],
)
def test_validate_scope_template_rejects(template: str) -> None:
    with pytest.raises(ValueError, match="UNIQUE_SCOPE_PATH_TEMPLATE"):
        validate_scope_template(template)
    with pytest.raises(ValueError, match="UNIQUE_SCOPE_PATH_TEMPLATE"):
        scope_path(template, space())


@pytest.mark.parametrize("template", ["/Confluence/{space_key}", "/{space_id}", "/A/B/{space_name}-{space_key}"])
def test_validate_scope_template_accepts(template: str) -> None:
    validate_scope_template(template)


@pytest.mark.parametrize(
    ("template", "ref"),
    [
        ("/KB/{space_name}/{space_key}", space(name="")),  # empty value leaves an empty segment
        ("/KB/{space_key}{space_name}", space(key="", name="")),
    ],
)
def test_scope_path_rejects_empty_segments(template: str, ref: SpaceRef) -> None:
    with pytest.raises(ValueError, match="scope path"):
        scope_path(template, ref)
