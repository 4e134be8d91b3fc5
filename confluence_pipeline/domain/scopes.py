"""Scope paths for per-space scopes, from `UNIQUE_SCOPE_PATH_TEMPLATE`."""

from __future__ import annotations

from string import Formatter

from confluence_pipeline.domain.models import SpaceRef

TEMPLATE_VARIABLE = "UNIQUE_SCOPE_PATH_TEMPLATE"
PLACEHOLDERS = ("space_key", "space_name", "space_id")
_IDENTIFYING = ("space_key", "space_id")


def _placeholders(template: str) -> list[str]:
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{TEMPLATE_VARIABLE} {template!r} has unbalanced braces: {exc}") from None
    fields: list[str] = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            raise ValueError(
                f"{TEMPLATE_VARIABLE} {template!r} has an unknown placeholder {{{field}}}; allowed: {allowed}"
            )
        fields.append(field)
    return fields


def _check_path(path: str, what: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"{what} must start with '/'")
    if path.endswith("/"):
        raise ValueError(f"{what} must not end with '/'")
    if "" in path[1:].split("/"):
        raise ValueError(f"{what} must not contain empty path segments")


def validate_scope_template(template: str) -> None:
    """Raise ValueError naming UNIQUE_SCOPE_PATH_TEMPLATE when the template cannot yield one scope per space."""
    if not isinstance(template, str):
        raise ValueError(f"{TEMPLATE_VARIABLE} must be a string, got {type(template).__name__}")
    fields = _placeholders(template)
    if not any(field in _IDENTIFYING for field in fields):
        raise ValueError(
            f"{TEMPLATE_VARIABLE} {template!r} must contain {{space_key}} or {{space_id}}, "
            "otherwise different spaces share one scope"
        )
    sample = template.format(**dict.fromkeys(PLACEHOLDERS, "x"))
    _check_path(sample, f"{TEMPLATE_VARIABLE} {template!r}")


def scope_path(template: str, space: SpaceRef) -> str:
    """The scope path of one space; a `/` inside a space value becomes `-` so each space is one leaf."""
    validate_scope_template(template)
    values = {"space_key": space.key, "space_name": space.name, "space_id": space.id}
    path = template.format(**{name: value.replace("/", "-") for name, value in values.items()})
    _check_path(path, f"scope path {path!r} for space {space.key!r} (from {TEMPLATE_VARIABLE})")
    return path
