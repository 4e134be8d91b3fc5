"""Variables read when the code location loads: schedule, sensors, freshness, alert webhook, UI address.

An invalid value here must stop the code location from loading with a message naming the variable, because
Dagster itself would fail on a bad cron with a bare error, or silently use a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import BeforeValidator, Field, TypeAdapter, model_validator

from confluence_pipeline.config.secrets import Secret
from confluence_pipeline.config.settings import (
    ConfigurationError,
    LoadTimeConfigurationError,
    Section,
    Url,
    validate_variables,
    whole_number,
)

DEFAULT_CRON = "0 1 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_SENSOR_INTERVAL_SECONDS = 300
DEFAULT_FRESHNESS_HOURS = 36.0
MIN_SENSOR_INTERVAL_SECONDS = 30


def _timezone(value: object) -> str:
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Zurich')") from None
    return name


def _cron(value: object) -> str:
    cron = " ".join(str(value).split())
    try:  # Dagster's own check, through its public API, so we accept exactly what a schedule accepts
        dg.ScheduleDefinition(name="cron_check", job_name="cron_check", cron_schedule=cron)
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(
            f"{cron!r} is not a valid 5-field cron expression (e.g. '0 1 * * *' for 01:00 daily); "
            "leave it empty to keep the schedule stopped"
        ) from None
    return cron


def _positive_hours(value: object) -> float:
    text = str(value).strip()
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if isinstance(value, bool) or not math.isfinite(hours) or hours <= 0:
        raise ValueError(f"{text!r} is not a positive number of hours (e.g. 36 or 1.5)")
    return hours


TimeZoneName = Annotated[str, BeforeValidator(_timezone)]
Cron = Annotated[str, BeforeValidator(_cron)]
SensorInterval = Annotated[int, BeforeValidator(whole_number(MIN_SENSOR_INTERVAL_SECONDS))]
FreshnessHours = Annotated[float, BeforeValidator(_positive_hours)]


class ScheduleSettings(Section):
    """One instance's sync schedule and change-sensor interval."""

    cron_schedule: Cron | None = Field(None, alias="CRON_SCHEDULE")
    cron_timezone: TimeZoneName = Field(DEFAULT_TIMEZONE, alias="CRON_TIMEZONE")
    change_sensor_interval_seconds: SensorInterval = Field(
        DEFAULT_SENSOR_INTERVAL_SECONDS, alias="CHANGE_SENSOR_INTERVAL_SECONDS"
    )

    @property
    def schedule_running(self) -> bool:
        """A schedule runs by default only when CRON_SCHEDULE is set."""
        return self.cron_schedule is not None

    @property
    def cron(self) -> str:
        return self.cron_schedule or DEFAULT_CRON


class AlertSettings(Section):
    """Process-wide: where failure alerts of every instance go, and the UI their links point at."""

    alert_webhook_url: Secret | None = Field(None, alias="ALERT_WEBHOOK_URL", repr=False)
    dagster_webserver_url: Url | None = Field(None, alias="DAGSTER_WEBSERVER_URL")

    @model_validator(mode="after")
    def _webhook_is_a_url(self) -> Self:
        if self.alert_webhook_url is not None:
            try:
                TypeAdapter(Url).validate_python(self.alert_webhook_url.get_secret_value())
            except ValueError:  # the URL often carries a token in its path: never echo it
                raise ValueError(
                    "ALERT_WEBHOOK_URL: is not a URL with an http:// or https:// scheme and a host"
                ) from None
        return self


class LocationSettings(ScheduleSettings, AlertSettings):
    """What the schedule, the sensors and the failure alerts of one code location are built from."""


class InstanceLocationSettings(ScheduleSettings):
    """What one instance's schedule and sensors are built from when the code location loads."""

    freshness_hours: FreshnessHours = Field(DEFAULT_FRESHNESS_HOURS, alias="FRESHNESS_HOURS")
    confluence_timezone: TimeZoneName = Field(DEFAULT_TIMEZONE, alias="CONFLUENCE_TIMEZONE")


def load_location_settings(variables: Mapping[str, Any]) -> LocationSettings:
    """Validate the load-time variables; raise LoadTimeConfigurationError naming every bad one."""
    try:
        return validate_variables(TypeAdapter(LocationSettings), variables)
    except ConfigurationError as exc:
        lines = "\n  ".join(f"{name}: {reason}" for name, reason in exc.problems.items())
        raise LoadTimeConfigurationError(f"Invalid code location configuration:\n  {lines}") from None
