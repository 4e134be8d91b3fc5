"""Benchmark of the real `confluence_sync` job: a synthetic wiki, three syncs, requests against the floor, speed, RSS.

Run `python -m benchmarks.sync_bench --help`. Both emulators run in this process; every sync runs the job through
`dagster job execute` in a child process with a fresh DAGSTER_HOME, so the peak RSS reported is the job's alone.
The three phases are: an initial sync of the whole wiki, a resync with nothing changed, and a resync after about
1% of the pages changed (edits and new pages) and a handful lost their label (deletions, all in one space).
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.options import PHASES, BenchOptions
from benchmarks.report import BenchReport, PhaseResult, check_targets, format_table
from benchmarks.runner import run_benchmark

__all__ = [
    "PHASES",
    "BenchOptions",
    "BenchReport",
    "PhaseResult",
    "check_targets",
    "format_table",
    "main",
    "run_benchmark",
]


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
    parser.add_argument(
        "--attachments", type=float, default=0.2, help="attachments per page, 10 KB-5 MB (default 0.2; 0 = off)"
    )
    parser.add_argument("--large-file-mb", type=int, default=0, help="add one attachment of this size (peak RSS)")
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
        attachment_share=args.attachments,
        large_file_mb=args.large_file_mb,
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
