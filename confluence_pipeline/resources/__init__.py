"""Dagster resources: each owns one remote system's client for the length of a run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from confluence_pipeline.config.instances import EnvRef, Instance
from confluence_pipeline.resources.confluence import ConfluenceResource
from confluence_pipeline.resources.options import SyncOptionsResource
from confluence_pipeline.resources.unique import UniqueResource
from confluence_pipeline.resources.variables import VariablesResource, require_valid

__all__ = [
    "ConfluenceResource",
    "SyncOptionsResource",
    "UniqueResource",
    "VariablesResource",
    "require_valid",
    "resources_for",
    "resources_from_env",
]


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The three resources with every set variable bound to `EnvVar` (what the code location uses)."""
    env = os.environ if environ is None else environ
    return {
        "confluence": ConfluenceResource.from_env(env),
        "unique": UniqueResource.from_env(env),
        "sync_options": SyncOptionsResource.from_env(env),
    }


def resources_for(instance: Instance) -> dict[str, Any]:
    """The three resources of one instance: literal values as written, references bound to `EnvVar`.

    Only variable names reach the job snapshot for references, so a secret never lands in run storage.
    """
    bindings = {
        name: dg.EnvVar(binding.name) if isinstance(binding, EnvRef) else binding
        for name, binding in instance.bindings.items()
    }
    return {
        "confluence": ConfluenceResource.bound(bindings),
        "unique": UniqueResource.bound(bindings),
        "sync_options": SyncOptionsResource.bound(bindings),
    }
