"""Command line: run the Unique emulator on a port and print the settings that point the connector at it."""

from __future__ import annotations

import argparse
import threading

from confluence_sandbox.unique.server import AUTH_MODES, UniqueEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m confluence_sandbox.unique", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to reach it from containers)")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--auth-mode", choices=AUTH_MODES, default="any")
    parser.add_argument("--client-id", default="connector")
    parser.add_argument("--client-secret", default="zitadel-secret")
    parser.add_argument("--project-id", default="123456")
    parser.add_argument("--company-id", default="company-1")
    parser.add_argument("--user-id", default="service-user-1")
    parser.add_argument("--token-ttl", type=int, default=3600, help="seconds a token stays valid")
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="PATH",
        help="create this scope path up front (e.g. /Company/KB) and print its id; repeatable",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    emulator = UniqueEmulator(
        client_id=args.client_id,
        client_secret=args.client_secret,
        project_id=args.project_id,
        company_id=args.company_id,
        user_id=args.user_id,
        token_ttl=args.token_ttl,
        auth_mode=args.auth_mode,
        host=args.host,
        port=args.port,
    )
    scopes = emulator.store.generate_scopes(args.scope, inherit_access=False) if args.scope else []
    emulator.start()
    print(f"Unique emulator on {emulator.url} (auth mode {emulator.auth_mode}); Ctrl-C stops it.")
    print(f"UNIQUE_INGESTION_URL_GRAPHQL={emulator.graphql_url}")
    print(f"UNIQUE_INGESTION_URL={emulator.ingestion_url}")
    print(f"UNIQUE_SERVICE_AUTH_MODE={'cluster_local' if args.auth_mode == 'cluster_local' else 'external'}")
    print(f"ZITADEL_OAUTH_TOKEN_URL={emulator.token_url}")
    print(f"ZITADEL_CLIENT_ID={args.client_id}")
    print("ZITADEL_CLIENT_SECRET=<the --client-secret value>")
    print(f"ZITADEL_PROJECT_ID={args.project_id}")
    print(f'cluster_local headers: {{"x-company-id": "{args.company_id}", "x-user-id": "{args.user_id}"}}')
    for path, scope in zip(args.scope, scopes, strict=True):
        print(f"scope {path}: UNIQUE_SCOPE_ID={scope.id}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
