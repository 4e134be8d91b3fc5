"""`python -m confluence_pipeline.http_api` as operators start it: refusals at start, the unauthenticated mode."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from confluence_pipeline_tests.http_api.conftest import REPO_ROOT, Process, answers, clean_env, free_port, wait_until

SERVICE = [sys.executable, "-m", "confluence_pipeline.http_api"]

pytestmark = pytest.mark.timeout(120)


def test_refuses_to_start_without_a_token_naming_every_bad_variable() -> None:
    short_token = "tiny-secret"
    refused = subprocess.run(
        SERVICE,
        env=clean_env(PORT="eighty", DAGSTER_WEBSERVER_URL="localhost:3000"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    too_short = subprocess.run(
        SERVICE,
        env=clean_env(HTTP_API_TOKEN=short_token),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 2
    assert "refuses to start" in refused.stderr and "3 bad variables" in refused.stderr
    for name in ("HTTP_API_TOKEN", "HTTP_API_ALLOW_UNAUTHENTICATED=true", "PORT", "DAGSTER_WEBSERVER_URL"):
        assert name in refused.stderr
    assert too_short.returncode == 2 and "HTTP_API_TOKEN" in too_short.stderr
    assert short_token not in too_short.stdout + too_short.stderr


def test_unauthenticated_when_explicitly_allowed_warns_and_reports_an_unreachable_webserver(tmp_path: Path) -> None:
    port = free_port()
    dead_webserver = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    service = Process.start(
        "http_api",
        SERVICE,
        clean_env(
            PORT=str(port),
            HTTP_API_HOST="127.0.0.1",
            HTTP_API_ALLOW_UNAUTHENTICATED="true",
            DAGSTER_WEBSERVER_URL=dead_webserver,
        ),
        tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/health", 503), "the service to answer", [service], 60)
        health = httpx.get(f"{url}/health", timeout=10)
        sync = httpx.get(f"{url}/sync", timeout=10)  # no token asked for; Dagster is what is missing
    finally:
        service.stop()

    assert health.json()["status"] == "unavailable"
    assert f"webserver at {dead_webserver} cannot be reached" in health.json()["error"]
    assert sync.status_code == 503
    output = service.output()
    assert "WARNING" in output and "WITHOUT authentication" in output
    # A TERM is a clean stop; uvicorn re-raises the signal after shutting down, so the exit status may show it.
    assert service.popen.returncode in (0, -signal.SIGTERM) and "Finished server process" in output
