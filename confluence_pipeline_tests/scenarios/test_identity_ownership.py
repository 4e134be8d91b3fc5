"""Identity and ownership in real deployments: re-created and renamed spaces, shared scopes, confirmed deletes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from confluence_pipeline.domain.ownership import OWNER_METADATA_KEY
from confluence_pipeline_tests.support import PAT, Sandbox, base_env, logged, make_sandbox
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.http import Fault

ONPREM_MARK = "confc:data-center:a1b2c3d4-e5f6-4711-8899-aabbccddeeff"  # the emulator's default server id


def per_space_scopes(box: Sandbox) -> None:
    box.set_env(UNIQUE_SCOPE_ID="")


def prefixes(box: Sandbox) -> set[str]:
    return {key.rsplit("/", 1)[0] for key in box.stored()}


# -- 1. a space is its id ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scopes", ["single", "per-space"])
def test_a_space_recreated_under_the_same_key_replaces_its_old_copy(onprem: Sandbox, scopes: str) -> None:
    if scopes == "per-space":
        per_space_scopes(onprem)
    wiki = onprem.confluence.wiki
    old = wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Old runbook", labels=["ai-ingest"])
    onprem.run_sync()
    assert prefixes(onprem) == {f"{old.id}_ENG"}

    wiki.delete_space("ENG")
    new = wiki.add_space("ENG", "Engineering (restored)")
    fresh = wiki.add_page("ENG", "New runbook", labels=["ai-ingest"])
    result = onprem.run_sync()  # two stored prefixes with the key ENG: this crashed on duplicate mapping keys

    assert result.success
    assert set(onprem.stored()) == {f"{new.id}_ENG/{fresh.id}"}
    onprem.unique.clear_requests()
    onprem.run_sync()
    assert onprem.unique_writes() == []


@pytest.mark.parametrize("scopes", ["single", "per-space"])
def test_a_space_restored_under_a_new_id_keeps_no_duplicate(onprem: Sandbox, scopes: str) -> None:
    if scopes == "per-space":
        per_space_scopes(onprem)
    wiki = onprem.confluence.wiki
    old_id = wiki.add_space("OPS", "Operations").id
    pages = [wiki.add_page("OPS", f"Page {n}", labels=["ai-ingest"]).id for n in range(3)]
    onprem.run_sync()

    new = wiki.reassign_space_id("OPS")  # an XML restore: same key, same page ids, new space id
    onprem.run_sync()

    assert new.id != old_id
    assert set(onprem.stored()) == {f"{new.id}_OPS/{page}" for page in pages}
    onprem.unique.clear_requests()
    onprem.run_sync()
    assert onprem.unique_writes() == []


@pytest.mark.parametrize("scopes", ["single", "per-space"])
def test_a_renamed_space_key_moves_its_content_to_the_new_prefix(cloud: Sandbox, scopes: str) -> None:
    if scopes == "per-space":
        per_space_scopes(cloud)
    wiki = cloud.confluence.wiki
    space = wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"]).id for n in range(2)]
    cloud.run_sync()

    wiki.rename_space("ENG", "PLATFORM")
    cloud.run_sync()

    assert set(cloud.stored()) == {f"{space.id}_PLATFORM/{page}" for page in pages}
    assert all(item.metadata["spaceKey"] == "PLATFORM" for item in cloud.stored().values())
    cloud.unique.clear_requests()
    cloud.run_sync()
    assert cloud.unique_writes() == []


def test_an_old_copy_whose_id_still_resolves_is_asked_about_by_id(cloud: Sandbox) -> None:
    """Cloud: ENG is renamed to LEGACY (same id, now unlabelled), a new space takes the key ENG."""
    wiki = cloud.confluence.wiki
    old = wiki.add_space("ENG", "Engineering")
    labelled = wiki.add_page("ENG", "Old", labels=["ai-ingest"])
    cloud.run_sync()
    wiki.rename_space("ENG", "LEGACY")
    wiki.remove_label(labelled.id, "ai-ingest")
    new = wiki.add_space("ENG", "New engineering")
    fresh = wiki.add_page("ENG", "New", labels=["ai-ingest"])

    cloud.run_sync()

    assert set(cloud.stored()) == {f"{new.id}_ENG/{fresh.id}"}  # the old copy: asked by id, no labels left
    assert old.id != new.id


def test_an_old_copy_of_a_live_labelled_space_is_kept(cloud: Sandbox) -> None:
    """The renamed-away space still has labelled pages: its content moves to its new key, nothing is lost."""
    wiki = cloud.confluence.wiki
    old = wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Still labelled", labels=["ai-ingest"])
    cloud.run_sync()
    wiki.rename_space("ENG", "LEGACY")
    new = wiki.add_space("ENG", "New engineering")
    fresh = wiki.add_page("ENG", "New", labels=["ai-ingest"])

    cloud.run_sync()

    assert set(cloud.stored()) == {f"{old.id}_LEGACY/{page.id}", f"{new.id}_ENG/{fresh.id}"}


# -- 2. never delete content this Confluence did not write ----------------------------------------------------
def test_every_item_carries_the_instance_mark(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Marked", labels=["ai-ingest"])
    sandbox.run_sync()
    (item,) = sandbox.stored().values()
    expected = ONPREM_MARK if sandbox.confluence.mode == "ONPREM" else f"confc:cloud:{sandbox.confluence.cloud_id}"
    assert item.metadata[OWNER_METADATA_KEY] == expected


def test_foreign_and_hand_uploaded_items_in_a_shared_scope_are_never_deleted(onprem: Sandbox) -> None:
    scope = onprem.env["UNIQUE_SCOPE_ID"]
    store = onprem.unique.store
    for key in ("2024_Q1/17", "docs/2024_Q1/3", "sharepoint/site/item.docx"):
        store.seed_content(key, owner_id=scope)  # shaped like Confluence keys, or not: none is ours
    store.seed_content("555_HR/9", owner_id=scope, metadata={OWNER_METADATA_KEY: "confc:cloud:other-site"})
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Ours", labels=["ai-ingest"])

    onprem.run_sync()
    onprem.run_sync()

    assert {"2024_Q1/17", "docs/2024_Q1/3", "sharepoint/site/item.docx", "555_HR/9"} <= onprem.all_keys()
    onprem.unique.clear_requests()
    onprem.run_sync()
    assert onprem.unique_writes() == []


def test_the_file_diffs_deleted_list_only_deletes_what_this_instance_owns(onprem: Sandbox) -> None:
    """Another Confluence with a space of the same id and key shares the scope: its items are not ours."""
    wiki = onprem.confluence.wiki
    space = wiki.add_space("ENG", "Engineering")
    ours = wiki.add_page("ENG", "Ours", labels=["ai-ingest"])
    scope = onprem.env["UNIQUE_SCOPE_ID"]
    theirs = f"{space.id}_ENG/99999"
    onprem.unique.store.seed_content(theirs, owner_id=scope, metadata={OWNER_METADATA_KEY: "confc:data-center:x"})

    result = onprem.run_sync()

    assert set(onprem.all_keys()) == {f"{space.id}_ENG/{ours.id}", theirs}
    assert any("another Confluence instance wrote" in line for line in logged(onprem, result))


def test_two_instances_sharing_a_scope_never_delete_each_others_spaces(
    onprem: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ConfluenceEmulator(mode="ONPREM", pat=PAT, server_id="second-dc-0000") as second:
        second.wiki.add_space("HR", "Human Resources", space_id=777)
        hr = second.wiki.add_page("HR", "Policies", labels=["ai-ingest"])
        onprem.confluence.wiki.add_space("ENG", "Engineering")
        eng = onprem.confluence.wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
        first_env = dict(onprem.env)
        second_env = {**base_env(second, onprem.unique, onprem.env["UNIQUE_SCOPE_ID"]), "CONFLUENCE_PAT": PAT}

        for _ in range(2):
            onprem.set_env(**first_env)
            onprem.run_sync()
            onprem.set_env(**second_env)
            onprem.run_sync()

        keys = set(onprem.stored())
        assert keys == {f"{onprem.space_prefix('ENG')}/{eng.id}", f"777_HR/{hr.id}"}
        # Each instance removes what loses its label, and only that.
        second.wiki.remove_label(hr.id, "ai-ingest")
        onprem.set_env(**first_env)
        onprem.run_sync()
        assert f"777_HR/{hr.id}" in onprem.stored()
        onprem.set_env(**second_env)
        onprem.run_sync(expect_success=False)  # HR would be emptied entirely: the guard stops it
        assert f"{onprem.space_prefix('ENG')}/{eng.id}" in onprem.stored()


def test_unmarked_content_of_a_space_that_resolves_is_adopted_and_cleaned(onprem: Sandbox) -> None:
    """Content an older connector wrote (no mark) in a space that still exists here is ours."""
    wiki = onprem.confluence.wiki
    space = wiki.add_space("ENG", "Engineering")
    keep = wiki.add_page("ENG", "Keep", labels=["ai-ingest"])
    gone = wiki.add_page("ENG", "Unlabelled now")
    scope = onprem.env["UNIQUE_SCOPE_ID"]
    onprem.unique.store.seed_content(f"{space.id}_ENG/{gone.id}", owner_id=scope, metadata={"spaceKey": "ENG"})

    onprem.run_sync()

    assert set(onprem.all_keys()) == {f"{space.id}_ENG/{keep.id}"}


def test_unmarked_content_of_a_space_that_no_longer_resolves_is_left_alone(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Keep", labels=["ai-ingest"])
    scope = onprem.env["UNIQUE_SCOPE_ID"]
    onprem.unique.store.seed_content("4242_GONE/1", owner_id=scope, metadata={"spaceKey": "GONE"})

    result = onprem.run_sync()

    assert "4242_GONE/1" in onprem.all_keys()
    assert any("not provably from this Confluence" in line for line in logged(onprem, result))


def test_a_marked_space_that_is_gone_is_cleaned_up_by_id(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OLD", "Old")
    eng = wiki.add_page("ENG", "Keep", labels=["ai-ingest"])
    wiki.add_page("OLD", "Goes", labels=["ai-ingest"])
    onprem.run_sync()
    wiki.delete_space("OLD")
    wiki.add_space("OLD", "Another space, another id")  # the key resolves, the id does not

    onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(eng.id)}


# -- 3. every deletion is confirmed first -----------------------------------------------------------------------
@pytest.fixture
def slipping(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """DC with unstable offset paging: results newest first, small pages, a page edited between two pages."""
    for box in make_sandbox("ONPREM", monkeypatch):
        box.confluence.search_order = "lastmodified_desc"
        box.confluence.cap_expand = 2
        yield box


def test_a_page_that_slips_between_result_pages_is_kept_and_updated(slipping: Sandbox) -> None:
    wiki = slipping.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    start = datetime.now(UTC) - timedelta(hours=1)
    ids = [
        wiki.add_page(
            "ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>v1 {n}</p>", when=start + timedelta(minutes=n)
        ).id
        for n in range(5)
    ]  # newest first: Page 4 … Page 0
    slipping.run_sync()
    assert len(slipping.stored()) == 5

    # After the first result page is served, the oldest page is edited: it jumps to the front (already read)
    # and every other page moves back one place, so an offset-paged discovery never sees it.
    oldest = ids[0]
    edits = [lambda: wiki.update_page(oldest, body="<p>v2 edited during discovery</p>")]

    def between_pages(served: int) -> None:
        if edits:  # once, right after the first result page of this run
            edits.pop()()

    slipping.confluence.between_search_pages = between_pages
    result = slipping.run_sync()

    stored = slipping.stored()
    assert slipping.key_of(oldest) in stored  # never deleted
    assert stored[slipping.key_of(oldest)].data == b"<p>v2 edited during discovery</p>"  # and updated
    assert any("still labelled" in line for line in logged(slipping, result))


def test_a_descendant_missing_from_expansion_is_kept_because_its_ancestor_is_labelled(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    root = wiki.add_page("ENG", "Root", labels=["ai-ingest-all"])
    child = wiki.add_page("ENG", "Child", parent_id=root.id)
    onprem.run_sync()
    assert onprem.key_of(child.id) in onprem.stored()

    # The descendants query comes back without the child (as a partial index or a slipped page would).
    onprem.confluence.faults.add(
        r"/content/search$",
        Fault(200, {"Content-Type": "application/json"}, json.dumps({"results": [], "size": 0}).encode()),
        when=lambda request: "ancestor" in (request.query.get("cql") or [""])[0],
    )
    onprem.run_sync()

    assert onprem.key_of(child.id) in onprem.stored()


def test_confirmation_costs_nothing_without_deletions_and_a_few_requests_for_many(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    ids = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]).id for n in range(250)]
    onprem.run_sync()
    onprem.confluence.clear_requests()
    onprem.run_sync()
    searches = onprem.confluence.requests_to(r"/content/search$")
    assert all("id IN" not in (r.query.get("cql") or [""])[0] for r in searches)  # nothing deleted: no query

    for page_id in ids:
        wiki.remove_label(page_id, "ai-ingest")
    wiki.add_page("ENG", "Survivor", labels=["ai-ingest"])
    onprem.confluence.clear_requests()
    onprem.run_sync()
    confirming = [r for r in onprem.confluence.requests_to(r"/content/search$") if "id IN" in r.query["cql"][0]]
    assert 2 <= len(confirming) <= 4  # 250 candidates: two pages of 200, plus at most the ancestor checks
    assert len(onprem.stored()) == 1


# -- 6. moved files are refreshed ---------------------------------------------------------------------------------
def test_an_item_the_file_diff_reports_moved_is_written_again(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])
    onprem.run_sync()
    stored = onprem.unique.store.content_by_key(onprem.key_of(page.id))
    assert stored is not None
    right_url = stored.url
    stored.url = "https://old-host.example/pages/viewpage.action?pageId=1"  # stored under an outdated URL

    onprem.unique.clear_requests()
    onprem.run_sync()

    assert onprem.unique.store.content_by_key(onprem.key_of(page.id)).url == right_url  # type: ignore[union-attr]
    onprem.unique.clear_requests()
    onprem.run_sync()
    assert onprem.unique_writes() == []
