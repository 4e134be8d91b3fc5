"""Executor options: what reaches Dagster's executor, what reaches the ops, and each step's share of a cap."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from confluence_pipeline.config.execution import Executor, budget_share, concurrent_steps, executor_config
from confluence_pipeline.jobs.config import ExecutionConfig
from confluence_pipeline.jobs.sync import SyncJobConfig, confluence_sync


@pytest.mark.parametrize(
    ("run_config", "steps"),
    [
        (None, 1),
        ({}, 1),
        ({"test_mode": True}, 1),
        ({"executor": "in_process", "max_concurrent_steps": 8}, 1),
        ({"executor": "multiprocess"}, 4),  # the default of max_concurrent_steps
        ({"executor": "multiprocess", "max_concurrent_steps": 3}, 3),
        ({"executor": "multiprocess", "max_concurrent_steps": True}, 4),
    ],
)
def test_concurrent_steps_from_the_flat_run_config(run_config: dict[str, Any] | None, steps: int) -> None:
    assert concurrent_steps(run_config) == steps


@pytest.mark.parametrize(
    ("per_minute", "steps", "share"),
    [(None, 4, None), (250, 1, 250), (250, 2, 125), (250, 3, 83), (2, 4, 1), (100, 32, 3)],
)
def test_each_step_gets_its_share_of_a_cap_never_zero(per_minute: int | None, steps: int, share: int | None) -> None:
    assert budget_share(per_minute, steps) == share


def test_the_executor_config_dagster_receives() -> None:
    assert executor_config(Executor.IN_PROCESS, 4) == {"in_process": {}}
    assert executor_config(Executor.MULTIPROCESS, 3) == {
        "multiprocess": {"max_concurrent": 3, "start_method": {"forkserver": {}}}
    }


def test_execution_options_are_part_of_the_sync_config_only() -> None:
    assert set(ExecutionConfig.model_fields) == {"executor", "max_concurrent_steps"}
    assert set(ExecutionConfig.model_fields) <= set(SyncJobConfig.model_fields)


@pytest.mark.parametrize(
    ("run_config", "execution"),
    [
        ({}, {"in_process": {}}),
        (
            {"executor": "multiprocess", "max_concurrent_steps": 2, "test_mode": True},
            executor_config(Executor.MULTIPROCESS, 2),
        ),
    ],
)
def test_the_mapping_routes_execution_options_to_the_executor_and_the_rest_to_the_ops(
    run_config: dict[str, Any], execution: dict[str, Any]
) -> None:
    mapping = confluence_sync.config_mapping
    assert mapping is not None
    defaults = {"executor": "in_process", "max_concurrent_steps": 4, "test_mode": None, "space_keys": []}
    mapped = mapping.config_fn({**defaults, **run_config})

    assert mapped["execution"] == {"config": execution}
    ops = {name: values["config"] for name, values in mapped["ops"].items()}
    assert "summarize_sync" in ops
    for values in ops.values():
        assert set(values) == {"test_mode", "space_keys"}
    assert dg.validate_run_config(confluence_sync, run_config)


def test_bounds_dagster_does_not_check_fail_before_the_run_starts() -> None:
    mapping = confluence_sync.config_mapping
    assert mapping is not None
    with pytest.raises(ValueError, match="max_concurrent_steps"):
        mapping.config_fn({"executor": "multiprocess", "max_concurrent_steps": 64, "test_mode": None, "space_keys": []})
