"""A local fake of Unique's ingestion side (token, GraphQL, file-diff, uploads) for tests and the sandbox."""

from __future__ import annotations

from confluence_sandbox.unique.server import UniqueEmulator
from confluence_sandbox.unique.store import (
    ScopeAccess,
    StoredContent,
    StoredScope,
    UniqueApiError,
    UniqueStore,
    UploadSlot,
)

__all__ = [
    "ScopeAccess",
    "StoredContent",
    "StoredScope",
    "UniqueApiError",
    "UniqueEmulator",
    "UniqueStore",
    "UploadSlot",
]
