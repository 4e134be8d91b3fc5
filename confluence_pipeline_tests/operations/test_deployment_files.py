"""Deployment files: the Helm values and the image agree with dagster.yaml; the image's entry point really starts."""

from __future__ import annotations

import fnmatch
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
import yaml

from confluence_pipeline_tests.support import REPO_ROOT

ENTRYPOINT = REPO_ROOT / "deploy" / "docker" / "entrypoint.sh"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_helm_values_carry_the_same_writer_limit_and_serve_the_module() -> None:
    values = yaml.safe_load((REPO_ROOT / "deploy" / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert values["concurrency"]["enabled"] is True
    assert (
        values["concurrency"]["runs"]["tagConcurrencyLimits"]
        == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "confluence_pipeline.definitions"]
    assert deployment["envSecrets"] and all("name" in s for s in deployment["envSecrets"])
    assert deployment["podSecurityContext"]["runAsUser"] == 10001  # the image's non-root user


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignored = [
        p.strip() for p in (REPO_ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    instructions = dockerfile_instructions()
    copied = [src for op, args in instructions if op == "COPY" for src in shlex.split(args)[:-1]]
    assert copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    keywords = dict(instructions)
    assert keywords["FROM"] == "python:3.11-slim"
    assert keywords["USER"] != "root"
    assert "HEALTHCHECK" in keywords and keywords["CMD"] == '["grpc"]'


def test_entrypoint_is_valid_posix_shell() -> None:
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


@pytest.mark.timeout(120)
def test_all_in_one_mode_starts_webserver_and_daemon_and_reports_healthy(tmp_path: Path) -> None:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "dagster_home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "UNIQUE_", "CRON_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "APP_DIR": str(REPO_ROOT),
        "DAGSTER_HOME": str(home),
        "PORT": str(port),
        "TMPDIR": str(tmp_path),
    }
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "all-in-one"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        server_info = f"http://127.0.0.1:{port}/server_info"
        wait_for(lambda: _answers(server_info), process, "the webserver to answer")
        assert subprocess.run(["sh", str(ENTRYPOINT), "healthcheck"], env=env, check=False).returncode == 0
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: "QUEUED_RUN_COORDINATOR" in instance.get_daemon_heartbeats(), process, "daemon heartbeats")
        assert (home / "dagster.yaml").read_text() == (REPO_ROOT / "dagster.yaml").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0  # a TERM is a clean stop
    assert (
        subprocess.run(["sh", str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, check=False).returncode
        != 0
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, f"the entry point exited ({process.returncode}) while waiting for {what}"
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
