"""The CLI contract: `dagster job execute … -j confluence_sync` exits 0 on success, non-zero naming a tripped guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from confluence_pipeline_tests.support import Sandbox
from confluence_sandbox.http import Fault

DAGSTER = str(Path(sys.executable).parent / "dagster")


def execute(box: Sandbox, dagster_home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "UNIQUE_", "ZITADEL_"))}
    env.update(box.env)
    env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.run(
        [DAGSTER, "job", "execute", "-m", "confluence_pipeline.definitions", "-j", "confluence_sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_cli_sync_exits_zero_then_second_run_writes_nothing_then_guard_exits_non_zero(
    onprem: Sandbox, tmp_path: Path
) -> None:
    wiki = onprem.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    pages = [wiki.add_page("ENG", f"P{n}", labels=["ai-ingest"]) for n in range(3)]

    first = execute(onprem, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert set(onprem.stored()) == {onprem.key_of(p.id) for p in pages}

    onprem.unique.clear_requests()
    second = execute(onprem, tmp_path)
    assert second.returncode == 0
    assert onprem.unique_writes() == []
    assert "new 0, updated 0, unchanged 3, deleted 0" in second.stdout + second.stderr

    broken = {"newFiles": [], "updatedFiles": [], "deletedFiles": [p.id for p in pages]}
    onprem.unique.faults.add(
        r"/v2/content/file-diff$", Fault(200, {"Content-Type": "application/json"}, json.dumps(broken).encode())
    )
    onprem.unique.clear_requests()
    third = execute(onprem, tmp_path)
    output = third.stdout + third.stderr
    assert third.returncode != 0
    assert "guard full-deletion tripped for space ENG" in output
    assert onprem.unique_writes() == []
