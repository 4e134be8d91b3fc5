"""The dead-worker decision: which runs left STARTED may be failed, and the worker tags it reads and writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import pytest

from confluence_pipeline.jobs.writers import (
    INITIAL_PID_NAMESPACE,
    RunWorker,
    Sighting,
    dagster_checks_run_workers,
    look_up_process,
    this_worker,
    worker_is_gone,
)

BOOT = "58689a38-1417-4a14-8796-cd965669c268"
CONTAINER_NS = 4026532190
ME = RunWorker(host="web-1", pid=7, boot=BOOT, pid_namespace=CONTAINER_NS, start_ticks=9000, token="a1b2c3")
WORKER = RunWorker(host="web-1", pid=42, boot=BOOT, pid_namespace=CONTAINER_NS, start_ticks=5000, token="d4e5f6")
GONE = Sighting(exists=False)
SAME_PROCESS = Sighting(exists=True, start_ticks=5000)
PID_REUSED = Sighting(exists=True, start_ticks=7777)
UNREADABLE = Sighting(exists=True, start_ticks=None)


def looking(sighting: Sighting) -> tuple[Callable[[int], Sighting], list[int]]:
    asked: list[int] = []

    def look(pid: int) -> Sighting:
        asked.append(pid)
        return sighting

    return look, asked


# -- the decision table ---------------------------------------------------------------------------------------
DECISIONS = [
    # (case, tag, what this process sees of the pid, judged dead)
    ("same namespace, pid gone", WORKER.tag(), GONE, True),
    ("same namespace, same process still running", WORKER.tag(), SAME_PROCESS, False),
    ("same namespace, pid reused by a process started later", WORKER.tag(), PID_REUSED, True),
    ("same namespace, start time unreadable here", WORKER.tag(), UNREADABLE, False),
    ("tag without a start time, pid alive", replace(WORKER, start_ticks=None).tag(), PID_REUSED, False),
    ("tag without a start time, pid gone", replace(WORKER, start_ticks=None).tag(), GONE, True),
    ("other PID namespace (another container)", replace(WORKER, pid_namespace=4026532555).tag(), GONE, False),
    ("other host", replace(WORKER, host="web-2").tag(), GONE, False),
    (
        "other boot (another machine of the same name, or before a reboot)",
        replace(WORKER, boot="b0").tag(),
        GONE,
        False,
    ),
    ("tag without a PID namespace", replace(WORKER, pid_namespace=None).tag(), GONE, False),
    ("tag without a boot id", replace(WORKER, boot=None).tag(), GONE, False),
    ("this very process", replace(ME).tag(), GONE, False),
    ("an unknown field is ignored", WORKER.tag() + " shell=zsh", GONE, True),
]


@pytest.mark.parametrize(("tag", "sighting", "dead"), [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS])
def test_worker_is_gone_decision_table(tag: str, sighting: Sighting, dead: bool) -> None:
    look, _ = looking(sighting)
    assert worker_is_gone(tag, ME, look) is dead


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "garbage",
        "web-1",
        "web-1:",
        ":42",
        "web-1:abc",
        "web-1:0",
        "web-1:-42",
        "web-1:４２",  # full-width digits pass str.isdigit
        "web-1:42x",
        "host=web-1",
        "pid=42",
        "host= pid=42",
        "host=web-1 pid=forty-two",
        f"host=web-1 boot={BOOT} pidns=x pid=42",
    ],
)
def test_a_malformed_tag_counts_as_alive_and_nothing_is_probed(tag: str) -> None:
    look, asked = looking(GONE)
    assert worker_is_gone(tag, replace(ME, pid_namespace=INITIAL_PID_NAMESPACE), look) is False
    assert asked == []


@pytest.mark.parametrize(
    ("tag", "sighting"),
    [(replace(WORKER, host="web-2").tag(), GONE), (replace(WORKER, pid_namespace=1).tag(), GONE)],
    ids=["other host", "other namespace"],
)
def test_a_worker_out_of_sight_is_never_probed(tag: str, sighting: Sighting) -> None:
    look, asked = looking(sighting)
    assert worker_is_gone(tag, ME, look) is False
    assert asked == []  # its pid means nothing here


def test_this_process_unknown_namespace_judges_nothing() -> None:
    look, asked = looking(GONE)
    assert worker_is_gone(WORKER.tag(), replace(ME, pid_namespace=None), look) is False
    assert worker_is_gone(WORKER.tag(), replace(ME, boot=None), look) is False
    assert asked == []


# -- tags written before the worker carried its namespace -----------------------------------------------------
@pytest.mark.parametrize(
    ("my_namespace", "sighting", "dead"),
    [
        (INITIAL_PID_NAMESPACE, GONE, True),  # on the host itself: judged as before
        (INITIAL_PID_NAMESPACE, SAME_PROCESS, False),
        (INITIAL_PID_NAMESPACE, PID_REUSED, False),  # no start time to compare: alive, as before
        (CONTAINER_NS, GONE, False),  # in a container: the pid may be another container's
        (None, GONE, False),
    ],
)
def test_an_old_host_pid_tag(my_namespace: int | None, sighting: Sighting, dead: bool) -> None:
    look, _ = looking(sighting)
    assert worker_is_gone("web-1:42", replace(ME, pid_namespace=my_namespace), look) is dead


def test_an_old_tag_parses() -> None:
    assert RunWorker.from_tag("web-1.example.com:42") == RunWorker(host="web-1.example.com", pid=42, legacy=True)
    assert RunWorker.from_tag("fe80::1:42") == RunWorker(host="fe80::1", pid=42, legacy=True)


# -- tags --------------------------------------------------------------------------------------------------------
def test_a_tag_round_trips() -> None:
    assert WORKER.tag() == f"host=web-1 boot={BOOT} pidns={CONTAINER_NS} pid=42 start=5000 id=d4e5f6"
    assert RunWorker.from_tag(WORKER.tag()) == WORKER
    bare = RunWorker(host="mac.local", pid=42)  # no /proc: only what is known
    assert bare.tag() == "host=mac.local pid=42"
    assert RunWorker.from_tag(bare.tag()) == bare


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs Linux /proc")
def test_this_worker_describes_this_process() -> None:
    me = this_worker()
    assert me.pid == os.getpid()
    assert me.pid_namespace == os.stat("/proc/self/ns/pid").st_ino
    assert me.boot is not None and me.start_ticks is not None and me.token is not None
    assert this_worker() == me  # one token per process
    assert look_up_process(me.pid) == Sighting(exists=True, start_ticks=me.start_ticks)
    assert worker_is_gone(me.tag(), me) is False


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs Linux /proc")
def test_a_forked_child_gets_its_own_token() -> None:
    read, write = os.pipe()
    parent = this_worker().token
    child = os.fork()
    if child == 0:
        os.write(write, (this_worker().token or "").encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 64).decode() not in ("", parent)


# -- probing real processes -------------------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_look_up_process_sees_the_living_the_exited_and_the_unreaped() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as sleeper:
        try:
            alive = look_up_process(sleeper.pid)
            assert alive.exists and alive.start_ticks is not None
            sleeper.kill()
            deadline = time.monotonic() + 10
            while look_up_process(sleeper.pid).exists and time.monotonic() < deadline:
                time.sleep(0.05)
            # Killed but not yet waited for: a zombie, which is as gone as a worker gets.
            assert look_up_process(sleeper.pid) == Sighting(exists=False)
        finally:
            sleeper.kill()
    assert look_up_process(sleeper.pid).exists is False


# -- Dagster's own run monitoring -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("enabled", "supported", "expected"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_dagster_checks_run_workers_only_with_monitoring_and_a_launcher_that_can(
    enabled: bool, supported: bool, expected: bool
) -> None:
    instance = SimpleNamespace(
        run_monitoring_enabled=enabled, run_launcher=SimpleNamespace(supports_check_run_worker_health=supported)
    )
    assert dagster_checks_run_workers(instance) is expected  # type: ignore[arg-type]


def test_a_launcher_that_cannot_be_built_leaves_the_check_to_us() -> None:
    class Broken:
        run_monitoring_enabled = True

        @property
        def run_launcher(self) -> object:
            raise RuntimeError("no kube config")

    assert dagster_checks_run_workers(Broken()) is False  # type: ignore[arg-type]
