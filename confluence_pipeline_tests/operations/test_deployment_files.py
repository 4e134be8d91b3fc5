"""Deployment files: the Helm values and the image agree with dagster.yaml; the image's entry point really starts."""

from __future__ import annotations

import fnmatch
import json
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

from confluence_pipeline.jobs.writers import WRITER_TAG
from confluence_pipeline_tests.support import REPO_ROOT

ENTRYPOINT = REPO_ROOT / "deploy" / "docker" / "entrypoint.sh"
# The developer's shell must not configure the container under test.
FOREIGN_PREFIXES = ("CONFLUENCE_", "UNIQUE_", "CRON_", "HTTP_API_", "DAGSTER_WEBSERVER_URL", "DAGSTER_UI_PORT")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


WRITER_LIMIT = {"key": WRITER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_the_shipped_instance_files_allow_one_writer_per_instance(home: tuple[Path, dg.DagsterInstance]) -> None:
    _, loaded = home  # Dagster accepted the shipped dagster.yaml
    assert loaded.get_concurrency_config().run_queue_config.tag_concurrency_limits == [WRITER_LIMIT]
    for name in ("dagster.yaml", "dagster.postgres.yaml"):
        instance = yaml.safe_load((REPO_ROOT / name).read_text())
        assert instance["concurrency"]["runs"]["tag_concurrency_limits"] == [WRITER_LIMIT], name


def test_helm_values_carry_the_same_writer_limit_and_serve_the_module() -> None:
    values = yaml.safe_load((REPO_ROOT / "deploy" / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert values["concurrency"]["enabled"] is True
    assert (
        values["concurrency"]["runs"]["tagConcurrencyLimits"]
        == instance["concurrency"]["runs"]["tag_concurrency_limits"]
        == [WRITER_LIMIT]
    )
    # Each run is a pod of its own: instances scale out over the cluster.
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "confluence_pipeline.definitions"]
    assert deployment["envSecrets"] and all("name" in s for s in deployment["envSecrets"])
    assert deployment["podSecurityContext"]["runAsUser"] == 10001  # the image's non-root user
    # Sidecars of the user deployment are copied into every run's pod (includeConfigInLaunchedRuns).
    assert not deployment.get("sidecarContainers")
    # So are its volumes and resources: every run pod reads the same instances file and gets the same requests.
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["resources"]["requests"]["cpu"] and deployment["resources"]["requests"]["memory"]
    (volume,) = deployment["volumes"]
    (mount,) = deployment["volumeMounts"]
    assert volume["configMap"]["optional"] is True and mount["name"] == volume["name"]
    assert (
        "CONFLUENCE_INSTANCES_FILE=" + mount["mountPath"] + "/instances.yaml"
        in (REPO_ROOT / "deploy" / "helm" / "values.yaml").read_text()
    )


def test_helm_values_run_the_http_api_next_to_the_webserver_on_8083() -> None:
    text = (REPO_ROOT / "deploy" / "helm" / "values.yaml").read_text()
    values = yaml.safe_load(text)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    webserver = values["dagsterWebserver"]
    (api,) = webserver["extraContainers"]
    env = {e["name"]: e for e in api["env"]}

    assert api["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert api["args"] == ["http-api"]  # the entry point's mode
    assert api["ports"] == [{"name": "http-api", "containerPort": 8083}]
    assert env["PORT"]["value"] == "8083"
    # The UI keeps its own port, and the API reaches it inside the pod on exactly that port.
    assert webserver["service"]["port"] != 8083
    assert env["DAGSTER_WEBSERVER_URL"]["value"] == f"http://127.0.0.1:{webserver['service']['port']}"
    assert env["HTTP_API_CODE_LOCATION"]["value"] == deployment["name"]  # the chart names locations so
    token = env["HTTP_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["key"] == "HTTP_API_TOKEN"
    assert token["name"] in {s["name"] for s in deployment["envSecrets"]}
    # A probe of /health would take the UI's pod out of service whenever the code location is broken.
    assert api["readinessProbe"]["tcpSocket"]["port"] == "http-api"
    assert "httpGet" not in api["livenessProbe"]
    assert api["securityContext"]["runAsUser"] == 10001
    # The chart makes no Service for an extra container: the documented command exposes it on 8083.
    service_name = f"dagster-{webserver['nameOverride']}"
    expose = f"kubectl -n dagster expose deployment {service_name} --name confluence-pipeline-http-api"
    assert expose in text and "--port 8083 --target-port http-api" in text


def test_dockerfile_serves_the_http_api_on_port_and_the_ui_on_its_own_port() -> None:
    instructions = dockerfile_instructions()
    env = dict(
        item.split("=", 1) for args in (a for op, a in instructions if op == "ENV") for item in shlex.split(args)
    )
    exposed = {port for op, args in instructions if op == "EXPOSE" for port in args.split()}
    assert env["PORT"] == "8083" and env["DAGSTER_UI_PORT"] == "3000" and env["GRPC_PORT"] == "4000"
    assert {"8083", "3000", "4000"} <= exposed


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


@pytest.mark.timeout(150)
def test_all_in_one_mode_starts_api_webserver_and_daemon_and_reports_healthy(tmp_path: Path) -> None:
    api_port, ui_port = _free_port(), _free_port()
    home = tmp_path / "dagster_home"
    token = "all-in-one-Test-Token-0123456789"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "APP_DIR": str(REPO_ROOT),
        "DAGSTER_HOME": str(home),
        "PORT": str(api_port),
        "DAGSTER_UI_PORT": str(ui_port),
        "HTTP_API_TOKEN": token,
        "TMPDIR": str(tmp_path),
    }
    log_path = tmp_path / "entrypoint.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), "all-in-one"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{ui_port}/server_info"), process, "the webserver to answer")
        # The API answers on PORT, reaches the webserver on DAGSTER_UI_PORT and sees the code location loaded.
        wait_for(lambda: _answers(f"http://127.0.0.1:{api_port}/health"), process, "the HTTP API's /health")
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=5) as response:
            health = json.load(response)
        assert health["code_location"] == {"name": "confluence_pipeline", "status": "loaded"}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: "QUEUED_RUN_COORDINATOR" in instance.get_daemon_heartbeats(), process, "daemon heartbeats")
        # A proxy set for Confluence (nothing listens there) must not catch the probes of this container's ports.
        proxied = {
            **env,
            "HTTP_PROXY": f"http://127.0.0.1:{_free_port()}",
            "http_proxy": f"http://127.0.0.1:{_free_port()}",
        }
        wait_for(lambda: _healthcheck(proxied) == 0, process, "the healthcheck to pass (API, webserver and daemon)")
        assert (home / "dagster.yaml").read_text() == (REPO_ROOT / "dagster.yaml").read_text()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- entry point output ---\n{log_path.read_text()[-6000:]}") from None
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0  # a TERM is a clean stop
    assert _healthcheck(env) != 0
    assert token not in log_path.read_text()


def _healthcheck(env: dict[str, str]) -> int:
    return subprocess.run(["sh", str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True, check=False).returncode


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
