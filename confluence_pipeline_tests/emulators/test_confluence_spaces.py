"""Space identity over real sockets: deleted, re-created, re-identified and renamed spaces on DC and Cloud."""

from __future__ import annotations

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLOUD_AUTH, LABELLED, dc_client
from confluence_sandbox.confluence import ConfluenceEmulator, SearchScope, UnknownSpaceError, Wiki, evaluate, parse
from confluence_sandbox.confluence.wiki import SpaceKeyRenameError


def v1_roots(emu: ConfluenceEmulator) -> list[str]:
    """Every v1 API root a Cloud client may use: the site and both gateway forms."""
    gateway = f"{emu.url}/ex/confluence/{emu.cloud_id}"
    return [emu.api_root, f"{gateway}/wiki/rest/api", f"{gateway}/rest/api"]


def v2_roots(emu: ConfluenceEmulator) -> list[str]:
    return [emu.v2_root, f"{emu.url}/ex/confluence/{emu.cloud_id}/wiki/api/v2"]


def search_ids(client: httpx.Client, url: str, cql: str) -> list[str]:
    response = client.get(url, params={"cql": cql, "limit": "100"})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


# -- deletion --------------------------------------------------------------------------------------------
def test_deleted_space_and_its_content_are_gone_on_dc(dc: ConfluenceEmulator) -> None:
    wiki = dc.wiki
    wiki.add_space("OPS", "Operations")
    wiki.add_space("DEV", "Development")
    root = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    child = wiki.add_page("OPS", "Restart", parent_id=root.id, labels=["ai-ingest"])
    dev = wiki.add_page("DEV", "Architecture", labels=["ai-ingest"])
    with dc_client(dc) as client:
        assert search_ids(client, "/content/search", LABELLED) == [root.id, child.id, dev.id]
        assert client.get("/space/OPS").status_code == 200
        wiki.delete_space("OPS")
        assert search_ids(client, "/content/search", LABELLED) == [dev.id]
        assert search_ids(client, "/content/search", f"ancestor = {root.id}") == []
        assert client.get("/space/OPS").status_code == 404
        assert [s["key"] for s in client.get("/space").json()["results"]] == ["DEV"]
        for page_id in (root.id, child.id):
            missing = client.get(f"/content/{page_id}")
            assert missing.status_code == 404
            assert missing.json()["message"] == f"No content found with id: ContentId{{id={page_id}}}"
        assert client.get(f"/content/{root.id}/child/page").status_code == 404
        gone = client.get("/content/search", params={"cql": "space = OPS"})
        assert gone.status_code == 400 and gone.json()["message"] == "parameters should not be empty"


def test_deleted_space_is_gone_from_every_cloud_surface(cloud: ConfluenceEmulator) -> None:
    wiki = cloud.wiki
    ops = wiki.add_space("OPS", "Operations")
    dev = wiki.add_space("DEV", "Development")
    page = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    ids = [("ids", str(ops.id)), ("ids", str(dev.id))]
    with httpx.Client(auth=CLOUD_AUTH) as client:
        for root in v2_roots(cloud):
            assert [s["key"] for s in client.get(f"{root}/spaces", params=ids).json()["results"]] == ["OPS", "DEV"]
        wiki.delete_space("OPS")
        for root in v1_roots(cloud):
            assert client.get(f"{root}/space/OPS").status_code == 404
            assert client.get(f"{root}/content/{page.id}").status_code == 404
            assert search_ids(client, f"{root}/content/search", LABELLED) == []
            assert search_ids(client, f"{root}/content/search", "space = OPS") == []
        for root in v2_roots(cloud):
            assert [s["key"] for s in client.get(f"{root}/spaces", params=ids).json()["results"]] == ["DEV"]
            assert client.get(f"{root}/spaces/{ops.id}").status_code == 404
            assert client.get(f"{root}/spaces/{dev.id}").status_code == 200
            assert client.get(f"{root}/pages/{page.id}").status_code == 404


# -- re-creation and new ids ------------------------------------------------------------------------------
def test_a_space_re_created_under_the_same_key_gets_a_new_id(dc: ConfluenceEmulator) -> None:
    wiki = dc.wiki
    first = wiki.add_space("OPS", "Operations")
    first_id = first.id
    old_page = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    wiki.delete_space("OPS")
    again = wiki.add_space("OPS", "Operations again")
    assert again.id > first_id
    new_page = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    with dc_client(dc) as client:
        space = client.get("/space/OPS").json()
        assert (space["id"], space["key"], space["name"], space["type"]) == (
            again.id,
            "OPS",
            "Operations again",
            "global",
        )
        assert client.get(f"/content/{old_page.id}").status_code == 404
        assert search_ids(client, "/content/search", "space = OPS") == [new_page.id]
        found = client.get("/content/search", params={"cql": LABELLED, "expand": "space"}).json()["results"]
        assert [(r["id"], r["space"]["id"]) for r in found] == [(new_page.id, again.id)]
        wiki.delete_space("OPS")
        wiki.add_space("OPS", "Operations, explicit id", space_id=777)
        assert client.get("/space/OPS").json()["id"] == 777
    with pytest.raises(ValueError, match="already in use"):
        wiki.add_space("DEV", "Development", space_id=777)


def test_reassigned_space_id_keeps_key_pages_and_page_ids(cloud: ConfluenceEmulator) -> None:
    wiki = cloud.wiki
    space = wiki.add_space("OPS", "Operations")
    old_id = space.id
    root = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    child = wiki.add_page("OPS", "Restart", parent_id=root.id, labels=["ai-ingest"])
    restored = wiki.reassign_space_id("OPS")
    new_id = restored.id
    assert new_id not in (old_id, None) and restored.key == "OPS"
    with httpx.Client(auth=CLOUD_AUTH) as client:
        for root_url in v1_roots(cloud):
            assert client.get(f"{root_url}/space/OPS").json()["id"] == new_id
            found = client.get(f"{root_url}/content/search", params={"cql": LABELLED, "expand": "space"}).json()
            assert [(r["id"], r["space"]["id"], r["space"]["key"]) for r in found["results"]] == [
                (root.id, new_id, "OPS"),
                (child.id, new_id, "OPS"),
            ]
        for v2 in v2_roots(cloud):
            by_ids = client.get(f"{v2}/spaces", params=[("ids", str(old_id)), ("ids", str(new_id))]).json()
            assert [(s["id"], s["key"]) for s in by_ids["results"]] == [(str(new_id), "OPS")]
            assert client.get(f"{v2}/spaces/{old_id}").status_code == 404
            assert client.get(f"{v2}/pages/{child.id}").json()["spaceId"] == str(new_id)
    assert wiki.reassign_space_id("OPS", space_id=4242).id == 4242
    wiki.add_space("DEV", "Development")
    with pytest.raises(ValueError, match="already in use"):
        wiki.reassign_space_id("DEV", space_id=4242)


# -- renaming ---------------------------------------------------------------------------------------------
def test_renamed_space_on_cloud_keeps_its_id_and_its_pages_follow(cloud: ConfluenceEmulator) -> None:
    wiki = cloud.wiki
    space = wiki.add_space("OPS", "Operations")
    space_id = space.id
    root = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    child = wiki.add_page("OPS", "Restart", parent_id=root.id, labels=["ai-ingest"])
    renamed = wiki.rename_space("OPS", "OPERATIONS")
    assert (renamed.id, renamed.key) == (space_id, "OPERATIONS")
    with httpx.Client(auth=CLOUD_AUTH) as client:
        for root_url in v1_roots(cloud):
            current = client.get(f"{root_url}/space/OPERATIONS").json()
            assert (current["id"], current["key"], current["name"]) == (space_id, "OPERATIONS", "Operations")
            assert client.get(f"{root_url}/space/OPS").status_code == 404
            assert search_ids(client, f"{root_url}/content/search", "space = OPERATIONS") == [root.id, child.id]
            assert search_ids(client, f"{root_url}/content/search", 'space in ("OPERATIONS", "OPS")') == [
                root.id,
                child.id,
            ]
            assert search_ids(client, f"{root_url}/content/search", "space = OPS") == []
            page = client.get(f"{root_url}/content/{child.id}", params={"expand": "space"}).json()
            assert page["space"]["key"] == "OPERATIONS" and page["space"]["id"] == space_id
            assert page["_links"]["webui"].startswith(f"/spaces/OPERATIONS/pages/{child.id}/")
        for v2 in v2_roots(cloud):
            by_id = client.get(f"{v2}/spaces", params={"ids": str(space_id)}).json()["results"]
            assert [(s["id"], s["key"]) for s in by_id] == [(str(space_id), "OPERATIONS")]
            assert client.get(f"{v2}/spaces", params={"keys": "OPS"}).json()["results"] == []
            assert client.get(f"{v2}/spaces/{space_id}").json()["key"] == "OPERATIONS"
    # The old key is free again, for a new space with a new id.
    assert wiki.add_space("OPS", "Another ops").id != space_id


def test_rename_space_is_refused_on_dc(dc: ConfluenceEmulator) -> None:
    dc.wiki.add_space("OPS", "Operations")
    with pytest.raises(SpaceKeyRenameError, match="Data Center cannot change a space key"):
        dc.wiki.rename_space("OPS", "OPERATIONS")
    with dc_client(dc) as client:
        assert client.get("/space/OPS").status_code == 200
        assert client.get("/space/OPERATIONS").status_code == 404


def test_rename_space_rejects_a_taken_key() -> None:
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    wiki.add_space("DEV", "Development")
    with pytest.raises(ValueError, match="already exists"):
        wiki.rename_space("OPS", "dev")
    assert wiki.rename_space("OPS", "ops").key == "ops"  # a change of case only is a rename of the same space


def test_a_key_that_moved_away_is_an_unknown_space_on_dc() -> None:
    # A key changed before the wiki was served (e.g. a restore under another key): DC treats the old key as unknown.
    wiki = Wiki()
    wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest"])
    wiki.rename_space("OPS", "OPERATIONS")
    with pytest.raises(UnknownSpaceError):
        evaluate(parse("space = OPS"), SearchScope(wiki, "ONPREM", unknown_space="error"))
    with ConfluenceEmulator("ONPREM", wiki=wiki) as dc, dc_client(dc) as client:
        old = client.get("/content/search", params={"cql": "space = OPS"})
        assert old.status_code == 400 and old.json()["message"] == "parameters should not be empty"
        dc.dc_unknown_space = "500"
        assert client.get("/content/search", params={"cql": "space = OPS"}).status_code == 500
        dc.dc_unknown_space = "empty"
        assert search_ids(client, "/content/search", "space = OPS") == []
        assert search_ids(client, "/content/search", "space = OPERATIONS") == [page.id]


# -- current identity, hidden spaces excluded ---------------------------------------------------------------
def test_space_lookups_return_current_identity_and_skip_hidden_spaces(cloud: ConfluenceEmulator) -> None:
    wiki = cloud.wiki
    ops = wiki.add_space("OPS", "Operations")
    team = wiki.add_space("TEAM", "Team", type="collaboration")
    secret = wiki.add_space("SECRET", "Secret")
    wiki.hide_space("SECRET")
    ids = [("ids", str(secret.id)), ("ids", str(team.id)), ("ids", str(ops.id))]
    with httpx.Client(auth=CLOUD_AUTH) as client:
        for v2 in v2_roots(cloud):
            found = client.get(f"{v2}/spaces", params=ids).json()["results"]
            assert [(s["id"], s["key"], s["name"], s["type"]) for s in found] == [
                (str(ops.id), "OPS", "Operations", "global"),
                (str(team.id), "TEAM", "Team", "collaboration"),
            ]
            assert client.get(f"{v2}/spaces/{secret.id}").status_code == 404
        for root_url in v1_roots(cloud):
            team_json = client.get(f"{root_url}/space/TEAM").json()
            assert (team_json["id"], team_json["key"], team_json["type"]) == (team.id, "TEAM", "collaboration")
            assert client.get(f"{root_url}/space/SECRET").status_code == 404
        wiki.unhide_space("SECRET")
        assert client.get(f"{cloud.api_root}/space/SECRET").json()["id"] == secret.id
