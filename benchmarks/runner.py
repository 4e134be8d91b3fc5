"""Runs the benchmark's three syncs against both emulators and measures requests, time, CPU and peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.options import ALL_LABEL, PHASES, SINGLE_LABEL, BenchOptions
from benchmarks.report import BenchReport, Floor, PhaseResult, floor_for
from benchmarks.wiki import build_wiki, change_wiki
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.unique import UniqueEmulator

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The emulators' credentials: local, throw-away values that only these emulators accept.
PAT = "bench-pat-0123456789"
CLOUD_USER = "svc@example.com"
CLOUD_TOKEN = "bench-cloud-token-0123456789"
ZITADEL_CLIENT = "connector"
ZITADEL_SECRET = "bench-zitadel-secret-0123"
ZITADEL_PROJECT = "123456"

_CONNECTOR_PREFIXES = ("CONFLUENCE_", "UNIQUE_", "ZITADEL_", "INGEST_", "SYNC_", "CRON_")
_CONNECTOR_NAMES = frozenset({"TEST_MODE", "DEBUG_MODE", "DEBUG_LOG_FILE", "DAGSTER_HOME"})
_PROXY_NAMES = frozenset({"http_proxy", "https_proxy", "all_proxy"})


def connector_env(
    confluence: ConfluenceEmulator,
    unique: UniqueEmulator,
    options: BenchOptions,
    scope_id: str,
    *,
    limited: bool = True,
) -> dict[str, str]:
    env = {
        "CONFLUENCE_INSTANCE_TYPE": options.mode,
        "CONFLUENCE_URL": confluence.base_url,
        "CONFLUENCE_TOKENS_PER_MINUTE": str(options.confluence_per_minute if limited else 0),
        "UNIQUE_INGESTION_URL": unique.ingestion_url,
        "UNIQUE_INGESTION_URL_GRAPHQL": unique.graphql_url,
        "UNIQUE_SERVICE_AUTH_MODE": "external",
        "UNIQUE_TOKENS_PER_MINUTE": str(options.unique_per_minute if limited else 0),
        "UNIQUE_CONCURRENCY": str(options.concurrency),
        "UNIQUE_SCOPE_ID": scope_id,
        "ZITADEL_OAUTH_TOKEN_URL": unique.token_url,
        "ZITADEL_CLIENT_ID": ZITADEL_CLIENT,
        "ZITADEL_CLIENT_SECRET": ZITADEL_SECRET,
        "ZITADEL_PROJECT_ID": ZITADEL_PROJECT,
        "INGEST_SINGLE_LABEL": SINGLE_LABEL,
        "INGEST_ALL_LABEL": ALL_LABEL,
        "CONFLUENCE_ATTACHMENTS": "true" if options.attachment_share or options.large_file_mb else "false",
    }
    if options.large_file_mb:
        env["ATTACHMENT_MAX_BYTES"] = f"{max(200, options.large_file_mb)} MB"
    if options.mode == "ONPREM":
        env["CONFLUENCE_PAT"] = PAT
    else:
        env.update(CONFLUENCE_CLOUD_USER=CLOUD_USER, CONFLUENCE_CLOUD_TOKEN=CLOUD_TOKEN)
    return env


def _clean_environ(base: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without connector settings or proxies (the emulators live on 127.0.0.1)."""
    return {
        k: v
        for k, v in base.items()
        if not k.startswith(_CONNECTOR_PREFIXES) and k not in _CONNECTOR_NAMES and k.lower() not in _PROXY_NAMES
    }


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """In-process runs read EnvVar-bound resources from os.environ; restore it afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_clean_environ(saved))
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class _RunOutcome:
    run_id: str | None
    wall_s: float
    process_s: float
    peak_rss_mb: float | None
    cpu_s: float | None = None
    log: str = ""


# Runs `dagster job execute` inside the child and, at exit, writes the child's own peak RSS. VmHWM of
# /proc/self is the high-water mark of the process image after exec; getrusage()/wait4() would report the
# larger of that and this parent's RSS at fork time (the kernel folds the pre-exec image into ru_maxrss),
# which with seeded emulators is hundreds of MB that the job never used.
_CHILD_RUNNER = """
import atexit, runpy, sys
rss_file, profile_file = sys.argv[1], sys.argv[2]
def _report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(rss_file, "w") as out:
        out.write(peak)
atexit.register(_report)
sys.argv = ["dagster", "job", "execute", "-m", "confluence_pipeline.definitions", "-j", "confluence_sync"]
if profile_file:
    import cProfile
    cProfile.run("runpy.run_module('dagster', run_name='__main__')", profile_file)
else:
    runpy.run_module("dagster", run_name="__main__")
"""


def _run_child(env: Mapping[str, str], home: Path, log_path: Path, profile_path: Path | None) -> _RunOutcome:
    """`dagster job execute` in a child process; it reports its own peak RSS (VmHWM) when it exits."""
    rss_path = log_path.with_suffix(".rss")
    command = [sys.executable, "-c", _CHILD_RUNNER, str(rss_path), str(profile_path or "")]
    child_env = {**_clean_environ(os.environ), **env, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=child_env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's CPU time, not the emulators'
        proc.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - started
    run_id, wall = _latest_run(home)
    peak = int(rss_path.read_text("utf-8")) / 1024 if rss_path.exists() else None
    tail = "" if proc.returncode == 0 else log_path.read_text("utf-8", "replace")[-4000:]
    return _RunOutcome(run_id, wall, process_s, peak, usage.ru_utime + usage.ru_stime, tail)


def _run_in_process(env: Mapping[str, str], home: Path) -> _RunOutcome:
    import dagster as dg

    from confluence_pipeline.jobs.sync import confluence_sync
    from confluence_pipeline.resources import resources_from_env

    started = time.perf_counter()
    with _patched_environ({**env, "DAGSTER_HOME": str(home)}):
        instance = dg.DagsterInstance.get()
        try:
            result = confluence_sync.execute_in_process(
                resources=resources_from_env(), instance=instance, raise_on_error=False
            )
        finally:
            instance.dispose()
    process_s = time.perf_counter() - started
    run_id, wall = _latest_run(home)
    return _RunOutcome(run_id if result.success else None, wall, process_s, None)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _instance(home: Path) -> Any:
    import dagster as dg

    with _patched_environ({"DAGSTER_HOME": str(home)}):
        return dg.DagsterInstance.get()


def _latest_run(home: Path) -> tuple[str | None, float]:
    instance = _instance(home)
    try:
        records = instance.get_run_records(limit=1)
        if not records:
            return None, 0.0
        record = records[0]
        wall = (record.end_time or 0.0) - (record.start_time or 0.0)
        return record.dagster_run.run_id, max(wall, 0.0)
    finally:
        instance.dispose()


def _run_summary(home: Path, run_id: str) -> dict[str, Any]:
    """The `summarize_sync` output metadata: totals and the connector's request counts by route."""
    import dagster as dg

    instance = _instance(home)
    try:
        status = instance.get_run_by_id(run_id).status  # type: ignore[union-attr]
        summary: dict[str, Any] = {"success": status == dg.DagsterRunStatus.SUCCESS}
        started: dict[str, float] = {}
        in_steps: Counter[str] = Counter()  # seconds inside steps, by op name
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            op = event.step_key.split("[", 1)[0]
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                in_steps[op] += entry.timestamp - started.pop(event.step_key, entry.timestamp)
            elif event.event_type == dg.DagsterEventType.STEP_OUTPUT and op == "summarize_sync":
                for name, value in event.event_specific_data.metadata.items():  # type: ignore[union-attr]
                    summary[name] = value.value
        summary["step_seconds"] = dict(in_steps)
        return summary
    finally:
        instance.dispose()


def _confluence_kinds(requests: Sequence[Any]) -> tuple[dict[str, int], float]:
    """The emulator's view: which query each Confluence request was, and the span from the first to the last."""
    kinds: Counter[str] = Counter()
    times: list[float] = []
    for request in requests:
        times.append(request.time)
        cql = (request.query.get("cql") or [""])[0]
        expand = (request.query.get("expand") or [""])[0]
        if request.path.endswith(("/rest/applinks/1.0/manifest", "/_edge/tenant_info")):
            kinds["identity"] += 1
        elif "/download/attachments/" in request.path or request.path.endswith("/download"):
            kinds["downloads"] += 1
        elif request.path.endswith(("/child/attachment", "/attachments")):
            kinds["attachment listings"] += 1
        elif not cql and "cursor" not in request.query:
            kinds[f"{request.method} {request.path.rsplit('/rest/api/', 1)[-1]}"] += 1
        elif "ancestor IN" in cql:
            kinds["descendants"] += 1
        elif cql.startswith("id IN") and ("label" in cql or "ancestors" in expand):
            kinds["confirmations"] += 1
        elif cql.startswith("id IN"):
            kinds["bodies"] += 1
        elif "label=" in cql and "space =" in cql:
            kinds["space check"] += 1
        else:
            kinds["discovery"] += 1
    span = max(times) - min(times) if times else 0.0
    return dict(kinds), span


def _unique_seen(unique: UniqueEmulator) -> tuple[dict[str, int], list[int]]:
    seen: Counter[str] = Counter()
    deletes: list[int] = []
    for request in unique.requests:
        if request.path.endswith("/graphql"):
            payload = json.loads(request.body or b"{}")
            operation = payload.get("operationName") or "anonymous"
            seen[f"graphql {operation}"] += 1
            if operation == "ContentDeleteByContentIds":
                deletes.append(len(payload.get("variables", {}).get("contentIds", [])))
        elif request.path.endswith("/file-diff"):
            seen["POST file-diff"] += 1
        elif request.method == "PUT":
            seen["PUT upload"] += 1
        elif request.path.endswith("/token"):
            seen["POST zitadel token"] += 1
        else:
            seen[f"{request.method} {request.path}"] += 1
    return dict(seen), deletes


def run_phase(
    name: str,
    confluence: ConfluenceEmulator,
    unique: UniqueEmulator,
    env: Mapping[str, str],
    home: Path,
    floor: Floor,
    options: BenchOptions,
    workdir: Path,
) -> PhaseResult:
    confluence.clear_requests()
    unique.clear_requests()
    slug = name.replace(" ", "_").replace("%", "pct")
    cpu_before = _own_cpu()
    previous_run, _ = _latest_run(home)
    if options.isolate:
        profile = workdir / f"{slug}.prof" if options.profile else None
        outcome = _run_child(env, home, workdir / f"{slug}.log", profile)
    else:
        outcome = _run_in_process(env, home)
    if outcome.run_id is not None and outcome.run_id == previous_run:
        # No run was created (the process failed before launching one): never report the last phase's figures.
        outcome = replace(outcome, run_id=None, log=outcome.log or "no run was created (see the log)")
    emulator_cpu = _own_cpu() - cpu_before
    kinds, span = _confluence_kinds(confluence.requests)
    seen, deletes = _unique_seen(unique)
    confluence.clear_requests()  # page bodies in recorded uploads add up at 100k pages
    unique.clear_requests()
    result = PhaseResult(
        name,
        success=False,
        confluence_per_minute=int(env.get("CONFLUENCE_TOKENS_PER_MINUTE", "0")),
        confluence_kinds=kinds,
        unique_seen=seen,
        delete_ids=deletes,
        floor=floor,
        wall_s=outcome.wall_s,
        process_s=outcome.process_s,
        confluence_span_s=span,
        peak_rss_mb=outcome.peak_rss_mb,
        job_cpu_s=outcome.cpu_s,
        emulator_cpu_s=emulator_cpu,
        error=outcome.log,
    )
    if outcome.run_id is None:
        result.error = result.error or "the run failed (see the log)"
        return result
    summary = _run_summary(home, outcome.run_id)
    result.success = bool(summary.get("success"))
    result.discovered = int(summary.get("total_discovered", 0))
    result.spaces = int(summary.get("spaces", 0))
    result.counts = {k[len("total_") :]: int(v) for k, v in summary.items() if k.startswith("total_")}
    result.confluence = dict(summary.get("confluence_requests_by_route") or {})
    result.unique = dict(summary.get("unique_requests_by_route") or {})
    result.step_seconds = summary["step_seconds"]
    result.bytes_moved = int(summary.get("attachment_bytes_moved", 0))
    return result


def run_benchmark(options: BenchOptions, *, out: Any = None) -> BenchReport:
    """Seed the emulators, run the three syncs, and return every figure (prints progress to `out`)."""
    say = (lambda text: print(text, file=out, flush=True)) if out is not None else (lambda text: None)
    started = time.perf_counter()
    synthetic = build_wiki(options)
    described = synthetic.describe()
    say(f"seeded {len(synthetic.wiki.pages)} pages in {time.perf_counter() - started:.1f} s: {synthetic.describe()}")
    workdir = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    home = workdir / "dagster_home"
    home.mkdir()
    shipped = PROJECT_ROOT / "dagster.yaml"  # the instance config the container image uses
    (home / "dagster.yaml").write_text(shipped.read_text("utf-8") if shipped.exists() else "", "utf-8")
    phases: list[PhaseResult] = []
    try:
        with (
            ConfluenceEmulator(
                options.mode, pat=PAT, cloud_user=CLOUD_USER, cloud_token=CLOUD_TOKEN, wiki=synthetic.wiki
            ) as confluence,
            UniqueEmulator(
                client_id=ZITADEL_CLIENT,
                client_secret=ZITADEL_SECRET,
                project_id=ZITADEL_PROJECT,
                keep_upload_bytes=False,  # attachments are hashed as they arrive, never held
            ) as unique,
        ):
            confluence.faults.latency = unique.faults.latency = options.latency_ms / 1000
            scope_id = unique.store.add_scope("Confluence KB").id if options.single_scope else ""
            envs = {
                phase: connector_env(confluence, unique, options, scope_id, limited=options.limited(phase))
                for phase in PHASES
            }
            per_space = Counter(synthetic.wiki.pages[i].space_key for i in synthetic.synced)
            attachments_on = envs["initial"]["CONFLUENCE_ATTACHMENTS"] == "true"
            synced = synthetic.synced if attachments_on else ()
            plan: list[tuple[str, Floor]] = [
                (
                    "initial",
                    floor_for(
                        synthetic.wiki,
                        options.mode,
                        len(synthetic.synced),
                        [per_space[k] for k in synthetic.space_keys],
                        synced=synced,
                        downloads=len(synthetic.synced_attachments()) if attachments_on else 0,
                    ),
                ),
                ("no-change", floor_for(synthetic.wiki, options.mode, 0, [], synced=synced)),
            ]
            for name, floor in plan:
                phases.append(run_phase(name, confluence, unique, envs[name], home, floor, options, workdir))
                say(_progress(phases[-1]))
                if not phases[-1].success:
                    return BenchReport(options, described, phases)
            change = change_wiki(synthetic, options.changed_share)
            floor = floor_for(
                synthetic.wiki,
                options.mode,
                change.edited + change.added,
                change.changed_per_space,
                change.deleted_ids,
                synced=synthetic.synced if attachments_on else (),
                downloads=change.attachments_transferred if attachments_on else 0,
            )
            phases.append(
                run_phase("1% changed", confluence, unique, envs["1% changed"], home, floor, options, workdir)
            )
            say(_progress(phases[-1]))
    finally:
        if options.keep_home or options.profile:
            say(f"run logs and DAGSTER_HOME kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return BenchReport(options, described, phases)


def _progress(phase: PhaseResult) -> str:
    state = "ok" if phase.success else f"FAILED: {phase.error[-2000:]}"
    return (
        f"  {phase.name}: {state}; {phase.confluence_total} Confluence / {phase.unique_total} Unique requests, "
        f"{phase.wall_s:.1f} s"
    )
