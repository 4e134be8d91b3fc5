"""Attachment transfers under faults: one failing file fails alone, broken bodies are downloaded again, and a
200 MB file moves through the job with flat memory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from confluence_pipeline_tests.support import REPO_ROOT, Sandbox, failure_text, output_metadata
from confluence_sandbox.confluence.attachments import Attachment, sample_pdf
from confluence_sandbox.http import Fault


def setup_page(box: Sandbox) -> str:
    wiki = box.confluence.wiki
    wiki.add_space("ENG", "Engineering")
    box.set_env(CONFLUENCE_ATTACHMENTS="true")
    return wiki.add_page("ENG", "Runbook", labels=["ai-ingest"], body="<p>runbook</p>").id


def att_key(box: Sandbox, attachment: Attachment) -> str:
    return f"{box.key_of(attachment.container.id)}::{attachment.id}"


def download_path(box: Sandbox, attachment: Attachment) -> str:
    """The Confluence route that serves (DC) or redirects (Cloud) this attachment's download."""
    if box.confluence.mode == "ONPREM":
        return rf"/download/attachments/{attachment.container.id}/{re.escape(attachment.title)}$"
    return rf"/child/attachment/{attachment.id}/download$"


def test_a_failing_download_fails_that_attachment_alone(sandbox: Sandbox) -> None:
    page_id = setup_page(sandbox)
    wiki = sandbox.confluence.wiki
    good = wiki.add_attachment(page_id, "good.pdf", sample_pdf("good"))
    bad = wiki.add_attachment(page_id, "bad.pdf", sample_pdf("bad"))
    sandbox.confluence.faults.add(download_path(sandbox, bad), Fault(500), times=None)

    result = sandbox.run_sync(expect_success=False)

    assert not result.success
    text = failure_text(result)
    assert f"attachment bad.pdf ({bad.id}) of page {page_id} in space ENG failed at download" in text
    assert "1 attachment(s) failed, more than SYNC_FAILURE_TOLERANCE=0 allows" in text
    assert set(sandbox.stored()) == {sandbox.key_of(page_id), att_key(sandbox, good)}
    assert att_key(sandbox, bad) not in sandbox.all_keys()  # its half-registered item was removed
    assert output_metadata(result, "summarize_sync")["failed_pages"] == f"{page_id}::{bad.id}"
    # The transport retried the refused download; a refusal is not worth downloading again from the start.
    assert len(sandbox.confluence.requests_to(download_path(sandbox, bad))) == 5

    sandbox.set_env(SYNC_FAILURE_TOLERANCE="1")
    assert sandbox.run_sync().success
    sandbox.confluence.faults.clear()
    sandbox.run_sync()
    assert att_key(sandbox, bad) in sandbox.stored()


def test_a_download_dropped_mid_body_is_downloaded_again(sandbox: Sandbox) -> None:
    page_id = setup_page(sandbox)
    big = sandbox.confluence.wiki.add_attachment(page_id, "big.pdf", size=1_000_000, seed=4)
    cuts = sandbox.confluence.body_cuts if sandbox.confluence.media is None else sandbox.confluence.media.body_cuts
    cuts.add(r"/big\.pdf$" if sandbox.confluence.media is None else r"/binary$")

    result = sandbox.run_sync()

    stored = sandbox.stored()[att_key(sandbox, big)]
    assert stored.sha256 == big.data.sha256() and stored.byte_size == 1_000_000
    assert len(sandbox.confluence.requests_to(download_path(sandbox, big))) == 2
    assert any("transfer 1 failed" in line for line in _logs(sandbox, result))


def test_a_download_dropped_every_time_fails_after_three_transfers(onprem: Sandbox) -> None:
    page_id = setup_page(onprem)
    big = onprem.confluence.wiki.add_attachment(page_id, "big.pdf", size=300_000, seed=5)
    onprem.confluence.body_cuts.add(r"/big\.pdf$", after=1000, times=None)

    result = onprem.run_sync(expect_success=False)

    assert "failed at download" in failure_text(result) and "after 3 transfers" in failure_text(result)
    assert len(onprem.confluence.requests_to(download_path(onprem, big))) == 3
    assert set(onprem.stored()) == {onprem.key_of(page_id)}


def test_an_upload_failure_fails_the_attachment_alone_and_removes_its_new_item(sandbox: Sandbox) -> None:
    page_id = setup_page(sandbox)
    pdf = sandbox.confluence.wiki.add_attachment(page_id, "spec.pdf", sample_pdf())
    sandbox.unique.faults.add(
        r"/upload$",
        Fault(500),
        method="PUT",
        when=lambda r: r.headers.get("content-type") == "application/pdf",
        times=None,
    )

    result = sandbox.run_sync(expect_success=False)

    assert f"attachment spec.pdf ({pdf.id}) of page {page_id} in space ENG failed at upload" in failure_text(result)
    assert set(sandbox.all_keys()) == {sandbox.key_of(page_id)}
    assert len(sandbox.confluence.requests_to(download_path(sandbox, pdf))) == 3  # each transfer downloads anew


def test_an_update_whose_transfer_fails_keeps_the_previous_version(onprem: Sandbox) -> None:
    page_id = setup_page(onprem)
    pdf = onprem.confluence.wiki.add_attachment(page_id, "spec.pdf", b"%PDF v1")
    onprem.run_sync()
    onprem.confluence.wiki.update_attachment(pdf.id, b"%PDF v2")
    onprem.confluence.faults.add(download_path(onprem, pdf), Fault(404), times=None)

    result = onprem.run_sync(expect_success=False)

    assert "failed at download" in failure_text(result)
    assert onprem.stored()[att_key(onprem, pdf)].data == b"%PDF v1"


def _logs(box: Sandbox, result: object) -> list[str]:
    return [entry.user_message for entry in box.instance.all_logs(result.run_id)]  # type: ignore[attr-defined]


# -- memory ---------------------------------------------------------------------------------------------------
CHILD = """
import json, os
import dagster as dg
from confluence_pipeline.jobs.sync import confluence_sync
from confluence_pipeline.resources import resources_from_env

result = confluence_sync.execute_in_process(
    resources=resources_from_env(dict(os.environ)), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
)
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"success": result.success, "peak_kb": peak_kb}))
"""


def _job_peak_mb(box: Sandbox) -> float:
    """Run the sync in a child process (the emulators stay here) and return the child's peak RSS in MB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "UNIQUE_", "ZITADEL_"))}
    env.update(box.env)
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert last.startswith("{"), done.stderr[-3000:]
    outcome = json.loads(last)
    assert outcome["success"], done.stderr[-3000:]
    return float(outcome["peak_kb"]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
@pytest.mark.timeout(300)
def test_a_200_mb_attachment_streams_with_flat_memory(onprem: Sandbox) -> None:
    onprem.unique.keep_upload_bytes = False  # the emulator hashes the upload instead of keeping it
    page_id = setup_page(onprem)
    wiki = onprem.confluence.wiki
    small = wiki.add_attachment(page_id, "small.pdf", size=1_000, seed=1)
    baseline = _job_peak_mb(onprem)
    assert att_key(onprem, small) in onprem.stored()

    large = wiki.add_attachment(page_id, "large.pdf", size=200 * 1024**2, seed=2)
    peak = _job_peak_mb(onprem)

    stored = onprem.stored()[att_key(onprem, large)]
    assert stored.byte_size == 200 * 1024**2 and stored.sha256 == large.data.sha256()
    assert peak - baseline < 40, f"peak RSS grew from {baseline:.0f} MB to {peak:.0f} MB for a 200 MB file"


def test_a_failed_new_attachment_never_removes_an_item_that_existed_before(onprem: Sandbox) -> None:
    page_id = setup_page(onprem)
    pdf = onprem.confluence.wiki.add_attachment(page_id, "spec.pdf", sample_pdf())
    # Another source wrote content under the very key; a file-diff that filters by source calls the key new.
    onprem.unique.file_diff_filters_by_source = True
    scope = onprem.unique.store.add_scope("Other").id
    other = onprem.unique.store.seed_content(att_key(onprem, pdf), owner_id=scope, source_kind="OTHER")
    onprem.confluence.faults.add(download_path(onprem, pdf), Fault(404), times=None)

    result = onprem.run_sync(expect_success=False)

    assert "failed at download" in failure_text(result)
    assert other.id in onprem.unique.store.contents  # registration upserted onto it; the cleanup spared it
