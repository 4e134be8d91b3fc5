"""Job-level run config: one flat schema for the operator, mapped onto the ops that read it."""

from __future__ import annotations

import dagster as dg


def flat_config(config_class: type[dg.Config], *op_names: str) -> dg.ConfigMapping:
    """Launch a job with `config_class`'s fields at the top level; each named op receives all of them."""
    return dg.ConfigMapping(
        config_schema=config_class.to_config_schema(),
        config_fn=lambda values: {"ops": {name: {"config": values} for name in op_names}},
    )
