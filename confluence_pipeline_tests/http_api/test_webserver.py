"""The GraphQL client: its queries fit the installed Dagster's schema; it reaches a loopback webserver directly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from confluence_pipeline.http_api import webserver
from confluence_pipeline.http_api.webserver import DagsterWebserver
from confluence_pipeline_tests.http_api.conftest import free_port


def test_queries_are_valid_against_the_installed_dagster_schema() -> None:
    schema = create_schema().graphql_schema  # slow to build: once for all queries
    for name in ("LOCATIONS_QUERY", "RUNS_QUERY", "RUN_QUERY", "RUN_EVENTS_QUERY", "DAEMON_QUERY"):
        assert validate(schema, parse(getattr(webserver, name))) == [], name


class _GraphQL(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = {"healthy": True, "required": True, "lastHeartbeatTime": 1.0}
        body = json.dumps({"data": {"instance": {"daemonHealth": {"daemonStatus": status}}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return


@pytest.fixture
def loopback_graphql() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GraphQL)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_loopback_webserver_is_reached_directly_whatever_the_proxy_variables(
    loopback_graphql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)

    state = DagsterWebserver(loopback_graphql, timeout_seconds=5, code_location="x").run_queue_daemon()

    assert state.healthy is True


def test_a_remote_webserver_honours_the_proxy_variables() -> None:
    remote = DagsterWebserver("https://dagster.example.com", timeout_seconds=5, code_location="x")
    loopback = DagsterWebserver("http://localhost:3000", timeout_seconds=5, code_location="x")

    assert "trust_env" not in remote._transport().kwargs
    assert loopback._transport().kwargs["trust_env"] is False
