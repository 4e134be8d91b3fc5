"""Command line of the sandbox: `demo` runs the sync twice against seeded emulators, `serve` keeps them up."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from confluence_sandbox import demo

USAGE = """usage: python -m confluence_sandbox {demo,serve} [options]

  demo   start a seeded local Confluence and Unique, run the real confluence_sync job twice
         (with a wiki edit in between) and print what landed in Unique   [--mode ONPREM|CLOUD]
  serve  keep the seeded sandbox running and write .sandbox/sandbox.env for `dagster dev`
         [--mode ONPREM|CLOUD] [--confluence-port 8090] [--unique-port 8091] [--env-file PATH]
         [--instances 2]: a Data Center and a Cloud Confluence into one Unique, with .sandbox/instances.yaml

Run `python -m confluence_sandbox <command> --help` for every option."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "demo":
        return demo.main(rest)
    if command == "serve":
        return demo.serve(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
