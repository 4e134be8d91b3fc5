"""What a sync does, as scenarios: given this wiki, after a sync Unique holds exactly this."""

from __future__ import annotations

import json
from urllib.parse import unquote

import dagster as dg
import pytest

from confluence_pipeline_tests.support import Sandbox, failure_text, logged, output_metadata
from confluence_sandbox.http import Fault

STORAGE_BODY = (
    "<h1>Runbook &amp; more</h1><p>Grüße, 日本語, emoji 😀 &lt;tag&gt; &nbsp;</p>"
    '<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">py</ac:parameter>'
    '<ac:plain-text-body><![CDATA[if a < b and c > d: print("]]]]><![CDATA[>")]]></ac:plain-text-body>'
    "</ac:structured-macro>"
    '<ac:link><ri:page ri:content-title="Other" ri:space-key="OPS"/>'
    "<ac:plain-text-link-body><![CDATA[see]]></ac:plain-text-link-body></ac:link>"
    '<ac:image ac:height="250"><ri:attachment ri:filename="a.png"/></ac:image>'
)


def search_cqls(box: Sandbox) -> list[str]:
    return [
        unquote(r.query["cql"][0]) if "cql" in r.query else "(cursor)"
        for r in box.confluence.requests
        if r.path.endswith("/content/search")
    ]


def body_requests(box: Sandbox) -> list[object]:
    return [
        r
        for r in box.confluence.requests
        if r.path.endswith("/content/search") and "body.storage" in (r.query.get("expand") or [""])[0]
    ]


def summary_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    for event in result.all_events:
        if event.step_key == "summarize_sync" and event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    raise AssertionError("no summary output")


# -- 1. what is synced ----------------------------------------------------------------------------
def test_only_labelled_content_in_syncable_spaces_is_synced(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("~jdoe", "Jane Doe", type="personal")
    wiki.add_space("COLLAB", "Collaboration", type="collaboration")
    single = wiki.add_page("ENG", "Single", labels=["ai-ingest"])
    blog = wiki.add_page("ENG", "Release notes", labels=["ai-ingest"], type="blogpost")
    wiki.add_page("ENG", "Unlabelled")
    wiki.add_page("ENG", "Other label", labels=["faq"])
    personal = wiki.add_page("~jdoe", "Personal", labels=["ai-ingest", "ai-ingest-all"])
    collab = wiki.add_page("COLLAB", "Collab page", labels=["ai-ingest"])

    sandbox.run_sync()

    expected = {sandbox.key_of(single.id), sandbox.key_of(blog.id)}
    if sandbox.confluence.mode == "CLOUD":  # Cloud also admits collaboration spaces
        expected.add(sandbox.key_of(collab.id))
    assert set(sandbox.stored()) == expected
    assert sandbox.key_of(personal.id) not in sandbox.all_keys()
    discovery = search_cqls(sandbox)[0]
    assert '(label = "ai-ingest") OR (label = "ai-ingest-all")' in discovery.replace('label="', 'label = "')
    assert "space.type=global" in discovery.replace(" ", "") and "type!=attachment" in discovery.replace(" ", "")


def test_custom_label_names_are_used_in_the_cql(onprem: Sandbox) -> None:
    onprem.set_env(INGEST_SINGLE_LABEL="kb-one", INGEST_ALL_LABEL="kb-tree")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    root = wiki.add_page("ENG", "Tree", labels=["kb-tree"])
    child = wiki.add_page("ENG", "Leaf", parent_id=root.id)
    one = wiki.add_page("ENG", "One", labels=["kb-one"])
    wiki.add_page("ENG", "Default label", labels=["ai-ingest"])

    onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(p.id) for p in (root, child, one)}
    assert '"kb-one"' in search_cqls(onprem)[0] and '"kb-tree"' in search_cqls(onprem)[0]


# -- 2. descendants -------------------------------------------------------------------------------
def test_descendants_at_any_depth_over_several_result_pages_each_once(onprem: Sandbox) -> None:
    onprem.confluence.cap_expand = 7  # forces several result pages for discovery and descendants
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    root = wiki.add_page("ENG", "Root", labels=["ai-ingest-all"])
    ids = [root.id]
    parent = root.id
    for depth in range(6):  # a deep chain
        parent = wiki.add_page("ENG", f"Depth {depth}", parent_id=parent).id
        ids.append(parent)
    for n in range(20):  # a wide level
        ids.append(wiki.add_page("ENG", f"Wide {n}", parent_id=root.id).id)
    # reached twice: labelled itself and under the root; and a second root nested in the first
    twice = wiki.add_page("ENG", "Twice", parent_id=root.id, labels=["ai-ingest"])
    nested_root = wiki.add_page("ENG", "Nested root", parent_id=twice.id, labels=["ai-ingest-all"])
    leaf = wiki.add_page("ENG", "Nested leaf", parent_id=nested_root.id)
    ids += [twice.id, nested_root.id, leaf.id]

    onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(i) for i in ids}
    registrations = [
        r
        for r in onprem.unique.requests
        if r.path.endswith("/graphql") and b'"fileUrl"' not in r.body and b"contentUpsert" in r.body
    ]
    assert len(registrations) == len(ids)  # each page registered exactly once
    descendant_queries = [c for c in search_cqls(onprem) if "ancestor" in c]
    assert len(descendant_queries) >= 4  # 30 descendants / 7 per page


# -- 3. what lands in Unique ----------------------------------------------------------------------
def test_keys_metadata_and_exact_storage_bytes(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    space = wiki.add_space("OPS", "Operations")
    page = wiki.add_page("OPS", "Runbook ü", labels=["ai-ingest", "Howto", "faq"], body=STORAGE_BODY)

    sandbox.run_sync()

    key = f"{space.id}_OPS/{page.id}"
    stored = sandbox.stored()[key]
    assert stored.data == STORAGE_BODY.encode("utf-8")
    assert stored.byte_size == len(STORAGE_BODY.encode("utf-8"))
    assert stored.title == "Runbook ü"
    assert stored.mime_type == "text/html"
    assert stored.source_name == sandbox.env["CONFLUENCE_URL"]
    platform = sandbox.confluence.mode
    kind = "ATLASSIAN_CONFLUENCE_ONPREM" if platform == "ONPREM" else "ATLASSIAN_CONFLUENCE_CLOUD"
    assert stored.source_kind == kind
    metadata = stored.metadata or {}
    assert json.loads(metadata["confluenceLabels"]) == ["faq", "howto"]
    assert metadata["spaceKey"] == "OPS" and metadata["spaceName"] == "Operations"
    assert metadata["pageId"] == page.id and metadata["version"] == "1"
    assert metadata["lastModified"].endswith("Z")
    assert all(isinstance(v, str) for v in metadata.values())
    if platform == "ONPREM":
        assert stored.url == f"{sandbox.env['CONFLUENCE_URL']}/pages/viewpage.action?pageId={page.id}"
    else:
        assert stored.url.startswith(f"{sandbox.env['CONFLUENCE_URL']}/wiki/spaces/OPS/pages/{page.id}")
    diff_request = next(r for r in sandbox.unique.requests if r.path.endswith("/v2/content/file-diff"))
    sent = json.loads(diff_request.body)
    assert sent["partialKey"] == f"{space.id}_OPS" and sent["sourceKind"] == kind
    assert sent["fileList"][0]["key"] == page.id and sent["fileList"][0]["updatedAt"].endswith("Z")
    assert not any("body.view" in str(r.query) for r in sandbox.confluence.requests)


def test_cloud_page_urls_use_the_site_even_through_the_gateway(cloud: Sandbox) -> None:
    cloud.set_env(CONFLUENCE_CLOUD_ID=cloud.confluence.cloud_id, CONFLUENCE_CLOUD_API_URL=cloud.confluence.gateway_url)
    wiki = cloud.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Gateway page", labels=["ai-ingest"])

    cloud.run_sync()

    stored = cloud.stored()[cloud.key_of(page.id)]
    assert "/ex/confluence/" not in stored.url and stored.url.startswith(f"{cloud.env['CONFLUENCE_URL']}/wiki/")
    api_paths = {r.path for r in cloud.confluence.requests if "/content/search" in r.path}
    assert api_paths and all(p.startswith(f"/ex/confluence/{cloud.confluence.cloud_id}/") for p in api_paths)


# -- 4/5. batching and idempotence ----------------------------------------------------------------
def test_bodies_are_fetched_in_batches_and_unchanged_pages_cost_nothing(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>{n}</p>") for n in range(120)]

    sandbox.run_sync()
    assert len(sandbox.stored()) == 120
    assert len(body_requests(sandbox)) == 3  # ⌈120/50⌉
    assert not any("/content/" in r.path and r.path.rsplit("/", 1)[-1].isdigit() for r in sandbox.confluence.requests)

    sandbox.confluence.clear_requests()
    sandbox.unique.clear_requests()
    sandbox.run_sync()
    assert body_requests(sandbox) == []
    assert sandbox.unique_writes() == []

    for page in pages[:3]:
        wiki.update_page(page.id, body=f"<p>changed {page.id}</p>")
    sandbox.confluence.clear_requests()
    sandbox.unique.clear_requests()
    sandbox.run_sync()
    assert len(body_requests(sandbox)) == 1
    for page in pages[:3]:
        assert sandbox.stored()[sandbox.key_of(page.id)].data == f"<p>changed {page.id}</p>".encode()
    puts = [r for r in sandbox.unique.requests if r.method == "PUT"]
    assert len(puts) == 3


def test_update_reuploads_under_the_same_key_and_content_id(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Doc", labels=["ai-ingest"], body="<p>v1</p>")
    onprem.run_sync()
    before = onprem.stored()[onprem.key_of(page.id)]
    first_id = before.id

    wiki.update_page(page.id, body="<p>v2</p>", title="Doc v2")
    result = onprem.run_sync()

    after = onprem.stored()[onprem.key_of(page.id)]
    assert after.id == first_id and after.data == b"<p>v2</p>" and after.title == "Doc v2"
    assert after.metadata is not None and after.metadata["version"] == "2"
    assert summary_metadata(result)["total_updated"] == 1
    assert len(onprem.unique.store.contents) == 1


# -- 6. deletions ---------------------------------------------------------------------------------
def test_pages_that_lose_their_sync_are_deleted(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OPS", "Operations")
    keep = wiki.add_page("ENG", "Keep", labels=["ai-ingest"])
    unlabel = wiki.add_page("ENG", "Unlabel", labels=["ai-ingest"])
    trash = wiki.add_page("ENG", "Trash", labels=["ai-ingest"])
    hide = wiki.add_page("ENG", "Hide", labels=["ai-ingest"])
    move = wiki.add_page("ENG", "Move", labels=["ai-ingest"])
    ops = wiki.add_page("OPS", "Ops page", labels=["ai-ingest"])
    sandbox.run_sync()
    old_move_key = sandbox.key_of(move.id)
    assert len(sandbox.stored()) == 6

    wiki.remove_label(unlabel.id, "ai-ingest")
    wiki.trash_page(trash.id)
    wiki.hide_page(hide.id)
    wiki.move_page(move.id, "OPS")
    result = sandbox.run_sync()

    assert set(sandbox.stored()) == {sandbox.key_of(p.id) for p in (keep, ops, move)}
    assert sandbox.key_of(move.id) != old_move_key and old_move_key not in sandbox.all_keys()
    metadata = summary_metadata(result)
    assert metadata["total_deleted"] == 4 and metadata["total_new"] == 1


def test_space_whose_pages_all_lost_their_labels_is_cleaned_up(sandbox: Sandbox) -> None:
    wiki = sandbox.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OLD", "Old space")
    eng = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    old = [wiki.add_page("OLD", f"Old {n}", labels=["ai-ingest"]) for n in range(3)]
    sandbox.run_sync()
    assert len(sandbox.stored()) == 4

    for page in old:
        wiki.remove_label(page.id, "ai-ingest")
    sandbox.run_sync()

    assert set(sandbox.stored()) == {sandbox.key_of(eng.id)}
    confirming = [c for c in search_cqls(sandbox) if 'space = "OLD"' in c or 'space="OLD"' in c]
    assert len(confirming) == 1


@pytest.mark.parametrize("per_space_scopes", [False, True])
def test_deleted_space_is_cleaned_up_in_both_scope_modes(onprem: Sandbox, per_space_scopes: bool) -> None:
    if per_space_scopes:
        onprem.set_env(UNIQUE_SCOPE_ID="")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("GONE", "Gone")
    eng = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    wiki.add_page("GONE", "Gone page", labels=["ai-ingest-all"])
    onprem.run_sync()
    assert len(onprem.stored()) == 2

    wiki.hide_space("GONE")
    onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(eng.id)}


def test_nothing_is_deleted_when_discovery_finds_zero_pages(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]) for n in range(3)]
    onprem.run_sync()
    for page in pages:
        wiki.remove_label(page.id, "ai-ingest")
    onprem.unique.clear_requests()

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    assert "zero-discovery" in failure_text(result)
    assert len(onprem.stored()) == 3
    assert onprem.unique_writes() == []


def test_empty_wiki_and_empty_unique_is_a_successful_no_op(onprem: Sandbox) -> None:
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    result = onprem.run_sync()
    assert summary_metadata(result)["total_discovered"] == 0


# -- 7. guards ------------------------------------------------------------------------------------
def test_full_deletion_with_overlapping_keys_aborts_before_any_write(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("OPS", "Operations")
    eng = [wiki.add_page("ENG", f"E{n}", labels=["ai-ingest"]) for n in range(3)]
    wiki.add_page("OPS", "O", labels=["ai-ingest"])
    onprem.run_sync()
    wiki.add_page("OPS", "New ops page", labels=["ai-ingest"])  # would be a write in another space
    # A broken diff: everything in ENG reported deleted although it was submitted again.
    broken = {"newFiles": [], "updatedFiles": [], "movedFiles": [], "deletedFiles": [p.id for p in eng]}
    onprem.unique.faults.add(
        r"/v2/content/file-diff$",
        Fault(200, {"Content-Type": "application/json"}, json.dumps(broken).encode()),
        when=lambda r: b"_ENG" in r.body,
    )
    onprem.unique.clear_requests()

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    text = failure_text(result)
    assert "full-deletion" in text and "ENG" in text
    assert onprem.unique_writes() == []
    assert len(onprem.stored()) == 4


def test_discovery_failing_on_result_page_three_aborts_before_any_write(onprem: Sandbox) -> None:
    onprem.confluence.cap_expand = 10
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]) for n in range(35)]
    onprem.run_sync()
    wiki.update_page(pages[0].id, body="<p>changed</p>")
    onprem.confluence.faults.add(
        r"/content/search$",
        Fault(500, {"Content-Type": "application/json"}, b'{"statusCode":500,"message":"boom"}'),
        times=None,
        when=lambda r: r.param("start") == "20",
    )
    onprem.unique.clear_requests()

    result = onprem.run_sync(expect_success=False)

    assert not result.success
    assert "discovery" in failure_text(result)
    assert onprem.unique_writes() == []
    assert onprem.unique.requests == []  # not even a diff


# -- 8. scopes ------------------------------------------------------------------------------------
def test_one_scope_per_space_when_no_scope_id_is_set_and_reused(onprem: Sandbox) -> None:
    onprem.set_env(UNIQUE_SCOPE_ID="")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    eng = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    hr = wiki.add_page("HR", "Hr", labels=["ai-ingest"])
    onprem.run_sync()
    store = onprem.unique.store
    paths = {store.scope_path(c.owner_id) for c in onprem.stored().values()}
    assert paths == {"/Confluence/ENG", "/Confluence/HR"}
    assert store.scope_path(onprem.stored()[onprem.key_of(eng.id)].owner_id) == "/Confluence/ENG"
    scopes_before = set(store.scopes)

    wiki.update_page(hr.id, body="<p>new</p>")
    onprem.run_sync()

    assert set(store.scopes) == scopes_before
    assert store.scope_path(onprem.stored()[onprem.key_of(hr.id)].owner_id) == "/Confluence/HR"


def test_scope_path_template_is_configurable(onprem: Sandbox) -> None:
    onprem.set_env(UNIQUE_SCOPE_ID="", UNIQUE_SCOPE_PATH_TEMPLATE="/KB/Wiki/{space_name}-{space_key}")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    page = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    onprem.run_sync()
    owner = onprem.stored()[onprem.key_of(page.id)].owner_id
    assert onprem.unique.store.scope_path(owner) == "/KB/Wiki/Engineering-ENG"


def test_configured_scope_holds_everything(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    wiki.add_page("HR", "Hr", labels=["ai-ingest"])
    onprem.run_sync()
    assert {c.owner_id for c in onprem.stored().values()} == {onprem.env["UNIQUE_SCOPE_ID"]}


# -- 9. test mode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["env", "run_config"])
def test_test_mode_reports_would_be_counts_and_writes_nothing(onprem: Sandbox, via: str) -> None:
    onprem.set_env(UNIQUE_SCOPE_ID="")
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    kept = wiki.add_page("ENG", "Kept", labels=["ai-ingest"])
    dropped = wiki.add_page("ENG", "Dropped", labels=["ai-ingest"])
    onprem.run_sync()
    wiki.update_page(kept.id, body="<p>changed</p>")
    wiki.remove_label(dropped.id, "ai-ingest")
    wiki.add_page("ENG", "Brand new", labels=["ai-ingest"])
    wiki.add_space("NEW", "New space")
    wiki.add_page("NEW", "Needs a scope", labels=["ai-ingest"])
    scopes_before = set(onprem.unique.store.scopes)
    onprem.unique.clear_requests()

    if via == "env":
        onprem.set_env(TEST_MODE="true")
        result = onprem.run_sync()
    else:
        result = onprem.run_sync({"test_mode": True})

    assert onprem.unique_writes() == []
    assert set(onprem.unique.store.scopes) == scopes_before
    metadata = summary_metadata(result)
    assert (metadata["total_new"], metadata["total_updated"], metadata["total_deleted"]) == (2, 1, 1)
    assert metadata["test_mode"] is True


# -- 12. DC pagination quirk ----------------------------------------------------------------------
def test_dc_capped_pages_with_the_next_bug_skip_nothing_and_fetch_nothing_twice(onprem: Sandbox) -> None:
    onprem.confluence.cap_expand = 75  # below the 200 we ask for: DC writes start+200 into `next`
    onprem.confluence.trailing_empty_next = True
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]) for n in range(230)]

    onprem.run_sync()

    assert set(onprem.stored()) == {onprem.key_of(p.id) for p in pages}
    starts = [
        int(r.query["start"][0])
        for r in onprem.confluence.requests
        if r.path.endswith("/content/search") and "label" in unquote(r.query["cql"][0])
    ]
    assert starts == [0, 75, 150, 225, 230]
    registrations = [r for r in onprem.unique.requests if b"contentUpsert" in r.body and b'"fileUrl"' not in r.body]
    assert len(registrations) == 230


# -- 13. reporting --------------------------------------------------------------------------------
def test_run_metadata_reports_per_space_totals_and_request_counts(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    wiki.add_page("ENG", "A", labels=["ai-ingest"])
    wiki.add_page("ENG", "B", labels=["ai-ingest"])
    wiki.add_page("HR", "C", labels=["ai-ingest"])
    result = onprem.run_sync()
    metadata = summary_metadata(result)
    for name in ("discovered", "new", "updated", "unchanged", "deleted", "failed", "skipped"):
        assert f"total_{name}" in metadata
    assert metadata["total_discovered"] == 3 and metadata["total_new"] == 3
    assert metadata["confluence_requests"] == len(onprem.confluence.requests) - _unauthenticated(onprem)
    assert metadata["unique_requests"] == len(onprem.unique.requests)
    assert "| ENG |" in str(metadata["per_space"]) and "| HR |" in str(metadata["per_space"])
    # One observation of the instance's asset per successful sync, with the totals and every space.
    (event,) = result.get_asset_observation_events()
    observation = event.asset_observation_data.asset_observation
    assert observation.asset_key == dg.AssetKey(["unique", "confluence", "default"])
    assert observation.metadata["total_new"].value == 3
    per_space = {row["space_key"]: row["new"] for row in observation.metadata["per_space"].value}
    assert per_space == {"ENG": 2, "HR": 1}


def test_the_ingest_step_reports_its_progress_and_pace(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    for n in range(7):
        wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"])

    result = onprem.run_sync()

    (step,) = [key for key in _step_keys(result) if key.startswith("ingest_and_delete[")]
    metadata = output_metadata(result, step)
    assert (metadata["pages_done"], metadata["pages_total"]) == (7, 7)
    assert metadata["pages_per_second"] > 0 and metadata["ingest_seconds"] >= 0
    assert any(line.startswith("Space ENG: 7/7 pages (") and " in " in line for line in logged(onprem, result))


def _step_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.step_key for event in result.all_events if event.step_key}


@pytest.mark.parametrize("run_config", [{"test_mode": True}, {"space_keys": ["ENG"]}])
def test_only_a_complete_real_sync_is_observed(onprem: Sandbox, run_config: dict[str, object]) -> None:
    # A test-mode or restricted run brings Unique only partly (or not at all) up to date: no freshness from it.
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    onprem.confluence.wiki.add_page("ENG", "A", labels=["ai-ingest"])
    assert onprem.run_sync(run_config).get_asset_observation_events() == []


def test_a_failed_sync_is_not_observed(onprem: Sandbox) -> None:
    onprem.confluence.wiki.add_space("ENG", "Engineering")
    onprem.confluence.wiki.add_page("ENG", "A", labels=["ai-ingest"])
    onprem.unique.faults.add(r".*", Fault(400, body=b"rejected"), method="PUT", times=None)
    result = onprem.run_sync(expect_success=False)
    assert not result.success and result.get_asset_observation_events() == []


def _unauthenticated(box: Sandbox) -> int:
    return 0


def test_top_level_space_scopes_are_found_again_for_cleanup(onprem: Sandbox) -> None:
    onprem.set_env(UNIQUE_SCOPE_ID="", UNIQUE_SCOPE_PATH_TEMPLATE="/{space_key}-wiki")
    onprem.unique.store.add_scope("Unrelated")  # another team's top-level scope is never touched
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("GONE", "Gone")
    eng = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    wiki.add_page("GONE", "Gone page", labels=["ai-ingest"])
    onprem.run_sync()
    wiki.hide_space("GONE")
    onprem.run_sync()
    assert set(onprem.stored()) == {onprem.key_of(eng.id)}


def test_restricted_run_syncs_and_deletes_only_inside_its_spaces(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    eng = wiki.add_page("ENG", "Eng", labels=["ai-ingest"])
    hr = wiki.add_page("HR", "Hr", labels=["ai-ingest"])
    onprem.run_sync()
    wiki.remove_label(hr.id, "ai-ingest")
    wiki.update_page(eng.id, body="<p>eng v2</p>")
    hr_only = wiki.add_page("HR", "Hr new", labels=["ai-ingest"])

    onprem.run_sync({"space_keys": ["ENG"]})

    stored = onprem.stored()
    assert onprem.key_of(hr.id) in stored  # HR is outside the restriction: nothing deleted there
    assert onprem.key_of(hr_only.id) not in stored
    assert stored[onprem.key_of(eng.id)].data == b"<p>eng v2</p>"

    onprem.run_sync({"space_keys": ["HR"]})
    assert set(onprem.stored()) == {onprem.key_of(eng.id), onprem.key_of(hr_only.id)}
