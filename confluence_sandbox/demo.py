"""The sandbox: both emulators seeded with the demo wiki, the real `confluence_sync` job run against them.

`main` is the demo (two syncs with an edit in between, a table per run); `serve` keeps a seeded
sandbox up and writes an env file so that `dagster dev` and `dagster job execute` can use it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import dagster as dg

from confluence_pipeline.config.instances import INSTANCES_FILE_VARIABLE
from confluence_pipeline.jobs.assets import PER_SPACE_KEY
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import (
    ConfluenceResource,
    SyncOptionsResource,
    UniqueResource,
    resources_from_env,
)
from confluence_sandbox.confluence import ConfluenceEmulator, Wiki
from confluence_sandbox.seed import ALL, SINGLE, DemoEdits, apply_demo_edits, seed_demo_wiki
from confluence_sandbox.unique import UniqueEmulator, UniqueStore

SANDBOX_DIR = Path(".sandbox")
DEFAULT_DAGSTER_HOME = SANDBOX_DIR / "dagster_home"
DEFAULT_ENV_FILE = SANDBOX_DIR / "sandbox.env"
DEFAULT_INSTANCES_FILE = SANDBOX_DIR / "instances.yaml"
UI_URL = "http://127.0.0.1:3000"
JOB_NAME = "confluence_sync"
DEMO_PID_TAG = "confluence_sandbox-demo-pid"
COLUMNS = ("discovered", "new", "updated", "unchanged", "deleted", "failed")
ATTACHMENT_COLUMNS = (
    "attachments",
    "attachments_new",
    "attachments_updated",
    "attachments_unchanged",
    "attachments_deleted",
    "attachments_skipped",
    "attachments_failed",
)

# Credentials of the local fakes only; they guard nothing but the emulators on 127.0.0.1.
SANDBOX_PAT = "sandbox-pat"
SANDBOX_CLOUD_USER = "svc@sandbox.example"
SANDBOX_CLOUD_TOKEN = "sandbox-cloud-token"
SANDBOX_ZITADEL_CLIENT_ID = "connector"
SANDBOX_ZITADEL_SECRET = "sandbox-zitadel-secret"
SANDBOX_PROJECT_ID = "123456"
# Generous client-side caps: the production defaults (250 / 100 per minute) would make the demo crawl.
SANDBOX_TOKENS_PER_MINUTE = "6000"
# The Cloud wiki of a two-instance sandbox is the demo wiki again, under ids the Data Center wiki does not use
# (two real instances have different ids, and one Unique holds both).
CLOUD_FIRST_SPACE_ID = 2228225
CLOUD_FIRST_PAGE_ID = 5000000

# A minimal instance config: SQLite storage under this directory and the shipped dagster.yaml's
# one-writer-per-instance run queue limit, so runs launched from the sandbox UI queue as they would in production.
DAGSTER_YAML = """\
# Written by the confluence_pipeline sandbox. Run, event-log and schedule storage: SQLite files here.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: "confluence_pipeline/unique-writer"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
python_logs:
  managed_python_loggers:
    - confluence_pipeline
telemetry:
  enabled: false
"""


# -- the sandbox ---------------------------------------------------------------------------------
@dataclass
class Sandbox:
    """Both emulators, started and seeded, and the connector environment that points at them."""

    mode: str
    confluence: ConfluenceEmulator
    unique: UniqueEmulator

    def env(self, dagster_home: Path | None = None) -> dict[str, str]:
        """Every variable the connector reads, set for this sandbox; DAGSTER_HOME when given."""
        env = {"CONFLUENCE_INSTANCE_TYPE": self.mode, "CONFLUENCE_URL": self.confluence.base_url}
        if self.mode == "ONPREM":
            env["CONFLUENCE_PAT"] = SANDBOX_PAT
        else:
            env.update({"CONFLUENCE_CLOUD_USER": SANDBOX_CLOUD_USER, "CONFLUENCE_CLOUD_TOKEN": SANDBOX_CLOUD_TOKEN})
        env.update(
            {
                "CONFLUENCE_TOKENS_PER_MINUTE": SANDBOX_TOKENS_PER_MINUTE,
                "INGEST_SINGLE_LABEL": SINGLE,
                "INGEST_ALL_LABEL": ALL,
                "UNIQUE_INGESTION_URL": self.unique.ingestion_url,
                "UNIQUE_INGESTION_URL_GRAPHQL": self.unique.graphql_url,
                "UNIQUE_SCOPE_ID": "",
                "UNIQUE_SCOPE_PATH_TEMPLATE": "/Confluence/{space_key}",
                "UNIQUE_SERVICE_AUTH_MODE": "external",
                "UNIQUE_TOKENS_PER_MINUTE": SANDBOX_TOKENS_PER_MINUTE,
                "ZITADEL_OAUTH_TOKEN_URL": self.unique.token_url,
                "ZITADEL_CLIENT_ID": SANDBOX_ZITADEL_CLIENT_ID,
                "ZITADEL_CLIENT_SECRET": SANDBOX_ZITADEL_SECRET,
                "ZITADEL_PROJECT_ID": SANDBOX_PROJECT_ID,
                "TEST_MODE": "false",
                "SYNC_FAILURE_TOLERANCE": "0",
                # The sandbox shows both: attachments as items of their own, images inlined in bodies.
                "CONFLUENCE_ATTACHMENTS": "true",
                "INLINE_IMAGES": "true",
            }
        )
        # A proxy configured in the user's shell must not swallow calls to the local emulators.
        no_proxy = _with_loopback(os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
        env.update({"NO_PROXY": no_proxy, "no_proxy": no_proxy})
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        return env


def sandbox_unique(port: int = 0) -> UniqueEmulator:
    """The sandbox's Unique: external auth with the sandbox's Zitadel client."""
    return UniqueEmulator(
        client_id=SANDBOX_ZITADEL_CLIENT_ID,
        client_secret=SANDBOX_ZITADEL_SECRET,
        project_id=SANDBOX_PROJECT_ID,
        auth_mode="external",
        port=port,
    )


@contextlib.contextmanager
def running_sandbox(mode: str, *, confluence_port: int = 0, unique_port: int = 0) -> Iterator[Sandbox]:
    """Start both emulators on 127.0.0.1 (port 0 = ephemeral), the wiki seeded; stop them on exit."""
    mode = mode.upper()
    wiki = Wiki()
    seed_demo_wiki(wiki)
    with (
        ConfluenceEmulator(
            mode,  # type: ignore[arg-type]
            pat=SANDBOX_PAT,
            cloud_user=SANDBOX_CLOUD_USER,
            cloud_token=SANDBOX_CLOUD_TOKEN,
            port=confluence_port,
            wiki=wiki,
        ) as confluence,
        sandbox_unique(unique_port) as unique,
    ):
        yield Sandbox(mode, confluence, unique)


@dataclass
class InstancesSandbox:
    """A Data Center and a Cloud emulator, both seeded, and one Unique: the instances `wiki_dc` and `wiki_cloud`."""

    dc: ConfluenceEmulator
    cloud: ConfluenceEmulator
    unique: UniqueEmulator

    def instances_file(self) -> str:
        """The instances file for both: secrets only as names of the variables `env` sets."""
        return f"""\
# Written by the confluence_pipeline sandbox (python -m confluence_sandbox serve --instances 2).
defaults:
  INGEST_SINGLE_LABEL: {SINGLE}
  INGEST_ALL_LABEL: {ALL}
  CONFLUENCE_TOKENS_PER_MINUTE: {SANDBOX_TOKENS_PER_MINUTE}
  UNIQUE_INGESTION_URL: {self.unique.ingestion_url}
  UNIQUE_INGESTION_URL_GRAPHQL: {self.unique.graphql_url}
  UNIQUE_SERVICE_AUTH_MODE: external
  UNIQUE_TOKENS_PER_MINUTE: {SANDBOX_TOKENS_PER_MINUTE}
  ZITADEL_OAUTH_TOKEN_URL: {self.unique.token_url}
  ZITADEL_CLIENT_ID: {SANDBOX_ZITADEL_CLIENT_ID}
  ZITADEL_PROJECT_ID: {SANDBOX_PROJECT_ID}
  ZITADEL_CLIENT_SECRET_ENV: SANDBOX_ZITADEL_SECRET
instances:
  - name: wiki_dc
    CONFLUENCE_INSTANCE_TYPE: ONPREM
    CONFLUENCE_URL: {self.dc.base_url}
    CONFLUENCE_PAT_ENV: SANDBOX_DC_PAT
    UNIQUE_SCOPE_PATH_TEMPLATE: /Confluence/DC/{{space_key}}
  - name: wiki_cloud
    CONFLUENCE_INSTANCE_TYPE: CLOUD
    CONFLUENCE_URL: {self.cloud.base_url}
    CONFLUENCE_CLOUD_USER: {SANDBOX_CLOUD_USER}
    CONFLUENCE_CLOUD_TOKEN_ENV: SANDBOX_CLOUD_TOKEN
    UNIQUE_SCOPE_PATH_TEMPLATE: /Confluence/Cloud/{{space_key}}
"""

    def env(self, instances_file: Path, dagster_home: Path | None = None) -> dict[str, str]:
        """CONFLUENCE_INSTANCES_FILE and the secrets it names; DAGSTER_HOME when given."""
        no_proxy = _with_loopback(os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
        env = {
            INSTANCES_FILE_VARIABLE: str(instances_file.expanduser().resolve()),
            "SANDBOX_DC_PAT": SANDBOX_PAT,
            "SANDBOX_CLOUD_TOKEN": SANDBOX_CLOUD_TOKEN,
            "SANDBOX_ZITADEL_SECRET": SANDBOX_ZITADEL_SECRET,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        return env


@contextlib.contextmanager
def running_instances(*, dc_port: int = 0, cloud_port: int = 0, unique_port: int = 0) -> Iterator[InstancesSandbox]:
    """Both Confluence emulators and one Unique on 127.0.0.1 (port 0 = ephemeral), both wikis seeded."""
    dc_wiki = Wiki()
    seed_demo_wiki(dc_wiki)
    cloud_wiki = Wiki(first_space_id=CLOUD_FIRST_SPACE_ID, first_page_id=CLOUD_FIRST_PAGE_ID)
    seed_demo_wiki(cloud_wiki)
    with (
        ConfluenceEmulator("ONPREM", pat=SANDBOX_PAT, port=dc_port, wiki=dc_wiki) as dc,
        ConfluenceEmulator(
            "CLOUD", cloud_user=SANDBOX_CLOUD_USER, cloud_token=SANDBOX_CLOUD_TOKEN, port=cloud_port, wiki=cloud_wiki
        ) as cloud,
        sandbox_unique(unique_port) as unique,
    ):
        yield InstancesSandbox(dc, cloud, unique)


def write_instances_file(path: Path, text: str) -> None:
    """Written before the env file that names it, so the env file's appearance still means "ready"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def prepare_dagster_home(path: Path) -> Path:
    """Create the sandbox's persistent Dagster instance directory (with a dagster.yaml) if needed."""
    home = path.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = not config.exists() or config.read_text(encoding="utf-8").startswith("# Written by the confluence_pipeline")
    if ours and (not config.exists() or config.read_text(encoding="utf-8") != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    return home


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """`export NAME='value'` lines, written atomically (the file's appearance means the sandbox is up)."""
    lines = [
        "# Connector settings for the local sandbox (python -m confluence_sandbox serve).",
        "# Load into a shell with: set -a; . " + shlex.quote(str(path)) + "; set +a",
        "# The credentials below are the emulators' own fake ones.",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    tmp.replace(path)


def _with_loopback(no_proxy: str) -> str:
    entries = [e.strip() for e in no_proxy.split(",") if e.strip()]
    return ",".join(dict.fromkeys(["127.0.0.1", "localhost", *entries]))


@contextlib.contextmanager
def _connector_environment(env: Mapping[str, str]) -> Iterator[None]:
    """The job reads its settings from os.environ (dagster.EnvVar): set exactly the sandbox's, restore after.

    Connector variables already in the user's shell (a real CONFLUENCE_URL, TEST_MODE, …) are hidden
    for the duration, so the demo can never talk to anything but its emulators.
    """
    names = {
        *ConfluenceResource.variable_names(),
        *UniqueResource.variable_names(),
        *SyncOptionsResource.variable_names(),
        *env,
    }
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(env)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- one sync run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredItem:
    title: str
    space_prefix: str
    scope_path: str
    finalized_at: datetime | None
    attachment: bool = False  # an attachment's item (`<pageId>::<attachmentId>`), not a page's
    inlined_images: int = 0  # `<img src="data:…">` elements in a page's body


@dataclass
class SyncRun:
    """What one `confluence_sync` run reported (per space, from its observation) and what Unique holds."""

    number: int
    run_id: str
    success: bool
    seconds: float
    per_space: dict[str, dict[str, int]] = field(default_factory=dict)
    attachments_per_space: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_attachments: str = ""
    failure: str = ""
    before: dict[str, StoredItem] = field(default_factory=dict)
    after: dict[str, StoredItem] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {name: sum(counts.get(name, 0) for counts in self.per_space.values()) for name in COLUMNS}

    def attachment_totals(self) -> dict[str, int]:
        spaces = self.attachments_per_space.values()
        return {name: sum(counts.get(name, 0) for counts in spaces) for name in ATTACHMENT_COLUMNS}


def _unique_snapshot(store: UniqueStore) -> dict[str, StoredItem]:
    """Finalized content by key (what a Unique user would find)."""
    with store.lock:
        items: dict[str, StoredItem] = {}
        for content in store.contents.values():
            if content.finalized_at is None:
                continue
            scope = store.scope_path(content.owner_id) if content.owner_id in store.scopes else "?"
            prefix = content.key.split("/", 1)[0]
            is_attachment = "::" in content.key.rsplit("/", 1)[-1]
            inlined = 0 if is_attachment or content.data is None else content.data.count(b'<img src="data:')
            items[content.key] = StoredItem(content.title, prefix, scope, content.finalized_at, is_attachment, inlined)
        return items


def release_stale_demo_runs(instance: dg.DagsterInstance) -> None:
    """A demo killed mid-run leaves its run "started" forever, and the job refuses to run next to it."""
    in_progress = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for record in instance.get_run_records(dg.RunsFilter(job_name=JOB_NAME, statuses=in_progress)):
        pid = record.dagster_run.tags.get(DEMO_PID_TAG, "")
        if pid.isdigit() and not _process_alive(int(pid)):
            instance.report_run_canceled(record.dagster_run, message="Left behind by an interrupted sandbox demo.")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_sync(sandbox: Sandbox, instance: dg.DagsterInstance, number: int, log: TextIO) -> SyncRun:
    """Run the real job in this process against the sandbox; Dagster's console log goes to `log`."""
    env = sandbox.env()
    before = _unique_snapshot(sandbox.unique.store)
    started = time.monotonic()
    with _connector_environment(env), contextlib.redirect_stderr(log):
        result = confluence_sync.execute_in_process(
            resources=resources_from_env(env),
            instance=instance,
            tags={DEMO_PID_TAG: str(os.getpid())},
            raise_on_error=False,
        )
    run = SyncRun(number, result.run_id, result.success, time.monotonic() - started, before=before)
    for event in result.get_asset_observation_events():  # one per successful sync: the instance's asset
        rows = event.asset_observation_data.asset_observation.metadata[PER_SPACE_KEY].value
        for row in rows:  # type: ignore[union-attr]
            key = str(row["space_key"])
            run.per_space[key] = {name: int(row.get(name, 0)) for name in COLUMNS}
            run.attachments_per_space[key] = {name: int(row.get(name, 0)) for name in ATTACHMENT_COLUMNS}
    for event in result.all_events:
        if event.step_key == "summarize_sync" and event.event_type_value == "STEP_OUTPUT":
            skipped = event.step_output_data.metadata.get("skipped_attachments")
            run.skipped_attachments = str(skipped.value) if skipped is not None else ""
    if not result.success:
        run.failure = _failure_text(result)
    run.after = _unique_snapshot(sandbox.unique.store)
    return run


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    lines: list[str] = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            lines.append(f"[{event.step_key}] {event.step_failure_data.error.message.strip()}")
    return "\n".join(lines) or "the run failed without a step failure (see the log)"


# -- the demo ------------------------------------------------------------------------------------
@dataclass
class DemoOutcome:
    mode: str
    dagster_home: Path
    wiki: Wiki
    store: UniqueStore
    runs: list[SyncRun]
    edits: DemoEdits | None

    @property
    def success(self) -> bool:
        return len(self.runs) == 2 and all(run.success for run in self.runs)


def run_demo(mode: str, *, dagster_home: Path, out: TextIO, log_path: Path | None = None) -> DemoOutcome:
    """Seed, sync, show what landed; edit, sync again, show the delta; say how to open the UI."""
    home = prepare_dagster_home(dagster_home)
    log_path = log_path or home.parent / "demo.log"
    mode = mode.upper()
    with running_sandbox(mode) as sandbox, log_path.open("w", encoding="utf-8") as log:
        wiki = sandbox.confluence.wiki
        _print_intro(out, sandbox, home)
        outcome = DemoOutcome(mode, home, wiki, sandbox.unique.store, [], None)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            release_stale_demo_runs(instance)
            first = run_sync(sandbox, instance, 1, log)
            outcome.runs.append(first)
            _print_run(out, first, "first sync: everything labelled is new")
            if not first.success:
                _print_failure(out, first, log_path)
                return outcome
            _print_landed(out, wiki, first)
            edits = apply_demo_edits(wiki)
            outcome.edits = edits
            print(
                f"\nEditing the wiki: new version of {edits.updated.space_key} “{edits.updated.title}” "
                f"(v{edits.updated.version}) and of its attachment “{edits.new_version.title}” "
                f"(v{edits.new_version.version}); label '{edits.removed_label}' removed from "
                f"{edits.unlabelled.space_key} “{edits.unlabelled.title}”.",
                file=out,
            )
            second = run_sync(sandbox, instance, 2, log)
            outcome.runs.append(second)
            _print_run(out, second, "after the edit: only the delta is written")
            if not second.success:
                _print_failure(out, second, log_path)
                return outcome
            _print_delta(out, second)
        _print_next_steps(out, log_path)
        return outcome


def _print_intro(out: TextIO, sandbox: Sandbox, home: Path) -> None:
    wiki = sandbox.confluence.wiki
    spaces = ", ".join(f"{s.key} ({s.type})" for s in wiki.spaces.values())
    print(f"Confluence sandbox demo ({sandbox.mode})", file=out)
    print(
        f"  Confluence emulator  {sandbox.confluence.base_url}  spaces: {spaces}; "
        f"{len(wiki.pages)} pages and blog posts",
        file=out,
    )
    print(f"  Unique emulator      {sandbox.unique.url}  one scope per space: /Confluence/<space key>", file=out)
    print(f"  Dagster instance     {home}", file=out)


def _print_run(out: TextIO, run: SyncRun, caption: str) -> None:
    state = "SUCCESS" if run.success else "FAILURE"
    print(f"\nRun {run.number} ({caption}): {state} in {run.seconds:.1f} s, run id {run.run_id}", file=out)
    if not run.per_space:
        return
    in_unique: dict[str, int] = {}
    files_in_unique: dict[str, int] = {}
    scopes: dict[str, str] = {}
    for item in run.after.values():
        key = item.space_prefix.split("_", 1)[-1]
        counter = files_in_unique if item.attachment else in_unique
        counter[key] = counter.get(key, 0) + 1
        scopes.setdefault(key, item.scope_path)
    rows = [
        [space, scopes.get(space, "-"), *(str(counts[c]) for c in COLUMNS), str(in_unique.get(space, 0))]
        for space, counts in sorted(run.per_space.items())
    ]
    totals = run.totals()
    rows.append(["total", "", *(str(totals[c]) for c in COLUMNS), str(sum(in_unique.values()))])
    _print_table(out, ["space", "Unique scope", *COLUMNS, "in Unique"], rows)
    if not any(run.attachment_totals().values()):
        return
    print("  Attachments:", file=out)
    names = [name.removeprefix("attachments_") for name in ATTACHMENT_COLUMNS[1:]]
    file_rows = [
        [space, *(str(counts[c]) for c in ATTACHMENT_COLUMNS), str(files_in_unique.get(space, 0))]
        for space, counts in sorted(run.attachments_per_space.items())
    ]
    file_totals = run.attachment_totals()
    file_rows.append(["total", *(str(file_totals[c]) for c in ATTACHMENT_COLUMNS), str(sum(files_in_unique.values()))])
    _print_table(out, ["space", "attachments", *names, "in Unique"], file_rows)


def _print_table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    text_columns = 2 if header[1] == "Unique scope" else 1
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:text_columns], widths, strict=False)]
        cells += [cell.rjust(width) for cell, width in zip(row[text_columns:], widths[text_columns:], strict=True)]
        print("  " + "  ".join(cells).rstrip(), file=out)


def _print_landed(out: TextIO, wiki: Wiki, run: SyncRun) -> None:
    by_space: dict[str, list[str]] = {}
    for key, item in sorted(run.after.items()):
        if item.attachment:
            continue
        page = wiki.pages.get(key.rsplit("/", 1)[-1])
        by_space.setdefault(page.space_key if page else item.space_prefix, []).append(item.title)
    print("\nIn Unique now, for example:", file=out)
    for space, titles in sorted(by_space.items()):
        more = f" … and {len(titles) - 3} more" if len(titles) > 3 else ""
        print(f"  {space}: " + ", ".join(f"“{t}”" for t in titles[:3]) + more, file=out)
    files = []
    for key, item in sorted(run.after.items()):
        if item.attachment:
            page = wiki.pages.get(key.rsplit("/", 1)[-1].split("::", 1)[0])
            files.append(f"“{item.title}” (on “{page.title if page else '?'}”)")
    if files:
        print("Attachments in Unique, each an item of its own: " + ", ".join(files), file=out)
    inlined = [item for item in run.after.values() if item.inlined_images]
    if inlined:
        shown = ", ".join(f"“{item.title}” ({item.inlined_images})" for item in sorted(inlined, key=lambda i: i.title))
        print(f"Images inlined in page bodies as data: URIs: {shown}", file=out)
    if run.skipped_attachments:
        print("Attachments skipped, with the reason:", file=out)
        for line in run.skipped_attachments.splitlines():
            print(f"  {line.removeprefix('- ')}", file=out)
    reasons = _not_synced(wiki, {key.rsplit("/", 1)[-1] for key in run.after})
    if reasons:
        print("Not synced, as the rules say: " + "; ".join(f"{n} {why}" for why, n in reasons.items()), file=out)


def _not_synced(wiki: Wiki, stored_ids: set[str]) -> dict[str, int]:
    """Why each page that is not in Unique stayed out (first matching reason)."""
    reasons: dict[str, int] = {}
    for page in wiki:
        if page.id in stored_ids:
            continue
        space = wiki.spaces[page.space_key]
        if space.type == "personal":
            why = f"in personal space {space.key}"
        elif page.status != "current":
            why = "in the trash"
        elif not wiki.is_visible(page):
            why = "hidden from the service user"
        else:
            why = "without a sync label"
        reasons[why] = reasons.get(why, 0) + 1
    return reasons


def _print_delta(out: TextIO, run: SyncRun) -> None:
    updated = [
        item
        for key, item in run.after.items()
        if key in run.before and item.finalized_at != run.before[key].finalized_at
    ]
    added = [item for key, item in run.after.items() if key not in run.before]
    deleted = [item for key, item in run.before.items() if key not in run.after]
    for verb, items in (("re-uploaded", updated), ("added", added), ("deleted", deleted)):
        for item in items:
            what = "attachment " if item.attachment else ""
            print(f"  {verb}: {what}“{item.title}” ({item.scope_path})", file=out)
    totals = run.totals()
    files = run.attachment_totals()
    print(
        f"  Unique writes: {totals['new']} new, {totals['updated']} updated, {totals['deleted']} deleted pages and "
        f"{files['attachments_new']} new, {files['attachments_updated']} updated, {files['attachments_deleted']} "
        f"deleted attachments; {totals['unchanged']} unchanged pages and {files['attachments_unchanged']} unchanged "
        "attachments cost no upload and no download.",
        file=out,
    )


def _print_failure(out: TextIO, run: SyncRun, log_path: Path) -> None:
    print("\nThe sync failed:", file=out)
    for line in run.failure.splitlines():
        print(f"  {line}", file=out)
    print(f"Dagster's full log of this demo: {log_path}", file=out)


def _bin(command: str) -> str:
    """`command` as the reader can run it: through this interpreter's bin directory (the venv's)."""
    folder = Path(sys.executable).parent
    try:
        shown = folder.relative_to(Path.cwd())
    except ValueError:
        shown = folder
    return f"{shown}/{command}"


def _print_next_steps(out: TextIO, log_path: Path) -> None:
    print(
        "\nOpen the Dagster UI on the same sandbox (this demo's runs are in its history):\n"
        f"  terminal 1:  {_bin('python')} -m confluence_sandbox serve\n"
        f"  terminal 2:  set -a; . {DEFAULT_ENV_FILE}; set +a; {_bin('dagster')} dev\n"
        f"  then open {UI_URL} → Jobs → {JOB_NAME} → Launchpad → Launch run\n"
        f"  or, from terminal 2: {_bin('dagster')} job execute -m confluence_pipeline.definitions -j {JOB_NAME}\n"
        f"Dagster's full log of this demo: {log_path}",
        file=out,
    )


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m confluence_sandbox demo",
        description="Run the real confluence_sync job twice against a seeded local Confluence and Unique.",
    )
    parser.add_argument("--mode", type=str.upper, choices=["ONPREM", "CLOUD"], default="ONPREM")
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=DEFAULT_DAGSTER_HOME,
        help=f"persistent Dagster instance directory (default {DEFAULT_DAGSTER_HOME})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `demo` command (also the `confluence-sandbox` console script). Exit code 1 when a run failed."""
    args = demo_parser().parse_args(argv)
    outcome = run_demo(args.mode, dagster_home=args.dagster_home, out=sys.stdout)
    sys.stdout.flush()
    return 0 if outcome.success else 1


# -- serve ---------------------------------------------------------------------------------------
def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m confluence_sandbox serve",
        description="Keep a seeded Confluence and Unique emulator running and write the connector's env file.",
    )
    parser.add_argument("--mode", type=str.upper, choices=["ONPREM", "CLOUD"], default="ONPREM")
    parser.add_argument(
        "--instances",
        type=int,
        choices=[1, 2],
        default=1,
        help="2: a Data Center and a Cloud Confluence into one Unique, configured by an instances file (default 1)",
    )
    parser.add_argument("--confluence-port", type=int, default=8090, help="0 = any free port (default 8090)")
    parser.add_argument(
        "--cloud-port", type=int, default=8092, help="with --instances 2: the Cloud Confluence (default 8092)"
    )
    parser.add_argument("--unique-port", type=int, default=8091, help="0 = any free port (default 8091)")
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE, help=f"default {DEFAULT_ENV_FILE}")
    parser.add_argument(
        "--instances-file",
        type=Path,
        default=DEFAULT_INSTANCES_FILE,
        help=f"with --instances 2: where the instances file goes (default {DEFAULT_INSTANCES_FILE})",
    )
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=DEFAULT_DAGSTER_HOME,
        help=f"DAGSTER_HOME to write (default {DEFAULT_DAGSTER_HOME})",
    )
    return parser


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM (what `kill` and process managers send) both end `serve` cleanly."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; the env file appears once both emulators answer."""
    args = serve_parser().parse_args(argv)
    home = prepare_dagster_home(args.dagster_home)
    if args.instances == 2:
        return _serve_instances(args, home)
    with contextlib.ExitStack() as stack:
        try:
            sandbox = stack.enter_context(
                running_sandbox(args.mode, confluence_port=args.confluence_port, unique_port=args.unique_port)
            )
        except OSError as exc:
            print(
                f"Cannot start the sandbox: {exc} (choose ports with --confluence-port/--unique-port)", file=sys.stderr
            )
            return 2
        stop = stack.enter_context(_stop_on_signals())
        write_env_file(args.env_file, sandbox.env(home))
        wiki = sandbox.confluence.wiki
        print(
            f"Confluence emulator ({sandbox.mode}) {sandbox.confluence.base_url}: "
            f"{len(wiki.spaces)} spaces, {len(wiki.pages)} pages\n"
            f"Unique emulator {sandbox.unique.url}\n"
            f"Connector settings written to {args.env_file} (DAGSTER_HOME={home})\n"
            "In another terminal, in the repository root:\n"
            f"  set -a; . {args.env_file}; set +a\n"
            f"  {_bin('dagster')} dev                      # UI on {UI_URL}\n"
            f"  {_bin('dagster')} job execute -m confluence_pipeline.definitions -j {JOB_NAME}\n"
            "Ctrl-C stops the sandbox (its state lives in memory only).",
            flush=True,
        )
        stop.wait()
    print("Sandbox stopped.", flush=True)
    return 0


def _serve_instances(args: argparse.Namespace, home: Path) -> int:
    with contextlib.ExitStack() as stack:
        try:
            sandbox = stack.enter_context(
                running_instances(
                    dc_port=args.confluence_port, cloud_port=args.cloud_port, unique_port=args.unique_port
                )
            )
        except OSError as exc:
            print(
                f"Cannot start the sandbox: {exc} (choose ports with --confluence-port/--cloud-port/--unique-port)",
                file=sys.stderr,
            )
            return 2
        stop = stack.enter_context(_stop_on_signals())
        write_instances_file(args.instances_file, sandbox.instances_file())
        write_env_file(args.env_file, sandbox.env(args.instances_file, home))
        print(
            f"Confluence Data Center emulator {sandbox.dc.base_url} (instance wiki_dc)\n"
            f"Confluence Cloud emulator {sandbox.cloud.base_url} (instance wiki_cloud)\n"
            f"Unique emulator {sandbox.unique.url}\n"
            f"Instances file {args.instances_file}; its secrets and {INSTANCES_FILE_VARIABLE} in {args.env_file} "
            f"(DAGSTER_HOME={home})\n"
            "In another terminal, in the repository root:\n"
            f"  set -a; . {args.env_file}; set +a\n"
            f"  {_bin('dagster')} dev                      # UI on {UI_URL}: Jobs → confluence_sync__wiki_dc, ...\n"
            f"  {_bin('dagster')} job execute -m confluence_pipeline.definitions -j confluence_sync__wiki_cloud\n"
            "Ctrl-C stops the sandbox (its state lives in memory only).",
            flush=True,
        )
        stop.wait()
    print("Sandbox stopped.", flush=True)
    return 0
