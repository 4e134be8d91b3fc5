"""The Confluence emulator over real sockets: pagination quirks, Cloud cursors and gateway, v2, auth, permissions,
identity endpoints, and every fault kind as an httpx client sees it."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from confluence_pipeline_tests.emulators.common import CLOUD_AUTH, LABELLED, PAT, dc_client
from confluence_sandbox.confluence import ConfluenceEmulator, Wiki
from confluence_sandbox.http import Fault


@pytest.fixture
def confluence_onprem(dc: ConfluenceEmulator) -> ConfluenceEmulator:
    """This file's name for the shared `dc`."""
    return dc


@pytest.fixture
def confluence_cloud(cloud: ConfluenceEmulator) -> ConfluenceEmulator:
    """This file's name for the shared `cloud`."""
    return cloud


def seed(wiki: Wiki, count: int, *, space: str = "OPS", label: str = "ai-ingest") -> list[str]:
    if wiki.find_space(space) is None:
        wiki.add_space(space, f"Space {space}")
    return [wiki.add_page(space, f"Page {space} {i}", labels=[label], body=f"<p>{i}</p>").id for i in range(count)]


def cloud_client(emu: ConfluenceEmulator, **kw: object) -> httpx.Client:
    return httpx.Client(auth=CLOUD_AUTH, **kw)  # type: ignore[arg-type]


# -- DC pagination quirks -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expand", "expected_limit"),
    [("body.storage,version", 10), ("body.view", 10), ("version,space", 20), (None, 30)],
)
def test_dc_caps_limit_silently_and_echoes_the_cap(
    confluence_onprem: ConfluenceEmulator, expand: str | None, expected_limit: int
) -> None:
    emu = confluence_onprem
    emu.cap_body, emu.cap_expand, emu.cap_none = 10, 20, 30
    seed(emu.wiki, 40)
    params = {"cql": LABELLED, "limit": "1000"} | ({"expand": expand} if expand else {})
    with dc_client(emu) as client:
        body = client.get("/content/search", params=params).json()
    assert body["limit"] == expected_limit
    assert body["size"] == len(body["results"]) == expected_limit


def _collect_dc(client: httpx.Client, base: str, first: str, *, recompute: bool) -> list[str]:
    ids: list[str] = []
    response = client.get(first)
    while True:
        body = response.json()
        if not body["results"]:
            break
        ids += [r["id"] for r in body["results"]]
        if "next" not in body["_links"]:
            break
        next_url = base + body["_links"]["next"]
        if recompute:
            next_url = re.sub(r"([?&])start=\d+", rf"\g<1>start={body['start'] + len(body['results'])}", next_url)
        response = client.get(next_url)
    return ids


def test_dc_next_start_bug_skips_items_unless_the_client_recomputes_start(
    confluence_onprem: ConfluenceEmulator,
) -> None:
    emu = confluence_onprem
    emu.cap_body = 10
    ids = seed(emu.wiki, 35)
    with dc_client(emu) as client:
        first = client.get("/content/search", params={"cql": LABELLED, "expand": "body.storage", "limit": "25"})
        body = first.json()
        assert (body["limit"], body["size"]) == (10, 10)
        next_query = parse_qs(urlsplit(body["_links"]["next"]).query)
        assert next_query["start"] == ["25"] and next_query["limit"] == ["25"]
        blind = _collect_dc(client, body["_links"]["base"], str(first.url), recompute=False)
        fixed = _collect_dc(client, body["_links"]["base"], str(first.url), recompute=True)
    assert blind == ids[:10] + ids[25:35]
    assert fixed == ids


def test_dc_without_the_bug_next_is_correct(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    emu.cap_body, emu.dc_next_bug = 10, False
    ids = seed(emu.wiki, 35)
    with dc_client(emu) as client:
        first = client.get("/content/search", params={"cql": LABELLED, "expand": "body.storage", "limit": "25"})
        assert _collect_dc(client, first.json()["_links"]["base"], str(first.url), recompute=False) == ids


def test_dc_trailing_empty_page_still_has_next(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    seed(emu.wiki, 5)
    with dc_client(emu) as client:
        last = client.get("/content/search", params={"cql": LABELLED, "limit": "5"}).json()
        assert "next" not in last["_links"]
        emu.trailing_empty_next = True
        last = client.get("/content/search", params={"cql": LABELLED, "limit": "5"}).json()
        assert last["size"] == 5 and "next" in last["_links"]
        empty = client.get(last["_links"]["base"] + last["_links"]["next"]).json()
    assert empty["results"] == [] and empty["size"] == 0 and empty["start"] == 5
    assert "next" in empty["_links"]


def test_dc_links_are_relative_to_base_without_context_path(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    seed(emu.wiki, 3)
    with dc_client(emu) as client:
        body = client.get("/content/search", params={"cql": LABELLED, "limit": "2", "expand": "version"}).json()
    links = body["_links"]
    assert links["base"] == f"{emu.url}/confluence" and links["context"] == "/confluence"
    assert links["next"].startswith("/rest/api/content/search?")
    query = parse_qs(urlsplit(links["next"]).query)
    assert query == {"cql": [LABELLED], "limit": ["2"], "expand": ["version"], "start": ["2"]}
    assert body["results"][0]["_links"]["webui"] == f"/pages/viewpage.action?pageId={body['results'][0]['id']}"


def test_dc_space_list_cap_and_pagination(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    emu.cap_space = 3
    for key in ["A", "B", "C", "D", "~me"]:
        emu.wiki.add_space(key, key, type="personal" if key.startswith("~") else "global")
    with dc_client(emu) as client:
        body = client.get("/space", params={"limit": "10"}).json()
        assert [s["key"] for s in body["results"]] == ["A", "B", "C"]
        assert body["limit"] == 3 and isinstance(body["results"][0]["id"], int)
        globals_only = client.get("/space", params={"type": "global", "start": "3"}).json()
        assert [s["key"] for s in globals_only["results"]] == ["D"]
        assert client.get("/space/~me").json()["type"] == "personal"
        assert client.get("/space/NOPE").status_code == 404


# -- Cloud cursors and the gateway ------------------------------------------------------------------
def _collect_cloud(client: httpx.Client, root: str, first_params: dict[str, str]) -> tuple[list[str], list[dict]]:
    ids: list[str] = []
    bodies: list[dict] = []
    response = client.get(f"{root}/rest/api/content/search", params=first_params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        ids += [r["id"] for r in body["results"]]
        if "next" not in body["_links"] or not body["results"]:
            return ids, bodies
        response = client.get(root + body["_links"]["next"])  # verbatim


@pytest.mark.parametrize("surface", ["site", "gateway-wiki", "gateway-no-wiki"])
def test_cloud_cursor_pagination(confluence_cloud: ConfluenceEmulator, surface: str) -> None:
    emu = confluence_cloud
    emu.cloud_cap_body = 7
    ids = seed(emu.wiki, 30)
    root = {
        "site": f"{emu.url}/wiki",
        "gateway-wiki": f"{emu.url}/ex/confluence/{emu.cloud_id}/wiki",
        "gateway-no-wiki": f"{emu.url}/ex/confluence/{emu.cloud_id}",
    }[surface]
    with cloud_client(emu) as client:
        found, bodies = _collect_cloud(client, root, {"cql": LABELLED, "limit": "25", "expand": "body.storage"})
    assert found == ids
    assert [b["size"] for b in bodies] == [7, 7, 7, 7, 2]
    assert all(b["_links"]["base"] == f"{emu.url}/wiki" and b["_links"]["context"] == "/wiki" for b in bodies)
    assert "prev" not in bodies[0]["_links"] and "prev" in bodies[1]["_links"]
    next_link = bodies[0]["_links"]["next"]
    assert next_link.startswith("/rest/api/content/search?next=true&cursor=_sa_")
    assert "%3D" in next_link  # the cursor is percent-encoded
    assert bodies[0]["results"][0]["_links"]["webui"] == f"/spaces/OPS/pages/{ids[0]}/Page+OPS+0"


def test_cloud_cursor_wins_over_start_and_must_not_be_re_encoded(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    ids = seed(emu.wiki, 10)
    with cloud_client(emu) as client:
        first = client.get(f"{emu.api_root}/content/search", params={"cql": LABELLED, "limit": "4"}).json()
        next_link = first["_links"]["next"]
        tampered = re.sub(r"start=\d+", "start=0", next_link)
        second = client.get(f"{emu.url}/wiki{tampered}").json()
        assert [r["id"] for r in second["results"]] == ids[4:8]
        prev = client.get(f"{emu.url}/wiki{second['_links']['prev']}").json()
        assert [r["id"] for r in prev["results"]] == ids[0:4]
        double_encoded = next_link.replace("%3D", "%253D")
        assert client.get(f"{emu.url}/wiki{double_encoded}").status_code == 400
        other_query = next_link.replace("cql=label", "cql=type%20%3D%20page%20and%20label")
        assert client.get(f"{emu.url}/wiki{other_query}").status_code == 400


def test_cloud_wrong_cloud_id(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    (page_id,) = seed(emu.wiki, 1)
    wrong = f"{emu.url}/ex/confluence/00000000-0000-0000-0000-000000000000/wiki/rest/api"
    with cloud_client(emu) as client:
        search = client.get(f"{wrong}/content/search", params={"cql": LABELLED})
        assert search.status_code == 200 and search.json()["results"] == []
        assert client.get(f"{wrong}/content/{page_id}").status_code == 404
        assert client.get(f"{emu.gateway_api_root}/content/{page_id}").status_code == 200


def test_cloud_descendants_and_children(confluence_cloud: ConfluenceEmulator) -> None:
    wiki = confluence_cloud.wiki
    wiki.add_space("OPS", "Operations")
    root = wiki.add_page("OPS", "Root")
    child = wiki.add_page("OPS", "Child", parent_id=root.id)
    grandchild = wiki.add_page("OPS", "Grandchild", parent_id=child.id)
    api = confluence_cloud.api_root
    with cloud_client(confluence_cloud) as client:
        every = client.get(f"{api}/content/{root.id}/descendant/page").json()
        direct = client.get(f"{api}/content/{root.id}/descendant/page", params={"depth": "root"}).json()
        children = client.get(f"{api}/content/{root.id}/child/page", params={"expand": "ancestors"}).json()
        deep = client.get(f"{api}/content/{grandchild.id}", params={"expand": "ancestors"}).json()
    assert [r["id"] for r in every["results"]] == [child.id, grandchild.id]
    assert [r["id"] for r in direct["results"]] == [child.id]
    assert [r["id"] for r in children["results"]] == [child.id]
    assert [a["id"] for a in deep["ancestors"]] == [root.id, child.id]


# -- v2 -------------------------------------------------------------------------------------------------
def test_v2_pages_by_id_with_storage_and_link_header(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    ids = seed(emu.wiki, 5)
    space_id = str(emu.wiki.spaces["OPS"].id)
    with cloud_client(emu) as client:
        repeated = client.get(
            f"{emu.v2_root}/pages", params=[("id", i) for i in ids[:3]] + [("body-format", "storage"), ("limit", "2")]
        )
        comma = client.get(f"{emu.v2_root}/pages", params={"id": ",".join(ids[:3]), "body-format": "storage"})
        body = repeated.json()
        assert [r["id"] for r in body["results"]] == ids[:2]
        assert body["results"][0]["body"]["storage"] == {"representation": "storage", "value": "<p>0</p>"}
        assert body["results"][0]["spaceId"] == space_id
        assert body["_links"]["next"].startswith("/wiki/api/v2/pages?")
        assert repeated.headers["Link"] == f'<{body["_links"]["next"]}>; rel="next", <{emu.url}/wiki>; rel="base"'
        gateway = f"{emu.url}/ex/confluence/{emu.cloud_id}"
        rest = client.get(gateway + body["_links"]["next"]).json()
        assert [r["id"] for r in rest["results"]] == [ids[2]] and "next" not in rest["_links"]
        assert [r["id"] for r in comma.json()["results"]] == ids[:3]
        assert client.get(f"{emu.v2_root}/pages", params={"limit": "251"}).status_code == 400


def test_v2_single_page_blogposts_and_hidden(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    page_id, hidden_id = seed(emu.wiki, 2)
    emu.wiki.add_label(page_id, "Design")
    blog = emu.wiki.add_page("OPS", "News", type="blogpost", body="<p>news</p>")
    emu.wiki.hide_page(hidden_id)
    with cloud_client(emu) as client:
        single = client.get(
            f"{emu.v2_root}/pages/{page_id}", params={"body-format": "storage", "include-labels": "true"}
        ).json()
        assert [label["name"] for label in single["labels"]["results"]] == ["ai-ingest", "design"]
        assert single["version"]["number"] == 1 and single["version"]["createdAt"].endswith("Z")
        assert single["_links"]["base"] == f"{emu.url}/wiki"
        assert client.get(f"{emu.v2_root}/pages/{hidden_id}").status_code == 404
        assert client.get(f"{emu.v2_root}/pages/{blog.id}").status_code == 404
        blogs = client.get(f"{emu.v2_root}/blogposts", params={"body-format": "storage"}).json()
        assert [b["id"] for b in blogs["results"]] == [blog.id]
        assert blogs["results"][0]["_links"]["webui"].startswith("/spaces/OPS/blog/")
        pages = client.get(f"{emu.v2_root}/pages").json()
        assert [p["id"] for p in pages["results"]] == [page_id]


# -- auth ----------------------------------------------------------------------------------------------
def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        (PAT, "", 200),
        (_basic("svc", "svc-password"), "", 200),
        ({"Authorization": "Bearer wrong"}, "", 401),
        (_basic("svc", "wrong"), "", 401),
        (_basic("svc@example.com", "cloud-token"), "", 401),
        ({}, "", 401),
        ({"Authorization": "Basic !!!"}, "", 401),
        (PAT, "&os_authType=basic", 200),  # PATs survive os_authType=basic; only OAuth bearer tokens are ignored
        (_basic("svc", "svc-password"), "&os_authType=basic", 200),
    ],
)
def test_dc_auth(confluence_onprem: ConfluenceEmulator, headers: dict[str, str], query: str, status: int) -> None:
    response = httpx.get(f"{confluence_onprem.api_root}/space?limit=1{query}", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["statusCode"] == 401 and response.json()["reason"] == "Unauthorized"


def test_os_authtype_basic_breaks_bearer_oauth_tokens() -> None:
    with ConfluenceEmulator("ONPREM", oauth_client_id="cid", oauth_client_secret="csecret") as emu:
        token_response = httpx.post(
            f"{emu.base_url}/rest/oauth2/latest/token",
            data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"},
        )
        bearer = {"Authorization": f"Bearer {token_response.json()['access_token']}"}
        assert httpx.get(f"{emu.api_root}/space", headers=bearer).status_code == 200
        assert httpx.get(f"{emu.api_root}/space?os_authType=basic", headers=bearer).status_code == 401
        assert httpx.get(f"{emu.api_root}/space?os_authType=basic", headers=PAT).status_code == 200
        emu.os_authtype_breaks_pat = True
        assert httpx.get(f"{emu.api_root}/space?os_authType=basic", headers=PAT).status_code == 401
        wrong = httpx.post(
            f"{emu.base_url}/rest/oauth2/latest/token",
            data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "nope"},
        )
        assert wrong.status_code == 401
        recorded = emu.requests_to(r"/oauth2/")
        assert recorded and all(b"csecret" not in r.body for r in recorded)


@pytest.mark.parametrize(
    ("path_kind", "headers", "status"),
    [
        ("site", _basic("svc@example.com", "cloud-token"), 200),
        ("gateway", _basic("svc@example.com", "cloud-token"), 200),
        ("v2", _basic("svc@example.com", "cloud-token"), 200),
        ("site", _basic("svc@example.com", "wrong"), 401),
        ("gateway", _basic("other@example.com", "cloud-token"), 401),
        ("site", {"Authorization": "Bearer cloud-token"}, 401),
        ("gateway", {}, 401),
        ("v2", {}, 401),
    ],
)
def test_cloud_auth(confluence_cloud: ConfluenceEmulator, path_kind: str, headers: dict[str, str], status: int) -> None:
    url = {
        "site": f"{confluence_cloud.api_root}/space",
        "gateway": f"{confluence_cloud.gateway_api_root}/space",
        "v2": f"{confluence_cloud.v2_root}/pages",
    }[path_kind]
    assert httpx.get(url, headers=headers).status_code == status


def test_secrets_are_redacted_in_recorded_requests(confluence_onprem: ConfluenceEmulator) -> None:
    httpx.get(f"{confluence_onprem.api_root}/space", headers=PAT)
    (recorded,) = confluence_onprem.requests_to(r"/rest/api/space")
    assert "test-pat" not in repr(recorded) and recorded.headers["authorization"] == "<redacted>"


# -- permissions, trash, single content ------------------------------------------------------------------
def test_hidden_and_trashed_content(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    wiki = emu.wiki
    wiki.add_space("OPS", "Operations")
    wiki.add_space("SECRET", "Secret")
    root = wiki.add_page("OPS", "Root", labels=["ai-ingest"])
    hidden = wiki.add_page("OPS", "Hidden", parent_id=root.id, labels=["ai-ingest"])
    below_hidden = wiki.add_page("OPS", "Below hidden", parent_id=hidden.id, labels=["ai-ingest"])
    trashed = wiki.add_page("OPS", "Trashed", labels=["ai-ingest"])
    secret = wiki.add_page("SECRET", "Secret page", labels=["ai-ingest"])
    wiki.hide_page(hidden.id)
    wiki.hide_space("SECRET")
    wiki.trash_page(trashed.id)
    with dc_client(emu) as client:
        found = client.get("/content/search", params={"cql": LABELLED}).json()
        assert [r["id"] for r in found["results"]] == [root.id]
        for page_id in (hidden.id, below_hidden.id, trashed.id, secret.id, "999999"):
            missing = client.get(f"/content/{page_id}")
            assert missing.status_code == 404
            assert missing.json()["message"] == f"No content found with id: ContentId{{id={page_id}}}"
        assert client.get(f"/content/{trashed.id}", params={"status": "trashed"}).json()["status"] == "trashed"
        assert client.get(f"/content/{root.id}/child/page").json()["results"] == []
        assert [s["key"] for s in client.get("/space").json()["results"]] == ["OPS"]
        assert client.get("/space/SECRET").status_code == 404
        wiki.unhide_page(hidden.id)
        wiki.unhide_space("SECRET")
        found = client.get("/content/search", params={"cql": LABELLED}).json()
        assert [r["id"] for r in found["results"]] == [root.id, hidden.id, below_hidden.id, secret.id]


def test_single_content_default_expansions_and_times(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    emu.wiki.add_space("OPS", "Operations", space_id=4242)
    page = emu.wiki.add_page("OPS", "Runbook", labels=["A"], when=datetime(2024, 5, 1, 8, 2, 3, 456789, tzinfo=UTC))
    emu.wiki.update_page(page.id, body="<p>v2</p>", when=datetime(2024, 5, 2, 8, 0, tzinfo=UTC))
    with dc_client(emu) as client:
        default = client.get(f"/content/{page.id}").json()
        full = client.get(f"/content/{page.id}", params={"expand": "body.storage,body.view,metadata.labels"}).json()
    assert set(default) >= {"space", "version", "history"} and "body" not in default
    assert default["space"]["id"] == 4242
    assert default["version"] == default["version"] | {"number": 2, "when": "2024-05-02T10:00:00.000+02:00"}
    assert default["history"]["createdDate"] == "2024-05-01T10:02:03.456+02:00"
    assert default["_links"]["base"] == f"{emu.url}/confluence"
    assert full["body"]["storage"]["value"] == "<p>v2</p>"
    assert full["body"]["view"]["value"] != full["body"]["storage"]["value"]
    assert full["metadata"]["labels"]["results"][0]["name"] == "a"
    assert "version" not in full


def test_unknown_space_in_cql(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    seed(emu.wiki, 1)
    with dc_client(emu) as client:
        cql = 'space = "GONE" and label = "ai-ingest"'
        response = client.get("/content/search", params={"cql": cql})
        assert response.status_code == 400 and response.json()["message"] == "parameters should not be empty"
        emu.dc_unknown_space = "500"
        assert client.get("/content/search", params={"cql": cql}).status_code == 500
        emu.dc_unknown_space = "empty"
        assert client.get("/content/search", params={"cql": cql}).json()["results"] == []


def test_cloud_unknown_space_is_empty_and_times_are_utc(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    (page_id,) = seed(emu.wiki, 1)
    with cloud_client(emu) as client:
        search = client.get(f"{emu.api_root}/content/search", params={"cql": 'space = "GONE"'})
        assert search.status_code == 200 and search.json()["results"] == []
        page = client.get(f"{emu.api_root}/content/{page_id}").json()
    assert page["version"]["when"].endswith("Z") and isinstance(page["space"]["id"], int)


# -- identity endpoints -----------------------------------------------------------------------------------
def test_dc_manifest_json_and_xml_without_auth(confluence_onprem: ConfluenceEmulator) -> None:
    url = f"{confluence_onprem.base_url}/rest/applinks/1.0/manifest"
    as_json = httpx.get(url, headers={"Accept": "application/json"})
    as_xml = httpx.get(url)
    assert as_json.json()["id"] == confluence_onprem.server_id and as_json.json()["typeId"] == "confluence"
    assert as_xml.headers["content-type"].startswith("application/xml")
    assert f"<id>{confluence_onprem.server_id}</id>" in as_xml.text


def test_cloud_tenant_info(confluence_cloud: ConfluenceEmulator) -> None:
    response = httpx.get(f"{confluence_cloud.url}/_edge/tenant_info")
    assert response.json() == {"cloudId": confluence_cloud.cloud_id}


# -- faults through a real client ------------------------------------------------------------------------
def test_rate_limited_then_ok(confluence_cloud: ConfluenceEmulator) -> None:
    emu = confluence_cloud
    emu.faults.rate_limited(r"/content/search", retry_after="7")
    with cloud_client(emu) as client:
        limited = client.get(f"{emu.api_root}/content/search", params={"cql": LABELLED})
        ok = client.get(f"{emu.api_root}/content/search", params={"cql": LABELLED})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.headers["X-RateLimit-Remaining"] == "0" and "X-RateLimit-Limit" in limited.headers
    assert ok.status_code == 200


def test_503_with_retry_after(confluence_onprem: ConfluenceEmulator) -> None:
    confluence_onprem.faults.add(r"/content/search", Fault(503, {"Retry-After": "2"}), times=2)
    with dc_client(confluence_onprem) as client:
        statuses = [client.get("/content/search", params={"cql": LABELLED}).status_code for _ in range(3)]
        assert client.get("/space").status_code == 200
    assert statuses == [503, 503, 200]


def test_fault_on_the_third_page_only(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    seed(emu.wiki, 30)
    emu.faults.add(r"/content/search", Fault(502), when=lambda r: r.param("start") == "20")
    with dc_client(emu) as client:
        statuses = [
            client.get("/content/search", params={"cql": LABELLED, "limit": "10", "start": str(s)}).status_code
            for s in (0, 10, 20, 20)
        ]
    assert statuses == [200, 200, 502, 200]


def test_delay_and_global_latency_trip_client_timeouts(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    emu.faults.add(r"/space", Fault(delay=0.5))
    with dc_client(emu, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/space")
        assert client.get("/space").status_code == 200
    emu.faults.latency = 0.5
    with dc_client(emu, timeout=0.1) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/space")
    emu.faults.latency = 0.0


def test_dropped_connection(confluence_onprem: ConfluenceEmulator) -> None:
    confluence_onprem.faults.add(r"/space", Fault(drop=True))
    with dc_client(confluence_onprem) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/space")
        assert client.get("/space").status_code == 200


def test_large_pages_fail_with_500(confluence_onprem: ConfluenceEmulator) -> None:
    emu = confluence_onprem
    seed(emu.wiki, 3)
    emu.fail_above_limit = 50
    with dc_client(emu) as client:
        big = client.get("/content/search", params={"cql": LABELLED, "limit": "100"})
        small = client.get("/content/search", params={"cql": LABELLED, "limit": "50"})
    assert big.status_code == 500 and big.json()["statusCode"] == 500
    assert small.status_code == 200 and small.json()["size"] == 3


def test_html_login_page(confluence_onprem: ConfluenceEmulator) -> None:
    confluence_onprem.html_login_page = True
    with dc_client(confluence_onprem) as client:
        response = client.get("/content/search", params={"cql": LABELLED})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


# -- wiki model ------------------------------------------------------------------------------------------------
def test_wiki_moves_trashes_and_versions() -> None:
    wiki = Wiki()
    wiki.add_space("A", "A")
    wiki.add_space("B", "B")
    root = wiki.add_page("A", "Root")
    child = wiki.add_page("A", "Child", parent_id=root.id)
    grandchild = wiki.add_page("A", "Grandchild", parent_id=child.id)
    assert [int(p.id) for p in (root, child, grandchild)] == [100000, 100001, 100002]
    with pytest.raises(ValueError):
        wiki.add_page("A", "root")  # titles are unique per space
    wiki.move_page(child.id, "B")
    assert (child.space_key, grandchild.space_key, child.parent_id) == ("B", "B", None)
    assert [a.id for a in grandchild.ancestors(wiki)] == [child.id]
    wiki.trash_page(child.id)
    assert child.status == "trashed" and grandchild.parent_id is None
    before = grandchild.when
    wiki.update_page(grandchild.id, title="Renamed")
    assert grandchild.version == 2 and grandchild.when > before
    wiki.delete_page(root.id)
    assert root.id not in wiki.pages
