"""Alert reports (a failed sync, read from its event log, or a stale instance) and their delivery to a webhook."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx

from confluence_pipeline.clients.proxies import ProxyRules
from confluence_pipeline.clients.tls import build_ssl_context
from confluence_pipeline.config.secrets import Scrubber
from confluence_pipeline.jobs.writers import INSTANCE_TAG

WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT_SECONDS = 10.0
MAX_FAILURES = 10
MAX_DESCRIPTION_CHARS = 1500
MAX_PAGE_IDS = 50
SUMMARY_LINES = 6

# Step (op) name → the sync stage an operator recognises.
STAGES = {
    "discover_labelled_pages": "discover",
    "expand_descendants": "expand",
    "plan_spaces": "plan",
    "diff_space": "diff",
    "check_guards": "guard",
    "ingest_and_delete": "write",
    "summarize_sync": "report",
}


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (the URL is never part of the message: it often holds a token)."""


@dataclass(frozen=True)
class StepFailureReport:
    step_key: str
    stage: str
    description: str
    space: str | None = None
    guard: str | None = None
    spaces: tuple[str, ...] = ()
    failed_pages: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_key,
            "stage": self.stage,
            "space": self.space,
            "guard": self.guard,
            "spaces": list(self.spaces),
            "failed_pages": list(self.failed_pages),
            "description": self.description,
        }


@dataclass(frozen=True)
class FailureReport:
    job_name: str
    run_id: str
    run_message: str
    trigger: str | None = None
    run_url: str | None = None
    steps: tuple[StepFailureReport, ...] = ()
    more_steps: int = 0
    scrubber: Scrubber = field(default_factory=Scrubber, repr=False)
    instance: str | None = None

    def summary(self) -> str:
        """A few lines for the log and for chat webhooks."""
        about = [f"instance {self.instance}"] if self.instance else []
        about += [f"triggered by {self.trigger}"] if self.trigger else []
        head = f"{self.job_name} run {self.run_id} failed" + (f" ({', '.join(about)})" if about else "")
        lines = [head]
        if not self.steps:
            lines.append(f"- {_head(self.run_message)}")
        for step in self.steps:
            where = step.stage + (f" of space {step.space}" if step.space else "")
            details = []
            if step.guard:
                details.append(f"guard {step.guard}")
            if step.spaces:
                details.append(f"spaces {', '.join(step.spaces)}")
            if step.failed_pages:
                details.append(
                    f"pages {', '.join(step.failed_pages[:10])}" + (" …" if len(step.failed_pages) > 10 else "")
                )
            extra = f" [{'; '.join(details)}]" if details else ""
            lines.append(f"- {where} ({step.step_key}){extra}: {_head(step.description)}")
        if self.more_steps:
            lines.append(f"- … and {self.more_steps} more failed step(s)")
        if self.run_url:
            lines.append(self.run_url)
        return self.scrubber.scrub("\n".join(lines))

    def payload(self) -> dict[str, Any]:
        """The webhook body: `text` for chat tools, structured fields for everything else. No secrets."""
        body = {
            "text": self.summary(),
            "job": self.job_name,
            "instance": self.instance,
            "run_id": self.run_id,
            "status": "FAILURE",
            "trigger": self.trigger,
            "run_url": self.run_url,
            "message": self.run_message,
            "failures": [s.as_dict() for s in self.steps],
            "more_failures": self.more_steps,
        }
        # The JSON-escaped forms too, so payload() cannot leak a secret holding quotes or backslashes.
        return json.loads(self.scrubber.scrub_json_text(json.dumps(body)))


def run_url(webserver_url: str | None, run_id: str) -> str | None:
    """The run's page in the Dagster UI, or None when DAGSTER_WEBSERVER_URL is not set."""
    base = (webserver_url or "").rstrip("/")
    return f"{base}/runs/{run_id}" if base else None


def build_failure_report(
    run: dg.DagsterRun,
    run_message: str,
    step_failures: Sequence[dg.DagsterEvent],
    *,
    scrubber: Scrubber,
    webserver_url: str | None = None,
) -> FailureReport:
    """Summarise a failed run from its step-failure events: stage, space, guard, failing pages, descriptions."""
    steps = [_step_report(event) for event in step_failures]
    return FailureReport(
        job_name=run.job_name,
        run_id=run.run_id,
        run_message=_clip(run_message),
        trigger=run.tags.get("confluence_pipeline/trigger")
        or run.tags.get("dagster/schedule_name")
        or run.tags.get("dagster/sensor_name"),
        run_url=run_url(webserver_url, run.run_id),
        steps=tuple(steps[:MAX_FAILURES]),
        more_steps=max(0, len(steps) - MAX_FAILURES),
        scrubber=scrubber,
        instance=run.tags.get(INSTANCE_TAG),
    )


@dataclass(frozen=True)
class StaleReport:
    """An instance without a successful sync for longer than its FRESHNESS_HOURS; shaped like a failure report."""

    instance: str
    job_name: str
    freshness_hours: float
    checked_at: float
    last_success: float | None = None
    """When the last successful sync ended (None: none since the instance is watched)."""
    run_id: str | None = None
    run_url: str | None = None
    trigger: str | None = None

    def message(self) -> str:
        hours = f"{self.freshness_hours:g}"
        if self.last_success is None:
            return f"no successful sync within FRESHNESS_HOURS ({hours} h) of watching it"
        age = _hours(self.checked_at - self.last_success)
        ended = utc_text(self.last_success)
        return f"no successful sync for {age} (FRESHNESS_HOURS {hours} h); the last one ended {ended}"

    def summary(self) -> str:
        lines = [f"{self.job_name}: instance {self.instance} is stale", f"- {self.message()}"]
        if self.run_url:
            lines.append(self.run_url)
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The webhook body, with the keys of a failure report (no run failed: `run_id` is the last good one)."""
        return {
            "text": self.summary(),
            "job": self.job_name,
            "instance": self.instance,
            "run_id": self.run_id,
            "status": "STALE",
            "trigger": self.trigger,
            "run_url": self.run_url,
            "message": self.message(),
            "last_success": None if self.last_success is None else utc_text(self.last_success),
            "failures": [],
            "more_failures": 0,
        }


def post_alert(url: str, payload: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> int:
    """POST the payload as JSON (proxies and CA bundles as for every other call); returns the HTTP status."""
    env = os.environ if environ is None else environ
    proxies = ProxyRules.from_environ(env)
    try:
        with httpx.Client(
            transport=proxies.transport(verify=build_ssl_context(env)),
            trust_env=False,  # ProxyRules decides; httpx's own NO_PROXY reading ignores forms such as *.mydomain
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=True,
        ) as client:
            response = client.post(url, json=dict(payload))
    except httpx.HTTPError as exc:
        raise AlertDeliveryError(
            f"{WEBHOOK_VARIABLE}: the alert could not be delivered ({type(exc).__name__})"
        ) from None
    if response.status_code >= 300:
        raise AlertDeliveryError(f"{WEBHOOK_VARIABLE}: the webhook answered HTTP {response.status_code}")
    return response.status_code


def _step_report(event: dg.DagsterEvent) -> StepFailureReport:
    step_key = event.step_key or "?"
    op_name, _, mapping_key = step_key.partition("[")
    data = event.step_failure_data
    description = ""
    metadata: Mapping[str, Any] = {}
    if data is not None:
        if data.user_failure_data is not None:
            description = data.user_failure_data.description or ""
            metadata = {k: getattr(v, "value", v) for k, v in (data.user_failure_data.metadata or {}).items()}
        if not description and data.error is not None:
            description = data.error.message.strip()
            if data.error.cause is not None:
                description += f" (caused by {data.error.cause.message.strip()})"
    return StepFailureReport(
        step_key=step_key,
        stage=STAGES.get(op_name, op_name),
        space=mapping_key.rstrip("]") or None,
        description=_clip(description),
        guard=_text(metadata.get("guard")),
        spaces=_listed(metadata.get("guarded_spaces")),
        failed_pages=_listed(metadata.get("failed_pages"))[:MAX_PAGE_IDS],
    )


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"


def utc_text(timestamp: float) -> str:
    """A Unix timestamp as UTC ISO-8601 to the second, as alerts show it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _listed(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    return ()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 1] + "…"


def _head(text: str, max_lines: int = SUMMARY_LINES) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no details"
    shown = "\n    ".join(lines[:max_lines])
    return shown + (f"\n    … {len(lines) - max_lines} more line(s)" if len(lines) > max_lines else "")
