"""Two Confluence instances (Data Center and Cloud) syncing into one Unique: each by its own jobs, never the other's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from confluence_pipeline.jobs.assets import PER_SPACE_KEY, instance_asset_key
from confluence_pipeline.jobs.writers import INSTANCE_TAG, WRITER_TAG
from confluence_pipeline_tests.support import (
    CLOUD_MARK,
    DC_MARK,
    TwoInstances,
    ephemeral_instance,
    failure_text,
    make_two_instances,
)


@pytest.fixture(params=["shared-scope", "per-space-scopes"])
def two(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TwoInstances]:
    yield from make_two_instances(monkeypatch, tmp_path, shared_scope=request.param == "shared-scope")


def seed(two: TwoInstances) -> dict[str, list[str]]:
    """The same space key in both wikis (other space ids, as two real instances have), and one space each."""
    dc, cloud = two.dc.wiki, two.cloud.wiki
    dc.add_space("ENG", "Engineering (DC)", space_id=98305)
    dc.add_space("OPS", "Operations", space_id=98306)
    cloud.add_space("ENG", "Engineering (Cloud)", space_id=2228225)
    cloud.add_space("SALES", "Sales", space_id=2228226)
    return {
        "dc": [
            dc.add_page("ENG", f"DC runbook {n}", labels=["ai-ingest"], page_id=str(100 + n), body=f"<p>dc {n}</p>").id
            for n in range(3)
        ]
        + [dc.add_page("OPS", "DC on-call", labels=["ai-ingest"], page_id="200").id],
        "cloud": [
            cloud.add_page("ENG", f"Cloud guide {n}", labels=["ai-ingest"], page_id=str(7000 + n)).id for n in range(2)
        ]
        + [cloud.add_page("SALES", "Pricing", labels=["ai-ingest"], page_id="7100").id],
    }


def sync(two: TwoInstances, defs: dg.Definitions, name: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = defs.get_job_def(f"confluence_sync__{name}").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, failure_text(result)
    return result


def keys_of(two: TwoInstances, mark: str) -> set[str]:
    return {key for key, owner in two.marks().items() if owner == mark}


def cloud_state(two: TwoInstances, keys: set[str]) -> dict[str, tuple[str, bytes | None, object]]:
    """Id, bytes and last write of each item: unchanged means untouched."""
    return {c.key: (c.id, c.data, c.updated_at) for c in two.unique.store.contents.values() if c.key in keys}


def test_each_instance_syncs_its_own_content_and_deletes_only_its_own(two: TwoInstances) -> None:
    pages = seed(two)
    defs = two.definitions()
    instance = ephemeral_instance()

    dc_run = sync(two, defs, "wiki_dc", instance)
    cloud_run = sync(two, defs, "wiki_cloud", instance)

    dc_keys = {"98305_ENG/100", "98305_ENG/101", "98305_ENG/102", "98306_OPS/200"}
    cloud_keys = {"2228225_ENG/7000", "2228225_ENG/7001", "2228226_SALES/7100"}
    assert two.marks() == {**dict.fromkeys(dc_keys, DC_MARK), **dict.fromkeys(cloud_keys, CLOUD_MARK)}
    assert {c.key for c in two.unique.store.contents.values() if c.finalized_at} == dc_keys | cloud_keys
    scopes = {two.unique.store.scope_path(c.owner_id) for c in two.unique.store.contents.values() if c.owner_id}
    if two.shared_scope:
        assert scopes == {"/Confluence KB"}
    else:
        assert scopes == {
            "/Confluence/DC/ENG",
            "/Confluence/DC/OPS",
            "/Confluence/Cloud/ENG",
            "/Confluence/Cloud/SALES",
        }
    # Runs carry their instance, so the Runs page filters by it; the writer limit is per instance.
    for run, name in ((dc_run, "wiki_dc"), (cloud_run, "wiki_cloud")):
        assert (run.dagster_run.tags[INSTANCE_TAG], run.dagster_run.tags[WRITER_TAG]) == (name, name)
        (observation,) = [e.asset_observation_data.asset_observation for e in run.get_asset_observation_events()]
        assert observation.asset_key == instance_asset_key(name)
    cloud_before = cloud_state(two, cloud_keys)

    # One page unlabelled, and the last labelled page of a space too (the whole space leaves the sync, and its
    # stored content is cleaned up): only the DC instance's content is deleted.
    two.dc.wiki.remove_label(pages["dc"][0], "ai-ingest")
    two.dc.wiki.remove_label(pages["dc"][3], "ai-ingest")
    sync(two, defs, "wiki_dc", instance)

    assert keys_of(two, DC_MARK) == {"98305_ENG/101", "98305_ENG/102"}
    assert keys_of(two, CLOUD_MARK) == cloud_keys
    assert cloud_state(two, cloud_keys) == cloud_before

    # The Cloud instance, synced again, finds its content unchanged and writes nothing.
    two.unique.clear_requests()
    sync(two, defs, "wiki_cloud", instance)
    assert [r for r in two.unique.requests if r.method == "PUT" or (r.body and b"mutation" in r.body)] == []
    assert keys_of(two, CLOUD_MARK) == cloud_keys


def test_the_instance_observation_carries_totals_and_every_space(two: TwoInstances) -> None:
    seed(two)
    defs = two.definitions()
    instance = ephemeral_instance()

    result = sync(two, defs, "wiki_cloud", instance)

    (event,) = result.get_asset_observation_events()
    metadata = {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}
    assert (metadata["total_discovered"], metadata["total_new"], metadata["spaces"]) == (3, 3, 2)
    rows = {row["space_key"]: row for row in metadata[PER_SPACE_KEY]}
    assert set(rows) == {"ENG", "SALES"}
    assert (rows["ENG"]["new"], rows["ENG"]["space_id"], rows["SALES"]["new"]) == (2, "2228225", 1)
    assert rows["ENG"]["unique_requests"] > 0 and metadata["unique_requests"] >= rows["ENG"]["unique_requests"]
    # Only declared assets are observed: the instance's, never one per space.
    declared = {spec.key for spec in defs.assets or []}  # type: ignore[union-attr]
    assert set(instance.all_asset_keys()) == {instance_asset_key("wiki_cloud")}
    assert instance_asset_key("wiki_cloud") in declared
