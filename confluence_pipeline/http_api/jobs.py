"""The Dagster jobs behind the endpoints: their names per instance, their run config, and which step reports results."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

DEFAULT_INSTANCE = "default"
INSTANCE_SEPARATOR = "__"  # `confluence_sync__<instance>`, as the code location names a named instance's jobs
TRIGGER_TAG = "confluence_pipeline/trigger"  # read by the failure sensor's "triggered by …"
TRIGGER = "http_api"
CLIENT_TAG = "confluence_pipeline/http-api-client"  # who asked, visible on the run in the UI

IN_PROGRESS_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
FINISHED_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class JobKind(enum.Enum):
    """The three jobs the endpoints launch; the value is the default instance's job name."""

    SYNC = "confluence_sync"
    RESET = "confluence_reset"
    DELETE_CONTENT = "confluence_delete_content"


@dataclass(frozen=True)
class ResultStep:
    """The step whose output (or failure) metadata holds a run's result, and the fields callers get from it."""

    step_key: str
    fields: tuple[str, ...]


RESULT_STEPS: dict[JobKind, ResultStep] = {
    JobKind.SYNC: ResultStep(
        "summarize_sync",
        (
            "total_discovered",
            "total_new",
            "total_updated",
            "total_unchanged",
            "total_deleted",
            "total_failed",
            "total_skipped",
        ),
    ),
    JobKind.RESET: ResultStep("reset_scope", ("dry_run", "matched", "deleted", "unconfirmed")),
    JobKind.DELETE_CONTENT: ResultStep(
        "delete_content_items", ("dry_run", "matched", "deleted", "unconfirmed", "not_found")
    ),
}
DRY_RUN_FIELDS = ("matched", "keys", "keys_truncated")  # what a reset dry run reports to the caller


def job_name(kind: JobKind, instance: str | None) -> str:
    """`confluence_sync` for the default instance (None or "default"), `confluence_sync__<instance>` otherwise."""
    if instance is None or instance == DEFAULT_INSTANCE:
        return kind.value
    return f"{kind.value}{INSTANCE_SEPARATOR}{instance}"


def kind_of(name: str) -> JobKind | None:
    """Which of our jobs `name` is (any instance), or None for a job this service does not serve."""
    for kind in JobKind:
        if name == kind.value or (name.startswith(kind.value + INSTANCE_SEPARATOR) and len(name) > len(kind.value) + 2):
            return kind
    return None


def delete_content_config(content_id: str, *, dry_run: bool) -> dict[str, Any]:
    """Run config of `confluence_delete_content` (a ConfigMapping: the flat dict is the whole run config)."""
    config: dict[str, Any] = {"content_ids": [content_id]}
    if dry_run:
        config["dry_run"] = True
    return config


def reset_config(scope_id: str, partial_key: str | None, *, dry_run: bool) -> dict[str, Any]:
    """Run config of `confluence_reset`; no partial key means the whole scope, as in the original connector."""
    config: dict[str, Any] = {"scope_id": scope_id}
    if partial_key:
        config["partial_key"] = partial_key
    if dry_run:
        config["dry_run"] = True
    return config
