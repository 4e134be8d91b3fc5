"""Scenario fixtures: both emulators on 127.0.0.1, the connector's env pointing at them, a Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest

from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.unique import UniqueEmulator

PAT = "pat-Secret-0n-Prem-1234"
PASSWORD = "pw-Secret-Basic-5678"
CLOUD_TOKEN = "cloud-Secret-Token-9012"
ZITADEL_SECRET = "zitadel-Secret-3456"


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
    "CONFLUENCE_TOKENS_PER_MINUTE",
    "INGEST_SINGLE_LABEL",
    "INGEST_ALL_LABEL",
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


def make_sandbox(
    mode: str, monkeypatch: pytest.MonkeyPatch, *, scope: bool = True, **confluence_kwargs: Any
) -> Iterator[Sandbox]:
    for name in _ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    with (
        ConfluenceEmulator(mode=mode, pat=PAT, password=PASSWORD, cloud_token=CLOUD_TOKEN, **confluence_kwargs) as c,
        UniqueEmulator(client_secret=ZITADEL_SECRET) as u,
    ):
        scope_id = u.store.add_scope("Confluence KB").id if scope else None
        box = Sandbox(c, u, monkeypatch, dg.DagsterInstance.ephemeral())
        box.set_env(**base_env(c, u, scope_id))
        yield box


@pytest.fixture
def onprem(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox("ONPREM", monkeypatch)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox("CLOUD", monkeypatch)


@pytest.fixture(params=["ONPREM", "CLOUD"])
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    yield from make_sandbox(request.param, monkeypatch)
