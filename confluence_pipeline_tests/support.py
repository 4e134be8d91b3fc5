"""Shared test support: the emulator sandbox, run helpers and exact end-state readers (fixtures: conftest.py)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pytest
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

from confluence_pipeline.config.instances import DEFAULT_INSTANCE
from confluence_pipeline.definitions import build_definitions
from confluence_pipeline.jobs.sync import JOB_NAME as SYNC_JOB_NAME
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.jobs.writers import instance_tags
from confluence_pipeline.resources import resources_from_env
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.http import EmulatorServer, Request, Response
from confluence_sandbox.unique import UniqueEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]
PAT = "pat-Secret-0n-Prem-1234"
PASSWORD = "pw-Secret-Basic-5678"
CLOUD_TOKEN = "cloud-Secret-Token-9012"
ZITADEL_SECRET = "zitadel-Secret-3456"
OAUTH_CLIENT_ID = "svc-sync-oauth-client"
OAUTH_CLIENT_SECRET = "oauth-Secret-Client-7890"
INSTANCE_SETTINGS = {"python_logs": {"managed_python_loggers": ["confluence_pipeline"]}}
"""What the shipped dagster.yaml sets: our module loggers appear in the run's logs."""
# No Retry-After is honoured for longer than 1 s, so the clamp shows in the logged wait instead of stalling
# the suite. The request timeout stays generous except where a test waits for it.
FAST_HTTP = {"HTTP_RETRY_AFTER_MAX_SECONDS": "1"}
JSON = {"Content-Type": "application/json"}


def ephemeral_instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral(settings=INSTANCE_SETTINGS)


@dataclass
class Sandbox:
    confluence: ConfluenceEmulator
    unique: UniqueEmulator
    monkeypatch: pytest.MonkeyPatch
    instance: dg.DagsterInstance
    env: dict[str, str] = field(default_factory=dict)

    def set_env(self, **values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                self.env.pop(name, None)
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.env[name] = value
                self.monkeypatch.setenv(name, value)

    def run_sync(
        self, run_config: dict[str, Any] | None = None, *, expect_success: bool = True
    ) -> dg.ExecuteInProcessResult:
        result = confluence_sync.execute_in_process(
            run_config=run_config or {},
            resources=resources_from_env(self.env),
            instance=self.instance,
            raise_on_error=False,
        )
        if expect_success and not result.success:
            raise AssertionError(f"sync failed: {failure_text(result)}")
        return result

    # -- Unique end state ------------------------------------------------------------------------
    def stored(self) -> dict[str, Any]:
        """Finalized content by key."""
        return {c.key: c for c in self.unique.store.contents.values() if c.finalized_at is not None}

    def all_keys(self) -> set[str]:
        return {c.key for c in self.unique.store.contents.values()}

    def space_prefix(self, key: str) -> str:
        space = self.confluence.wiki.spaces[key]
        return f"{space.id}_{space.key}"

    def key_of(self, page_id: str) -> str:
        page = self.confluence.wiki.pages[page_id]
        return f"{self.space_prefix(page.space_key)}/{page_id}"

    def unique_writes(self) -> list[Any]:
        return [
            r
            for r in self.unique.requests
            if r.method == "PUT" or (r.path.endswith("/graphql") and r.body and b"mutation" in r.body)
        ]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            parts.append(f"[{event.step_key}] {err.message}")
            if err.cause:
                parts.append(f"  cause: {err.cause.message}")
    return "\n".join(parts) or "run failed without a step failure"


def base_env(confluence: ConfluenceEmulator, unique: UniqueEmulator, scope_id: str | None) -> dict[str, str]:
    env = {
        "CONFLUENCE_URL": confluence.base_url,
        "CONFLUENCE_TOKENS_PER_MINUTE": "0",
        "UNIQUE_INGESTION_URL": unique.ingestion_url,
        "UNIQUE_INGESTION_URL_GRAPHQL": unique.graphql_url,
        "UNIQUE_SERVICE_AUTH_MODE": "external",
        "ZITADEL_OAUTH_TOKEN_URL": unique.token_url,
        "ZITADEL_CLIENT_ID": "connector",
        "ZITADEL_CLIENT_SECRET": ZITADEL_SECRET,
        "ZITADEL_PROJECT_ID": "123456",
        "UNIQUE_TOKENS_PER_MINUTE": "0",
        "UNIQUE_SCOPE_ID": scope_id or "",
    }
    if confluence.mode == "ONPREM":
        env.update({"CONFLUENCE_INSTANCE_TYPE": "ONPREM", "CONFLUENCE_PAT": PAT})
    else:
        env.update(
            {
                "CONFLUENCE_INSTANCE_TYPE": "CLOUD",
                "CONFLUENCE_CLOUD_USER": "svc@example.com",
                "CONFLUENCE_CLOUD_TOKEN": CLOUD_TOKEN,
            }
        )
    return env


_ALL_VARS = [
    "CONFLUENCE_INSTANCE_TYPE",
    "CONFLUENCE_URL",
    "CONFLUENCE_PAT",
    "CONFLUENCE_USERNAME",
    "CONFLUENCE_PASSWORD",
    "CONFLUENCE_CLOUD_USER",
    "CONFLUENCE_CLOUD_TOKEN",
    "CONFLUENCE_CLOUD_ID",
    "CONFLUENCE_CLOUD_API_URL",
    "CONFLUENCE_CLIENT_ID",
    "CONFLUENCE_CLIENT_SECRET",
    "CONFLUENCE_OAUTH_TOKEN_URL",
    "CONFLUENCE_OAUTH_SCOPES",
    "CONFLUENCE_TOKENS_PER_MINUTE",
    "INGEST_SINGLE_LABEL",
    "INGEST_ALL_LABEL",
    "CONFLUENCE_ATTACHMENTS",
    "ATTACHMENT_MIME_TYPES",
    "ATTACHMENT_MAX_BYTES",
    "INLINE_IMAGES",
    "INLINE_IMAGE_MAX_BYTES",
    "UNIQUE_INGESTION_URL",
    "UNIQUE_INGESTION_URL_GRAPHQL",
    "UNIQUE_SCOPE_ID",
    "UNIQUE_SCOPE_PATH_TEMPLATE",
    "UNIQUE_SERVICE_AUTH_MODE",
    "UNIQUE_SERVICE_EXTRA_HEADERS",
    "UNIQUE_TOKENS_PER_MINUTE",
    "UNIQUE_CONCURRENCY",
    "SYNC_FAILURE_TOLERANCE",
    "ZITADEL_OAUTH_TOKEN_URL",
    "ZITADEL_CLIENT_ID",
    "ZITADEL_CLIENT_SECRET",
    "ZITADEL_PROJECT_ID",
    "ZITADEL_SERVICE_EXTRA_HEADERS",
    "TEST_MODE",
    "DEBUG_MODE",
    "DEBUG_LOG_FILE",
]


def oauth_env(confluence: ConfluenceEmulator) -> dict[str, str | None]:
    """`Sandbox.set_env` values that switch the connector to the emulator's OAuth service account.

    On Cloud the token endpoint and the API gateway are the emulator (in production: api.atlassian.com).
    """
    env: dict[str, str | None] = {
        "CONFLUENCE_PAT": None,
        "CONFLUENCE_CLOUD_USER": None,
        "CONFLUENCE_CLOUD_TOKEN": None,
        "CONFLUENCE_CLIENT_ID": OAUTH_CLIENT_ID,
        "CONFLUENCE_CLIENT_SECRET": OAUTH_CLIENT_SECRET,
    }
    if confluence.mode == "CLOUD":
        env |= {
            "CONFLUENCE_CLOUD_ID": confluence.cloud_id,
            "CONFLUENCE_CLOUD_API_URL": confluence.gateway_url,
            "CONFLUENCE_OAUTH_TOKEN_URL": f"{confluence.gateway_url}/oauth/token",
        }
    return env


def make_sandbox(
    mode: str, monkeypatch: pytest.MonkeyPatch, *, scope: bool = True, **confluence_kwargs: Any
) -> Iterator[Sandbox]:
    for name in _ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    # Every way to authenticate is set up on the emulator; the environment picks one (a PAT or an API token).
    credentials: dict[str, Any] = {
        "pat": PAT,
        "password": PASSWORD,
        "cloud_token": CLOUD_TOKEN,
        "oauth_client_id": OAUTH_CLIENT_ID,
        "oauth_client_secret": OAUTH_CLIENT_SECRET,
    }
    with (
        ConfluenceEmulator(mode=mode, **{**credentials, **confluence_kwargs}) as c,
        UniqueEmulator(client_secret=ZITADEL_SECRET) as u,
    ):
        scope_id = u.store.add_scope("Confluence KB").id if scope else None
        box = Sandbox(c, u, monkeypatch, ephemeral_instance())
        box.set_env(**base_env(c, u, scope_id))
        yield box


def run_job(box: Sandbox, job: dg.JobDefinition, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        run_config=run_config, resources=resources_from_env(box.env), instance=box.instance, raise_on_error=False
    )


def output_metadata(result: dg.ExecuteInProcessResult, step_key: str) -> dict[str, Any]:
    """The step's output metadata, or its failure metadata when it failed."""
    for event in result.all_events:
        if event.step_key != step_key:
            continue
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
        if event.is_step_failure and event.step_failure_data.user_failure_data is not None:
            return {k: v.value for k, v in event.step_failure_data.user_failure_data.metadata.items()}
    raise AssertionError(f"no output or failure metadata for {step_key}")


def mutations(box: Sandbox, operation: str | None = None) -> list[Any]:
    """GraphQL mutations (optionally of one operation) and PUT uploads Unique received."""
    writes = box.unique_writes()
    if operation is None:
        return writes
    return [w for w in writes if w.body and json.loads(w.body).get("operationName") == operation]


def stored_bytes(dagster_home: Path) -> bytes:
    """Everything an instance under `dagster_home` holds: raw files plus every SQLite value, decompressed.

    Dagster stores snapshots zlib-compressed in SQLite, so a raw byte scan alone would miss a secret there.
    """
    parts: list[bytes] = []
    for path in sorted(p for p in dagster_home.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        parts.append(raw)
        if not raw.startswith(b"SQLite format 3"):
            continue
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        parts.append(_plain_bytes(value))
    return b"\n".join(parts)


def _plain_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value)
        except zlib.error:
            return value
    return str(value).encode()


def fake_run(
    instance: dg.DagsterInstance,
    status: dg.DagsterRunStatus,
    job_name: str = SYNC_JOB_NAME,
    *,
    of_instance: str = DEFAULT_INSTANCE,
) -> dg.DagsterRun:
    """A run of `job_name` in `status`, as another process (a launched run, another CLI call) would leave it."""
    # Queued runs need an origin; a registered location name is the smallest one Dagster accepts.
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("confluence_pipeline"), "__repository__")
    return instance.create_run_for_job(
        job_def=dg.GraphDefinition(name=job_name, node_defs=[]).to_job(),
        status=status,
        tags=instance_tags(of_instance),
        remote_job_origin=origin.get_job_origin(job_name),
    )


@dataclass(frozen=True)
class StoredItem:
    """What a test compares of one content row: finalized or not, title and the exact bytes."""

    finalized: bool
    title: str
    data: bytes | None


def unique_state(box: Sandbox) -> dict[str, StoredItem]:
    """Every content row in Unique (finalized or not) by key."""
    return {c.key: StoredItem(c.finalized_at is not None, c.title, c.data) for c in box.unique.store.contents.values()}


def expected_state(box: Sandbox) -> dict[str, StoredItem]:
    """What a clean sync of the emulator's wiki leaves in Unique, derived from the wiki alone."""
    wiki = box.confluence.wiki
    single = box.env.get("INGEST_SINGLE_LABEL") or "ai-ingest"
    tree = box.env.get("INGEST_ALL_LABEL") or "ai-ingest-all"
    space_types = {"global", "collaboration"} if box.confluence.mode == "CLOUD" else {"global"}
    expected: dict[str, StoredItem] = {}
    for page in wiki:
        space = wiki.spaces.get(page.space_key)
        if page.status != "current" or space is None or space.type not in space_types or not wiki.is_visible(page):
            continue
        under_tree = any(tree in a.labels and a.status == "current" for a in page.ancestors(wiki))
        if single in page.labels or tree in page.labels or under_tree:
            expected[box.key_of(page.id)] = StoredItem(True, page.title, page.body.encode("utf-8"))
    return expected


def prepare_pending_changes(box: Sandbox, pages: int = 4) -> dict[str, StoredItem]:
    """A clean first sync, then wiki changes that a second sync would write (update, new, delete).

    Returns Unique's state after the first sync: what a run that fails before any write must leave.
    """
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    ids = [wiki.add_page("ENG", f"Page {n}", labels=["ai-ingest"], body=f"<p>v1 {n}</p>").id for n in range(pages)]
    box.run_sync()
    before = unique_state(box)
    assert before == expected_state(box)
    wiki.update_page(ids[0], body="<p>v2 changed</p>")
    wiki.remove_label(ids[1], "ai-ingest")
    wiki.add_page("ENG", "Brand new", labels=["ai-ingest"], body="<p>new</p>")
    box.confluence.clear_requests()
    box.unique.clear_requests()
    assert expected_state(box) != before  # the next clean sync would write
    return before


def search_cql(request: Any) -> str:
    return unquote((getattr(request, "query", {}).get("cql") or [""])[0])


def is_body_batch(request: Any) -> bool:
    return "body.storage" in ((getattr(request, "query", {}).get("expand") or [""])[0])


def logged(box: Sandbox, result: dg.ExecuteInProcessResult) -> list[str]:
    """Every log message of the run as the Dagster UI shows it (our module loggers are forwarded there)."""
    return [entry.user_message for entry in box.instance.all_logs(result.run_id)]


# -- two Confluence instances, one Unique -----------------------------------------------------------------------
DC_SERVER_ID = "0d0c5e4e-1111-4a2b-9c3d-aaaaaaaaaaaa"
CLOUD_ID = "c10d0000-2222-4b3c-8d4e-bbbbbbbbbbbb"
DC_MARK = f"confc:data-center:{DC_SERVER_ID}"
CLOUD_MARK = f"confc:cloud:{CLOUD_ID}"
# Variables the instances file refers to by name: the secrets of both instances.
INSTANCE_SECRETS = {"WIKI_DC_PAT": PAT, "WIKI_CLOUD_TOKEN": CLOUD_TOKEN, "UNIQUE_ZITADEL_SECRET": ZITADEL_SECRET}


@dataclass
class TwoInstances:
    """A Data Center and a Cloud emulator synced into one Unique by the instances `wiki_dc` and `wiki_cloud`."""

    dc: ConfluenceEmulator
    cloud: ConfluenceEmulator
    unique: UniqueEmulator
    file: Path
    env: dict[str, str]
    shared_scope: str | None
    """The one scope both instances write to, or None when each space gets a scope of its own."""

    def definitions(self) -> dg.Definitions:
        """The code location as it loads with this environment (CONFLUENCE_INSTANCES_FILE set)."""
        return build_definitions(self.env)

    def marks(self) -> dict[str, str]:
        """Every content key in Unique with the ownership mark its metadata carries."""
        return {c.key: str((c.metadata or {}).get("confluenceInstance")) for c in self.unique.store.contents.values()}


def instances_file(dc: ConfluenceEmulator, cloud: ConfluenceEmulator, unique: UniqueEmulator, scope: str | None) -> str:
    """Both instances with their own credentials (by variable name), sharing the Unique settings."""
    targets = (
        {"wiki_dc": f"UNIQUE_SCOPE_ID: {scope}", "wiki_cloud": f"UNIQUE_SCOPE_ID: {scope}"}
        if scope
        else {
            "wiki_dc": "UNIQUE_SCOPE_PATH_TEMPLATE: /Confluence/DC/{space_key}",
            "wiki_cloud": "UNIQUE_SCOPE_PATH_TEMPLATE: /Confluence/Cloud/{space_key}",
        }
    )
    return f"""\
defaults:
  UNIQUE_INGESTION_URL: {unique.ingestion_url}
  UNIQUE_INGESTION_URL_GRAPHQL: {unique.graphql_url}
  UNIQUE_SERVICE_AUTH_MODE: external
  UNIQUE_TOKENS_PER_MINUTE: 0
  ZITADEL_OAUTH_TOKEN_URL: {unique.token_url}
  ZITADEL_CLIENT_ID: connector
  ZITADEL_PROJECT_ID: 123456
  ZITADEL_CLIENT_SECRET_ENV: UNIQUE_ZITADEL_SECRET
  CONFLUENCE_TOKENS_PER_MINUTE: 0
  HTTP_RETRY_AFTER_MAX_SECONDS: 1
instances:
  - name: wiki_dc
    CONFLUENCE_INSTANCE_TYPE: ONPREM
    CONFLUENCE_URL: {dc.base_url}
    CONFLUENCE_PAT_ENV: WIKI_DC_PAT
    {targets["wiki_dc"]}
  - name: wiki_cloud
    CONFLUENCE_INSTANCE_TYPE: CLOUD
    CONFLUENCE_URL: {cloud.base_url}
    CONFLUENCE_CLOUD_USER: svc@example.com
    CONFLUENCE_CLOUD_TOKEN_ENV: WIKI_CLOUD_TOKEN
    {targets["wiki_cloud"]}
"""


def make_two_instances(
    monkeypatch: pytest.MonkeyPatch, directory: Path, *, shared_scope: bool
) -> Iterator[TwoInstances]:
    """Both emulators and Unique up, the instances file written and CONFLUENCE_INSTANCES_FILE set."""
    for name in _ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    with (
        ConfluenceEmulator("ONPREM", pat=PAT, server_id=DC_SERVER_ID) as dc,
        ConfluenceEmulator("CLOUD", cloud_user="svc@example.com", cloud_token=CLOUD_TOKEN, cloud_id=CLOUD_ID) as cloud,
        UniqueEmulator(client_secret=ZITADEL_SECRET) as unique,
    ):
        scope = unique.store.add_scope("Confluence KB").id if shared_scope else None
        path = directory / "instances.yaml"
        path.write_text(instances_file(dc, cloud, unique, scope), encoding="utf-8")
        env = {"CONFLUENCE_INSTANCES_FILE": str(path), **INSTANCE_SECRETS}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield TwoInstances(dc, cloud, unique, path, env, scope)


# -- alert webhooks ---------------------------------------------------------------------------------------------
HOOK_PATH = "/hooks/T0-hook-Secret-Path"  # chat webhook URLs carry their token in the path


class WebhookReceiver(EmulatorServer):
    """A chat webhook: records what alerts POST, answers with `status`."""

    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.status = 200

    def handle(self, request: Request) -> Response:
        return Response.json({"ok": self.status < 300}, status=self.status)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests if r.method == "POST" and r.path == HOOK_PATH]
