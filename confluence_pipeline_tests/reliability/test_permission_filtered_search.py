"""Confluence filtering view permissions after cutting a result page: `has_any` and `newest_modified` look past
pages that came back empty, on both platforms, and a vanished space's confirming query is not fooled by one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from confluence_pipeline.clients.confluence import (
    PROBE_MAX_PAGES,
    PROBE_PAGE_SIZE,
    ConfluenceClient,
    build_confluence_client,
)
from confluence_pipeline.clients.errors import UnexpectedResponse
from confluence_pipeline.config.settings import load_settings
from confluence_pipeline.domain.cql import newest_labelled_cql, space_labelled_cql
from confluence_pipeline.domain.models import Platform
from confluence_pipeline_tests.support import Sandbox, expected_state, unique_state

T0 = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
OPS_LABELLED = space_labelled_cql("ai-ingest", "ai-ingest-all", "OPS")


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[ConfluenceClient]:
    confluence = build_confluence_client(load_settings(sandbox.env).confluence)
    yield confluence
    confluence.close()


def restricted_then_visible(box: Sandbox, hidden: int, visible: int = 1) -> list[str]:
    """`hidden` labelled pages the service user may not view, then `visible` ones: in id order, the hidden come
    first; by modification time, newest first, too."""
    wiki = box.confluence.wiki
    wiki.add_space("OPS", "Operations")
    ids = []
    for n in range(hidden):
        page = wiki.add_page("OPS", f"Restricted {n}", labels=["ai-ingest"], when=T0 + timedelta(hours=2, seconds=n))
        wiki.hide_page(page.id)
    for n in range(visible):
        ids.append(wiki.add_page("OPS", f"Visible {n}", labels=["ai-ingest"], when=T0 + timedelta(minutes=n)).id)
    box.confluence.filter_after_paging = True
    box.confluence.clear_requests()
    return ids


def search_queries(box: Sandbox) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in r.query.items()} for r in box.confluence.requests_to(r"/content/search$", "GET")]


def assert_paged_as_the_platform_wants(box: Sandbox, queries: list[dict[str, str]]) -> None:
    """A one-result probe, then pages of PROBE_PAGE_SIZE: DC by offsets we count, Cloud by the cursors it sends."""
    assert [q["limit"] for q in queries] == ["1"] + [str(PROBE_PAGE_SIZE)] * (len(queries) - 1)
    if box.confluence.mode == "ONPREM":
        assert [int(q["start"]) for q in queries] == [0] + [PROBE_PAGE_SIZE * n for n in range(len(queries) - 1)]
        assert not any("cursor" in q for q in queries)
    else:
        assert "cursor" not in queries[0] and "cursor" not in queries[1]
        assert all(q["cursor"].startswith("_sa_") and q["next"] == "true" for q in queries[2:])


# -- has_any ---------------------------------------------------------------------------------------------------
def test_has_any_finds_a_visible_match_behind_pages_emptied_by_permissions(
    sandbox: Sandbox, client: ConfluenceClient
) -> None:
    restricted_then_visible(sandbox, hidden=PROBE_PAGE_SIZE + 5)

    assert client.has_any(OPS_LABELLED) is True

    queries = search_queries(sandbox)
    assert len(queries) == 3  # the probe, a page of 25 restricted ones, the page holding the visible one
    assert_paged_as_the_platform_wants(sandbox, queries)
    assert all("expand" not in q for q in queries)


def test_has_any_is_false_when_the_listing_ends_without_a_visible_match(
    sandbox: Sandbox, client: ConfluenceClient
) -> None:
    restricted_then_visible(sandbox, hidden=PROBE_PAGE_SIZE + 5, visible=0)

    assert client.has_any(OPS_LABELLED) is False
    assert len(search_queries(sandbox)) == 3  # the probe, then two pages, the last one without `next`


def test_has_any_refuses_to_guess_after_too_many_empty_pages(sandbox: Sandbox, client: ConfluenceClient) -> None:
    restricted_then_visible(sandbox, hidden=PROBE_PAGE_SIZE * PROBE_MAX_PAGES + 1)

    with pytest.raises(UnexpectedResponse, match="cannot tell whether anything visible matches"):
        client.has_any(OPS_LABELLED)
    assert len(search_queries(sandbox)) == 1 + PROBE_MAX_PAGES


def test_has_any_still_asks_for_one_result_when_nothing_is_restricted(
    sandbox: Sandbox, client: ConfluenceClient
) -> None:
    restricted_then_visible(sandbox, hidden=0, visible=3)

    assert client.has_any(OPS_LABELLED) is True
    assert [q["limit"] for q in search_queries(sandbox)] == ["1"]


# -- newest_modified -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dc_offset", [-240, 330])
def test_newest_modified_is_the_first_visible_match_in_utc(
    sandbox: Sandbox, client: ConfluenceClient, dc_offset: int
) -> None:
    sandbox.confluence.dc_time_offset_minutes = dc_offset  # DC writes version.when with its own offset
    restricted_then_visible(sandbox, hidden=PROBE_PAGE_SIZE + 5, visible=3)
    platform = Platform.ONPREM if sandbox.confluence.mode == "ONPREM" else Platform.CLOUD

    newest = client.newest_modified(newest_labelled_cql("ai-ingest", "ai-ingest-all", platform))

    assert newest == "2024-05-06T08:02:00.000Z"  # Visible 2: the restricted ones are newer but invisible
    queries = search_queries(sandbox)
    assert all(q["expand"] == "version" and q["cql"].endswith("ORDER BY lastmodified DESC") for q in queries)
    assert_paged_as_the_platform_wants(sandbox, queries)


def test_newest_modified_of_nothing_is_none(sandbox: Sandbox, client: ConfluenceClient) -> None:
    restricted_then_visible(sandbox, hidden=2, visible=0)

    assert client.newest_modified(f"{OPS_LABELLED} ORDER BY lastmodified DESC") is None


# -- a vanished space's confirming query --------------------------------------------------------------------------
def test_a_vanished_space_whose_first_labelled_match_is_restricted_is_not_cleaned_up(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OLD", "Old space")
    wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    stale = wiki.add_page("OLD", "Was labelled", labels=["ai-ingest"])
    sandbox.run_sync()
    stale_key = sandbox.key_of(stale.id)
    assert stale_key in sandbox.stored()

    # OLD leaves discovery; while the sync runs, a page there gets the label. The confirming query must see it,
    # although the first labelled match in OLD is restricted and Confluence answers that page with `results: []`.
    wiki.remove_label(stale.id, "ai-ingest")
    restricted = wiki.add_page("OLD", "Restricted", labels=["ai-ingest"])
    wiki.hide_page(restricted.id)
    labelled_later = wiki.add_page("OLD", "Labelled during the sync")
    sandbox.confluence.filter_after_paging = True
    served: list[int] = []

    def label_after_discovery(index: int) -> None:
        # The sync's first search is discovery; `index` counts every search the emulator has answered.
        if not served:
            wiki.add_label(labelled_later.id, "ai-ingest")
        served.append(index)

    sandbox.confluence.between_search_pages = label_after_discovery
    sandbox.run_sync()

    assert len(served) >= 2  # discovery, then at least the confirming query
    assert stale_key in sandbox.stored()  # cleanup skipped: OLD still has labelled content
    sandbox.confluence.between_search_pages = None
    sandbox.run_sync()  # the next sync sees OLD again and diffs it as usual
    assert unique_state(sandbox) == expected_state(sandbox)
    assert stale_key not in sandbox.stored()
