"""The sandbox demo runs the real sync against the seeded emulators and reports it truthfully; `serve` is usable."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from confluence_pipeline.config.instances import INSTANCES_FILE_VARIABLE, load_instances
from confluence_pipeline.config.settings import load_settings
from confluence_pipeline.definitions import build_definitions
from confluence_pipeline.jobs.assets import PER_SPACE_KEY
from confluence_sandbox import demo
from confluence_sandbox.confluence import Wiki
from confluence_sandbox.seed import ALL, SINGLE, apply_demo_edits, seed_demo_wiki

REPO_ROOT = Path(__file__).resolve().parents[1]
COUNT_COLUMNS = ("discovered", "new", "updated", "unchanged", "deleted", "failed", "in_unique")
FILE_COLUMNS = ("attachments", "new", "updated", "unchanged", "deleted", "skipped", "failed", "in_unique")
SYNCED_TYPES = {"application/pdf", "text/plain", "text/csv", "image/png"}  # in the default ATTACHMENT_MIME_TYPES


# -- what the seed should produce, derived from the wiki model by the sync's rules ---------------
def seeded_wiki() -> Wiki:
    wiki = Wiki()
    seed_demo_wiki(wiki)
    return wiki


def expected_synced(wiki: Wiki, mode: str) -> dict[str, set[str]]:
    """Page ids per space key a sync must hold in Unique (labelled, or below a subtree label), from the wiki."""
    space_types = {"global", "collaboration"} if mode == "CLOUD" else {"global"}

    def eligible(page_id: str) -> bool:
        page = wiki.pages[page_id]
        return page.status == "current" and wiki.is_visible(page) and wiki.spaces[page.space_key].type in space_types

    chosen = {p.id for p in wiki if eligible(p.id) and p.labels & {SINGLE, ALL}}
    for root in [p for p in wiki if eligible(p.id) and ALL in p.labels]:
        chosen |= {d for d in wiki.descendant_ids(root.id) if eligible(d)}
    by_space: dict[str, set[str]] = {}
    for page_id in chosen:
        by_space.setdefault(wiki.pages[page_id].space_key, set()).add(page_id)
    return by_space


def expected_keys(wiki: Wiki, synced: Mapping[str, set[str]]) -> set[str]:
    """Keys of the synced pages and of their attachments of an allowed type."""
    keys = {f"{wiki.spaces[key].id}_{key}/{page_id}" for key, ids in synced.items() for page_id in ids}
    for key, ids in synced.items():
        for page_id in ids:
            for attachment in wiki.attachments_of(page_id):
                if attachment.media_type in SYNCED_TYPES:
                    keys.add(f"{wiki.spaces[key].id}_{key}/{page_id}::{attachment.id}")
    return keys


def expected_files(wiki: Wiki, synced: Mapping[str, set[str]]) -> dict[str, tuple[int, int]]:
    """Per space: the current attachments of its synced pages, and how many of them the sync skips by type."""
    files: dict[str, tuple[int, int]] = {}
    for key, ids in synced.items():
        found = [a for page_id in ids for a in wiki.attachments_of(page_id)]
        files[key] = (len(found), sum(1 for a in found if a.media_type not in SYNCED_TYPES))
    return files


def parse_run_tables(text: str) -> list[dict[str, dict[str, int]]]:
    """The per-space rows of each "Run N" table the demo prints (the total row excluded)."""
    tables: list[dict[str, dict[str, int]]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not re.match(r"Run \d+ ", line):
            continue
        rows: dict[str, dict[str, int]] = {}
        assert lines[index + 1].split()[:2] == ["space", "Unique"], lines[index + 1]
        for row in lines[index + 2 :]:
            cells = row.split()
            if not cells or cells[0] == "total":
                break
            space, scope, *numbers = cells
            assert scope == f"/Confluence/{space}"
            rows[space] = dict(zip(COUNT_COLUMNS, map(int, numbers), strict=True))
        tables.append(rows)
    return tables


def parse_attachment_tables(text: str) -> list[dict[str, dict[str, int]]]:
    """The per-space rows of each run's attachment table (the total row excluded)."""
    tables: list[dict[str, dict[str, int]]] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != "Attachments:":
            continue
        assert lines[index + 1].split()[:2] == ["space", "attachments"], lines[index + 1]
        rows: dict[str, dict[str, int]] = {}
        for row in lines[index + 2 :]:
            cells = row.split()
            if not cells or cells[0] == "total":
                break
            space, *numbers = cells
            rows[space] = dict(zip(FILE_COLUMNS, map(int, numbers), strict=True))
        tables.append(rows)
    return tables


def sandbox_runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name="confluence_sync"))]


# -- demo ----------------------------------------------------------------------------------------
def test_demo_syncs_the_seed_then_exactly_the_edit_and_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    outcomes: list[demo.DemoOutcome] = []
    real_run_demo = demo.run_demo

    def keep_outcome(*args: Any, **kwargs: Any) -> demo.DemoOutcome:
        outcomes.append(real_run_demo(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(demo, "run_demo", keep_outcome)

    assert demo.main(["--mode", "ONPREM", "--dagster-home", str(home)]) == 0

    out = capsys.readouterr().out
    (outcome,) = outcomes
    first_table, second_table = parse_run_tables(out)
    first_files, second_files = parse_attachment_tables(out)
    first_run, second_run = outcome.runs
    wiki = seeded_wiki()
    before = expected_synced(wiki, "ONPREM")
    files_before = expected_files(wiki, before)
    edits = apply_demo_edits(wiki)
    after = expected_synced(wiki, "ONPREM")
    files_after = expected_files(wiki, after)
    updated_space, deleted_space = edits.updated.space_key, edits.unlabelled.space_key
    assert updated_space != deleted_space
    assert len(after[deleted_space]) == len(before[deleted_space]) - 1

    # Run 1: every expected page new, per space, as printed; the personal space never shows up.
    assert set(first_table) == set(before) and "~jdoe" not in first_table
    for space, ids in before.items():
        n = len(ids)
        zero = {"updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
        assert first_table[space] == {"discovered": n, "new": n, **zero, "in_unique": n}, space
    # Attachments of synced pages arrive as items of their own; a type outside the list is skipped.
    assert set(first_files) == set(before)
    for space, (total, skipped) in files_before.items():
        synced = total - skipped
        zero = {"updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
        expected_row = {"attachments": total, "new": synced, "skipped": skipped, **zero, "in_unique": synced}
        assert first_files[space] == expected_row, space
    assert sum(skipped for _, skipped in files_before.values()) == 1
    assert "forms-archive.zip" in out and "type application/zip not in ATTACHMENT_MIME_TYPES" in out
    assert set(first_run.after) == expected_keys(seeded_wiki(), before)
    # Images are inlined: the architecture page's own, and the same image in a child page's body.
    inlined = {item.title: item.inlined_images for item in first_run.after.values() if item.inlined_images}
    assert inlined == {"Architecture Overview": 1, "Service Boundaries": 1}

    # Run 2: exactly the edit — one page re-uploaded, one deleted, nothing else written.
    assert set(second_table) == set(before)
    for space, ids in after.items():
        updated = int(space == updated_space)
        deleted = int(space == deleted_space)
        assert second_table[space] == {
            "discovered": len(ids),
            "new": 0,
            "updated": updated,
            "unchanged": len(ids) - updated,
            "deleted": deleted,
            "failed": 0,
            "in_unique": len(ids),
        }, space
    for space, (total, skipped) in files_after.items():
        updated = int(space == updated_space)
        deleted = len(wiki.attachments_of(edits.unlabelled.id)) if space == deleted_space else 0
        synced = total - skipped
        assert second_files[space] == {
            "attachments": total,
            "new": 0,
            "updated": updated,
            "unchanged": synced - updated,
            "deleted": deleted,
            "skipped": skipped,
            "failed": 0,
            "in_unique": synced,
        }, space
    assert set(second_run.after) == expected_keys(wiki, after)
    assert f"re-uploaded: “{edits.updated.title}” (/Confluence/{updated_space})" in out
    assert f"re-uploaded: attachment “{edits.new_version.title}” (/Confluence/{updated_space})" in out
    assert f"deleted: “{edits.unlabelled.title}” (/Confluence/{deleted_space})" in out

    # Unique holds nothing from the personal space, nothing unlabelled, and the edited page's new body.
    stored = {c.key: c for c in outcome.store.contents.values()}
    stored_ids = {key.rsplit("/", 1)[-1] for key in stored}
    personal = {p.id for p in outcome.wiki if outcome.wiki.spaces[p.space_key].type == "personal"}
    assert personal and not stored_ids & personal
    under_all = {d for p in outcome.wiki if ALL in p.labels for d in outcome.wiki.descendant_ids(p.id)}
    unlabelled = {p.id for p in outcome.wiki if not p.labels and p.id not in under_all}
    assert unlabelled and not stored_ids & unlabelled
    page = outcome.wiki.pages[edits.updated.id]
    (content,) = (c for c in stored.values() if c.key.endswith(f"/{page.id}"))
    assert content.data == page.body.encode("utf-8")
    checklist = outcome.wiki.attachment(edits.new_version.id)
    (stored_file,) = (c for c in stored.values() if c.key.endswith(f"/{page.id}::{checklist.id}"))
    assert stored_file.data == checklist.data.read() and checklist.version == 2
    assert outcome.store.scope_path(content.owner_id) == f"/Confluence/{page.space_key}"

    # Both runs went through Dagster into the persistent sandbox instance the UI will show.
    assert [r.status for r in sandbox_runs(home)] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert (home / "dagster.yaml").is_file()
    assert "set -a; . .sandbox/sandbox.env; set +a; " in out and "/dagster dev" in out
    assert "/python -m confluence_sandbox serve" in out
    assert "http://127.0.0.1:3000" in out


def test_demo_exits_non_zero_and_says_why_when_a_run_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_env = demo.Sandbox.env

    def wrong_pat(self: demo.Sandbox, dagster_home: Path | None = None) -> dict[str, str]:
        return {**real_env(self, dagster_home), "CONFLUENCE_PAT": "not-the-sandbox-pat"}

    monkeypatch.setattr(demo.Sandbox, "env", wrong_pat)

    assert demo.main(["--dagster-home", str(tmp_path / "home")]) == 1

    out = capsys.readouterr().out
    assert "Run 1 (first sync: everything labelled is new): FAILURE" in out
    assert "The sync failed:" in out
    assert "Run 2" not in out
    assert "not-the-sandbox-pat" not in out
    assert [r.status for r in sandbox_runs(tmp_path / "home")] == [dg.DagsterRunStatus.FAILURE]


def test_demo_releases_runs_left_started_by_a_killed_demo_only(tmp_path: Path) -> None:
    home = demo.prepare_dagster_home(tmp_path / "home")
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )

    def started_run(tags: dict[str, str]) -> str:
        run = dg.DagsterRun(job_name="confluence_sync", status=dg.DagsterRunStatus.STARTED, tags=tags)
        return instance.add_run(run).run_id

    with dg.DagsterInstance.from_config(str(home)) as instance:
        orphan = started_run({demo.DEMO_PID_TAG: exited.stdout.strip()})
        live_demo = started_run({demo.DEMO_PID_TAG: str(os.getpid())})
        launched_from_ui = started_run({})

        demo.release_stale_demo_runs(instance)

        status = {run_id: instance.get_run_by_id(run_id).status for run_id in (orphan, live_demo, launched_from_ui)}
    assert status == {
        orphan: dg.DagsterRunStatus.CANCELED,
        live_demo: dg.DagsterRunStatus.STARTED,
        launched_from_ui: dg.DagsterRunStatus.STARTED,
    }


# -- serve ---------------------------------------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            (env[name],) = shlex.split(value) or [""]
    return env


@contextlib.contextmanager
def serving(tmp_path: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    env_file = tmp_path / "sandbox" / "sandbox.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "confluence_sandbox",
            "serve",
            "--confluence-port",
            "0",
            "--unique-port",
            "0",
            "--env-file",
            str(env_file),
            "--dagster-home",
            str(tmp_path / "sandbox" / "dagster_home"),
            *extra,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "serve never wrote its env file"
            time.sleep(0.05)
        yield process, env_file
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    with serving(tmp_path) as running:
        yield running


def test_serve_writes_a_valid_env_file_and_answers_on_both_ports(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    process, env_file = served
    env = read_env_file(env_file)

    settings = load_settings(env)  # raises, naming every bad variable, if the file is incomplete
    assert settings.confluence.platform.value == "ONPREM"
    assert settings.unique.scope_id is None
    assert Path(env["DAGSTER_HOME"]).is_absolute() and (Path(env["DAGSTER_HOME"]) / "dagster.yaml").is_file()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    # What a shell sees after `set -a; . file; set +a` is exactly what the file says.
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "{env_file}"; set +a; env -0'], capture_output=True, check=True, env={}
    )
    sourced = dict(item.split("=", 1) for item in shell.stdout.decode().split("\0") if "=" in item)
    assert {name: sourced.get(name) for name in env} == env

    with httpx.Client(timeout=10) as http:
        spaces = http.get(
            f"{env['CONFLUENCE_URL']}/rest/api/space", headers={"Authorization": f"Bearer {env['CONFLUENCE_PAT']}"}
        )
        assert spaces.status_code == 200
        assert {"ENG", "HR", "OPS"} <= {s["key"] for s in spaces.json()["results"]}
        assert http.get(f"{env['CONFLUENCE_URL']}/rest/api/space").status_code == 401

        token = http.post(
            env["ZITADEL_OAUTH_TOKEN_URL"],
            data={
                "grant_type": "client_credentials",
                "client_id": env["ZITADEL_CLIENT_ID"],
                "client_secret": env["ZITADEL_CLIENT_SECRET"],
                "scope": f"openid urn:zitadel:iam:org:project:id:{env['ZITADEL_PROJECT_ID']}:aud",
            },
        )
        assert token.status_code == 200
        query = {"query": "{ __typename }"}
        graphql = env["UNIQUE_INGESTION_URL_GRAPHQL"]
        assert http.post(graphql, json=query).status_code == 401
        answer = http.post(graphql, json=query, headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert answer.status_code == 200 and answer.json()["data"]["__typename"] == "Query"

    process.terminate()
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Sandbox stopped." in output
    assert env["ZITADEL_CLIENT_SECRET"] not in output and env["CONFLUENCE_PAT"] not in output


def test_serve_reports_a_busy_port_instead_of_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with demo.running_sandbox("ONPREM") as busy:
        argv = ["--confluence-port", "0", "--unique-port", str(busy.unique.port)]
        code = demo.serve([*argv, "--env-file", str(tmp_path / "s.env"), "--dagster-home", str(tmp_path / "home")])

    assert code == 2
    assert "Cannot start the sandbox" in capsys.readouterr().err
    assert not (tmp_path / "s.env").exists()


def test_cloud_sandbox_env_is_valid_and_reaches_the_cloud_api() -> None:
    with demo.running_sandbox("CLOUD") as sandbox:
        env = sandbox.env()
        settings = load_settings(env)
        assert settings.confluence.platform.value == "CLOUD"
        spaces = httpx.get(
            f"{env['CONFLUENCE_URL']}/wiki/rest/api/space",
            auth=(env["CONFLUENCE_CLOUD_USER"], env["CONFLUENCE_CLOUD_TOKEN"]),
            timeout=10,
        )
    assert spaces.status_code == 200
    assert {"ENG", "HR", "OPS"} <= {s["key"] for s in spaces.json()["results"]}


def test_serve_with_two_instances_writes_an_instances_file_both_syncs_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(tmp_path, "--instances", "2", "--cloud-port", "0", "--instances-file", "s/instances.yaml") as (
        process,
        env_file,
    ):
        env = read_env_file(env_file)
        assert env[INSTANCES_FILE_VARIABLE] == str(tmp_path / "s" / "instances.yaml")
        assert "CONFLUENCE_URL" not in env  # the file defines every instance

        config = load_instances(env)  # names every bad field, if the file is not right
        assert [(i.name, i.status.value) for i in config.instances] == [("wiki_dc", "active"), ("wiki_cloud", "active")]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = build_definitions(env)
        instance = dg.DagsterInstance.ephemeral()
        scopes: dict[str, set[str]] = {}
        for name in ("wiki_dc", "wiki_cloud"):
            result = defs.get_job_def(f"confluence_sync__{name}").execute_in_process(instance=instance)
            (event,) = result.get_asset_observation_events()
            rows = event.asset_observation_data.asset_observation.metadata[PER_SPACE_KEY].value
            scopes[name] = {f"{row['space_id']}_{row['space_key']}" for row in rows}  # type: ignore[union-attr]
            assert sum(row["new"] for row in rows) > 0  # type: ignore[union-attr]
        assert scopes["wiki_dc"] and scopes["wiki_cloud"] and not scopes["wiki_dc"] & scopes["wiki_cloud"]

        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "confluence_sync__wiki_cloud" in output and "Sandbox stopped." in output
