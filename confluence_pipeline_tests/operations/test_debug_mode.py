"""DEBUG_MODE: debug logs of our modules land in DEBUG_LOG_FILE; no secret reaches that file or DAGSTER_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env
from confluence_pipeline_tests.support import PAT, ZITADEL_SECRET, Sandbox, failure_text, stored_bytes

HEADER_SECRET = "hdr-Secret-Api-Key-7788"


def sync(box: Sandbox, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = confluence_sync.execute_in_process(
        resources=resources_from_env(box.env), instance=instance, raise_on_error=False
    )
    assert result.success, failure_text(result)
    return result


def test_debug_log_file_gets_our_debug_lines_and_no_secret_is_stored_anywhere(
    onprem: Sandbox, home: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    dagster_home, instance = home
    log_file = tmp_path / "logs" / "debug.log"
    log_file.parent.mkdir()
    onprem.set_env(
        DEBUG_MODE="true",
        DEBUG_LOG_FILE=str(log_file),
        UNIQUE_SERVICE_EXTRA_HEADERS=json.dumps({"x-api-key": HEADER_SECRET}),
    )
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    wiki.add_page("ENG", "Runbook", labels=["ai-ingest"])

    result = sync(onprem, instance)

    text = log_file.read_text(encoding="utf-8")
    assert " DEBUG confluence_pipeline.clients." in text  # per-request lines are debug-level
    assert "GET content/search" in text and "graphql ContentUpsert" in text
    tokens = list(onprem.unique._tokens)  # the bearer tokens the emulator issued are secrets too
    assert tokens
    secrets = [PAT, ZITADEL_SECRET, HEADER_SECRET, *tokens]
    assert [s for s in secrets if s in text] == []
    stored = stored_bytes(dagster_home)
    assert result.run_id.encode() in stored and b"Discovery: 1 labelled" in stored  # the scan sees the run logs
    assert [s for s in secrets if s.encode() in stored] == []


def test_without_debug_mode_no_file_is_written(
    onprem: Sandbox, home: tuple[Path, dg.DagsterInstance], tmp_path: Path
) -> None:
    log_file = tmp_path / "debug.log"
    onprem.set_env(DEBUG_MODE="false", DEBUG_LOG_FILE=str(log_file))

    sync(onprem, home[1])

    assert not log_file.exists()
