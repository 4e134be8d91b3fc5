"""Request counts per step, from the run's resources into each step's output metadata, and back out of the run.

Each step reports what it asked of each system as output metadata (visible per step in the UI). The summary
reads those entries from the run's event log, so the totals are exact whatever executor ran the steps: with
the in-process executor every step shares the run's clients; with the multiprocess executor each step
process has clients of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import dagster as dg
from dagster import DagsterEventType

REQUESTS_ENTRY = "requests_by_route"
_PAGE = 1000


class CountsRequests(Protocol):
    """A client resource: requests made so far in this run, per route."""

    def request_counts(self) -> dict[str, int]: ...


class StepRequests:
    """What one step asks of Confluence and Unique: the resources' counters at the end minus at the start."""

    def __init__(self, **resources: CountsRequests) -> None:
        self._resources = resources
        self._start = self._snapshot()

    def _snapshot(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for system, resource in self._resources.items():
            for route, count in resource.request_counts().items():
                counts[f"{system}:{route}"] += count
        return counts

    def delta(self) -> dict[str, int]:
        now = self._snapshot()
        now.subtract(self._start)
        return {route: count for route, count in sorted(now.items()) if count}

    def metadata(self) -> dict[str, dg.RawMetadataValue]:
        delta = self.delta()
        return {
            "confluence_requests": sum(v for k, v in delta.items() if k.startswith("confluence:")),
            "unique_requests": sum(v for k, v in delta.items() if k.startswith("unique:")),
            REQUESTS_ENTRY: dg.MetadataValue.json(delta),
        }


def run_requests_by_step(context: dg.OpExecutionContext) -> dict[str, dict[str, int]]:
    """Every finished step's request counts in this run, by step key."""
    by_step: dict[str, dict[str, int]] = {}
    cursor: str | None = None
    while True:
        result = context.instance.get_records_for_run(
            run_id=context.run_id, of_type=DagsterEventType.STEP_OUTPUT, cursor=cursor, limit=_PAGE
        )
        for record in result.records:
            event = record.event_log_entry.dagster_event
            if event is None or event.step_key is None or event.step_output_data is None:
                continue
            entry = event.step_output_data.metadata.get(REQUESTS_ENTRY)
            value = getattr(entry, "value", None)
            if isinstance(value, Mapping):
                counts = by_step.setdefault(event.step_key, {})
                for route, count in value.items():
                    counts[str(route)] = counts.get(str(route), 0) + int(count)
        if not result.has_more:
            return by_step
        cursor = result.cursor


def mapping_key_of(step_key: str) -> str | None:
    """`diff_space[ENG]` → `ENG`; None for a step outside a fan-out."""
    _, bracket, rest = step_key.partition("[")
    return rest.rstrip("]") if bracket else None
