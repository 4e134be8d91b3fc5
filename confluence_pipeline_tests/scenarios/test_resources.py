"""The resources own their clients: one client (limiter, token, counters) per run, shared by all its steps."""

from __future__ import annotations

import dagster as dg

from confluence_pipeline.jobs.delete_content import confluence_delete_content
from confluence_pipeline.resources import ConfluenceResource, UniqueResource, resources_from_env
from confluence_pipeline_tests.support import Sandbox, output_metadata


def _probe_job(seen: list[tuple[object, object, object]]) -> dg.JobDefinition:
    # The objects themselves are kept (not their ids): an id can be reused once an object is freed.
    @dg.op
    def first(confluence: ConfluenceResource, unique: UniqueResource) -> int:
        seen.append((confluence.client, confluence.client.api.limiter, unique.client))
        return 1

    @dg.op
    def second(value: int, confluence: ConfluenceResource, unique: UniqueResource) -> int:
        seen.append((confluence.client, confluence.client.api.limiter, unique.client))
        return value

    @dg.job(executor_def=dg.in_process_executor)
    def probe() -> None:
        second(first())

    return probe


def test_every_step_of_a_run_shares_one_client_and_limiter_and_each_run_gets_its_own(onprem: Sandbox) -> None:
    seen: list[tuple[object, object, object]] = []
    job = _probe_job(seen)
    onprem.set_env(CONFLUENCE_TOKENS_PER_MINUTE="120")
    for _ in range(2):
        assert job.execute_in_process(resources=resources_from_env(onprem.env), instance=onprem.instance).success
    assert len(seen) == 4
    first_run, second_run = seen[:2], seen[2:]
    for run in (first_run, second_run):  # both steps of a run: the same clients and the same bucket
        assert all(a is b for a, b in zip(run[0], run[1], strict=True))
    assert all(a is not b for a, b in zip(first_run[0], second_run[0], strict=True))  # a new run, new clients


def test_the_token_is_fetched_once_per_run_and_shared_by_its_steps(onprem: Sandbox) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    wiki.add_page("ENG", "A", labels=["ai-ingest"])
    wiki.add_page("HR", "B", labels=["ai-ingest"])
    onprem.run_sync()
    assert onprem.unique.tokens_issued == 1  # plan, two diffs, scopes, two writes: one token
    onprem.run_sync()
    assert onprem.unique.tokens_issued == 2  # a new run asks for a fresh token


def test_jobs_that_only_touch_unique_need_no_confluence_settings(onprem: Sandbox) -> None:
    onprem.set_env(CONFLUENCE_INSTANCE_TYPE=None, CONFLUENCE_URL=None, CONFLUENCE_PAT=None)
    result = confluence_delete_content.execute_in_process(
        run_config={"content_ids": ["cont_unknown"]},
        resources=resources_from_env(onprem.env),
        instance=onprem.instance,
        raise_on_error=False,
    )
    assert result.success
    assert output_metadata(result, "delete_content_items")["not_found"] == ["cont_unknown"]
