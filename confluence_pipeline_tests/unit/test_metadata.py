"""Unit tests for page metadata."""

from __future__ import annotations

import json

import pytest

from confluence_pipeline.domain.metadata import content_metadata
from confluence_pipeline.domain.models import PageRef, SpaceRef

MARK = "confc:data-center:a1b2c3d4"

SYNC_LABELS = ("ai-ingest", "ai-ingest-all")


def page(labels: tuple[str, ...], page_type: str = "page") -> PageRef:
    return PageRef(
        id="123456",
        type=page_type,
        title="Runbook",
        space=SpaceRef(id="98306", key="OPS", name="Operations", type="global"),
        version=7,
        updated_at="2024-05-01T08:02:03.000Z",
        web_url="https://wiki.example/display/OPS/Runbook",
        labels=labels,
    )


@pytest.mark.parametrize(
    ("labels", "sync_labels", "expected"),
    [
        (("ai-ingest", "faq", "howto"), SYNC_LABELS, '["faq","howto"]'),
        (("ai-ingest",), SYNC_LABELS, "[]"),
        ((), SYNC_LABELS, "[]"),
        (("howto", "faq", "ai-ingest-all"), SYNC_LABELS, '["faq","howto"]'),
        (("ai-ingest", "faq"), ("AI-Ingest", "AI-INGEST-ALL"), '["faq"]'),  # case-insensitive
        (("faq", "faq"), SYNC_LABELS, '["faq"]'),
        (("ai-ingest", "faq"), (), '["ai-ingest","faq"]'),
        (('quo"te', "back\\slash", "标签"), SYNC_LABELS, '["back\\\\slash","quo\\"te","标签"]'),
    ],
)
def test_confluence_labels(labels: tuple[str, ...], sync_labels: tuple[str, ...], expected: str) -> None:
    value = content_metadata(page(labels), sync_labels, MARK)["confluenceLabels"]
    assert value == expected
    assert json.loads(value) == sorted(set(json.loads(expected)))


@pytest.mark.parametrize("page_type", ["page", "blogpost"])
def test_content_metadata(page_type: str) -> None:
    assert content_metadata(page(("ai-ingest", "faq"), page_type), SYNC_LABELS, MARK) == {
        "confluenceLabels": '["faq"]',
        "spaceKey": "OPS",
        "spaceName": "Operations",
        "spaceId": "98306",
        "pageId": "123456",
        "contentType": page_type,
        "version": "7",
        "lastModified": "2024-05-01T08:02:03.000Z",
        "confluenceInstance": MARK,
    }


def test_all_values_are_strings() -> None:
    metadata = content_metadata(page(("faq",)), SYNC_LABELS, MARK)
    assert all(isinstance(value, str) for value in metadata.values())
