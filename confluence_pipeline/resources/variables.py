"""The base of our resources: one field per configuration variable, bound to `dagster.EnvVar` or a literal value.

A field is named after its variable in lower case (`confluence_url` is `CONFLUENCE_URL`), so an instances file,
the environment and the UI's resource view all use the same names. Values stay the variables' text: the typed
settings model validates them together when the run starts, so one message names every bad variable (a typed
Dagster field would stop at the first bad value with Dagster's own wording).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar

import dagster as dg
from pydantic import Field, PrivateAttr

from confluence_pipeline.clients.tls import TrustStoreError, build_ssl_context
from confluence_pipeline.config.execution import budget_share, concurrent_steps
from confluence_pipeline.config.secrets import LoggerScrubbing, Scrubber
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
        """The variables' values as this run resolved them (read from the environment when not resolved yet)."""
        return {name.upper(): _resolved(getattr(self, name)) for name in type(self).model_fields}

    @abstractmethod
    def validate(self) -> Any:
        """The typed settings from this resource's variables; raises ConfigurationError naming every bad one."""

    def check(self) -> dict[str, str]:
        """What is wrong with the variables, found without setting the resource up (no client, no side effects)."""
        try:
            self.validate()
        except ConfigurationError as exc:
            return dict(exc.problems)
        return {}

    @property
    def problems(self) -> dict[str, str]:
        """What is wrong with this resource's variables (empty when it is usable)."""
        return dict(self._problems)

    def _invalid(self, error: ConfigurationError) -> None:
        self._problems = dict(error.problems)


def _resolved(value: Any) -> Any:
    return value.get_value() if isinstance(value, dg.EnvVar) else value


class Client(Protocol):
    """What a client resource needs of its client."""

    scrubber: Scrubber

    def request_counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


T = TypeVar("T")


class ClientResource(VariablesResource):
    """A resource that owns one remote system's client for the length of a run.

    `setup_for_execution` validates the variables (recording problems instead of failing, so the first op
    can name every bad variable of every resource at once), builds the client with the run's TLS context
    and scrubs its secrets from our loggers; `teardown_after_execution` closes it.
    """

    _settings: Any = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _scrubbing: LoggerScrubbing | None = PrivateAttr(default=None)

    @abstractmethod
    def _connect(self, settings: Any, verify: Any) -> Client:
        """A client for validated settings."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            settings = self.validate()
            verify = build_ssl_context()
        except ConfigurationError as exc:
            self._invalid(exc)
            return
        except TrustStoreError as exc:
            self._invalid(ConfigurationError({exc.variable: exc.reason}))
            return
        settings = _step_share(settings, context)
        self._settings = settings
        self._client = self._connect(settings, verify)
        self._scrubbing = LoggerScrubbing(self._client.scrubber)
        self._scrubbing.install()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
        if self._scrubbing is not None:
            self._scrubbing.remove()

    def _ready(self, value: T | None) -> T:
        """`value` once set up; otherwise the configuration problems (the first op has reported them)."""
        if value is None:
            raise ConfigurationError(self.problems or {type(self).__name__: "was not set up"})
        return value

    def request_counts(self) -> dict[str, int]:
        """Requests made by this run's client so far, per route (retries and token calls included)."""
        return {} if self._client is None else self._client.request_counts()


def _step_share(settings: Any, context: dg.InitResourceContext) -> Any:
    """The settings with this step's share of the per-minute cap when several step processes run at once.

    Under the multiprocess executor every step builds its own client and limiter, so the run keeps its cap only
    when the steps that may run together divide it.
    """
    run = context.dagster_run
    steps = concurrent_steps(run.run_config if run is not None else None)
    per_minute = getattr(settings, "tokens_per_minute", None)
    share = budget_share(per_minute, steps)
    if share == per_minute:
        return settings
    if context.log is not None:
        variable = type(settings).model_fields["tokens_per_minute"].alias
        context.log.info(f"{variable}: {share}/min for this step ({per_minute}/min shared by {steps} concurrent steps)")
    return settings.model_copy(update={"tokens_per_minute": share})


def require_valid(*resources: VariablesResource) -> None:
    """Raise one `dg.Failure` naming every bad variable of every given resource, before any request."""
    problems: dict[str, str] = {}
    for resource in resources:
        for name, reason in resource.problems.items():
            problems.setdefault(name, reason)
    if problems:
        error = ConfigurationError(problems)
        raise dg.Failure(description=str(error), metadata={"bad_variables": sorted(problems)}, allow_retries=False)
