"""HTTP API fixtures: both emulators, a real dagster-webserver and dagster-daemon, and the service, on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from confluence_pipeline.http_api.jobs import FINISHED_STATUSES
from confluence_pipeline_tests.support import CLOUD_TOKEN, PASSWORD, PAT, ZITADEL_SECRET, base_env
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.unique import UniqueEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = "http-api-Test-Token-8c1f2e9a7b"
WRONG_TOKEN = "http-api-Wrong-Token-3d4e5f6a7b"
STARTUP_SECONDS = 90.0
POLL_SECONDS = 0.75  # every poll costs the webserver a GraphQL query, on the same two cores as the run
# Variables of the connector, Dagster and the service that the developer's shell must not leak into a stack.
FOREIGN_PREFIXES = (
    "CONFLUENCE_",
    "UNIQUE_",
    "ZITADEL_",
    "CRON_",
    "INGEST_",
    "HTTP_API_",
    "DAGSTER_",
    "ALERT_",
    "SYNC_",
    "CHANGE_SENSOR_",
    "TEST_MODE",
    "DEBUG_",
    "PORT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(FOREIGN_PREFIXES)}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass
class Process:
    """A subprocess in its own session, its output in a file (read it for assertions and failure reports)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                args, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(name, popen, log_path)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            with _ignore_gone():
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with _ignore_gone():
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


class _ignore_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is ProcessLookupError


def wait_until(condition: Callable[[], bool], what: str, processes: list[Process], timeout: float) -> None:
    """Poll `condition`; fail naming `what` (with the processes' output) on timeout or when one of them exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if not process.alive():
                raise AssertionError(
                    f"{process.name} exited ({process.popen.returncode}) while waiting for {what}:\n"
                    f"{process.output()[-4000:]}"
                )
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name} ---\n{p.output()[-3000:]}" for p in processes)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def answers(url: str, expected: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == expected
    except httpx.HTTPError:
        return False


@dataclass
class Stack:
    confluence: ConfluenceEmulator
    unique: UniqueEmulator
    scope_id: str
    home: Path
    webserver_url: str
    api_url: str
    processes: dict[str, Process] = field(default_factory=dict)

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=120)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def runs(self) -> list[dg.DagsterRun]:
        with self.instance() as instance:
            return list(instance.get_runs())

    def run(self, run_id: str) -> dg.DagsterRun:
        with self.instance() as instance:
            run = instance.get_run_by_id(run_id)
        assert run is not None, f"run {run_id} is not in the instance"
        return run

    def wait_for_run(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the service's GET /runs/<id> until the run finished; returns the last answer."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                answer = client.get(f"/runs/{run_id}")
                assert answer.status_code == 200, answer.text
                body: dict[str, Any] = answer.json()
                if body["status"] in FINISHED_STATUSES:
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id} still {body['status']} after {timeout:.0f} s\n{self.logs()}")
                time.sleep(POLL_SECONDS)

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Let every queued or running run finish, so the next test starts with an empty run queue."""
        deadline = time.monotonic() + timeout
        while any(run.status.value not in FINISHED_STATUSES for run in self.runs()):
            if time.monotonic() > deadline:
                raise AssertionError(f"runs still in progress after {timeout:.0f} s\n{self.logs()}")
            time.sleep(POLL_SECONDS)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log ---\n{p.output()[-6000:]}" for p in self.processes.values())

    def stop(self, name: str) -> None:
        self.processes[name].stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack per test module: starting Dagster costs ~10 s; the `api` fixture resets what tests change."""
    base = tmp_path_factory.mktemp("http_api")
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    # Three processes creating fresh SQLite storage at once race on its schema version; create it first.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    with (
        ConfluenceEmulator(mode="ONPREM", pat=PAT, password=PASSWORD, cloud_token=CLOUD_TOKEN) as confluence,
        UniqueEmulator(client_secret=ZITADEL_SECRET) as unique,
    ):
        scope_id = unique.store.add_scope("Confluence KB").id
        web_port, api_port = free_port(), free_port()
        dagster_env = clean_env(DAGSTER_HOME=str(home), **base_env(confluence, unique, scope_id))
        webserver_url = f"http://127.0.0.1:{web_port}"
        box = Stack(confluence, unique, scope_id, home, webserver_url, f"http://127.0.0.1:{api_port}")
        try:
            box.processes["webserver"] = Process.start(
                "webserver",
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", "workspace.yaml"],
                dagster_env,
                base,
            )
            box.processes["daemon"] = Process.start(
                "daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], dagster_env, base
            )
            # The service gets none of the connector's variables: it only talks to the webserver. The proxy
            # (nothing listens there) is what a corporate network sets for Confluence; the webserver on
            # loopback must be reached directly anyway.
            dead_proxy = f"http://127.0.0.1:{free_port()}"
            service_env = clean_env(
                PORT=str(api_port),
                HTTP_API_HOST="127.0.0.1",
                HTTP_API_TOKEN=TOKEN,
                DAGSTER_WEBSERVER_URL=webserver_url,
                HTTP_PROXY=dead_proxy,
                HTTPS_PROXY=dead_proxy,
                ALL_PROXY=dead_proxy,
            )
            box.processes["http_api"] = Process.start(
                "http_api", [sys.executable, "-m", "confluence_pipeline.http_api"], service_env, base
            )
            everything = list(box.processes.values())
            # /health is 200 once the webserver answers and the code location has loaded.
            wait_until(lambda: answers(f"{box.api_url}/health"), "the service's /health", everything, STARTUP_SECONDS)
            wait_until(lambda: _run_queue_alive(box), "the daemon's run queue", everything, STARTUP_SECONDS)
            yield box
        finally:
            for process in reversed(list(box.processes.values())):
                process.stop()


def _run_queue_alive(box: Stack) -> bool:
    answer = httpx.get(f"{box.api_url}/health", timeout=5)
    return answer.status_code == 200 and answer.json()["run_queue"]["daemon_healthy"] is True


@pytest.fixture
def api(stack: Stack) -> Iterator[Stack]:
    """The shared stack, with no fault, no recorded request and no Unique content left by another test."""
    stack.confluence.faults.clear()
    stack.unique.faults.clear()
    with stack.unique.store.lock:
        stack.unique.store.contents.clear()
    stack.confluence.clear_requests()
    stack.unique.clear_requests()
    yield stack
    stack.wait_until_idle()
    stack.confluence.faults.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the webserver's, daemon's and service's output to every failing test of this directory."""
    outcome = yield
    report = outcome.get_result()
    box = getattr(item, "funcargs", {}).get("stack") or getattr(item, "funcargs", {}).get("api")
    if report.failed and isinstance(box, Stack):
        for process in box.processes.values():
            report.sections.append((f"{process.name} output", process.output()[-8000:]))
