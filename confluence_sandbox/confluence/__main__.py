"""Command line: run a Confluence emulator on a port until Ctrl-C, optionally seeded with a small demo wiki."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from confluence_sandbox.confluence.server import DEFAULT_CLOUD_ID, ConfluenceEmulator
from confluence_sandbox.confluence.wiki import Wiki


def seed_demo(wiki: Wiki) -> None:
    """Two global spaces and a personal one: a labelled tree, a single labelled page, a blog post, noise."""
    wiki.add_space("OPS", "Operations")
    wiki.add_space("DEV", "Development")
    wiki.add_space("~jdoe", "Jane Doe", type="personal")
    root = wiki.add_page("OPS", "Runbooks", labels=["ai-ingest-all"], body="<h1>Runbooks</h1><p>Index.</p>")
    child = wiki.add_page("OPS", "Restart the service", parent_id=root.id, body="<p>Run <code>restart</code>.</p>")
    wiki.add_page("OPS", "Deep detail", parent_id=child.id, body="<p>Details.</p>")
    wiki.add_page("OPS", "Unlabelled notes", body="<p>Not synced.</p>")
    wiki.add_page("DEV", "Architecture", labels=["ai-ingest", "design"], body="<p>Boxes and arrows.</p>")
    wiki.add_page("DEV", "Release notes", type="blogpost", labels=["ai-ingest"], body="<p>v1 is out.</p>")
    wiki.add_page("~jdoe", "My drafts", labels=["ai-ingest"], body="<p>Personal, never synced.</p>")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m confluence_sandbox.confluence", description=__doc__)
    parser.add_argument("--mode", choices=["ONPREM", "CLOUD"], type=str.upper, default="ONPREM")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--context-path", default="", help="DC only, e.g. /confluence")
    parser.add_argument("--pat", default="test-pat")
    parser.add_argument("--username", default="svc")
    parser.add_argument("--password", default="svc-password")
    parser.add_argument("--cloud-user", default="svc@example.com")
    parser.add_argument("--cloud-token", default="cloud-token")
    parser.add_argument("--cloud-id", default=DEFAULT_CLOUD_ID)
    parser.add_argument("--empty", action="store_true", help="start without the demo content")
    args = parser.parse_args(argv)

    wiki = Wiki()
    if not args.empty:
        seed_demo(wiki)
    emulator = ConfluenceEmulator(
        args.mode,
        context_path=args.context_path,
        pat=args.pat,
        username=args.username,
        password=args.password,
        cloud_user=args.cloud_user,
        cloud_token=args.cloud_token,
        cloud_id=args.cloud_id,
        host=args.host,
        port=args.port,
        wiki=wiki,
    )
    print(f"Confluence emulator ({args.mode}) on {emulator.url}", flush=True)
    print(f"  CONFLUENCE_URL={emulator.base_url}", flush=True)
    print(f"  API root: {emulator.api_root}", flush=True)
    if args.mode == "CLOUD":
        print(f"  CONFLUENCE_CLOUD_API_URL={emulator.gateway_url}  CONFLUENCE_CLOUD_ID={emulator.cloud_id}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
