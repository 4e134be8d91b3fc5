"""Benchmark of the real `confluence_sync` job: a synthetic wiki, three syncs, requests against the floor, speed, RSS.

Run `python -m benchmarks.sync_bench --help`. Both emulators run in this process; every sync runs the job through
`dagster job execute` in a child process with a fresh DAGSTER_HOME, so the peak RSS reported is the job's alone.
The three phases are: an initial sync of the whole wiki, a resync with nothing changed, and a resync after about
1% of the pages changed (edits and new pages) and a handful lost their label (deletions, all in one space).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluence_pipeline.domain.cql import ANCESTOR_BATCH, BODY_BATCH, batched, descendants_cql, discovery_cql
from confluence_pipeline.domain.models import Platform
from confluence_sandbox.confluence import ConfluenceEmulator, SearchScope, Wiki, evaluate, parse
from confluence_sandbox.unique import UniqueEmulator

SINGLE_LABEL = "ai-ingest"
ALL_LABEL = "ai-ingest-all"
DISCOVERY_PAGE = 200  # the floor's page size for discovery and descendant queries (issue 5)
DELETE_BATCH_TARGET = 20  # issue 5: at least this many ids per delete call when that many are pending
PHASES = ("initial", "no-change", "1% changed")
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


# -- options and results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchOptions:
    """One benchmark configuration. `pages` counts what a sync ingests: labelled pages plus descendants."""

    pages: int = 1000
    spaces: int = 10
    mode: str = "ONPREM"
    latency_ms: float = 5.0
    confluence_per_minute: int = 0  # 0 = unlimited
    unique_per_minute: int = 0
    limits_from: str = "initial"  # the first phase the rate limits apply to (earlier ones run unlimited)
    concurrency: int = 4
    deep_trees: int = 4
    tree_share: float = 0.2  # share of pages that are descendants of the deep trees
    changed_share: float = 0.01
    single_scope: bool = False  # True: UNIQUE_SCOPE_ID set; False: one scope per space (the product default)
    seed: int = 5
    isolate: bool = True  # False runs the job in this process (smoke test): no RSS figure
    keep_home: bool = False
    profile: bool = False  # cProfile the job process; the .prof files land next to the run logs

    def __post_init__(self) -> None:
        if self.mode not in ("ONPREM", "CLOUD"):
            raise ValueError(f"mode must be ONPREM or CLOUD, got {self.mode!r}")
        if self.pages < 10 or self.spaces < 1 or self.spaces > self.pages // 5:
            raise ValueError("need at least 10 pages and at least 5 pages per space")
        if not 0 <= self.tree_share < 0.9 or not 0 < self.changed_share <= 0.5:
            raise ValueError("tree_share must be in [0, 0.9) and changed_share in (0, 0.5]")
        if self.limits_from not in PHASES:
            raise ValueError(f"limits_from must be one of {PHASES}, got {self.limits_from!r}")

    def limited(self, phase: str) -> bool:
        return PHASES.index(phase) >= PHASES.index(self.limits_from)


@dataclass(frozen=True)
class Floor:
    """Issue 5's request floor for one sync: discovery + descendant result pages + body batches."""

    labelled: int
    roots: int
    descendant_queries: tuple[int, ...]  # results per `ancestor IN` chunk of ANCESTOR_BATCH roots
    changed: int
    changed_per_space: tuple[int, ...]

    @property
    def discovery(self) -> int:
        return max(1, math.ceil(self.labelled / DISCOVERY_PAGE))

    @property
    def descendants(self) -> int:
        return sum(max(1, math.ceil(n / DISCOVERY_PAGE)) for n in self.descendant_queries)

    @property
    def bodies(self) -> int:
        return math.ceil(self.changed / BODY_BATCH)

    @property
    def bodies_per_space(self) -> int:
        """What body batching can reach when each space's bodies are fetched on their own (the job fans out)."""
        return sum(math.ceil(k / BODY_BATCH) for k in self.changed_per_space)

    @property
    def total(self) -> int:
        return self.discovery + self.descendants + self.bodies


@dataclass
class PhaseResult:
    name: str
    success: bool
    confluence_per_minute: int = 0  # the limit this phase ran with (0 = none)
    discovered: int = 0
    spaces: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # new, updated, unchanged, deleted, failed, skipped
    confluence: dict[str, int] = field(default_factory=dict)  # the connector's own count, by route
    unique: dict[str, int] = field(default_factory=dict)
    confluence_kinds: dict[str, int] = field(default_factory=dict)  # what the emulator saw, by query kind
    unique_seen: dict[str, int] = field(default_factory=dict)  # what the emulator saw, by route / operation
    delete_ids: list[int] = field(default_factory=list)  # ids per delete call
    floor: Floor | None = None
    wall_s: float = 0.0  # the run, from RUN_START to its end (no interpreter start-up)
    process_s: float = 0.0  # the whole child process
    confluence_span_s: float = 0.0  # first to last Confluence request, as the emulator saw them
    peak_rss_mb: float | None = None
    job_cpu_s: float | None = None  # user + system CPU of the job process
    emulator_cpu_s: float = 0.0  # CPU of this process (both emulators) during the run
    step_seconds: dict[str, float] = field(default_factory=dict)  # time inside the run's steps, by op
    error: str = ""

    @property
    def confluence_total(self) -> int:
        return sum(self.confluence.values())

    @property
    def unique_total(self) -> int:
        return sum(self.unique.values())

    @property
    def ratio(self) -> float | None:
        return self.confluence_total / self.floor.total if self.floor and self.floor.total else None

    @property
    def per_page_pattern(self) -> int:
        """Our discovery and expansion, but one body GET per new or changed page instead of batches."""
        return (
            self.confluence_total - self.confluence_kinds.get("bodies", 0) + (self.floor.changed if self.floor else 0)
        )

    @property
    def pages_per_s(self) -> float:
        return self.discovered / self.wall_s if self.wall_s else 0.0

    @property
    def paced_s(self) -> float | None:
        """requests ÷ rate: the wall time the Confluence limiter alone imposes."""
        if not self.confluence_per_minute:
            return None
        return self.confluence_total / (self.confluence_per_minute / 60)

    @property
    def limiter_binds(self) -> bool:
        """The limit, not our own work, sets the pace: requests ÷ rate is most of the run."""
        paced = self.paced_s
        return paced is not None and self.wall_s > 0 and paced >= 0.75 * self.wall_s

    @property
    def ingest_pages_per_s(self) -> float | None:
        """New and updated pages per second spent inside the `ingest_and_delete` steps."""
        written = self.counts.get("new", 0) + self.counts.get("updated", 0)
        seconds = self.step_seconds.get("ingest_and_delete", 0.0)
        return written / seconds if written and seconds else None


@dataclass
class BenchReport:
    options: BenchOptions
    wiki: dict[str, Any]
    phases: list[PhaseResult]

    def to_json(self) -> dict[str, Any]:
        phases = []
        for phase in self.phases:
            row = asdict(phase)
            row.update(
                confluence_total=phase.confluence_total,
                unique_total=phase.unique_total,
                floor_total=phase.floor.total if phase.floor else None,
                ratio=phase.ratio,
                per_page_pattern=phase.per_page_pattern,
                pages_per_s=phase.pages_per_s,
            )
            phases.append(row)
        return {"options": asdict(self.options), "wiki": self.wiki, "phases": phases}


# -- the synthetic wiki -----------------------------------------------------------------------------------------
_WORDS = (
    "deploy",
    "rollback",
    "cluster",
    "service",
    "latency",
    "budget",
    "incident",
    "runbook",
    "owner",
    "review",
    "quarterly",
    "roadmap",
    "customer",
    "onboarding",
    "pipeline",
    "schema",
    "migration",
    "index",
    "replica",
    "backup",
    "restore",
    "alert",
    "threshold",
    "dashboard",
    "capacity",
    "Größe",
    "Übersicht",
    "café",
    "naïve",
    "résumé",
    "設計",
    "運用",
    "données",
    "équipe",
)


def _paragraph(rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(30, 120)))
    return f"<p>{words.capitalize()}.</p>"


def _fragment_pool(rng: random.Random) -> list[str]:
    """Storage-format building blocks: paragraphs, lists, tables, code and info macros, links, headings."""
    pool: list[str] = []
    for i in range(240):
        kind = i % 8
        if kind == 0:
            pool.append(f"<h2>{rng.choice(_WORDS).title()} {rng.choice(_WORDS)}</h2>")
        elif kind == 1:
            items = "".join(f"<li>{rng.choice(_WORDS)} {rng.choice(_WORDS)}</li>" for _ in range(rng.randint(3, 9)))
            pool.append(f"<ul>{items}</ul>")
        elif kind == 2:
            rows = "".join(
                "<tr>" + "".join(f"<td>{rng.choice(_WORDS)}</td>" for _ in range(4)) + "</tr>" for _ in range(6)
            )
            pool.append(
                f"<table><tbody><tr><th>Name</th><th>Owner</th><th>State</th><th>Note</th></tr>{rows}</tbody></table>"
            )
        elif kind == 3:
            code = "\n".join(f"kubectl rollout restart deploy/{rng.choice(_WORDS).lower()}" for _ in range(8))
            pool.append(
                '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>'
                f"<ac:plain-text-body><![CDATA[{code}]]></ac:plain-text-body></ac:structured-macro>"
            )
        elif kind == 4:
            pool.append(
                '<ac:structured-macro ac:name="info"><ac:rich-text-body>'
                f"{_paragraph(rng)}</ac:rich-text-body></ac:structured-macro>"
            )
        elif kind == 5:
            pool.append(
                f'<p>See <ac:link><ri:page ri:content-title="{rng.choice(_WORDS)} runbook"/></ac:link> and '
                f'<a href="https://example.com/{rng.choice(_WORDS)}">the dashboard</a>.</p>'
            )
        else:
            pool.append(_paragraph(rng))
    return pool


def _body(rng: random.Random, pool: Sequence[str], page_no: int, title: str) -> str:
    """A storage body of 2–50 KB (log-uniform: most pages are small, a few are long)."""
    target = int(math.exp(rng.uniform(math.log(2048), math.log(50 * 1024))))
    parts = [f"<h1>{title}</h1><p>Page {page_no}.</p>"]
    size = len(parts[0])
    while size < target - 1200:  # fragments are under 1.2 KB, so the body stays under 50 KB
        fragment = rng.choice(pool)
        parts.append(fragment)
        size += len(fragment)
    return "".join(parts)


@dataclass
class SyntheticWiki:
    """The seeded wiki and what the benchmark needs to know about it to change it and to compute floors."""

    wiki: Wiki
    space_keys: list[str]
    synced: list[str]  # ids a sync should ingest
    single_only: dict[str, list[str]]  # per space: ids labelled only with SINGLE_LABEL and under no root
    body_bytes: int
    rng: random.Random
    pool: list[str]
    next_no: int

    def describe(self) -> dict[str, Any]:
        labelled = sum(1 for i in self.synced if self.wiki.pages[i].labels)
        return {
            "synced_pages": len(self.synced),
            "labelled": labelled,
            "descendants": len(self.synced) - labelled,
            "roots": sum(1 for i in self.synced if ALL_LABEL in self.wiki.pages[i].labels),
            "spaces": len(self.space_keys),
            "unsynced_pages": len(self.wiki.pages) - len(self.synced),
            "max_depth": max(self.wiki.depth(self.wiki.pages[i]) for i in self.synced),
            "body_mb": round(self.body_bytes / 1e6, 1),
            "mean_body_kb": round(self.body_bytes / len(self.synced) / 1024, 1),
        }


def build_wiki(options: BenchOptions) -> SyntheticWiki:
    """N syncable pages over S global spaces: a few deep trees, many small labelled sections, single pages.

    Deterministic for a given seed, so request counts are too. Unlabelled pages (section parents, drafts) sit
    around the synced ones as in a real wiki and must never be synced.
    """
    rng = random.Random(options.seed)
    pool = _fragment_pool(rng)
    wiki = Wiki()
    keys = [f"SP{i:03d}" for i in range(options.spaces)]
    for key in keys:
        wiki.add_space(key, f"Space {key}")
    wiki.add_space("~owner", "Personal space", type="personal")
    base = datetime(2024, 1, 1, tzinfo=UTC)
    synced: list[str] = []
    single_only: dict[str, list[str]] = {key: [] for key in keys}
    total_bytes = 0
    counter = 0

    def add(
        space: str,
        *,
        parent: str | None = None,
        labels: tuple[str, ...] = (),
        sync: bool = True,
        kind: str = "page",
        tiny: bool = False,
    ) -> str:
        nonlocal counter, total_bytes
        counter += 1
        title = f"{kind.title()} {counter:06d} {rng.choice(_WORDS)}"
        body = f"<p>draft {counter}</p>" if tiny else _body(rng, pool, counter, title)
        when = base + timedelta(minutes=counter)
        page = wiki.add_page(space, title, body=body, parent_id=parent, labels=labels, type=kind, when=when)
        if sync:
            synced.append(page.id)
            total_bytes += len(body.encode("utf-8"))
        return page.id

    n = options.pages
    tree_pages = int(n * options.tree_share)
    trees = min(options.deep_trees, max(1, tree_pages // 10)) if tree_pages else 0
    sections = n // 250  # small `ai-ingest-all` sections: a root and a few children
    # Deep trees: a spine 30 levels deep, the rest hung below random earlier nodes.
    remaining_tree = tree_pages
    for t in range(trees):
        size = remaining_tree // (trees - t)
        remaining_tree -= size
        space = keys[t % len(keys)]
        nodes = [add(space, labels=(ALL_LABEL,))]
        for depth in range(1, min(size, 30)):
            nodes.append(add(space, parent=nodes[depth - 1]))
        while len(nodes) < size:
            # Every 20th descendant also carries the single label: reached twice, synced once.
            labels = (SINGLE_LABEL,) if len(nodes) % 20 == 0 else ()
            nodes.append(add(space, parent=rng.choice(nodes), labels=labels))
    section_pages = 0
    for s in range(sections):
        space = keys[s % len(keys)]
        parent = add(space, sync=False, tiny=True)  # an unlabelled container page above the section
        root = add(space, parent=parent, labels=(ALL_LABEL,))
        section_pages += 1
        for _ in range(rng.randint(0, 4)):
            add(space, parent=root)
            section_pages += 1
    singles = n - tree_pages - section_pages
    for i in range(singles):
        space = keys[i % len(keys)]
        parent = add(space, sync=False, tiny=True) if i % 10 == 0 else None
        kind = "blogpost" if i % 50 == 0 else "page"
        page_id = add(space, parent=None if kind == "blogpost" else parent, labels=(SINGLE_LABEL,), kind=kind)
        single_only[space].append(page_id)
    for i in range(max(1, n // 100)):  # never synced: personal space and unlabelled drafts
        add("~owner", labels=(SINGLE_LABEL,), sync=False, tiny=True)
        add(keys[i % len(keys)], sync=False, tiny=True)
    return SyntheticWiki(wiki, keys, synced, single_only, total_bytes, rng, pool, counter)


@dataclass(frozen=True)
class Change:
    edited: int
    added: int
    deleted: int
    changed_per_space: tuple[int, ...]


def change_wiki(synthetic: SyntheticWiki, share: float) -> Change:
    """Edit ~`share` of the synced pages, add a tenth as many new ones, and unlabel a few in one space."""
    wiki, rng = synthetic.wiki, synthetic.rng
    n = len(synthetic.synced)
    edits = max(1, round(n * share))
    added = max(1, edits // 10)
    per_space: Counter[str] = Counter()
    for page_id in sorted(rng.sample(synthetic.synced, edits), key=int):
        page = wiki.pages[page_id]
        wiki.update_page(page_id, body=page.body + "<p>Edited for the resync benchmark.</p>")
        per_space[page.space_key] += 1
    for i in range(added):
        space = synthetic.space_keys[i % len(synthetic.space_keys)]
        synthetic.next_no += 1
        title = f"New page {synthetic.next_no:06d}"
        page = wiki.add_page(
            space, title, body=_body(rng, synthetic.pool, synthetic.next_no, title), labels=[SINGLE_LABEL]
        )
        synthetic.synced.append(page.id)
        synthetic.single_only[space].append(page.id)
        per_space[space] += 1
    # Deletions come from one space (a team tidying up its labels), so one delete call can carry them all.
    victims_space = max(synthetic.single_only, key=lambda key: len(synthetic.single_only[key]))
    candidates = [i for i in synthetic.single_only[victims_space] if wiki.pages[i].version == 1]
    deleted = min(len(candidates) - 1, max(DELETE_BATCH_TARGET, n // 1000))
    for page_id in candidates[:deleted]:
        wiki.remove_label(page_id, SINGLE_LABEL)
        synthetic.synced.remove(page_id)
        synthetic.single_only[victims_space].remove(page_id)
    counts = tuple(per_space.get(key, 0) for key in synthetic.space_keys)
    return Change(edits, added, deleted, counts)


def floor_for(wiki: Wiki, mode: str, changed: int, changed_per_space: Sequence[int]) -> Floor:
    """The floor from what Confluence itself would return for the sync's queries (the emulator's CQL engine)."""
    platform = Platform(mode)
    scope = SearchScope(wiki, mode, UTC, "empty")  # type: ignore[arg-type]
    labelled = evaluate(parse(discovery_cql(SINGLE_LABEL, ALL_LABEL, platform)), scope)
    roots = sorted((p.id for p in labelled if ALL_LABEL in p.labels), key=int)
    queries = tuple(len(evaluate(parse(descendants_cql(chunk)), scope)) for chunk in batched(roots, ANCESTOR_BATCH))
    return Floor(len(labelled), len(roots), queries, changed, tuple(changed_per_space))


# -- running one sync -------------------------------------------------------------------------------------------
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
    }
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
        if not cql and "cursor" not in request.query:
            kinds[f"{request.method} {request.path.rsplit('/rest/api/', 1)[-1]}"] += 1
        elif "ancestor IN" in cql:
            kinds["descendants"] += 1
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
    if options.isolate:
        profile = workdir / f"{slug}.prof" if options.profile else None
        outcome = _run_child(env, home, workdir / f"{slug}.log", profile)
    else:
        outcome = _run_in_process(env, home)
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
                client_id=ZITADEL_CLIENT, client_secret=ZITADEL_SECRET, project_id=ZITADEL_PROJECT
            ) as unique,
        ):
            confluence.faults.latency = unique.faults.latency = options.latency_ms / 1000
            scope_id = unique.store.add_scope("Confluence KB").id if options.single_scope else ""
            envs = {
                phase: connector_env(confluence, unique, options, scope_id, limited=options.limited(phase))
                for phase in PHASES
            }
            per_space = Counter(synthetic.wiki.pages[i].space_key for i in synthetic.synced)
            plan: list[tuple[str, Floor]] = [
                (
                    "initial",
                    floor_for(
                        synthetic.wiki,
                        options.mode,
                        len(synthetic.synced),
                        [per_space[k] for k in synthetic.space_keys],
                    ),
                ),
                ("no-change", floor_for(synthetic.wiki, options.mode, 0, [])),
            ]
            for name, floor in plan:
                phases.append(run_phase(name, confluence, unique, envs[name], home, floor, options, workdir))
                say(_progress(phases[-1]))
                if not phases[-1].success:
                    return BenchReport(options, described, phases)
            change = change_wiki(synthetic, options.changed_share)
            floor = floor_for(synthetic.wiki, options.mode, change.edited + change.added, change.changed_per_space)
            phases.append(
                run_phase("1% changed", confluence, unique, envs["1% changed"], home, floor, options, workdir)
            )
            say(_progress(phases[-1]))
    finally:
        if options.keep_home or options.profile:
            say(f"run logs and DAGSTER_HOME kept in {workdir}")
        else:
            _remove_tree(workdir)
    return BenchReport(options, described, phases)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _progress(phase: PhaseResult) -> str:
    state = "ok" if phase.success else f"FAILED: {phase.error[-2000:]}"
    return (
        f"  {phase.name}: {state}; {phase.confluence_total} Confluence / {phase.unique_total} Unique requests, "
        f"{phase.wall_s:.1f} s"
    )


# -- the table --------------------------------------------------------------------------------------------------
def _fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def format_table(report: BenchReport) -> str:
    options, phases = report.options, report.phases
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: Sequence[str]) -> None:
        rows.append((label, list(values)))

    def counts(phase: PhaseResult) -> str:
        c = phase.counts
        return f"{c.get('new', 0):,}/{c.get('updated', 0):,}/{c.get('deleted', 0):,}"

    row("pages discovered (synced)", [_fmt(p.discovered) for p in phases])
    row("spaces", [_fmt(p.spaces) for p in phases])
    row("new / updated / deleted", [counts(p) for p in phases])
    row("failed", [_fmt(p.counts.get("failed", 0)) for p in phases])
    conf_routes = sorted({r for p in phases for r in p.confluence})
    for route in conf_routes:
        row(f"Confluence {route}", [_fmt(p.confluence.get(route, 0)) for p in phases])
    for kind in ("discovery", "descendants", "bodies"):
        row(f"  of which {kind}", [_fmt(p.confluence_kinds.get(kind, 0)) for p in phases])
    for kind in sorted({k for p in phases for k in p.confluence_kinds} - {"discovery", "descendants", "bodies"}):
        row(f"  of which {kind}", [_fmt(p.confluence_kinds.get(kind, 0)) for p in phases])
    row("Confluence total", [_fmt(p.confluence_total) for p in phases])
    row(
        "floor: discovery+descendants+bodies",
        [
            f"{p.floor.discovery}+{p.floor.descendants}+{p.floor.bodies}={p.floor.total}" if p.floor else "–"
            for p in phases
        ],
    )
    row("ratio actual/floor", [_fmt(p.ratio, 2) for p in phases])
    row("  per-space body floor Σ⌈K_s/50⌉", [_fmt(p.floor.bodies_per_space) if p.floor else "–" for p in phases])
    row("per-page fetch pattern (1 GET/page)", [_fmt(p.per_page_pattern) for p in phases])
    for route in sorted({r for p in phases for r in p.unique}):
        row(f"Unique {route}", [_fmt(p.unique.get(route, 0)) for p in phases])
    row("Unique total", [_fmt(p.unique_total) for p in phases])
    row("delete calls (ids each)", [",".join(str(n) for n in p.delete_ids) or "–" for p in phases])
    row("wall s (run)", [_fmt(p.wall_s, 2) for p in phases])
    row("wall s (process incl. start-up)", [_fmt(p.process_s, 2) for p in phases])
    row("pages/s (discovered ÷ run wall)", [_fmt(p.pages_per_s, 0) for p in phases])
    row(
        "  s in ingest_and_delete / other steps",
        [
            f"{p.step_seconds.get('ingest_and_delete', 0.0):.1f} / "
            f"{sum(v for k, v in p.step_seconds.items() if k != 'ingest_and_delete'):.1f}"
            for p in phases
        ],
    )
    row("  written pages/s inside ingest steps", [_fmt(p.ingest_pages_per_s, 0) for p in phases])
    if any(p.confluence_per_minute for p in phases):
        row(
            "CONFLUENCE_TOKENS_PER_MINUTE",
            [_fmt(p.confluence_per_minute) if p.confluence_per_minute else "–" for p in phases],
        )
        row("Confluence requests ÷ rate (s)", [_fmt(p.paced_s, 2) for p in phases])
        row("  run wall ÷ (requests ÷ rate)", [_fmt(p.wall_s / p.paced_s, 2) if p.paced_s else "–" for p in phases])
        row(
            "  first→last request ÷ ((requests-1) ÷ rate)",
            [
                _fmt(p.confluence_span_s / ((p.confluence_total - 1) / (p.confluence_per_minute / 60)), 2)
                if p.confluence_per_minute and p.confluence_total > 1
                else "–"
                for p in phases
            ],
        )
    row("CPU s: job process / emulators", [f"{_fmt(p.job_cpu_s, 1)} / {_fmt(p.emulator_cpu_s, 1)}" for p in phases])
    row("peak RSS MB (job process)", [_fmt(p.peak_rss_mb, 0) for p in phases])
    width = max(len(label) for label, _ in rows) + 2
    col = max(14, *(len(v) + 2 for _, values in rows for v in values))
    wiki = report.wiki
    limits = f"Confluence {options.confluence_per_minute or '∞'}/min, Unique {options.unique_per_minute or '∞'}/min" + (
        f" from the {options.limits_from} sync on" if options.limits_from != "initial" else ""
    )
    header = [
        f"confluence_sync benchmark: {options.mode}, N={wiki['synced_pages']:,} pages "
        f"({wiki['labelled']:,} labelled + {wiki['descendants']:,} descendants of {wiki['roots']} roots, "
        f"max depth {wiki['max_depth']}), S={options.spaces} spaces, bodies {wiki['mean_body_kb']} KB mean "
        f"({wiki['body_mb']} MB)",
        f"latency {options.latency_ms:g} ms, limits {limits}, UNIQUE_CONCURRENCY={options.concurrency}, "
        f"scopes: {'one UNIQUE_SCOPE_ID' if options.single_scope else 'one per space'}",
        "",
        "".ljust(width) + "".join(p.name.rjust(col) for p in phases),
    ]
    lines = [label.ljust(width) + "".join(v.rjust(col) for v in values) for label, values in rows]
    return "\n".join(header + lines + [""] + check_targets(report))


def check_targets(report: BenchReport) -> list[str]:
    """One line per issue-5 target this run can judge: met, missed, or not measured here."""
    options, phases = report.options, {p.name: p for p in report.phases}
    out: list[str] = []

    def verdict(ok: bool, text: str) -> None:
        out.append(f"[{'met' if ok else 'MISSED'}] {text}")

    for phase in report.phases:
        if not phase.success:
            out.append(f"[MISSED] {phase.name}: the run failed")
            continue
        if phase.ratio is not None:
            verdict(phase.ratio <= 1.1, f"{phase.name}: Confluence requests/floor = {phase.ratio:.2f} (target ≤ 1.1)")
        mismatch = _mismatch(phase)
        if mismatch:
            out.append(f"[CHECK] {phase.name}: connector and emulator counts differ: {mismatch}")
    resync = phases.get("no-change")
    if resync and resync.success:
        writes = sum(resync.unique.get(r, 0) for r in resync.unique if "Upsert" in r or "Delete" in r or "PUT" in r)
        diffs = resync.unique.get("POST file-diff", 0)
        budget = "≤ 60 at 10k pages/10 spaces" if report.wiki["synced_pages"] == 10_000 else "≤ 60 (stated for 10k/10)"
        verdict(
            resync.confluence_total <= 60 or report.wiki["synced_pages"] > 10_000,
            f"no-change: {resync.confluence_total} Confluence requests ({budget}), {diffs} file-diffs for "
            f"{resync.spaces} spaces, {writes} writes",
        )
    for phase in report.phases:
        if not phase.success:
            continue
        k = phase.counts.get("new", 0) + phase.counts.get("updated", 0)
        upserts, uploads = phase.unique.get("graphql ContentUpsert", 0), phase.unique.get("PUT upload", 0)
        per_page_ok = upserts == 2 * k and uploads == k and phase.unique.get("POST file-diff", 0) == phase.spaces
        small = [n for n in phase.delete_ids if n < DELETE_BATCH_TARGET]
        batched_ok = not small or len(phase.delete_ids) == 1 or all(n == phase.delete_ids[-1] for n in small)
        verdict(
            per_page_ok and batched_ok,
            f"{phase.name}: Unique per changed page {upserts}/{k} upserts, {uploads}/{k} uploads; "
            f"delete calls {phase.delete_ids or 'none'}",
        )
    initial = phases.get("initial")
    if initial and initial.success:
        unlimited = not options.limited("initial") or not (options.confluence_per_minute or options.unique_per_minute)
        target = options.latency_ms == 5 and unlimited
        text = (
            f"initial: {initial.pages_per_s:.0f} pages/s at UNIQUE_CONCURRENCY={options.concurrency} "
            f"(target ≥ 200 with 5 ms latency, no limits)"
        )
        if target:
            verdict(initial.pages_per_s >= 200, text)
        else:
            out.append(f"[n/a] {text}")
    peak = max((p.peak_rss_mb or 0.0) for p in report.phases)
    if peak:
        out.append(f"[info] peak RSS {peak:.0f} MB at {report.wiki['synced_pages']:,} pages (target ≤ 300 MB at 100k)")
    for phase in report.phases:
        paced = phase.paced_s
        if not phase.success or paced is None:
            continue
        text = (
            f"{phase.name}: run wall {phase.wall_s:.1f} s vs requests÷rate {paced:.1f} s "
            f"(first→last Confluence request {phase.confluence_span_s:.1f} s); target: within 10% when the "
            "limiter binds"
        )
        if phase.limiter_binds:
            verdict(abs(phase.wall_s / paced - 1) <= 0.1, text)
        else:
            out.append(f"[n/a] {text}; here it does not bind (requests÷rate < 75% of the run)")
    return out


def _mismatch(phase: PhaseResult) -> str:
    seen_conf = sum(phase.confluence_kinds.values())
    problems = []
    if seen_conf != phase.confluence_total:
        problems.append(f"Confluence {phase.confluence_total} counted vs {seen_conf} received")
    for route, count in phase.unique.items():
        if phase.unique_seen.get(route, 0) != count:
            problems.append(f"{route} {count} counted vs {phase.unique_seen.get(route, 0)} received")
    return "; ".join(problems)


# -- command line -----------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--pages", type=int, default=1000, help="pages a sync ingests (default 1000)")
    parser.add_argument("-s", "--spaces", type=int, default=10, help="spaces (default 10)")
    parser.add_argument("--mode", choices=["ONPREM", "CLOUD"], type=str.upper, default="ONPREM")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="emulator latency per request (default 5)")
    parser.add_argument("--confluence-rpm", type=int, default=0, help="CONFLUENCE_TOKENS_PER_MINUTE (0 = off)")
    parser.add_argument("--unique-rpm", type=int, default=0, help="UNIQUE_TOKENS_PER_MINUTE (0 = off)")
    parser.add_argument(
        "--limits-from",
        choices=["initial", "no-change", "changed"],
        default="initial",
        help="first sync the rate limits apply to (default initial)",
    )
    parser.add_argument("-c", "--concurrency", type=int, default=4, help="UNIQUE_CONCURRENCY (default 4)")
    parser.add_argument("--deep-trees", type=int, default=4, help="deep ai-ingest-all trees (default 4)")
    parser.add_argument("--tree-share", type=float, default=0.2, help="share of pages in deep trees (default 0.2)")
    parser.add_argument("--changed-share", type=float, default=0.01, help="share edited before the last sync")
    parser.add_argument("--single-scope", action="store_true", help="set UNIQUE_SCOPE_ID instead of per-space scopes")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--in-process", action="store_true", help="run the job in this process (no RSS figure)")
    parser.add_argument("--profile", action="store_true", help="cProfile each job process (keeps the .prof files)")
    parser.add_argument("--keep", action="store_true", help="keep DAGSTER_HOME and the run logs")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    options = BenchOptions(
        pages=args.pages,
        spaces=args.spaces,
        mode=args.mode,
        latency_ms=args.latency_ms,
        confluence_per_minute=args.confluence_rpm,
        unique_per_minute=args.unique_rpm,
        limits_from="1% changed" if args.limits_from == "changed" else args.limits_from,
        concurrency=args.concurrency,
        deep_trees=args.deep_trees,
        tree_share=args.tree_share,
        changed_share=args.changed_share,
        single_scope=args.single_scope,
        seed=args.seed,
        isolate=not args.in_process,
        keep_home=args.keep,
        profile=args.profile,
    )
    report = run_benchmark(options, out=sys.stderr)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str), "utf-8")
    return 0 if all(p.success for p in report.phases) and len(report.phases) == len(PHASES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
