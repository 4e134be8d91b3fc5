"""The code location: every instance's jobs, schedule, sensor and asset, and the shared alerts, wired in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import dagster as dg

from confluence_pipeline.config.instances import Instance, InstancesConfig, InstanceStatus, load_instances
from confluence_pipeline.config.secrets import Scrubber
from confluence_pipeline.config.settings import scrubber_for_variables
from confluence_pipeline.freshness import Watched, build_freshness_sensor, freshness_checks, instance_asset
from confluence_pipeline.jobs.delete_content import build_delete_content_job
from confluence_pipeline.jobs.reset import build_reset_job
from confluence_pipeline.jobs.sync import build_sync_job
from confluence_pipeline.resources import resources_for
from confluence_pipeline.schedules import build_sync_schedule
from confluence_pipeline.sensors import TIMEZONE_VARIABLE, build_change_sensor, build_failure_sensor

log = logging.getLogger(__name__)


def build_definitions(environ: Mapping[str, str]) -> dg.Definitions:
    """Everything `environ` configures: the instances of CONFLUENCE_INSTANCES_FILE, or the instance `default`.

    An active instance gets its sync, reset and delete jobs, its schedule and change sensor, an asset and its
    freshness check; an inactive one only its asset (no runs); a deleted one only its reset job.
    """
    # Read now: any bad value of any instance fails loading with one line per problem (file, instance, variable).
    config = load_instances(environ)
    if config.ignored_variables:
        log.warning(
            "%s is set, so these variables of the environment are not read: %s",
            config.file,
            ", ".join(config.ignored_variables),
        )
    jobs: list[dg.JobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    syncs: list[dg.JobDefinition] = []
    for instance in config.instances:
        if instance.status is InstanceStatus.DELETED:
            jobs.append(build_reset_job(instance))
            continue
        if instance.status is not InstanceStatus.ACTIVE or instance.location is None:
            continue
        sync = build_sync_job(instance)
        syncs.append(sync)
        jobs += [sync, build_reset_job(instance), build_delete_content_job(instance)]
        schedules.append(build_sync_schedule(instance.location, sync, name=instance.sync_schedule_name))
        sensors.append(_change_sensor(instance, sync))
    watched = [item for item in map(Watched.of, config.instances) if item is not None]
    if syncs:
        sensors.append(build_failure_sensor(config.alerts, syncs, scrubber_for_instances(config, environ)))
    if watched:
        sensors.append(build_freshness_sensor(watched, config.alerts))
    return dg.Definitions(
        assets=[instance_asset(i) for i in config.instances if i.status is not InstanceStatus.DELETED],
        asset_checks=freshness_checks(watched),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
    )


def _change_sensor(instance: Instance, job: dg.JobDefinition) -> dg.SensorDefinition:
    assert instance.location is not None
    # The sensor reads the Confluence server's zone as if from the environment: the instance's own value.
    zone = {TIMEZONE_VARIABLE: instance.location.confluence_timezone}
    return build_change_sensor(
        instance.location, job, zone, resources=resources_for(instance), name=instance.change_sensor_name
    )


def scrubber_for_instances(config: InstancesConfig, environ: Mapping[str, str]) -> Scrubber:
    """One scrubber for the secrets of every instance: the failure alert covers them all."""
    scrubber = Scrubber()
    for instance in config.instances:
        scrubber.extend(scrubber_for_variables(instance.variables(environ)))
    return scrubber


defs = build_definitions(os.environ)
