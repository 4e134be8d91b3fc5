"""Dagster jobs and the ops they orchestrate; each job is built per instance by a factory in its module."""

from __future__ import annotations

import os

from confluence_pipeline.config.instances import DEFAULT_INSTANCE, Instance, InstanceStatus, environment_bindings

DEFAULT_FROM_ENVIRONMENT = Instance(DEFAULT_INSTANCE, InstanceStatus.ACTIVE, environment_bindings(os.environ), None)
"""The instance `default` as the environment binds it when the module is imported: the module-level jobs
(`confluence_sync`, ...) that tests, the sandbox demo and the benchmark run. The code location builds its own."""
