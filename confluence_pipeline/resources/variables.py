"""The base of our resources: one field per configuration variable, bound to `dagster.EnvVar` or a literal value.

A field is named after its variable in lower case (`confluence_url` is `CONFLUENCE_URL`), so an instances file,
the environment and the UI's resource view all use the same names. Values stay the variables' text: the typed
settings model validates them together when the run starts, so one message names every bad variable (a typed
Dagster field would stop at the first bad value with Dagster's own wording).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

import dagster as dg
from pydantic import Field, PrivateAttr

from confluence_pipeline.config.settings import ConfigurationError


def variable(description: str) -> Any:
    return Field(default=None, description=description)


def secret_variable(description: str) -> Any:
    return Field(default=None, description=description, repr=False, json_schema_extra={"dagster__is_secret": True})


Binding = str | dg.EnvVar
"""A literal value (stored in the job snapshot: never for secrets) or the name of an environment variable."""


class VariablesResource(dg.ConfigurableResource):
    """A resource configured by variables; subclasses validate them in `setup_for_execution`."""

    _problems: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def variable_names(cls) -> tuple[str, ...]:
        return tuple(name.upper() for name in cls.model_fields)

    @classmethod
    def bound(cls, bindings: Mapping[str, Binding]) -> Self:
        """A resource whose fields take the given bindings (by variable name); others keep their defaults."""
        fields = {name.lower(): value for name, value in bindings.items() if name.lower() in cls.model_fields}
        return cls(**fields)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Bind every variable that is set to `EnvVar`; unset ones keep their default (EnvVar would fail on them)."""
        env = os.environ if environ is None else environ
        return cls.bound({name: dg.EnvVar(name) for name in cls.variable_names() if name in env})

    def variables(self) -> dict[str, str | None]:
        """The variables' values as this run resolved them."""
        return {name.upper(): getattr(self, name) for name in type(self).model_fields}

    @property
    def problems(self) -> dict[str, str]:
        """What is wrong with this resource's variables (empty when it is usable)."""
        return dict(self._problems)

    def _invalid(self, error: ConfigurationError) -> None:
        self._problems = dict(error.problems)


def require_valid(*resources: VariablesResource) -> None:
    """Raise one `dg.Failure` naming every bad variable of every given resource, before any request."""
    problems: dict[str, str] = {}
    for resource in resources:
        for name, reason in resource.problems.items():
            problems.setdefault(name, reason)
    if problems:
        error = ConfigurationError(problems)
        raise dg.Failure(description=str(error), metadata={"bad_variables": sorted(problems)}, allow_retries=False)
