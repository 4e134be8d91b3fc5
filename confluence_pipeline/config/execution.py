"""How a sync run executes its steps (one process, or one process per step) and each step's share of a request cap."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

EXECUTOR_FIELD = "executor"
MAX_CONCURRENT_FIELD = "max_concurrent_steps"
DEFAULT_MAX_CONCURRENT_STEPS = 4
MAX_CONCURRENT_STEPS = 32


class Executor(StrEnum):
    IN_PROCESS = "in_process"  # every step in the run's process: one client, one limiter per system
    MULTIPROCESS = "multiprocess"  # every step in a process of its own, each with its own clients


def concurrent_steps(run_config: Mapping[str, Any] | None) -> int:
    """How many steps of a run may send requests at the same time, read from the run's (flat) run config."""
    config = run_config or {}
    if config.get(EXECUTOR_FIELD) != Executor.MULTIPROCESS:
        return 1
    steps = config.get(MAX_CONCURRENT_FIELD, DEFAULT_MAX_CONCURRENT_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        return DEFAULT_MAX_CONCURRENT_STEPS
    return steps


def executor_config(executor: Executor, max_concurrent_steps: int) -> dict[str, Any]:
    """The `execution: config:` section of Dagster's `multi_or_in_process_executor` for these settings.

    Step processes fork from a server that has imported the code location once (Dagster preloads the run's
    module): a spawned process would import Dagster and the connector again for every step, seconds each.
    """
    if executor is Executor.MULTIPROCESS:
        return {"multiprocess": {"max_concurrent": max_concurrent_steps, "start_method": {"forkserver": {}}}}
    return {"in_process": {}}


def budget_share(per_minute: int | None, steps: int) -> int | None:
    """One step's part of a per-minute cap shared by `steps` concurrent steps; None (no cap) stays None.

    Each step process paces its own requests, so the run as a whole stays within the cap only when the steps
    that may run at once split it between them.
    """
    if per_minute is None or steps <= 1:
        return per_minute
    return max(1, per_minute // steps)
