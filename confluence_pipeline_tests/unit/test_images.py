"""Image inlining in storage format: which references are found, what replaces them, and nothing else changes."""

from __future__ import annotations

import base64

import pytest

from confluence_pipeline.domain.images import (
    FAILED_STATE,
    ImageRef,
    ImageState,
    attachment_state,
    image_refs,
    images_changed,
    images_metadata,
    inline_images,
    recorded_images,
)
from confluence_pipeline.domain.models import AttachmentRef

PNG = b"\x89PNG fake"


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ('<ac:image><ri:attachment ri:filename="a.png" /></ac:image>', [("a.png", None, None)]),
        ('<ac:image ac:height="250"><ri:attachment ri:filename="a.png"/></ac:image>', [("a.png", None, None)]),
        (
            '<ac:image><ri:attachment ri:filename="b.png"><ri:page ri:content-title="Other" />'
            "</ri:attachment></ac:image>",
            [("b.png", "Other", None)],
        ),
        (
            "<ac:image><ri:attachment ri:filename='c d.png'><ri:page ri:space-key='OPS' "
            "ri:content-title='Ops &amp; Co' /></ri:attachment></ac:image>",
            [("c d.png", "Ops & Co", "OPS")],
        ),
        ('<ac:image><ri:attachment ri:filename="&lt;x&gt;.png"/></ac:image>', [("<x>.png", None, None)]),
        ('<ac:image><ri:url ri:value="https://x/y.png" /></ac:image>', []),
        (
            '<ac:image><ri:attachment ri:filename="d.png"><ri:blog-post ri:content-title="News" '
            'ri:posting-day="2024/05/01"/></ri:attachment></ac:image>',
            [],
        ),
        ('<ac:image ac:width="3" /><p>text</p>', []),
        ('<ac:link><ri:attachment ri:filename="spec.pdf"/></ac:link>', []),
        ("<p>no images</p>", []),
    ],
)
def test_image_refs(storage: str, expected: list[tuple[str, str | None, str | None]]) -> None:
    assert [(r.filename, r.page_title, r.space_key) for r in image_refs(storage)] == expected


def test_only_the_image_elements_change_and_the_rest_stays_byte_for_byte() -> None:
    before = "<h1>Größe &amp; Maß</h1><p>x</p>"
    first = (
        '<ac:image ac:width="640" ac:alt="Context &quot;diagram&quot;"><ri:attachment ri:filename="a.png"/></ac:image>'
    )
    middle = '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[<ac:image>]]></ac:plain-text-body>'
    second = '<ac:image><ri:attachment ri:filename="missing.png"/></ac:image>'
    after = "</ac:structured-macro><p>日本語 😀</p>"
    storage = before + first + middle + second + after
    refs = image_refs(storage)
    inlined = inline_images(storage, refs, lambda ref: ("image/png", PNG) if ref.filename == "a.png" else None)
    encoded = base64.b64encode(PNG).decode()
    expected_img = f'<img src="data:image/png;base64,{encoded}" alt="Context &quot;diagram&quot;" width="640" />'
    assert inlined == before + expected_img + middle + second + after


def test_nothing_resolved_returns_the_very_same_text() -> None:
    storage = '<p>a</p><ac:image><ri:attachment ri:filename="a.png"/></ac:image>'
    assert inline_images(storage, image_refs(storage), lambda ref: None) is storage


def test_alt_falls_back_to_the_filename_and_title_and_height_are_kept() -> None:
    ref = ImageRef(0, 0, 'a "b".png', None, None, (("ac:height", "20"), ("ac:title", "T")))
    storage = "X"
    text = inline_images(
        storage, [ImageRef(0, 1, ref.filename, None, None, ref.attributes)], lambda r: ("image/png", b"")
    )
    assert text == '<img src="data:image/png;base64," alt="a &quot;b&quot;.png" height="20" title="T" />'


def att(att_id: str, version: int) -> AttachmentRef:
    return AttachmentRef(att_id, "a.png", "image/png", 3, version, "2024-01-01T00:00:00.000Z", "", "u")


def test_image_records_round_trip_and_say_what_changed() -> None:
    states = [ImageState("1", "a.png", attachment_state(att("att5", 2))), ImageState("2", "b.png", "")]
    metadata = images_metadata([*states, states[0]])
    assert metadata["inlinesImages"] == "true"
    assert recorded_images(metadata) == states
    now = {("1", "a.png"): "att5:2", ("2", "b.png"): ""}
    assert not images_changed(states, lambda page_id, name: now.get((page_id, name)))
    assert images_changed(states, lambda page_id, name: {**now, ("1", "a.png"): "att5:3"}.get((page_id, name)))
    assert images_changed(states, lambda page_id, name: {**now, ("2", "b.png"): "att9:1"}.get((page_id, name)))
    assert images_changed(states, lambda page_id, name: None)  # unknown counts as changed
    assert images_changed([ImageState("1", "a.png", FAILED_STATE)], lambda page_id, name: "att5:2")


@pytest.mark.parametrize("raw", [None, "", "not json", "{}", '[["1","a"]]', "[[1,2,3]]"])
def test_unreadable_records_are_empty(raw: str | None) -> None:
    assert recorded_images({"inlinedImages": raw} if raw is not None else {}) == []


def test_no_references_no_metadata() -> None:
    assert images_metadata([]) == {}
