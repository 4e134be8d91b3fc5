"""The asset each instance's syncs observe (`unique/confluence/<instance>`) and what one observation carries."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import dagster as dg

from confluence_pipeline.sync.reports import RequestTotals, SpaceReport, SyncTotals

ASSET_PREFIX = ("unique", "confluence")
LAST_UPDATED_KEY = "dagster/last_updated_timestamp"
"""Dagster's freshness checks read an observation's time from this entry; without it they ignore the observation."""
PER_SPACE_KEY = "per_space"


def instance_asset_key(instance_name: str) -> dg.AssetKey:
    return dg.AssetKey([*ASSET_PREFIX, instance_name])


def sync_observation(
    instance_name: str,
    totals: SyncTotals,
    requests: RequestTotals,
    per_space: Sequence[Mapping[str, object]],
    *,
    now: float | None = None,
) -> dg.AssetObservation:
    """One successful sync of an instance: the totals, every space's counts and requests, and when it ended."""
    return dg.AssetObservation(
        asset_key=instance_asset_key(instance_name),
        metadata={
            LAST_UPDATED_KEY: dg.MetadataValue.timestamp(time.time() if now is None else now),
            **{f"total_{name}": count for name, count in totals.as_dict().items()},
            "spaces": totals.spaces,
            "confluence_requests": requests.confluence_requests,
            "unique_requests": requests.unique_requests,
            PER_SPACE_KEY: dg.MetadataValue.json([dict(row) for row in per_space]),
        },
    )


def space_row(report: SpaceReport, requests: RequestTotals) -> dict[str, object]:
    """One space in an observation: its key and id, its counts and the requests its own steps made."""
    return {
        "space_key": report.space_key,
        "space_id": report.space_id,
        **report.metrics(),
        "confluence_requests": requests.confluence_requests,
        "unique_requests": requests.unique_requests,
    }
