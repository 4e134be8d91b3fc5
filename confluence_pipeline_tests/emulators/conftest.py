"""Fixtures the emulator self-tests share: one fresh emulator per test, stopped after it.

A test file that needs an emulator set up another way (another context path, OAuth clients, a seeded wiki, both
platforms) keeps its own fixture of the same name beside its tests; that one wins inside the file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from confluence_sandbox.confluence import ConfluenceEmulator
from confluence_sandbox.unique import UniqueEmulator


@pytest.fixture
def dc() -> Iterator[ConfluenceEmulator]:
    """Confluence Data Center served under the `/confluence` context path."""
    with ConfluenceEmulator("ONPREM", context_path="/confluence") as emulator:
        yield emulator


@pytest.fixture
def cloud() -> Iterator[ConfluenceEmulator]:
    """Confluence Cloud, the bare emulator (not the connector sandbox of the top-level `cloud` fixture)."""
    with ConfluenceEmulator("CLOUD") as emulator:
        yield emulator


@pytest.fixture
def emu() -> Iterator[UniqueEmulator]:
    """The Unique emulator."""
    with UniqueEmulator() as emulator:
        yield emulator
