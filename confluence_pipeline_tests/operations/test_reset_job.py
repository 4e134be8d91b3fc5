"""`confluence_reset`: deletes a scope's content by key prefix in batches, reports the keys; dry runs write nothing."""

from __future__ import annotations

import math

import dagster as dg
import pytest

from confluence_pipeline.clients.unique import DELETE_BATCH, UniqueClient
from confluence_pipeline.jobs.reset import confluence_reset
from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline_tests.support import (
    Sandbox,
    failure_text,
    fake_run,
    mutations,
    output_metadata,
    run_job,
)
from confluence_sandbox.http import Fault

DELETE = "ContentDeleteByContentIds"


def seed(box: Sandbox, scope_id: str, keys: list[str]) -> None:
    for key in keys:
        box.unique.store.seed_content(key, owner_id=scope_id)


@pytest.fixture
def scope_id(onprem: Sandbox) -> str:
    return onprem.env["UNIQUE_SCOPE_ID"]


def test_partial_key_deletes_only_matching_keys_in_batches_and_reports_them(onprem: Sandbox, scope_id: str) -> None:
    space_a = [f"1_A/{n}" for n in range(DELETE_BATCH + 7)]
    seed(onprem, scope_id, [*space_a, "1_AB/1", "2_B/1", "2_B/2"])
    child = onprem.unique.store.add_scope("child", parent_id=scope_id)
    seed(onprem, child.id, ["1_A/child"])

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id, "partial_key": "1_A/"})

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_AB/1", "2_B/1", "2_B/2", "1_A/child"}
    metadata = output_metadata(result, "reset_scope")
    assert (metadata["matched"], metadata["deleted"], metadata["unconfirmed"]) == (len(space_a), len(space_a), 0)
    assert metadata["keys"] == sorted(space_a)
    assert metadata["dry_run"] is False
    assert len(mutations(onprem, DELETE)) == math.ceil(len(space_a) / DELETE_BATCH)
    assert result.dagster_run.tags[WRITER_TAG] == "default"  # one writer per instance


def test_include_child_scopes_without_partial_key_empties_the_whole_tree_only(onprem: Sandbox, scope_id: str) -> None:
    child = onprem.unique.store.add_scope("child", parent_id=scope_id)
    grandchild = onprem.unique.store.add_scope("grandchild", parent_id=child.id)
    other = onprem.unique.store.add_scope("elsewhere")
    seed(onprem, scope_id, ["1_A/1"])
    seed(onprem, child.id, ["1_A/2", "9_Z/1"])
    seed(onprem, grandchild.id, ["3_C/1"])
    seed(onprem, other.id, ["1_A/other"])

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id, "include_child_scopes": True})

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_A/other"}
    metadata = output_metadata(result, "reset_scope")
    assert metadata["scopes"] == [scope_id, child.id, grandchild.id]
    assert metadata["deleted"] == 4


def test_without_child_scopes_children_are_left_alone(onprem: Sandbox, scope_id: str) -> None:
    child = onprem.unique.store.add_scope("child", parent_id=scope_id)
    seed(onprem, scope_id, ["1_A/1"])
    seed(onprem, child.id, ["1_A/2"])

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_A/2"}


@pytest.mark.parametrize("how", ["dry_run", "TEST_MODE"])
def test_dry_run_and_test_mode_list_without_deleting(onprem: Sandbox, scope_id: str, how: str) -> None:
    seed(onprem, scope_id, ["1_A/1", "1_A/2", "2_B/1"])
    config: dict[str, object] = {"scope_id": scope_id, "partial_key": "1_A/"}
    if how == "dry_run":
        config["dry_run"] = True
    else:
        onprem.set_env(TEST_MODE="true")

    result = run_job(onprem, confluence_reset, config)

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_A/1", "1_A/2", "2_B/1"}
    assert mutations(onprem) == []
    metadata = output_metadata(result, "reset_scope")
    assert (metadata["matched"], metadata["deleted"], metadata["dry_run"]) == (2, 0, True)
    assert metadata["keys"] == ["1_A/1", "1_A/2"]
    assert metadata["test_mode"] is (how == "TEST_MODE")


def test_unknown_scope_fails_clearly_and_deletes_nothing(onprem: Sandbox, scope_id: str) -> None:
    seed(onprem, scope_id, ["1_A/1"])

    result = run_job(onprem, confluence_reset, {"scope_id": "scope_doesnotexist"})

    assert not result.success
    text = failure_text(result)
    assert "scope_doesnotexist" in text and "does not exist" in text and "Nothing was deleted" in text
    assert mutations(onprem) == []
    assert onprem.all_keys() == {"1_A/1"}


def test_unconfirmed_deletions_fail_the_run_naming_them(
    onprem: Sandbox, scope_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(onprem, scope_id, ["1_A/1", "1_A/2", "1_A/3"])
    real_delete = UniqueClient.delete
    kept = onprem.unique.store.content_by_key("1_A/2")
    assert kept is not None

    def delete_all_but_one(self: UniqueClient, ids: list[str]) -> list[str]:
        return real_delete(self, [i for i in ids if i != kept.id])

    monkeypatch.setattr(UniqueClient, "delete", delete_all_but_one)

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert not result.success
    text = failure_text(result)
    assert "confirmed 2 of 3" in text and kept.id in text and "1_A/2" in text
    assert output_metadata(result, "reset_scope")["unconfirmed"] == 1


def test_refuses_while_another_writer_runs(onprem: Sandbox, scope_id: str) -> None:
    seed(onprem, scope_id, ["1_A/1"])
    busy = fake_run(onprem.instance, dg.DagsterRunStatus.STARTED)

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert not result.success
    text = failure_text(result)
    assert "run is in progress" in text and "refusing to start a confluence_reset run" in text and busy.run_id in text
    assert mutations(onprem) == []
    assert onprem.all_keys() == {"1_A/1"}


def test_a_finished_or_queued_writer_does_not_block(onprem: Sandbox, scope_id: str) -> None:
    seed(onprem, scope_id, ["1_A/1"])
    fake_run(onprem.instance, dg.DagsterRunStatus.SUCCESS)
    fake_run(onprem.instance, dg.DagsterRunStatus.QUEUED)

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert result.success, failure_text(result)
    assert onprem.all_keys() == set()


def test_invalid_configuration_fails_before_any_request(onprem: Sandbox, scope_id: str) -> None:
    onprem.set_env(UNIQUE_INGESTION_URL_GRAPHQL="not a url", CONFLUENCE_INSTANCE_TYPE="SERVER")

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert not result.success
    text = failure_text(result)
    assert "UNIQUE_INGESTION_URL_GRAPHQL" in text
    assert "CONFLUENCE_INSTANCE_TYPE" not in text  # a reset touches Unique only: Confluence settings do not matter
    assert onprem.unique.requests == []


def test_a_failing_delete_call_fails_the_run_saying_how_to_finish(onprem: Sandbox, scope_id: str) -> None:
    seed(onprem, scope_id, ["1_A/1", "1_A/2"])
    onprem.unique.faults.add(
        r"/graphql$",
        Fault(400, {"Content-Type": "application/json"}, b'{"message":"bad request"}'),
        when=lambda r: DELETE.encode() in r.body,
        times=None,
    )

    result = run_job(onprem, confluence_reset, {"scope_id": scope_id})

    assert not result.success
    text = failure_text(result)
    assert f"Reset of scope {scope_id} failed" in text and "run the job again" in text
    assert onprem.all_keys() == {"1_A/1", "1_A/2"}
