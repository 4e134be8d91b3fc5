"""Job-level run config: one flat schema for the operator, mapped onto the ops that read it (and the executor)."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import Field, ValidationError

from confluence_pipeline.config.execution import (
    DEFAULT_MAX_CONCURRENT_STEPS,
    MAX_CONCURRENT_STEPS,
    Executor,
    executor_config,
)


class ExecutionConfig(dg.Config):
    """How a run executes its steps; read by the job's config mapping and by the resources, never by an op."""

    executor: Literal["in_process", "multiprocess"] = Field(
        default=Executor.IN_PROCESS.value,
        description=(
            "in_process: every step in the run's process (the default). multiprocess: every step in a process "
            "of its own, up to max_concurrent_steps at once; the request caps are divided between them."
        ),
    )
    max_concurrent_steps: int = Field(
        default=DEFAULT_MAX_CONCURRENT_STEPS,
        ge=1,
        le=MAX_CONCURRENT_STEPS,
        description=f"With executor multiprocess: steps running at once (1 to {MAX_CONCURRENT_STEPS}).",
    )


def flat_config(config_class: type[dg.Config], *op_names: str) -> dg.ConfigMapping:
    """Launch a job with `config_class`'s fields at the top level; each named op receives all of them.

    When `config_class` includes `ExecutionConfig`, its fields choose the executor instead of reaching the ops.
    """
    execution = issubclass(config_class, ExecutionConfig)

    def mapped(values: dict[str, Any]) -> dict[str, Any]:
        op_values = {k: v for k, v in values.items() if not (execution and k in ExecutionConfig.model_fields)}
        run_config: dict[str, Any] = {"ops": {name: {"config": op_values} for name in op_names}}
        if execution:
            run_config["execution"] = {"config": _executor(values)}
        return run_config

    return dg.ConfigMapping(config_schema=config_class.to_config_schema(), config_fn=mapped)


def _executor(values: dict[str, Any]) -> dict[str, Any]:
    # Dagster's schema checks types only; the bounds are checked here, before the run starts.
    try:
        options = ExecutionConfig(**{k: v for k, v in values.items() if k in ExecutionConfig.model_fields})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"Invalid run config: {problems}") from None
    return executor_config(Executor(options.executor), options.max_concurrent_steps)
