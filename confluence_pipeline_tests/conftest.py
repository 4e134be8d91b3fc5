"""Fixtures shared by every test directory: the emulators with the connector's environment, instances, a webhook."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from confluence_pipeline_tests.support import REPO_ROOT, Sandbox, WebhookReceiver, make_sandbox


@pytest.fixture
def onprem(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox("ONPREM", monkeypatch)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox("CLOUD", monkeypatch)


@pytest.fixture(params=["ONPREM", "CLOUD"])
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox(request.param, monkeypatch)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent instance in a temp dir (schedule and sensor contexts need an instance reference)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """A persistent instance with the shipped dagster.yaml: runs, event logs and compute logs are files here."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield dagster_home, instance


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A webhook receiver for alerts, on 127.0.0.1."""
    with WebhookReceiver() as receiver:
        yield receiver  # type: ignore[misc]
