"""Paged CQL searches that change underneath the client and permission filtering after paging, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import LABELLED, client_for
from confluence_sandbox.confluence import ConfluenceEmulator, Wiki

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["ONPREM", "CLOUD"])
def emu(request: pytest.FixtureRequest) -> Iterator[ConfluenceEmulator]:
    """Confluence, once per platform (the shared `emu` is the Unique emulator)."""
    with ConfluenceEmulator(request.param) as emulator:
        yield emulator


def seed_by_age(wiki: Wiki, count: int) -> list[str]:
    """Labelled pages, each modified an hour after the previous one (so id order is also oldest-first)."""
    wiki.add_space("OPS", "Operations")
    return [
        wiki.add_page("OPS", f"Page {i}", labels=["ai-ingest"], when=T0 + timedelta(hours=i)).id for i in range(count)
    ]


def collect_by_offset(client: httpx.Client, cql: str, limit: int) -> list[str]:
    """What a careful DC client does: recompute `start` from what it got and stop on an empty page."""
    ids: list[str] = []
    start = 0
    while True:
        body = client.get("/content/search", params={"cql": cql, "limit": str(limit), "start": str(start)}).json()
        if not body["results"]:
            return ids
        ids += [r["id"] for r in body["results"]]
        if "next" not in body["_links"]:
            return ids
        start = body["start"] + len(body["results"])


def walk_pages(client: httpx.Client, emu: ConfluenceEmulator, cql: str, limit: int) -> list[dict]:
    """Every response of a search, following `next` to its end (whatever the pages hold)."""
    bodies = [client.get("/content/search", params={"cql": cql, "limit": str(limit)}).json()]
    while "next" in bodies[-1]["_links"] and len(bodies) < 20:
        bodies.append(client.get(bodies[-1]["_links"]["base"] + bodies[-1]["_links"]["next"]).json())
    return bodies


# -- default order -----------------------------------------------------------------------------------------
def test_search_order_knob_sets_the_order_without_order_by(dc: ConfluenceEmulator) -> None:
    ids = seed_by_age(dc.wiki, 4)
    dc.wiki.update_page(ids[1], body="<p>edited</p>", when=T0 + timedelta(days=1))
    with client_for(dc) as client:
        assert collect_by_offset(client, LABELLED, 10) == ids
        dc.search_order = "lastmodified_desc"
        assert collect_by_offset(client, LABELLED, 10) == [ids[1], ids[3], ids[2], ids[0]]
        # An explicit ORDER BY still wins over the default.
        assert collect_by_offset(client, f"{LABELLED} order by id", 10) == ids


# -- the index changes between result pages ------------------------------------------------------------------
def test_a_page_edited_during_a_newest_first_listing_slips_out_of_it(dc: ConfluenceEmulator) -> None:
    dc.search_order = "lastmodified_desc"
    ids = seed_by_age(dc.wiki, 4)
    newest_first = list(reversed(ids))
    served: list[int] = []

    def edit_after_first_page(index: int) -> None:
        served.append(index)
        if index == 1:
            dc.wiki.update_page(ids[1], body="<p>edited mid-discovery</p>")

    with client_for(dc) as client:
        assert collect_by_offset(client, LABELLED, 2) == newest_first  # nothing changes: nothing is lost
        dc.search_pages_served = 0
        dc.between_search_pages = edit_after_first_page
        seen = collect_by_offset(client, LABELLED, 2)
    # Page 1 was [3, 2]; the edit moved 1 to the front, so page 2 (start=2) is [2, 0]: 1 is never listed.
    assert seen == [ids[3], ids[2], ids[2], ids[0]]
    assert ids[1] not in seen
    assert served == [1, 2]


def test_a_label_removed_between_pages_shifts_later_pages_in_id_order(dc: ConfluenceEmulator) -> None:
    ids = seed_by_age(dc.wiki, 6)
    dc.between_search_pages = lambda index: dc.wiki.remove_label(ids[0], "ai-ingest") if index == 1 else None
    with client_for(dc) as client:
        seen = collect_by_offset(client, LABELLED, 3)
    # The search cache must not hide the change: page 2 is cut from the new, shorter result list.
    assert seen == [ids[0], ids[1], ids[2], ids[4], ids[5]]


def test_search_cache_off_sees_changes_made_behind_the_wiki_s_back(dc: ConfluenceEmulator) -> None:
    dc.search_order = "lastmodified_desc"
    ids = seed_by_age(dc.wiki, 3)
    dc.search_cache = False
    with client_for(dc) as client:
        assert collect_by_offset(client, LABELLED, 10) == [ids[2], ids[1], ids[0]]
        dc.wiki.pages[ids[0]].when = T0 + timedelta(days=7)  # no Wiki method: the revision does not move
        assert collect_by_offset(client, LABELLED, 10) == [ids[0], ids[2], ids[1]]


# -- permissions applied after paging ---------------------------------------------------------------------------
def test_filter_after_paging_answers_empty_pages_with_next(emu: ConfluenceEmulator) -> None:
    wiki = emu.wiki
    wiki.add_space("OPS", "Operations")
    restricted = wiki.add_page("OPS", "Restricted", labels=["ai-ingest"])
    first = wiki.add_page("OPS", "First", labels=["ai-ingest"])
    below = wiki.add_page("OPS", "Below restricted", parent_id=restricted.id, labels=["ai-ingest"])
    second = wiki.add_page("OPS", "Second", labels=["ai-ingest"])
    last_hidden = wiki.add_page("OPS", "Restricted too", labels=["ai-ingest"])
    wiki.hide_page(restricted.id)
    wiki.hide_page(last_hidden.id)
    with client_for(emu) as client:
        before = walk_pages(client, emu, LABELLED, 1)
        assert [[r["id"] for r in b["results"]] for b in before] == [[first.id], [second.id]]
        emu.filter_after_paging = True
        after = walk_pages(client, emu, LABELLED, 1)
    assert [[r["id"] for r in b["results"]] for b in after] == [[], [first.id], [], [second.id], []]
    assert [b["size"] for b in after] == [0, 1, 0, 1, 0]
    assert ["next" in b["_links"] for b in after] == [True, True, True, True, False]
    if emu.mode == "ONPREM":
        assert [b["start"] for b in after] == [0, 1, 2, 3, 4]
    # A client that stops at the first empty page finds nothing, although two pages are visible.
    assert after[0]["results"] == [] and "next" in after[0]["_links"]
    assert all(r["id"] not in (restricted.id, below.id, last_hidden.id) for b in after for r in b["results"])


def test_filter_after_paging_on_a_bigger_page_comes_back_short(dc: ConfluenceEmulator) -> None:
    ids = seed_by_age(dc.wiki, 5)
    dc.wiki.hide_page(ids[1])
    dc.filter_after_paging = True
    with client_for(dc) as client:
        body = client.get("/content/search", params={"cql": LABELLED, "limit": "3"}).json()
        assert [r["id"] for r in body["results"]] == [ids[0], ids[2]]
        assert body["size"] == 2 and "next" in body["_links"]
        assert collect_by_offset(client, LABELLED, 3) == [ids[0], ids[2], ids[2], ids[3], ids[4]]
        hidden = client.get("/content/search", params={"cql": f"id = {ids[1]}"}).json()
        assert hidden["results"] == [] and "next" not in hidden["_links"]


def test_filter_after_paging_omits_attachments_of_hidden_pages(emu: ConfluenceEmulator) -> None:
    """Contract §3, §10.9: restricted content is omitted silently, attachments included (no 500)."""
    wiki = emu.wiki
    wiki.add_space("OPS", "Operations")
    hidden = wiki.add_page("OPS", "Restricted", labels=["ai-ingest"])
    below = wiki.add_page("OPS", "Below restricted", parent_id=hidden.id)
    shown = wiki.add_page("OPS", "Open", labels=["ai-ingest"])
    on_hidden = wiki.add_attachment(hidden.id, "secret.pdf", b"s", labels=["ai-ingest"])
    on_below = wiki.add_attachment(below.id, "inherited.pdf", b"i")
    on_shown = wiki.add_attachment(shown.id, "open.pdf", b"o", labels=["ai-ingest"])
    wiki.hide_page(hidden.id)
    emu.filter_after_paging = True
    with client_for(emu) as client:
        for cql in ("type = attachment", 'label = "ai-ingest"', f"container = {hidden.id}"):
            response = client.get("/content/search", params={"cql": cql, "limit": "10"})
            assert response.status_code == 200, response.text
            got = [r["id"] for r in response.json()["results"]]
            assert on_hidden.id not in got and on_below.id not in got and hidden.id not in got, (cql, got)
        assert [r["id"] for b in walk_pages(client, emu, "type = attachment", 1) for r in b["results"]] == [on_shown.id]
        body = client.get("/content/search", params={"cql": 'label = "ai-ingest"', "limit": "10"}).json()
        assert [r["id"] for r in body["results"]] == [shown.id, on_shown.id]


def test_filter_after_paging_still_drops_attachments_of_trashed_and_deleted_pages(emu: ConfluenceEmulator) -> None:
    """Trashed or deleted containers take their attachments out of search with the knob too."""
    wiki = emu.wiki
    wiki.add_space("OPS", "Operations")
    trashed = wiki.add_page("OPS", "Trashed")
    deleted = wiki.add_page("OPS", "Deleted")
    kept = wiki.add_page("OPS", "Kept")
    on_trashed = wiki.add_attachment(trashed.id, "t.pdf", b"t")
    on_deleted = wiki.add_attachment(deleted.id, "d.pdf", b"d")
    on_kept = wiki.add_attachment(kept.id, "k.pdf", b"k")
    wiki.trash_page(trashed.id)
    wiki.delete_page(deleted.id)
    with client_for(emu) as client:

        def found(limit: int) -> list[str]:
            return [r["id"] for b in walk_pages(client, emu, "type = attachment", limit) for r in b["results"]]

        assert found(10) == [on_kept.id]
        emu.filter_after_paging = True
        emu.search_cache = False
        assert found(10) == [on_kept.id]
        assert found(1) == [on_kept.id]
        assert {on_trashed.id, on_deleted.id}.isdisjoint(found(1))
        # Trashed and deleted content is not in the search at all: it takes no slot in a page of results.
        body = client.get("/content/search", params={"cql": "type = attachment", "limit": "1"}).json()
        assert [r["id"] for r in body["results"]] == [on_kept.id] and "next" not in body["_links"]
