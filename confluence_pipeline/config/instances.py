"""The Confluence instances of the code location, from the environment or an instances file, checked as a whole."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, TypeAdapter

from confluence_pipeline.config.location import AlertSettings, InstanceLocationSettings
from confluence_pipeline.config.settings import (
    HEADER_VARIABLES,
    SECRET_VARIABLES,
    ClusterLocalSettings,
    ConfigurationError,
    ConnectorSettings,
    ExternalAuthSettings,
    HttpSettings,
    LoadTimeConfigurationError,
    known_variables,
    load_settings,
    unique_settings,
    validate_variables,
)

T = TypeVar("T")

INSTANCES_FILE_VARIABLE = "CONFLUENCE_INSTANCES_FILE"
DEFAULT_INSTANCE = "default"
ENV_SUFFIX = "_ENV"

SYNC_JOB = "confluence_sync"
RESET_JOB = "confluence_reset"
DELETE_CONTENT_JOB = "confluence_delete_content"
SYNC_SCHEDULE = "confluence_sync_schedule"
CHANGE_SENSOR = "confluence_change_sensor"

_INSTANCE_NAME = re.compile(r"[a-z0-9_]+")
# Upper case only: a token pasted where a variable *name* belongs is then refused without being echoed,
# because real tokens mix cases or carry other characters.
_ENVIRONMENT_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# What a referenced variable stands for while the rest of an instance is checked: any secret, and header
# objects that pass every rule (cluster_local's required headers), so the instance validates as a run with
# good values would. Only a run reads the real values.
_AT_RUN_TIME = "<read at run time>"
_HEADERS_AT_RUN_TIME = json.dumps({"x-company-id": _AT_RUN_TIME, "x-user-id": _AT_RUN_TIME})


def _aliases(*models: type[BaseModel]) -> frozenset[str]:
    names: set[str] = set()
    for model in models:
        for name, info in model.model_fields.items():
            if info.alias:
                names.add(info.alias)
            elif name == "http":  # the nested HTTP patience settings are read from the same flat mapping
                names |= _aliases(HttpSettings)
    return frozenset(names)


LOAD_TIME_VARIABLES = _aliases(InstanceLocationSettings)
"""Read per instance when the code location loads (schedule, sensors, freshness): literal values only."""
PROCESS_VARIABLES = _aliases(AlertSettings) | {
    INSTANCES_FILE_VARIABLE,
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PORT",
    "DAGSTER_UI_PORT",
    "HTTP_API_HOST",
    "HTTP_API_TOKEN",
    "HTTP_API_ALLOW_UNAUTHENTICATED",
    "HTTP_API_CODE_LOCATION",
    "HTTP_API_DAGSTER_TIMEOUT_SECONDS",
    "HTTP_API_DRY_RUN_WAIT_SECONDS",
}
"""Shared by every instance and read from the process environment only; an instances file may not set them."""
_UNIQUE_VARIABLES = _aliases(ExternalAuthSettings, ClusterLocalSettings)


def secret_variables() -> frozenset[str]:
    """Variables whose values are secrets: in an instances file only as `<NAME>_ENV: <variable name>`."""
    return SECRET_VARIABLES | HEADER_VARIABLES


def run_time_variables() -> frozenset[str]:
    """The variables a run's resources read (derived from the settings model, so new ones join by themselves)."""
    return known_variables() - LOAD_TIME_VARIABLES - PROCESS_VARIABLES


def instance_variables() -> frozenset[str]:
    """Every variable an instance may set."""
    return run_time_variables() | LOAD_TIME_VARIABLES


@dataclass(frozen=True)
class EnvRef:
    """Read the environment variable `name` when a run starts (the Dagster layer binds it as `dagster.EnvVar`)."""

    name: str


Binding = str | EnvRef
"""A literal value as an environment variable would hold it, or a variable read at run time."""


class InstanceStatus(StrEnum):
    ACTIVE = "active"  # jobs, schedule and sensor as configured
    INACTIVE = "inactive"  # no runs; its content in Unique stays
    DELETED = "deleted"  # only its reset job, to remove its content from Unique


@dataclass(frozen=True)
class Instance:
    """One Confluence instance: how its resources are bound and what its schedule and sensors are built from."""

    name: str
    status: InstanceStatus
    bindings: Mapping[str, Binding]
    """Run-time variables by name; variables left out keep their built-in defaults."""
    location: InstanceLocationSettings | None
    """Load-time values; None for a deleted instance, which gets no schedule and no sensor."""

    def definition_name(self, base: str) -> str:
        """`default` keeps today's names (`confluence_sync`); instance `n` gets `confluence_sync__n`."""
        return base if self.name == DEFAULT_INSTANCE else f"{base}__{self.name}"

    @property
    def sync_job_name(self) -> str:
        return self.definition_name(SYNC_JOB)

    @property
    def reset_job_name(self) -> str:
        return self.definition_name(RESET_JOB)

    @property
    def delete_content_job_name(self) -> str:
        return self.definition_name(DELETE_CONTENT_JOB)

    @property
    def sync_schedule_name(self) -> str:
        return self.definition_name(SYNC_SCHEDULE)

    @property
    def change_sensor_name(self) -> str:
        return self.definition_name(CHANGE_SENSOR)

    def variables(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The values a run of this instance sees: literals as written, references read from `environ`."""
        values: dict[str, str] = {}
        for name, binding in self.bindings.items():
            if not isinstance(binding, EnvRef):
                values[name] = binding
            elif binding.name in environ:
                values[name] = environ[binding.name]
        return values


@dataclass(frozen=True)
class InstancesConfig:
    """Every instance of the code location, and the process-wide alert settings they share."""

    instances: tuple[Instance, ...]
    alerts: AlertSettings
    file: str | None = None
    """The instances file, or None when the environment defines the one instance `default`."""
    ignored_variables: tuple[str, ...] = ()
    """Instance variables set in the environment that the instances file makes irrelevant (worth a warning)."""

    def instance(self, name: str) -> Instance:
        for candidate in self.instances:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


class InstancesConfigurationError(LoadTimeConfigurationError):
    """The instances (or the variables shared by all of them) are invalid; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  {line}" for line in self.problems)
        super().__init__(f"Invalid code location configuration ({len(self.problems)} {noun}):\n{lines}")

    def __reduce__(self) -> tuple[type[InstancesConfigurationError], tuple[tuple[str, ...]]]:
        return (type(self), (self.problems,))


def load_instances(environ: Mapping[str, str]) -> InstancesConfig:
    """The instances `CONFLUENCE_INSTANCES_FILE` defines or, without it, the instance `default` of the environment.

    Raises one `InstancesConfigurationError` naming every problem (file, instance, variable). Secret values are
    never read here: a reference is only checked to name a variable the environment sets.
    """
    problems: list[str] = []
    alerts, bad = _checked(lambda values: validate_variables(TypeAdapter(AlertSettings), values), environ)
    problems.extend(f"{name}: {reason}" for name, reason in bad.items())
    path = (environ.get(INSTANCES_FILE_VARIABLE) or "").strip()
    if path:
        reader = _InstancesFile(path, environ)
        instances = reader.instances()
        problems.extend(reader.problems)
        ignored = reader.ignored_variables(instances)
    else:
        instances = (_environment_instance(environ, problems),)
        ignored = ()
    if problems or alerts is None:
        raise InstancesConfigurationError(problems)
    return InstancesConfig(instances=instances, alerts=alerts, file=path or None, ignored_variables=ignored)


def _checked(validate: Callable[[Mapping[str, Any]], T], values: Mapping[str, Any]) -> tuple[T | None, dict[str, str]]:
    try:
        return validate(values), {}
    except ConfigurationError as exc:
        return None, exc.problems


def _location(values: Mapping[str, Any]) -> InstanceLocationSettings:
    return validate_variables(TypeAdapter(InstanceLocationSettings), values)


def _environment_instance(environ: Mapping[str, str], problems: list[str]) -> Instance:
    """Today's configuration: every run-time variable that is set is read at run time, as before."""
    location, bad = _checked(_location, environ)
    problems.extend(f"{name}: {reason}" for name, reason in bad.items())
    return Instance(DEFAULT_INSTANCE, InstanceStatus.ACTIVE, environment_bindings(environ), location)


def environment_bindings(environ: Mapping[str, str]) -> Mapping[str, Binding]:
    """Every run-time variable that is set, to be read when a run starts (unset ones keep their defaults)."""
    return MappingProxyType({name: EnvRef(name) for name in sorted(run_time_variables()) if name in environ})


# -- the instances file ------------------------------------------------------------------------------------
class _VariableLoader(yaml.SafeLoader):
    """Safe YAML that keeps numbers and dates as written (`0755` stays `0755`) and records repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[str, int, int]] = []  # key, its line, the line where it first appeared

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in first:
                    self.repeated.append((key_node.value, line, first[key_node.value]))
                first.setdefault(key_node.value, line)
        return super().construct_mapping(node, deep=deep)


def _as_written(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _as_flag(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return "true" if loader.construct_yaml_bool(node) else "false"


for _tag in ("int", "float", "timestamp"):
    _VariableLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _as_written)
_VariableLoader.add_constructor("tag:yaml.org,2002:bool", _as_flag)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a single value"
    return f"a {type(value).__name__}"


def _suggestion(key: str, candidates: Mapping[str, str]) -> str:
    match = difflib.get_close_matches(key.upper(), list(candidates), n=1)
    return f" (did you mean {candidates[match[0]]}?)" if match else ""


@dataclass
class _Values:
    """The variables one mapping of the file (`defaults` or an instance) sets."""

    bindings: dict[str, Binding] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # variables whose entry is already reported as wrong


@dataclass
class _Entry:
    index: int  # 1-based position in `instances`
    name: str | None
    status: InstanceStatus | None
    values: _Values
    label: str
    settings: ConnectorSettings | None = None  # once validated, for checks across instances
    instance: Instance | None = None  # None when its name or status is unusable


class _InstancesFile:
    """Reads one instances file, collecting every problem instead of stopping at the first."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.problems: list[str] = []
        secrets = secret_variables()
        self._secrets = secrets
        self._variables = instance_variables()
        self._candidates = {name: name for name in self._variables - secrets} | {
            form: f"{name}{ENV_SUFFIX}" for name in secrets for form in (name, f"{name}{ENV_SUFFIX}")
        }
        # A bad value in `defaults` is one line naming every instance it breaks, not one line per instance.
        self._inherited: dict[tuple[str, str], list[str]] = {}

    def _problem(self, where: str, line: str) -> None:
        self.problems.append(f"{self.path}: {where}: {line}" if where else f"{self.path}: {line}")

    def _report(self, entry: _Entry, name: str, reason: str, *, inherited: bool) -> None:
        written = f"{name}{ENV_SUFFIX}" if name in self._secrets else name
        if inherited:
            self._inherited.setdefault((written, reason), []).append(entry.label)
        else:
            self._problem(entry.label, f"{written}: {reason}")

    def _dotenv_line(self, key: str) -> str:
        """A `NAME=value` line pasted from a .env file, named without its value (which may be a secret)."""
        name = key.partition("=")[0].strip()
        written = (
            f"{name}{ENV_SUFFIX}: <name of the environment variable that holds it>"
            if name in self._secrets
            else f"{name}: <value>"
        )
        return f"{name}=...: looks like a line of a .env file; write {written} instead"

    # -- reading ----------------------------------------------------------------------------------------
    def _document(self) -> Any:
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.problems.append(f"{INSTANCES_FILE_VARIABLE}: cannot read {self.path!r} ({reason})")
            return None
        except UnicodeDecodeError:
            self._problem("", "is not UTF-8 text")
            return None
        loader = _VariableLoader(text)
        try:
            document = loader.get_single_data()
        except yaml.MarkedYAMLError as exc:
            # Only the parser's words and the position: its snippet of the line could show a secret.
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            self._problem(where, f"invalid YAML: {exc.problem or exc.context or 'cannot be parsed'}")
            return None
        except yaml.YAMLError as exc:
            self._problem("", f"invalid YAML ({type(exc).__name__})")
            return None
        finally:
            loader.dispose()
        for key, line, first in loader.repeated:
            self._problem(f"line {line}", f"{key} is set twice (first on line {first}); remove one of them")
        return document

    def instances(self) -> tuple[Instance, ...]:
        document = self._document()
        if document is None:
            if not self.problems:
                self._problem("", "is empty; it needs an instances: list (see config/instances.example.yaml)")
            return ()
        if not isinstance(document, dict):
            self._problem("", f"must be a mapping with defaults: and instances:, not {_kind(document)}")
            return ()
        for key in document:
            if key not in ("defaults", "instances"):
                self._unknown_top_level(str(key))
        defaults = self._defaults(document.get("defaults"))
        inherited_at = len(self.problems)
        entries = self._entries(document, defaults)
        self.problems[inherited_at:inherited_at] = [
            f"{self.path}: defaults: {written}: {reason} (for {', '.join(labels)})"
            for (written, reason), labels in self._inherited.items()
        ]
        self._shared_targets(entries)
        return tuple(entry.instance for entry in entries if entry.instance is not None)

    def _unknown_top_level(self, key: str) -> None:
        if "=" in key:
            self._problem("", self._dotenv_line(key))
        elif key.upper() in self._variables or key.upper().removesuffix(ENV_SUFFIX) in self._secrets:
            self._problem(key, "variables go under defaults: or under an instance in instances:")
        else:
            hint = _suggestion(key, {"DEFAULTS": "defaults", "INSTANCES": "instances"})
            self._problem(key, f"is not a top-level key (defaults, instances){hint}")

    def _defaults(self, defaults: object) -> _Values:
        if defaults is None:
            return _Values()
        if not isinstance(defaults, dict):
            self._problem("defaults", f"must be a mapping of variables, not {_kind(defaults)}")
            return _Values()
        return self._values(defaults, "defaults", per_instance=False)

    def _entries(self, document: Mapping[str, Any], defaults: _Values) -> list[_Entry]:
        if "instances" not in document:
            self._problem("instances", "is required: a list of instances, each with a name")
            return []
        items = document["instances"]
        if not isinstance(items, list):
            self._problem(
                "instances", f"must be a list of instances (items starting with '- name:'), not {_kind(items)}"
            )
            return []
        if not items:
            self._problem("instances", "lists no instance; add at least one")
        entries: list[_Entry] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                self._problem(f"instance #{index}", f"must be a mapping of variables with a name, not {_kind(item)}")
                continue
            name = self._name(item, index)
            label = f"instance #{index}" if name is None else f"instance {name!r}"
            if name is not None and name in seen:
                label = f"instance {name!r} (#{index})"
                self._problem(label, f"name: {name!r} is already the name of instance #{seen[name]}")
            elif name is not None:
                seen[name] = index
            status = self._status(item, label)
            entry = _Entry(index, name, status, self._values(item, label, per_instance=True), label)
            entry.instance = self._instance(entry, defaults)
            entries.append(entry)
        return entries

    def _name(self, item: Mapping[str, Any], index: int) -> str | None:
        name = item.get("name")
        if name is None or name == "":
            self._problem(f"instance #{index}", "name: is required (lower-case letters, digits and underscores)")
            return None
        if not isinstance(name, str) or not _INSTANCE_NAME.fullmatch(name):
            shown = repr(name) if isinstance(name, str) else _kind(name)
            self._problem(
                f"instance #{index}",
                f"name: {shown} is not an instance name (lower-case letters, digits and underscores, e.g. wiki_dc)",
            )
            return None
        return name

    def _status(self, item: Mapping[str, Any], label: str) -> InstanceStatus | None:
        status = item.get("status")
        if status is None:
            return InstanceStatus.ACTIVE
        allowed = ", ".join(s.value for s in InstanceStatus)
        if isinstance(status, str) and status.strip().lower() in {s.value for s in InstanceStatus}:
            return InstanceStatus(status.strip().lower())
        shown = repr(status) if isinstance(status, str) else _kind(status)
        self._problem(label, f"status: {shown} is not one of {allowed}")
        return None

    def _values(self, mapping: Mapping[Any, Any], where: str, *, per_instance: bool) -> _Values:
        values = _Values()
        for raw_key, value in mapping.items():
            key = str(raw_key)
            base = key.removesuffix(ENV_SUFFIX) if key.endswith(ENV_SUFFIX) else None
            if key in ("name", "status"):
                if not per_instance:
                    self._problem(where, f"{key}: is set per instance, not in defaults")
            elif base in self._secrets:
                reference = self._reference(key, base, value, where)
                if reference is None:
                    values.broken.add(base)
                else:
                    values.bindings[base] = reference
            elif base in self._variables:
                values.broken.add(base)
                self._problem(where, f"{key}: {base} is not a secret; write its value directly ({base}: ...)")
            elif key in self._secrets:
                self._literal_secret(key, mapping, where, values)
            elif key in self._variables:
                if value is None or isinstance(value, str):
                    values.bindings[key] = value or ""
                else:
                    values.broken.add(key)
                    self._problem(
                        where, f"{key}: must be a single value (text, a number or true/false), not {_kind(value)}"
                    )
            elif key in PROCESS_VARIABLES:
                self._problem(where, f"{key}: is shared by every instance; set it in the code location's environment")
            elif "=" in key:
                self._problem(where, self._dotenv_line(key))
            else:
                candidates = (
                    {**self._candidates, "NAME": "name", "STATUS": "status"} if per_instance else self._candidates
                )
                self._problem(where, f"{key}: is not a known variable{_suggestion(key, candidates)}")
        return values

    def _reference(self, key: str, base: str, value: object, where: str) -> EnvRef | None:
        if value is None or value == "":
            self._problem(where, f"{key}: is empty; give the name of the environment variable that holds {base}")
            return None
        # Never echo the value: an operator may have pasted the secret itself here.
        if not isinstance(value, str) or not _ENVIRONMENT_NAME.fullmatch(value.strip()):
            self._problem(
                where,
                f"{key}: is not an environment variable name (upper-case letters, digits and underscores); "
                f"give the NAME of the variable that holds {base}, never its value",
            )
            return None
        return EnvRef(value.strip())

    def _literal_secret(self, key: str, mapping: Mapping[Any, Any], where: str, values: _Values) -> None:
        reference = f"{key}{ENV_SUFFIX}"
        if reference in mapping:
            self._problem(where, f"{key}: is set together with {reference}; remove {key}")
            return
        values.broken.add(key)
        what = "its header values are secrets" if key in HEADER_VARIABLES else "it is a secret"
        self._problem(
            where,
            f"{key}: is never written in the file because {what}; "
            f"write {reference}: <name of the environment variable that holds it>",
        )

    # -- one instance, checked as its runs will check it --------------------------------------------------
    def _instance(self, entry: _Entry, defaults: _Values) -> Instance | None:
        own = entry.values
        bindings = {**defaults.bindings, **own.bindings}
        for name in own.broken:
            bindings.pop(name, None)
        broken = own.broken | (defaults.broken - own.bindings.keys())
        from_defaults = {name for name in bindings if name not in own.bindings}
        status = entry.status or InstanceStatus.ACTIVE
        # A secret already reported as wrongly written still counts as given, so no rule asks for it again.
        given = {name for name, b in bindings.items() if isinstance(b, EnvRef)} | (broken & self._secrets)
        values = {name: b for name, b in bindings.items() if isinstance(b, str)}
        values |= {name: _HEADERS_AT_RUN_TIME if name in HEADER_VARIABLES else _AT_RUN_TIME for name in given}

        bad: dict[str, str] = {}
        location: InstanceLocationSettings | None = None
        # Only the variants in use need their references set: no Zitadel secret for cluster_local, say.
        if status is InstanceStatus.DELETED:
            unique, bad = _checked(unique_settings, values)
            needed = _UNIQUE_VARIABLES if unique is None else _aliases(type(unique))
        else:
            settings, bad = _checked(load_settings, values)
            location, bad_location = _checked(_location, values)
            bad = {**bad, **bad_location}
            entry.settings = settings
            used = (
                frozenset(bindings) if settings is None else _aliases(type(settings.confluence), type(settings.unique))
            )
            needed = used if status is InstanceStatus.ACTIVE else frozenset()

        for name, reason in bad.items():
            if name in broken or isinstance(bindings.get(name), EnvRef):
                continue  # already reported, or a value only the run will see
            self._report(entry, name, reason, inherited=name in from_defaults)
        for name, binding in sorted(bindings.items()):
            if isinstance(binding, EnvRef) and name in needed and binding.name not in self.environ:
                reason = f"{binding.name} is not set in the environment"
                self._report(entry, name, reason, inherited=name in from_defaults)

        if entry.name is None or entry.status is None:
            return None
        run_time = run_time_variables()
        kept = {name: binding for name, binding in sorted(bindings.items()) if name in run_time}
        return Instance(entry.name, status, MappingProxyType(kept), location)

    def _shared_targets(self, entries: Iterable[_Entry]) -> None:
        """Two active instances must not sync one Confluence into one Unique.

        Their space partial keys (`<spaceId>_<spaceKey>`) would be the same, and the ownership mark (the
        Confluence URL) too, so neither could tell the other's content from its own: each file-diff would report
        the other's pages as deleted, and each run would delete them, whatever labels or scopes each uses.
        Inactive and deleted instances never sync, so they may share a target (moving content to a new name).
        """
        first: dict[tuple[str, str], _Entry] = {}
        for entry in entries:
            if entry.status is not InstanceStatus.ACTIVE or entry.settings is None:
                continue
            confluence, unique = entry.settings.confluence.base_url, entry.settings.unique.ingestion_base
            earlier = first.setdefault((_comparable(confluence), _comparable(unique)), entry)
            if earlier is not entry:
                self._problem(
                    entry.label,
                    f"CONFLUENCE_URL: {confluence} is already synced into the same Unique ({unique}) by "
                    f"{earlier.label}; their runs would delete each other's pages. Use one instance per "
                    "Confluence and Unique (or set one inactive)",
                )

    def ignored_variables(self, instances: Iterable[Instance]) -> tuple[str, ...]:
        referenced = {b.name for i in instances for b in i.bindings.values() if isinstance(b, EnvRef)}
        return tuple(
            sorted(
                name
                for name in instance_variables()
                if (self.environ.get(name) or "").strip() and name not in referenced
            )
        )


def _comparable(url: str) -> str:
    """A URL as a key: scheme and host are case-insensitive, a trailing slash means nothing."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
