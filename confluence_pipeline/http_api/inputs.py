"""What callers may send (ids, instance names, flags, the reset body), checked before anything reaches Dagster."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # Unique ids look like cont_… and scope_…
INSTANCE_PATTERN = re.compile(r"[a-z0-9_]{1,64}")
RUN_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PARTIAL_KEY_MAX_LENGTH = 1024
BODY_MAX_BYTES = 16 * 1024
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator characters: none belongs
# in a key prefix, and several can disguise what a log line or the UI shows.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class InvalidInput(ValueError):
    """The caller sent something unusable; the message names the part and the problem (answered as 400)."""


def shown(value: str, limit: int = 80) -> str:
    """A caller's value for an error message: quoted and escaped (no control characters reach a log), clipped."""
    clipped = value if len(value) <= limit else value[:limit] + "…"
    return repr(clipped)


def identifier(what: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"{what} {shown(value)} is not valid: use 1 to 128 letters, digits, '_' or '-' (like cont_… or scope_…)"
        )
    return value


def run_id(value: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(value):
        raise InvalidInput(f"run id {shown(value)} is not a Dagster run id (a UUID like 3c4c5d6e-…)")
    return value.lower()


def query_parameters(items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The query string as a dict; unknown or repeated parameters are refused.

    A misspelt `dry_run` must not silently turn a dry run into a real delete.
    """
    known = set(allowed)
    params: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidInput(f"unknown query parameter {shown(name)} (accepted here: {accepted})")
        if name in params:
            raise InvalidInput(f"query parameter {name!r} is given more than once")
        params[name] = value
    return params


def instance_name(value: str | None) -> str | None:
    """The instance a request addresses; None is the default instance."""
    if value is None:
        return None
    if not INSTANCE_PATTERN.fullmatch(value):
        raise InvalidInput(f"instance {shown(value)} is not valid: use 1 to 64 lower-case letters, digits or '_'")
    return value


def flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise InvalidInput(f"query parameter {name!r} must be true or false, not {shown(value)}")


class ResetBody(BaseModel):
    """The optional JSON body of `DELETE /reset/:scopeId`, exactly as the original connector took it."""

    # No populate_by_name: a snake_case "partial_key" must be refused, not silently accepted.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    partial_key: str | None = Field(default=None, alias="partialKey", max_length=PARTIAL_KEY_MAX_LENGTH)

    @field_validator("partial_key")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for position, char in enumerate(value):
            if unicodedata.category(char) in FORBIDDEN_CATEGORIES:
                raise ValueError(f"contains the control character U+{ord(char):04X} at position {position}")
        return value or None  # an empty prefix matches everything, exactly like no prefix


def reset_body(body: bytes) -> ResetBody:
    """Parse the reset body whatever its Content-Type: no body (or only white space) means no partial key.

    `curl -X DELETE -d '{"partialKey": …}'` sends form-encoded as its Content-Type; ignoring such a body would
    turn a delete of one space into a wipe of the whole scope.
    """
    if not body.strip():
        return ResetBody()
    try:
        payload = json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except UnicodeDecodeError:
        raise InvalidInput('the body is not UTF-8 text; send JSON like {"partialKey": "<key prefix>"}') from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the body is not valid JSON ({exc.msg} at position {exc.pos}); "
            'send {"partialKey": "<key prefix>"} or no body'
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInput('the body must be a JSON object like {"partialKey": "<key prefix>"}')
    try:
        return ResetBody.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(_describe(exc)) from None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        # Which of two partialKeys wins differs between JSON parsers; refuse rather than guess.
        raise InvalidInput(f"the body repeats the field(s) {', '.join(shown(k) for k in repeated)}")
    return dict(pairs)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field {shown(field)} in the body (only partialKey is accepted)")
        elif error["type"] == "string_type":
            problems.append(f"{field} must be a string")
        elif error["type"] == "value_error":
            problems.append(f"{field} {str(error['msg']).removeprefix('Value error, ')}")
        else:
            problems.append(f"{field}: {error['msg']}")
    return "; ".join(problems)
