"""`confluence_delete_content`: deletes the named ids, lists unknown ones as not found; TEST_MODE writes nothing."""

from __future__ import annotations

import dagster as dg
import pytest

from confluence_pipeline.jobs.delete_content import confluence_delete_content
from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline_tests.support import (
    Sandbox,
    failure_text,
    fake_run,
    mutations,
    output_metadata,
    run_job,
)


def seeded_ids(box: Sandbox, *keys: str) -> list[str]:
    scope_id = box.env["UNIQUE_SCOPE_ID"]
    return [box.unique.store.seed_content(key, owner_id=scope_id).id for key in keys]


def test_deletes_existing_ids_and_reports_unknown_ones_without_failing(onprem: Sandbox) -> None:
    first, second, kept = seeded_ids(onprem, "1_A/1", "1_A/2", "1_A/3")

    result = run_job(onprem, confluence_delete_content, {"content_ids": [first, "cont_unknown", second, first]})

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_A/3"}
    assert kept in onprem.unique.store.contents
    metadata = output_metadata(result, "delete_content_items")
    assert metadata["requested"] == 3  # the repeated id counts once
    assert (metadata["deleted"], metadata["unconfirmed"]) == (2, 0)
    assert metadata["not_found"] == ["cont_unknown"]
    assert metadata["keys"] == ["1_A/1", "1_A/2"]
    assert result.dagster_run.tags[WRITER_TAG] == "default"  # one writer per instance


def test_only_unknown_ids_is_a_successful_no_op(onprem: Sandbox) -> None:
    seeded_ids(onprem, "1_A/1")

    result = run_job(onprem, confluence_delete_content, {"content_ids": ["cont_a", "cont_b"]})

    assert result.success, failure_text(result)
    assert output_metadata(result, "delete_content_items")["not_found"] == ["cont_a", "cont_b"]
    assert mutations(onprem) == []


@pytest.mark.parametrize("how", ["dry_run", "TEST_MODE"])
def test_dry_run_and_test_mode_report_without_deleting(onprem: Sandbox, how: str) -> None:
    (content_id,) = seeded_ids(onprem, "1_A/1")
    config: dict[str, object] = {"content_ids": [content_id, "cont_unknown"]}
    if how == "dry_run":
        config["dry_run"] = True
    else:
        onprem.set_env(TEST_MODE="true")

    result = run_job(onprem, confluence_delete_content, config)

    assert result.success, failure_text(result)
    assert onprem.all_keys() == {"1_A/1"}
    assert mutations(onprem) == []
    metadata = output_metadata(result, "delete_content_items")
    assert (metadata["matched"], metadata["deleted"], metadata["dry_run"]) == (1, 0, True)
    assert metadata["not_found"] == ["cont_unknown"]


def test_an_empty_list_is_a_clear_failure(onprem: Sandbox) -> None:
    result = run_job(onprem, confluence_delete_content, {"content_ids": [" ", ""]})

    assert not result.success
    assert "content_ids is empty" in failure_text(result)
    assert onprem.unique.requests == []


def test_refuses_while_a_sync_runs(onprem: Sandbox) -> None:
    (content_id,) = seeded_ids(onprem, "1_A/1")
    fake_run(onprem.instance, dg.DagsterRunStatus.STARTING)

    result = run_job(onprem, confluence_delete_content, {"content_ids": [content_id]})

    assert not result.success
    assert "refusing to start a confluence_delete_content run" in failure_text(result)
    assert onprem.all_keys() == {"1_A/1"}
