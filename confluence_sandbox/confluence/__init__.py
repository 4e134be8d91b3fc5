"""Confluence emulator: a faithful local fake of Confluence DC/Server and Cloud REST for tests and the sandbox."""

from __future__ import annotations

from confluence_sandbox.confluence.cql import CqlError, Query, SearchScope, UnknownSpaceError, evaluate, parse
from confluence_sandbox.confluence.server import DEFAULT_CLOUD_ID, DEFAULT_SERVER_ID, ConfluenceEmulator
from confluence_sandbox.confluence.wiki import Page, Space, Wiki

__all__ = [
    "DEFAULT_CLOUD_ID",
    "DEFAULT_SERVER_ID",
    "ConfluenceEmulator",
    "CqlError",
    "Page",
    "Query",
    "SearchScope",
    "Space",
    "UnknownSpaceError",
    "Wiki",
    "evaluate",
    "parse",
]
